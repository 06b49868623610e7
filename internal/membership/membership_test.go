package membership

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"
)

func TestWireRoundTrip(t *testing.T) {
	key := []byte("secret")
	for _, hb := range []heartbeat{
		{node: "n1", incarnation: 1, seq: 2, ready: true},
		{node: "a-very-long-node-name.example.internal", incarnation: 1<<63 + 5, seq: 1 << 40},
	} {
		got, err := decode(encode(hb, key), key)
		if err != nil {
			t.Fatalf("decode(encode(%+v)): %v", hb, err)
		}
		if got != hb {
			t.Errorf("round trip gave %+v, want %+v", got, hb)
		}
	}
}

func TestWireFormat(t *testing.T) {
	b := encode(heartbeat{node: "n1", incarnation: 0x0102030405060708, seq: 9, ready: true}, nil)
	want := []byte{'K', 'L', 'B', 1, 1, 2, 'n', '1', 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 0, 0, 0, 0, 9}
	if !slices.Equal(b[:len(want)], want) || len(b) != len(want)+32 {
		t.Errorf("encoding is % x, want % x followed by a 32-byte MAC", b, want)
	}
}

func TestDecodeRejects(t *testing.T) {
	good := encode(heartbeat{node: "n1", incarnation: 1, seq: 1}, []byte("k"))
	flip := func(i int) []byte { b := slices.Clone(good); b[i] ^= 1; return b }
	cases := map[string][]byte{
		"empty":             nil,
		"short":             good[:10],
		"bad magic":         flip(0),
		"bad version":       flip(3),
		"name length wrong": flip(5),
		"tampered sequence": flip(len(good) - 33),
		"tampered mac":      flip(len(good) - 1),
		"trailing byte":     append(slices.Clone(good), 0),
	}
	for name, b := range cases {
		if _, err := decode(b, []byte("k")); err == nil {
			t.Errorf("%s: decode accepted % x", name, b)
		}
	}
	if _, err := decode(good, []byte("other key")); err == nil {
		t.Error("a heartbeat made with another key was accepted")
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(encode(heartbeat{node: "n1", incarnation: 1, seq: 1, ready: true}, []byte("k")))
	f.Add([]byte("KLB"))
	f.Fuzz(func(t *testing.T, b []byte) {
		hb, err := decode(b, []byte("k"))
		if err != nil {
			return
		}
		// Whatever decodes must re-encode to the same bytes: nothing in a
		// packet is ignored.
		if again := encode(hb, []byte("k")); !slices.Equal(again, b) {
			t.Fatalf("decoded %+v from % x but it encodes to % x", hb, b, again)
		}
	})
}

// clock is a manual clock for the expiry tests.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newTestDetector(t *testing.T, c *clock) *Detector {
	t.Helper()
	d, err := New(slog.New(slog.DiscardHandler), Options{
		Node: "n1", Listen: netip.MustParseAddr("127.0.0.1"), Port: 0,
		Interval: 100 * time.Millisecond, Timeout: 400 * time.Millisecond, Now: c.now,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

func TestLivenessRules(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	d := newTestDetector(t, c)
	a2, a3 := netip.MustParseAddr("198.18.0.2"), netip.MustParseAddr("198.18.0.3")
	d.SetPeers([]Peer{{Name: "n1", Addr: netip.MustParseAddr("198.18.0.1")}, {Name: "n2", Addr: a2}, {Name: "n3", Addr: a3}})

	if d.Ready() {
		t.Error("ready before one timeout passed")
	}
	if got := d.Live(); !slices.Equal(got, []string{"n1"}) {
		t.Errorf("live before any heartbeat = %v, want only self", got)
	}

	d.accept(heartbeat{node: "n2", incarnation: 5, seq: 1, ready: true}, a2, c.t)
	d.accept(heartbeat{node: "n3", incarnation: 5, seq: 1, ready: false}, a3, c.t)
	if got := d.Live(); !slices.Equal(got, []string{"n1", "n2"}) {
		t.Errorf("live = %v, want n1 n2 (n3 is not ready)", got)
	}

	// A heartbeat naming n3 from n2's address is a forgery.
	d.accept(heartbeat{node: "n3", incarnation: 5, seq: 2, ready: true}, a2, c.t)
	if got := d.Live(); slices.Contains(got, "n3") {
		t.Errorf("a heartbeat for n3 from n2's address counted: live = %v", got)
	}
	// Unknown nodes are ignored.
	d.accept(heartbeat{node: "n9", incarnation: 1, seq: 1, ready: true}, a2, c.t)
	if got := d.Live(); slices.Contains(got, "n9") {
		t.Errorf("an unknown node counted: live = %v", got)
	}

	// n2 stays alive until Timeout after its last heartbeat.
	c.t = c.t.Add(399 * time.Millisecond)
	d.mu.Lock()
	d.recomputeLocked(c.t)
	d.mu.Unlock()
	if got := d.Live(); !slices.Contains(got, "n2") {
		t.Errorf("n2 expired early: live = %v", got)
	}
	if d.Ready() {
		t.Error("ready 399 ms after start; the timeout is 400 ms")
	}

	recompute := func() {
		d.mu.Lock()
		d.recomputeLocked(c.t)
		d.mu.Unlock()
	}
	c.t = c.t.Add(time.Millisecond)
	recompute()
	if !d.Ready() {
		t.Error("not ready one timeout after start")
	}
	if got := d.Live(); !slices.Equal(got, []string{"n1"}) {
		t.Errorf("n2 did not expire one timeout after its heartbeat: live = %v", got)
	}
	select {
	case <-d.Changes():
	default:
		t.Error("no change signalled")
	}

	// A replayed heartbeat does not bring n2 back; a newer one does.
	d.accept(heartbeat{node: "n2", incarnation: 5, seq: 1, ready: true}, a2, c.t)
	if got := d.Live(); slices.Contains(got, "n2") {
		t.Errorf("a replayed heartbeat revived n2: live = %v", got)
	}
	d.accept(heartbeat{node: "n2", incarnation: 5, seq: 2, ready: true}, a2, c.t)
	if got := d.Live(); !slices.Contains(got, "n2") {
		t.Errorf("a fresh heartbeat did not revive n2: live = %v", got)
	}
	// n2 came back after a silence of a Timeout: a rejoin.
	if got := d.Rejoins(); got != 1 {
		t.Errorf("Rejoins = %d after n2 came back from the dead, want 1", got)
	}
	// A restarted speaker (new incarnation) starts its sequence again.
	d.accept(heartbeat{node: "n2", incarnation: 6, seq: 1, ready: false}, a2, c.t)
	if got := d.Live(); slices.Contains(got, "n2") {
		t.Errorf("a restarted, not yet ready n2 still counts: live = %v", got)
	}
	// Moving a node to a new address forgets what was known of it.
	d.SetPeers([]Peer{{Name: "n2", Addr: a3}})
	if got := d.Live(); !slices.Equal(got, []string{"n1"}) {
		t.Errorf("live after n2 moved = %v, want only self", got)
	}
}

// TestReadyWaitsForHeardPeers checks the start-up rule: a speaker does not
// act while a peer it hears is not ready yet, so speakers started together
// act on the same view; SettleMax bounds the wait.
func TestReadyWaitsForHeardPeers(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	d := newTestDetector(t, c)
	a2 := netip.MustParseAddr("198.18.0.2")
	d.SetPeers([]Peer{{Name: "n2", Addr: a2}})
	recompute := func() {
		d.mu.Lock()
		d.recomputeLocked(c.t)
		d.mu.Unlock()
	}
	seq := uint64(0)
	beat := func(ready bool) {
		seq++
		d.accept(heartbeat{node: "n2", incarnation: 1, seq: seq, ready: ready}, a2, c.t)
	}
	c.t = c.t.Add(300 * time.Millisecond)
	beat(false)
	c.t = c.t.Add(200 * time.Millisecond)
	beat(false)
	recompute()
	if d.Ready() {
		t.Fatal("ready although peer n2 is heard and not ready")
	}
	c.t = c.t.Add(100 * time.Millisecond)
	beat(true)
	if !d.Ready() {
		t.Fatal("not ready once every heard peer is ready")
	}
	if got := d.Rejoins(); got != 0 {
		t.Errorf("Rejoins = %d with heartbeats 100-200 ms apart, want 0", got)
	}
	// Silent for 300 ms (timeout minus interval): probably a two-way cut
	// that n2 noticed first, so it counts as a rejoin although n2 never
	// expired here.
	c.t = c.t.Add(300 * time.Millisecond)
	beat(true)
	if got := d.Rejoins(); got != 1 {
		t.Errorf("Rejoins = %d after a 300 ms silence, want 1", got)
	}
	if got := d.Live(); !slices.Equal(got, []string{"n1", "n2"}) {
		t.Errorf("live = %v, want n1 n2", got)
	}
	// It latches: n2 leaving does not make n1 unready.
	beat(false)
	if !d.Ready() {
		t.Error("a peer leaving made this speaker unready")
	}

	// SettleMax bounds the wait for a peer that never becomes ready.
	c2 := &clock{t: time.Unix(2000, 0)}
	e := newTestDetector(t, c2)
	e.SetPeers([]Peer{{Name: "n2", Addr: a2}})
	for i := 0; i < 45; i++ {
		c2.t = c2.t.Add(100 * time.Millisecond)
		seq++
		e.accept(heartbeat{node: "n2", incarnation: 1, seq: seq, ready: false}, a2, c2.t)
		if e.Ready() && i < 39 {
			t.Fatalf("ready after %d ms with a peer not ready; SettleMax is 4 s", (i+1)*100)
		}
	}
	if !e.Ready() {
		t.Error("still not ready after SettleMax")
	}
}

// TestHeartbeatsOverUDP runs three real detectors on loopback addresses and
// stops one: the others must drop it, and only it.
func TestHeartbeatsOverUDP(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	addrs := []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.3")}
	names := []string{"n1", "n2", "n3"}
	port := freeUDPPort(t)
	var peers []Peer
	for i := range names {
		peers = append(peers, Peer{Name: names[i], Addr: addrs[i]})
	}
	var ds []*Detector
	cancels := make([]context.CancelFunc, 3)
	for i := range names {
		d, err := New(slog.New(slog.DiscardHandler), Options{
			Node: names[i], Listen: addrs[i], Port: port, Key: []byte("k"),
			Interval: 20 * time.Millisecond, Timeout: 200 * time.Millisecond,
		})
		if err != nil {
			t.Fatal(err)
		}
		d.SetPeers(peers)
		var c context.Context
		c, cancels[i] = context.WithCancel(ctx)
		go d.Run(c)
		ds = append(ds, d)
	}
	waitLive(t, ds[0], []string{"n1", "n2", "n3"})
	waitLive(t, ds[1], []string{"n1", "n2", "n3"})
	cancels[2]()
	waitLive(t, ds[0], []string{"n1", "n2"})
	waitLive(t, ds[1], []string{"n1", "n2"})
}

func waitLive(t *testing.T, d *Detector, want []string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if slices.Equal(d.Live(), want) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s: live = %v, want %v", d.opts.Node, d.Live(), want)
}

func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// TestReadyWaitsForKnownPeers checks the first start-up wait: a speaker
// that knows a peer from its Node object does not say it is ready until it
// has heard that peer, so a peer whose speaker starts a little later is in
// its first view; SettleMax bounds the wait for a peer that never speaks.
func TestReadyWaitsForKnownPeers(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	d := newTestDetector(t, c)
	a2 := netip.MustParseAddr("198.18.0.2")
	d.SetPeers([]Peer{{Name: "n2", Addr: a2}})
	recompute := func() {
		d.mu.Lock()
		d.recomputeLocked(c.t)
		d.mu.Unlock()
	}
	saysReady := func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		return d.ready
	}
	c.t = c.t.Add(2 * time.Second)
	recompute()
	if saysReady() || d.Ready() {
		t.Fatal("ready 2 s after start without having heard the known peer n2")
	}
	d.accept(heartbeat{node: "n2", incarnation: 1, seq: 1, ready: false}, a2, c.t)
	if !saysReady() {
		t.Fatal("does not say ready once every known peer is heard")
	}
	if d.Ready() {
		t.Fatal("Ready although n2 is heard and not ready")
	}
	d.accept(heartbeat{node: "n2", incarnation: 1, seq: 2, ready: true}, a2, c.t)
	if !d.Ready() {
		t.Fatal("not Ready once n2 says it is ready")
	}
	if got := d.Live(); !slices.Equal(got, []string{"n1", "n2"}) {
		t.Errorf("live = %v, want n1 n2", got)
	}

	// A peer that never speaks (its speaker is dead, or its node runs
	// none) delays the start by SettleMax (4 s here), no more.
	c2 := &clock{t: time.Unix(2000, 0)}
	e := newTestDetector(t, c2)
	e.SetPeers([]Peer{{Name: "n2", Addr: a2}})
	for i := 1; i <= 45; i++ {
		c2.t = c2.t.Add(100 * time.Millisecond)
		e.mu.Lock()
		e.recomputeLocked(c2.t)
		e.mu.Unlock()
		if e.Ready() != (i >= 40) {
			t.Fatalf("Ready = %v after %d ms with a silent peer; SettleMax is 4 s", e.Ready(), i*100)
		}
	}
}

// TestStaggeredStartsAgree simulates three speakers started up to 2 s apart,
// in every order, exchanging heartbeats every 100 ms on one manual clock:
// each must act (Ready) with all three in its view, so that none announces
// anything that the final election gives to another node.
func TestStaggeredStartsAgree(t *testing.T) {
	names := []string{"n1", "n2", "n3"}
	addrs := map[string]netip.Addr{}
	var peers []Peer
	for i, n := range names {
		addrs[n] = netip.AddrFrom4([4]byte{198, 18, 0, byte(i + 1)})
		peers = append(peers, Peer{Name: n, Addr: addrs[n]})
	}
	offsets := [][3]time.Duration{
		{0, time.Second, 2 * time.Second}, {0, 2 * time.Second, time.Second},
		{time.Second, 0, 2 * time.Second}, {time.Second, 2 * time.Second, 0},
		{2 * time.Second, 0, time.Second}, {2 * time.Second, time.Second, 0},
		{0, 0, 2 * time.Second}, {0, 1900 * time.Millisecond, 1950 * time.Millisecond},
	}
	for _, off := range offsets {
		c := &clock{t: time.Unix(3000, 0)}
		start := c.t
		ds := map[string]*Detector{}
		for _, n := range names {
			d, err := New(slog.New(slog.DiscardHandler), Options{
				Node: n, Listen: netip.MustParseAddr("127.0.0.1"), Port: 0,
				Interval: 100 * time.Millisecond, Timeout: 400 * time.Millisecond, Now: c.now,
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { d.Close() })
			ds[n] = d
		}
		started := map[string]bool{}
		acted := map[string][]string{}
		for step := 0; step < 200; step++ { // 10 s in 50 ms steps
			c.t = start.Add(time.Duration(step) * 50 * time.Millisecond)
			for i, n := range names {
				if !started[n] && c.t.Sub(start) >= off[i] {
					started[n] = true
					ds[n].SetPeers(peers)
				}
			}
			// Every started speaker sends every 100 ms; a speaker that
			// has not started yet has no peers and drops what it gets.
			if step%2 == 0 {
				for _, n := range names {
					if !started[n] {
						continue
					}
					d := ds[n]
					d.mu.Lock()
					d.seq++
					hb := heartbeat{node: n, incarnation: d.incarnation, seq: d.seq, ready: d.ready}
					d.mu.Unlock()
					for _, m := range names {
						if m != n {
							ds[m].accept(hb, addrs[n], c.t)
						}
					}
				}
			}
			for _, n := range names {
				d := ds[n]
				d.mu.Lock()
				d.recomputeLocked(c.t)
				d.mu.Unlock()
				if _, done := acted[n]; !done && d.Ready() {
					acted[n] = d.Live()
				}
			}
		}
		for _, n := range names {
			if got, ok := acted[n]; !ok || !slices.Equal(got, names) {
				t.Errorf("starts %v: %s acted (ok=%v) with live %v, want all of %v", off, n, ok, got, names)
			}
		}
	}
}

// TestNewRefusesBadTimers checks the flag values that would make Run panic
// (a zero ticker) or flood the network: each is a clear error instead.
func TestNewRefusesBadTimers(t *testing.T) {
	for _, o := range []Options{
		{Interval: 3 * time.Nanosecond, Timeout: 400 * time.Millisecond},
		{Interval: 0, Timeout: 400 * time.Millisecond},
		{Interval: -time.Second, Timeout: 400 * time.Millisecond},
		{Interval: 100 * time.Millisecond, Timeout: 100 * time.Millisecond},
		{Interval: 100 * time.Millisecond, Timeout: 400 * time.Millisecond, SettleMax: -time.Second},
	} {
		o.Node, o.Listen, o.Port = "n1", netip.MustParseAddr("127.0.0.1"), 0
		d, err := New(slog.New(slog.DiscardHandler), o)
		if err == nil {
			d.Close()
			t.Errorf("New accepted interval %s, timeout %s, settle %s", o.Interval, o.Timeout, o.SettleMax)
		}
	}
}

// TestIneligibleSpeakerSaysNotReady checks what peers hear from a speaker
// that may not be a candidate (no configuration yet): "not ready", however
// long it has been running, until it becomes eligible.
func TestIneligibleSpeakerSaysNotReady(t *testing.T) {
	recv, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP("127.0.0.2")})
	if err != nil {
		t.Fatal(err)
	}
	defer recv.Close()
	port := recv.LocalAddr().(*net.UDPAddr).Port
	d, err := New(slog.New(slog.DiscardHandler), Options{
		Node: "n1", Listen: netip.MustParseAddr("127.0.0.1"), Port: port,
		Interval: 20 * time.Millisecond, Timeout: 80 * time.Millisecond, SettleMax: 80 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	d.SetEligible(false)
	d.SetPeers([]Peer{{Name: "n2", Addr: netip.MustParseAddr("127.0.0.2")}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = d.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	// next returns the ready bit of the next heartbeat n2 receives.
	next := func() bool {
		t.Helper()
		buf := make([]byte, 512)
		if err := recv.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
			t.Fatal(err)
		}
		n, _, err := recv.ReadFromUDP(buf)
		if err != nil {
			t.Fatalf("no heartbeat: %v", err)
		}
		hb, err := decode(buf[:n], nil)
		if err != nil {
			t.Fatal(err)
		}
		return hb.ready
	}
	// Wait until the detector is ready by its own rules (SettleMax
	// passes: n2 never answers), then check that it still says not ready.
	deadline := time.Now().Add(5 * time.Second)
	for !d.Ready() {
		if time.Now().After(deadline) {
			t.Fatal("the detector never became ready")
		}
		next()
	}
	for range 5 {
		if next() {
			t.Fatal("an ineligible speaker said it is ready")
		}
	}
	d.SetEligible(true)
	deadline = time.Now().Add(5 * time.Second)
	for !next() {
		if time.Now().After(deadline) {
			t.Fatal("an eligible, ready speaker never said it is ready")
		}
	}
}
