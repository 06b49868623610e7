package main

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func msd(v ...int) []time.Duration {
	out := make([]time.Duration, len(v))
	for i, x := range v {
		out[i] = time.Duration(x) * time.Millisecond
	}
	return out
}

func TestSummarize(t *testing.T) {
	twenty := msd(20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1)
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(100-i) * time.Millisecond
	}
	for _, tc := range []struct {
		name    string
		in      []time.Duration
		want    summary
		targets bool
	}{
		{"empty", nil, summary{}, false},
		{"one", msd(7), summary{n: 1, p50: 7 * time.Millisecond, p99: 7 * time.Millisecond, max: 7 * time.Millisecond, min: 7 * time.Millisecond}, true},
		// Nearest rank: p50 of 20 is the 10th, p99 the 20th (the maximum).
		{"twenty", twenty, summary{n: 20, p50: 10 * time.Millisecond, p99: 20 * time.Millisecond, max: 20 * time.Millisecond, min: time.Millisecond}, true},
		{"hundred", hundred, summary{n: 100, p50: 50 * time.Millisecond, p99: 99 * time.Millisecond, max: 100 * time.Millisecond, min: time.Millisecond}, true},
		{"missing ones are counted, not sorted in", msd(-1, 30, -1, 10, 20), summary{n: 3, p50: 20 * time.Millisecond, p99: 30 * time.Millisecond, max: 30 * time.Millisecond, min: 10 * time.Millisecond, missing: 2}, false},
		{"p50 at the limit misses", msd(500, 500, 500), summary{n: 3, p50: 500 * time.Millisecond, p99: 500 * time.Millisecond, max: 500 * time.Millisecond, min: 500 * time.Millisecond}, false},
		{"p99 at one second misses", msd(100, 200, 1000), summary{n: 3, p50: 200 * time.Millisecond, p99: time.Second, max: time.Second, min: 100 * time.Millisecond}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := slices.Clone(tc.in)
			got := summarize(tc.in)
			if got != tc.want {
				t.Errorf("summarize = %+v, want %+v", got, tc.want)
			}
			if !slices.Equal(in, tc.in) {
				t.Errorf("summarize changed its input")
			}
			if m := meetsTargets(got); m != tc.targets {
				t.Errorf("meetsTargets = %v, want %v", m, tc.targets)
			}
		})
	}
}

