package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// summary is the spread of one measured quantity over the trials that
// produced it; missing counts the trials that did not (timed out).
type summary struct {
	n                  int
	p50, p99, max, min time.Duration
	missing            int
}

// summarize sorts the samples (negative ones mean "not observed" and are
// counted as missing) and takes nearest-rank percentiles.
func summarize(samples []time.Duration) summary {
	var ok []time.Duration
	s := summary{}
	for _, d := range samples {
		if d < 0 {
			s.missing++
			continue
		}
		ok = append(ok, d)
	}
	slices.Sort(ok)
	s.n = len(ok)
	if s.n == 0 {
		return s
	}
	s.p50, s.p99 = percentile(ok, 50), percentile(ok, 99)
	s.min, s.max = ok[0], ok[len(ok)-1]
	return s
}

// percentile is the nearest-rank percentile of sorted samples: the smallest
// sample with at least p% of the samples at or below it. With 20 samples the
// p99 is therefore the maximum, which is the honest reading of 20 trials.
func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := (len(sorted)*p + 99) / 100
	rank = max(rank, 1)
	return sorted[rank-1]
}

// meetsTargets reports whether a failover summary meets the targets:
// p50 under 500 ms, p99 under 1 s, and every trial observed.
func meetsTargets(s summary) bool {
	return s.n > 0 && s.missing == 0 && s.p50 < 500*time.Millisecond && s.p99 < time.Second
}

// procStat holds the fields of /proc/PID/stat the benchmark reads.
type procStat struct {
	comm       string
	state      string
	utime      int64 // clock ticks
	stime      int64
	threadsNum int64
}

// parseProcStat parses /proc/PID/stat. The command name sits in parentheses
// and may itself contain spaces and parentheses, so the fields are counted
// from the last ')'.
func parseProcStat(b []byte) (procStat, error) {
	s := string(b)
	open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || closing < open || closing+2 > len(s) {
		return procStat{}, fmt.Errorf("malformed /proc stat %q", s)
	}
	f := strings.Fields(s[closing+2:])
	// f[0] is field 3 (state); utime is field 14, stime 15, num_threads 20.
	if len(f) < 18 {
		return procStat{}, fmt.Errorf("/proc stat has %d fields after the name, want at least 18", len(f))
	}
	ps := procStat{comm: s[open+1 : closing], state: f[0]}
	var err error
	if ps.utime, err = strconv.ParseInt(f[11], 10, 64); err != nil {
		return procStat{}, fmt.Errorf("utime: %w", err)
	}
	if ps.stime, err = strconv.ParseInt(f[12], 10, 64); err != nil {
		return procStat{}, fmt.Errorf("stime: %w", err)
	}
	if ps.threadsNum, err = strconv.ParseInt(f[17], 10, 64); err != nil {
		return procStat{}, fmt.Errorf("num_threads: %w", err)
	}
	return ps, nil
}

// memory is the resident-set split of /proc/PID/status, in KiB.
type memory struct {
	rss, anon, file, hwm int64
}

// parseProcStatus reads VmRSS, RssAnon, RssFile and VmHWM from
// /proc/PID/status.
func parseProcStatus(b []byte) (memory, error) {
	var m memory
	found := 0
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		var dst *int64
		switch f[0] {
		case "VmRSS:":
			dst = &m.rss
		case "RssAnon:":
			dst = &m.anon
		case "RssFile:":
			dst = &m.file
		case "VmHWM:":
			dst = &m.hwm
		default:
			continue
		}
		v, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			return memory{}, fmt.Errorf("%s %q: %w", f[0], f[1], err)
		}
		*dst = v
		found++
	}
	if found != 4 {
		return memory{}, fmt.Errorf("/proc status lacks VmRSS, RssAnon, RssFile or VmHWM (found %d of 4)", found)
	}
	return m, nil
}

// logLine is the part of a speaker's JSON log line the benchmark reads.
type logLine struct {
	Time time.Time `json:"time"`
	Msg  string    `json:"msg"`
	Live []string  `json:"live"`
}

// firstLiveWithout returns the time of the first "live speakers changed"
// line in a speaker's JSON log at or after since whose live set lacks node:
// when that speaker noticed node was gone.
func firstLiveWithout(log []byte, node string, since time.Time) (time.Time, bool) {
	for _, raw := range bytes.Split(log, []byte("\n")) {
		if !bytes.Contains(raw, []byte("live speakers changed")) {
			continue
		}
		var l logLine
		if err := json.Unmarshal(raw, &l); err != nil {
			continue
		}
		if l.Time.Before(since) || slices.Contains(l.Live, node) {
			continue
		}
		return l.Time, true
	}
	return time.Time{}, false
}

// arpingMACs extracts the distinct replying MAC addresses from arping's
// output ("Unicast reply from 198.18.1.130 [02:6B:6C:00:01:0B]  0.7ms"),
// lower-cased and sorted.
func arpingMACs(out []byte) []string {
	var macs []string
	for _, line := range strings.Split(string(out), "\n") {
		if !strings.Contains(line, "reply from") {
			continue
		}
		open, closing := strings.IndexByte(line, '['), strings.IndexByte(line, ']')
		if open < 0 || closing != open+18 {
			continue
		}
		macs = append(macs, strings.ToLower(line[open+1:closing]))
	}
	slices.Sort(macs)
	return slices.Compact(macs)
}

// expiry is a speaker dropping a peer from its live set, and when (if
// ever, within its log) it counted the peer live again.
type expiry struct {
	at, back time.Time
	node     string // who dropped the peer
	peer     string
}

// expiries reads one speaker's JSON log and returns every peer it dropped
// from its live set, in order. The first live set of the log is the
// baseline; a speaker that starts and learns its peers only adds.
func expiries(log []byte) []expiry {
	var out []expiry
	var prev []string
	open := map[string]int{} // peer -> index in out while it is gone
	for _, raw := range bytes.Split(log, []byte("\n")) {
		if !bytes.Contains(raw, []byte("live speakers changed")) {
			continue
		}
		var l struct {
			logLine
			Node string `json:"node"`
		}
		if err := json.Unmarshal(raw, &l); err != nil {
			continue
		}
		for _, p := range prev {
			if !slices.Contains(l.Live, p) {
				open[p] = len(out)
				out = append(out, expiry{at: l.Time, node: l.Node, peer: p})
			}
		}
		for _, p := range l.Live {
			if i, ok := open[p]; ok {
				out[i].back = l.Time
				delete(open, p)
			}
		}
		prev = l.Live
	}
	return out
}

// unexplained keeps the expiries in [from, to) that fall in none of the
// windows: peers dropped while no fault was under way.
func unexplained(es []expiry, windows [][2]time.Time, from, to time.Time) []expiry {
	var out []expiry
	for _, e := range es {
		if e.at.Before(from) || !e.at.Before(to) {
			continue
		}
		if slices.ContainsFunc(windows, func(w [2]time.Time) bool { return !e.at.Before(w[0]) && e.at.Before(w[1]) }) {
			continue
		}
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b expiry) int { return a.at.Compare(b.at) })
	return out
}