func TestParseProcStat(t *testing.T) {
	// A real line from a Go process, with a name holding ") (" to check
	// that fields are counted from the last parenthesis.
	line := "4242 (keeperlb-) (x) S 1 4242 4242 0 -1 4194560 2551 0 0 0 137 45 0 0 20 0 9 0 123 1300000000 7000 18446744073709551615 1 1 0 0 0 0 0 0 2143420159 0 0 0 17 1 0 0 0 0 0\n"
	got, err := parseProcStat([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	want := procStat{comm: "keeperlb-) (x", state: "S", utime: 137, stime: 45, threadsNum: 9}
	if got != want {
		t.Errorf("parseProcStat = %+v, want %+v", got, want)
	}
	for _, bad := range []string{"", "12 noparen S 1", "12 (x) S 1 2 3", "1 (x) S 1 1 1 0 -1 0 0 0 0 0 u 45 0 0 20 0 9 0"} {
		if _, err := parseProcStat([]byte(bad)); err == nil {
			t.Errorf("parseProcStat(%q) accepted", bad)
		}
	}
}

func TestParseProcStatus(t *testing.T) {
	status := "Name:\tkeeperlb-speake\nVmHWM:\t   41000 kB\nVmRSS:\t   40960 kB\nRssAnon:\t   16384 kB\nRssFile:\t   24576 kB\nRssShmem:\t       0 kB\nThreads:\t9\n"
	got, err := parseProcStatus([]byte(status))
	if err != nil {
		t.Fatal(err)
	}
	if want := (memory{rss: 40960, anon: 16384, file: 24576, hwm: 41000}); got != want {
		t.Errorf("parseProcStatus = %+v, want %+v", got, want)
	}
	if _, err := parseProcStatus([]byte("VmRSS:\t1 kB\n")); err == nil {
		t.Error("a status without RssAnon, RssFile and VmHWM was accepted")
	}
	if _, err := parseProcStatus([]byte("VmRSS:\tlots kB\nRssAnon:\t1 kB\nRssFile:\t1 kB\nVmHWM:\t1 kB\n")); err == nil {
		t.Error("a non-numeric VmRSS was accepted")
	}
}

func TestFirstLiveWithout(t *testing.T) {
	base := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	log := []byte(`{"time":"2026-11-27T09:59:59.000Z","level":"INFO","msg":"membership: live speakers changed","live":["node2","node3"]}
{"time":"2026-11-27T10:00:00.100Z","level":"INFO","msg":"membership: live speakers changed","live":["node1","node2","node3"]}
not json at all, live speakers changed
{"time":"2026-11-27T10:00:00.250Z","level":"INFO","msg":"configuration loaded"}
{"time":"2026-11-27T10:00:00.380Z","level":"INFO","msg":"membership: live speakers changed","live":["node2","node3"]}
{"time":"2026-11-27T10:00:00.500Z","level":"INFO","msg":"membership: live speakers changed","live":["node2"]}
`)
	for _, tc := range []struct {
		node  string
		since time.Time
		want  time.Duration
		ok    bool
	}{
		// The line before since does not count, nor one that still has node1.
		{"node1", base, 380 * time.Millisecond, true},
		{"node3", base, 500 * time.Millisecond, true},
		{"node2", base, 0, false},
		{"node1", base.Add(time.Second), 0, false},
	} {
		at, ok := firstLiveWithout(log, tc.node, tc.since)
		if ok != tc.ok || (ok && at.Sub(base) != tc.want) {
			t.Errorf("firstLiveWithout(%s, %s) = %v, %v; want +%v, %v", tc.node, tc.since, at, ok, tc.want, tc.ok)
		}
	}
}

func TestArpingMACs(t *testing.T) {
	out := []byte(`ARPING 198.18.3.129 from 198.18.3.1 eth0
Unicast reply from 198.18.3.129 [02:6B:6C:00:03:0C]  0.612ms
Unicast reply from 198.18.3.129 [02:6B:6C:00:03:0B]  0.701ms
Unicast reply from 198.18.3.129 [02:6B:6C:00:03:0C]  0.544ms
Sent 2 probes (2 broadcast(s))
Received 3 response(s)
`)
	want := []string{"02:6b:6c:00:03:0b", "02:6b:6c:00:03:0c"}
	if got := arpingMACs(out); !slices.Equal(got, want) {
		t.Errorf("arpingMACs = %v, want %v", got, want)
	}
	if got := arpingMACs([]byte("ARPING 198.18.3.129 from 198.18.3.1 eth0\nSent 2 probes (2 broadcast(s))\nReceived 0 response(s)\n")); len(got) != 0 {
		t.Errorf("no replies, got %v", got)
	}
}

func TestDoubleRounds(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	sent := []time.Time{at(0), at(20), at(40), at(60), at(80)}
	replies := []arpReply{
		{at(-5), "cc"},               // before the first request: ignored
		{at(1), "aa"}, {at(2), "aa"}, // round 0: one MAC twice
		{at(21), "aa"}, {at(22), "bb"}, // round 1: two
		{at(40), "bb"}, {at(45), "aa"}, // round 2: two, one exactly at the send time
		{at(61), "bb"},                  // round 3: one
		{at(99), "bb"}, {at(500), "aa"}, // round 4 (the last runs on): two
	}
	want := []time.Time{at(20), at(40), at(80)}
	if got := doubleRounds(sent, replies); !slices.Equal(got, want) {
		t.Errorf("doubleRounds = %v, want %v", got, want)
	}
	if got := doubleRounds(nil, replies); len(got) != 0 {
		t.Errorf("no requests, got %v", got)
	}
}

func TestExpiries(t *testing.T) {
	base := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return base.Add(time.Duration(ms) * time.Millisecond) }
	log := []byte(`{"time":"2026-11-27T10:00:00.000Z","msg":"membership: live speakers changed","node":"node1","live":["node1"]}
{"time":"2026-11-27T10:00:00.100Z","msg":"membership: live speakers changed","node":"node1","live":["node1","node2","node3"]}
{"time":"2026-11-27T10:00:01.000Z","msg":"membership: live speakers changed","node":"node1","live":["node1","node3"]}
{"time":"2026-11-27T10:00:01.004Z","msg":"membership: live speakers changed","node":"node1","live":["node1","node2","node3"]}
{"time":"2026-11-27T10:00:02.000Z","msg":"configuration loaded","node":"node1"}
{"time":"2026-11-27T10:00:03.000Z","msg":"membership: live speakers changed","node":"node1","live":["node1"]}
{"time":"2026-11-27T10:00:03.500Z","msg":"membership: live speakers changed","node":"node1","live":["node1","node3"]}
`)
	got := expiries(log)
	want := []expiry{
		{at: at(1000), back: at(1004), node: "node1", peer: "node2"},
		{at: at(3000), node: "node1", peer: "node2"},
		{at: at(3000), back: at(3500), node: "node1", peer: "node3"},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("expiries = %+v, want %+v", got, want)
	}
	// The fault window [2.9 s, 3.6 s) explains the last two.
	un := unexplained(got, [][2]time.Time{{at(2900), at(3600)}}, at(0), at(10000))
	if !slices.Equal(un, want[:1]) {
		t.Errorf("unexplained = %+v, want %+v", un, want[:1])
	}
	if un := unexplained(got, nil, at(1500), at(10000)); len(un) != 2 {
		t.Errorf("unexplained from 1.5 s = %+v, want the two at 3 s", un)
	}
}

func TestParseRequestCounts(t *testing.T) {
	text := `# TYPE apiserver_request_total counter
apiserver_request_total{code="201",component="apiserver",dry_run="",group="metallb.io",resource="servicel2statuses",scope="resource",subresource="",verb="POST",version="v1beta1"} 335
apiserver_request_total{code="200",component="apiserver",dry_run="",group="metallb.io",resource="servicel2statuses",scope="resource",subresource="status",verb="PUT",version="v1beta1"} 330
apiserver_request_total{code="409",component="apiserver",dry_run="",group="metallb.io",resource="servicel2statuses",scope="resource",subresource="status",verb="PUT",version="v1beta1"} 5
apiserver_request_total{code="200",component="apiserver",dry_run="",group="metallb.io",resource="servicel2statuses",scope="namespace",subresource="",verb="LIST",version="v1beta1"} 99
apiserver_request_total{code="201",component="apiserver",dry_run="",group="events.k8s.io",resource="events",scope="resource",subresource="",verb="POST",version="v1"} 12
apiserver_request_total{code="201",component="apiserver",dry_run="",group="",resource="services",scope="resource",subresource="",verb="POST",version="v1"} 1000
`
	now, err := parseRequestCounts(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	c := now.since(requestCounts{{"servicel2statuses", "", "POST", "201"}: 35})
	if c.creates != 300 || c.statusUpdates != 335 || c.conflicts != 5 || c.events != 12 || c.deletes != 0 || c.total() != 635 {
		t.Errorf("cost %+v", c)
	}
}
