package membership

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	testKey  = []byte("membership-test-key-0123")
	otherKey = []byte("another-membership-key-4567")
)

func TestWireRoundTrip(t *testing.T) {
	for _, hb := range []heartbeat{
		{node: "n1", incarnation: 1, seq: 2, ready: true, challenge: 3, echo: 4},
		{node: "a-very-long-node-name.example.internal", incarnation: 1<<63 + 5, seq: 1 << 40},
	} {
		got, err := decode(encode(hb, testKey), testKey)
		if err != nil {
			t.Fatalf("decode(encode(%+v)): %v", hb, err)
		}
		if got != hb {
			t.Errorf("round trip gave %+v, want %+v", got, hb)
		}
	}
}

func TestWireFormat(t *testing.T) {
	b := encode(heartbeat{node: "n1", incarnation: 0x0102030405060708, seq: 9, ready: true, challenge: 10, echo: 11}, testKey)
	want := []byte{'K', 'L', 'B', 2, 1, 2, 'n', '1',
		1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 10, 0, 0, 0, 0, 0, 0, 0, 11}
	if !slices.Equal(b[:len(want)], want) || len(b) != len(want)+32 {
		t.Errorf("encoding is % x, want % x followed by a 32-byte MAC", b, want)
	}
}

func TestDecodeRejects(t *testing.T) {
	good := encode(heartbeat{node: "n1", incarnation: 1, seq: 1}, testKey)
	flip := func(i int) []byte { b := slices.Clone(good); b[i] ^= 1; return b }
	cases := map[string][]byte{
		"empty":             nil,
		"short":             good[:10],
		"bad magic":         flip(0),
		"bad version":       flip(3),
		"unknown flag":      flip(4), /* bit 0 is ready: flip bit 1 below */
		"name length wrong": flip(5),
		"tampered echo":     flip(len(good) - 33),
		"tampered mac":      flip(len(good) - 1),
		"trailing byte":     append(slices.Clone(good), 0),
	}
	cases["unknown flag"] = slices.Clone(good)
	cases["unknown flag"][4] |= 2
	for name, b := range cases {
		if _, err := decode(b, testKey); err == nil {
			t.Errorf("%s: decode accepted % x", name, b)
		}
	}
	if _, err := decode(good, otherKey); err == nil {
		t.Error("a heartbeat made with another key was accepted")
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(encode(heartbeat{node: "n1", incarnation: 1, seq: 1, ready: true, challenge: 2, echo: 3}, testKey))
	f.Add([]byte("KLB"))
	f.Fuzz(func(t *testing.T, b []byte) {
		hb, err := decode(b, testKey)
		if err != nil {
			return
		}
		// Whatever decodes must re-encode to the same bytes: nothing in a
		// packet is ignored.
		if again := encode(hb, testKey); !slices.Equal(again, b) {
			t.Fatalf("decoded %+v from % x but it encodes to % x", hb, b, again)
		}
	})
}

// clock is a manual clock for the expiry tests.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newTestDetector(t *testing.T, c *clock) *Detector {
	t.Helper()
	return newNamedDetector(t, c, "n1", Options{})
}

// newNamedDetector makes a detector named node on the manual clock, with
// the test timers (100 ms, 400 ms) and testKey unless o sets keys.
func newNamedDetector(t *testing.T, c *clock, node string, o Options) *Detector {
	t.Helper()
	o.Node, o.Listen, o.Port, o.Now = node, netip.MustParseAddr("127.0.0.1"), 0, c.now
	o.Interval, o.Timeout = 100*time.Millisecond, 400*time.Millisecond
	if o.Key == nil {
		o.Key = testKey
	}
	d, err := New(slog.New(slog.DiscardHandler), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// beat hands d an authentic heartbeat from node at addr; fresh makes it
// echo d's current challenge, as a peer that has heard d does.
func beat(d *Detector, node string, addr netip.Addr, inc, seq uint64, ready, fresh bool, now time.Time) {
	hb := heartbeat{node: node, incarnation: inc, seq: seq, ready: ready, challenge: 77}
	if fresh {
		d.mu.Lock()
		hb.echo = d.challenge
		d.mu.Unlock()
	}
	d.handle(encode(hb, testKey), addr, now)
}

func recompute(d *Detector, now time.Time) {
	d.mu.Lock()
	d.recomputeLocked(now)
	d.mu.Unlock()
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

	beat(d, "n2", a2, 5, 1, true, true, c.t)
	beat(d, "n3", a3, 5, 1, false, true, c.t)
	if got := d.Live(); !slices.Equal(got, []string{"n1", "n2"}) {
		t.Errorf("live = %v, want n1 n2 (n3 is not ready)", got)
	}

	// A heartbeat naming n3 from n2's address is a forgery.
	beat(d, "n3", a2, 5, 2, true, true, c.t)
	if got := d.Live(); slices.Contains(got, "n3") {
		t.Errorf("a heartbeat for n3 from n2's address counted: live = %v", got)
	}
	// Unknown nodes are ignored.
	beat(d, "n9", a2, 1, 1, true, true, c.t)
	if got := d.Live(); slices.Contains(got, "n9") {
		t.Errorf("an unknown node counted: live = %v", got)
	}

	// n2 stays alive until Timeout after its last heartbeat.
	c.t = c.t.Add(399 * time.Millisecond)
	recompute(d, c.t)
	if got := d.Live(); !slices.Contains(got, "n2") {
		t.Errorf("n2 expired early: live = %v", got)
	}
	if d.Ready() {
		t.Error("ready 399 ms after start; the timeout is 400 ms")
	}
	c.t = c.t.Add(time.Millisecond)
	recompute(d, c.t)
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
	beat(d, "n2", a2, 5, 1, true, true, c.t)
	if got := d.Live(); slices.Contains(got, "n2") {
		t.Errorf("a replayed heartbeat revived n2: live = %v", got)
	}
	beat(d, "n2", a2, 5, 2, true, true, c.t)
	if got := d.Live(); !slices.Contains(got, "n2") {
		t.Errorf("a fresh heartbeat did not revive n2: live = %v", got)
	}
	// n2 came back after a silence of a Timeout: a rejoin.
	if got := d.Rejoins(); got != 1 {
		t.Errorf("Rejoins = %d after n2 came back from the dead, want 1", got)
	}
	// A heartbeat that does not echo our challenge never keeps a peer
	// alive, however new its sequence number.
	c.t = c.t.Add(500 * time.Millisecond)
	beat(d, "n2", a2, 5, 3, true, false, c.t)
	if got := d.Live(); slices.Contains(got, "n2") {
		t.Errorf("a heartbeat without our challenge revived n2: live = %v", got)
	}
	// A restarted speaker (new incarnation, any number: it is random)
	// starts its sequence again.
	beat(d, "n2", a2, 2, 1, false, true, c.t)
	if got := d.Live(); slices.Contains(got, "n2") {
		t.Errorf("a restarted, not yet ready n2 counts: live = %v", got)
	}
	beat(d, "n2", a2, 2, 2, true, true, c.t)
	if got := d.Live(); !slices.Contains(got, "n2") {
		t.Errorf("a restarted n2 with a smaller incarnation is not accepted: live = %v", got)
	}
	// Its earlier incarnation is refused from now on.
	c.t = c.t.Add(500 * time.Millisecond)
	beat(d, "n2", a2, 5, 99, true, true, c.t)
	recompute(d, c.t)
	if got := d.Live(); slices.Contains(got, "n2") {
		t.Errorf("a heartbeat of a superseded incarnation revived n2: live = %v", got)
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
	seq := uint64(0)
	b := func(ready bool) {
		seq++
		beat(d, "n2", a2, 1, seq, ready, true, c.t)
	}
	c.t = c.t.Add(300 * time.Millisecond)
	b(false)
	c.t = c.t.Add(200 * time.Millisecond)
	b(false)
	recompute(d, c.t)
	if d.Ready() {
		t.Fatal("ready although peer n2 is heard and not ready")
	}
	c.t = c.t.Add(100 * time.Millisecond)
	b(true)
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
	b(true)
	if got := d.Rejoins(); got != 1 {
		t.Errorf("Rejoins = %d after a 300 ms silence, want 1", got)
	}
	if got := d.Live(); !slices.Equal(got, []string{"n1", "n2"}) {
		t.Errorf("live = %v, want n1 n2", got)
	}
	// It latches: n2 leaving does not make n1 unready.
	b(false)
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
		beat(e, "n2", a2, 1, seq, false, true, c2.t)
		if e.Ready() && i < 39 {
			t.Fatalf("ready after %d ms with a peer not ready; SettleMax is 4 s", (i+1)*100)
		}
	}
	if !e.Ready() {
		t.Error("still not ready after SettleMax")
	}
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
	saysReady := func() bool {
		d.mu.Lock()
		defer d.mu.Unlock()
		return d.ready
	}
	c.t = c.t.Add(2 * time.Second)
	recompute(d, c.t)
	if saysReady() || d.Ready() {
		t.Fatal("ready 2 s after start without having heard the known peer n2")
	}
	// n2's first heartbeat cannot echo our challenge yet: it counts as
	// heard, and n2 as starting.
	beat(d, "n2", a2, 1, 1, false, false, c.t)
	if !saysReady() {
		t.Fatal("does not say ready once every known peer is heard")
	}
	if d.Ready() {
		t.Fatal("Ready although n2 is heard and not ready")
	}
	beat(d, "n2", a2, 1, 2, true, true, c.t)
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
		recompute(e, c2.t)
		if e.Ready() != (i >= 40) {
			t.Fatalf("Ready = %v after %d ms with a silent peer; SettleMax is 4 s", e.Ready(), i*100)
		}
	}
}

// sim runs detectors on one manual clock and carries their heartbeats to
// each other through the real wire format (encode, then handle), as Run
// and receive do, in 50 ms steps.
type sim struct {
	t      *testing.T
	c      *clock
	start  time.Time
	step   int
	ds     map[string]*Detector
	addrs  map[string]netip.Addr
	peers  []Peer
	record func(to string, b []byte, from netip.Addr) // nil: no recording
	drop   map[string]bool                            // senders whose packets are lost
}

func newSim(t *testing.T, names ...string) *sim {
	s := &sim{t: t, c: &clock{t: time.Unix(3000, 0)}, ds: map[string]*Detector{}, addrs: map[string]netip.Addr{}, drop: map[string]bool{}}
	s.start = s.c.t
	for i, n := range names {
		s.addrs[n] = netip.AddrFrom4([4]byte{198, 18, 0, byte(i + 1)})
		s.peers = append(s.peers, Peer{Name: n, Addr: s.addrs[n]})
	}
	return s
}

// startNode starts (or restarts, as a new process) the detector of node.
func (s *sim) startNode(node string, o Options) *Detector {
	d := newNamedDetector(s.t, s.c, node, o)
	d.SetPeers(s.peers)
	s.ds[node] = d
	return d
}

func (s *sim) stop(node string) { delete(s.ds, node) }

// advance runs n steps of 50 ms.
func (s *sim) advance(n int) {
	for range n {
		s.step++
		s.c.t = s.start.Add(time.Duration(s.step) * 50 * time.Millisecond)
		names := make([]string, 0, len(s.ds))
		for n := range s.ds {
			names = append(names, n)
		}
		slices.Sort(names)
		for _, n := range names {
			d := s.ds[n]
			d.mu.Lock()
			d.rotateLocked(s.c.t)
			d.mu.Unlock()
		}
		if s.step%2 == 0 {
			for _, n := range names {
				d := s.ds[n]
				d.mu.Lock()
				out := d.outgoingLocked(d.ready && !d.ineligible)
				d.mu.Unlock()
				for _, o := range out {
					b := encode(o.hb, d.opts.Key)
					to := s.nameOf(o.addr)
					if s.record != nil {
						s.record(to, b, s.addrs[n])
					}
					if r := s.ds[to]; r != nil && !s.drop[n] {
						r.handle(b, s.addrs[n], s.c.t)
					}
				}
			}
		}
		for _, n := range names {
			recompute(s.ds[n], s.c.t)
		}
	}
}

func (s *sim) nameOf(a netip.Addr) string {
	for n, x := range s.addrs {
		if x == a {
			return n
		}
	}
	return ""
}

// TestStaggeredStartsAgree simulates three speakers started up to 2 s apart,
// in every order: each must act (Ready) with all three in its view, so that
// none announces anything that the final election gives to another node.
func TestStaggeredStartsAgree(t *testing.T) {
	names := []string{"n1", "n2", "n3"}
	offsets := [][3]int{ // in 50 ms steps
		{0, 20, 40}, {0, 40, 20}, {20, 0, 40}, {20, 40, 0}, {40, 0, 20}, {40, 20, 0}, {0, 0, 40}, {0, 38, 39},
	}
	for _, off := range offsets {
		s := newSim(t, names...)
		acted := map[string][]string{}
		for step := 0; step < 200; step++ {
			for i, n := range names {
				if off[i] == step {
					s.startNode(n, Options{})
				}
			}
			s.advance(1)
			for n, d := range s.ds {
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

// TestReplayDoesNotReviveADeadSpeaker records 60 s of n2's heartbeats to
// n1, kills n2, restarts n1 (which forgets everything it had seen), and
// replays the whole recording to it, in order, at the pace it was made:
// n2 must never count as alive. The same replay to an n1 that did not
// restart must not revive n2 either.
func TestReplayDoesNotReviveADeadSpeaker(t *testing.T) {
	for _, restart := range []bool{true, false} {
		s := newSim(t, "n1", "n2")
		var rec [][]byte
		s.record = func(to string, b []byte, from netip.Addr) {
			if to == "n1" && from == s.addrs["n2"] {
				rec = append(rec, b)
			}
		}
		s.startNode("n1", Options{})
		s.startNode("n2", Options{})
		s.advance(1200) // 60 s
		if got := s.ds["n1"].Live(); !slices.Equal(got, []string{"n1", "n2"}) {
			t.Fatalf("before the kill n1 sees %v", got)
		}
		s.record = nil
		s.stop("n2")
		if restart {
			s.startNode("n1", Options{})
		}
		s.advance(20)
		n1 := s.ds["n1"]
		for i, b := range rec {
			n1.handle(b, s.addrs["n2"], s.c.t)
			if i%2 == 1 {
				s.advance(1)
			}
			if slices.Contains(n1.Live(), "n2") {
				t.Fatalf("restart %v: replayed heartbeat %d of %d revived the dead n2", restart, i, len(rec))
			}
		}
	}
}

// TestClockStepBack restarts a speaker whose clock is an hour behind: the
// incarnation is random, not a time, so its peers accept it as soon as it
// has learnt their challenges.
func TestClockStepBack(t *testing.T) {
	s := newSim(t, "n1", "n2")
	s.startNode("n1", Options{})
	s.startNode("n2", Options{})
	s.advance(40)
	s.stop("n2")
	s.advance(20)
	behind := &clock{t: s.c.t.Add(-time.Hour)}
	d := newNamedDetector(t, behind, "n2", Options{})
	d.SetPeers(s.peers)
	s.ds["n2"] = d
	for i := 0; i < 20 && !slices.Contains(s.ds["n1"].Live(), "n2"); i++ {
		behind.t = behind.t.Add(50 * time.Millisecond)
		s.advance(1)
	}
	if got := s.ds["n1"].Live(); !slices.Contains(got, "n2") {
		t.Fatalf("1 s after n2 restarted with its clock an hour behind, n1 sees %v", got)
	}
}

// TestKeyRotation rolls a new key through three speakers in the three
// steps the secondary key allows, restarting one speaker at a time: no
// speaker that keeps running ever loses sight of another, and each
// restarted one is seen again within a second.
func TestKeyRotation(t *testing.T) {
	names := []string{"n1", "n2", "n3"}
	s := newSim(t, names...)
	for _, n := range names {
		s.startNode(n, Options{Key: testKey})
	}
	s.advance(40)
	for step, o := range []Options{
		{Key: testKey, SecondaryKey: otherKey},
		{Key: otherKey, SecondaryKey: testKey},
		{Key: otherKey},
	} {
		for _, n := range names {
			s.startNode(n, o)
			for i := 0; i < 200; i++ {
				s.advance(1)
				for _, m := range names {
					if m == n {
						continue
					}
					for _, k := range names {
						if k != n && !slices.Contains(s.ds[m].Live(), k) {
							t.Fatalf("step %d, %s restarted: %s lost sight of %s", step, n, m, k)
						}
					}
				}
				if i >= 20 {
					break
				}
			}
			for _, m := range names {
				if !slices.Equal(s.ds[m].Live(), names) {
					t.Fatalf("step %d: a second after %s restarted, %s sees %v", step, n, m, s.ds[m].Live())
				}
			}
		}
	}
	for _, n := range names {
		if st := s.ds[n].Stats(); st.AuthFailures != 0 {
			t.Errorf("%s counted %d authentication failures during the rotation", n, st.AuthFailures)
		}
	}
}

// warnCounter is a slog handler that counts Warn records.
type warnCounter struct {
	mu    sync.Mutex
	warns []string
}

func (w *warnCounter) Enabled(context.Context, slog.Level) bool { return true }
func (w *warnCounter) Handle(_ context.Context, r slog.Record) error {
	if r.Level == slog.LevelWarn {
		w.mu.Lock()
		w.warns = append(w.warns, r.Message)
		w.mu.Unlock()
	}
	return nil
}
func (w *warnCounter) WithAttrs([]slog.Attr) slog.Handler { return w }
func (w *warnCounter) WithGroup(string) slog.Handler      { return w }

// TestBadPackets checks what a wrong key and junk cost and show: a wrong
// key from a peer's address is counted and warned about, once per ten
// seconds; a packet from an address that is no peer's is dropped before
// its MAC is looked at (counted as unknown, not as an authentication
// failure, although its MAC is wrong too).
func TestBadPackets(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	w := &warnCounter{}
	d, err := New(slog.New(w), Options{Node: "n1", Listen: netip.MustParseAddr("127.0.0.1"), Port: 0,
		Interval: 100 * time.Millisecond, Timeout: 400 * time.Millisecond, Key: testKey, Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	a2 := netip.MustParseAddr("198.18.0.2")
	d.SetPeers([]Peer{{Name: "n2", Addr: a2}})
	forged := encode(heartbeat{node: "n2", incarnation: 1, seq: 1, ready: true}, otherKey)
	for i := range 5 {
		d.handle(forged, a2, c.t.Add(time.Duration(i)*time.Second))
	}
	d.handle(forged, a2, c.t.Add(11*time.Second))
	d.handle(forged, netip.MustParseAddr("198.18.0.66"), c.t)
	d.handle([]byte("junk"), a2, c.t)
	st := d.Stats()
	if st.AuthFailures != 6 || st.Unknown != 2 {
		t.Errorf("stats %+v, want 6 authentication failures and 2 unknown", st)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.warns) != 2 || !strings.Contains(w.warns[0], "authentication failed") {
		t.Errorf("warnings %q, want two (one per ten seconds) about authentication", w.warns)
	}
	if slices.Contains(d.Live(), "n2") {
		t.Error("a forged heartbeat counted")
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
			Node: names[i], Listen: addrs[i], Port: port, Key: testKey,
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

// TestIneligibleSpeakerSaysNotReady checks what peers hear from a speaker
// that may not be a candidate (no configuration yet): "not ready", however
// long it has been running, until it becomes eligible.
func TestIneligibleSpeakerSaysNotReady(t *testing.T) {
	s := newSim(t, "n1", "n2")
	s.startNode("n2", Options{})
	n1 := s.startNode("n1", Options{})
	n1.SetEligible(false)
	s.advance(100)
	if !n1.Ready() {
		t.Fatal("n1 is not ready by its own rules")
	}
	if got := s.ds["n2"].Live(); slices.Contains(got, "n1") {
		t.Fatalf("an ineligible n1 counts as a candidate at n2: %v", got)
	}
	n1.SetEligible(true)
	s.advance(4)
	if got := s.ds["n2"].Live(); !slices.Contains(got, "n1") {
		t.Fatalf("an eligible, ready n1 does not count at n2: %v", got)
	}
}

// TestNewRefusesBadOptions checks the flag values that would make Run panic
// (a zero ticker), flood the network, or leave heartbeats forgeable: each
// is a clear error instead.
func TestNewRefusesBadOptions(t *testing.T) {
	for _, o := range []Options{
		{Interval: 3 * time.Nanosecond, Timeout: 400 * time.Millisecond, Key: testKey},
		{Interval: 0, Timeout: 400 * time.Millisecond, Key: testKey},
		{Interval: -time.Second, Timeout: 400 * time.Millisecond, Key: testKey},
		{Interval: 100 * time.Millisecond, Timeout: 100 * time.Millisecond, Key: testKey},
		{Interval: 100 * time.Millisecond, Timeout: 400 * time.Millisecond, SettleMax: -time.Second, Key: testKey},
		{Interval: 100 * time.Millisecond, Timeout: 400 * time.Millisecond},
		{Interval: 100 * time.Millisecond, Timeout: 400 * time.Millisecond, Key: []byte("abc")},
		{Interval: 100 * time.Millisecond, Timeout: 400 * time.Millisecond, Key: testKey, SecondaryKey: []byte("short")},
	} {
		o.Node, o.Listen, o.Port = "n1", netip.MustParseAddr("127.0.0.1"), 0
		d, err := New(slog.New(slog.DiscardHandler), o)
		if err == nil {
			d.Close()
			t.Errorf("New accepted interval %s, timeout %s, settle %s, key %d bytes, secondary %d bytes",
				o.Interval, o.Timeout, o.SettleMax, len(o.Key), len(o.SecondaryKey))
		}
	}
}

// TestDeparture checks why a peer that is not live is said to be gone: it
// went silent, it said it was leaving, it came back as a new process
// without saying so, or it is no peer any more.
func TestDeparture(t *testing.T) {
	c := &clock{t: time.Unix(1000, 0)}
	d := newTestDetector(t, c)
	a2, a3, a4 := netip.MustParseAddr("198.18.0.2"), netip.MustParseAddr("198.18.0.3"), netip.MustParseAddr("198.18.0.4")
	d.SetPeers([]Peer{{Name: "n2", Addr: a2}, {Name: "n3", Addr: a3}, {Name: "n4", Addr: a4}})
	for _, n := range []string{"n2", "n3", "n4"} {
		beat(d, n, addrOf(n, a2, a3, a4), 5, 1, true, true, c.t)
	}
	expect := func(step string, want map[string]Departure) {
		t.Helper()
		for node, w := range want {
			if got := d.Departure(node); got != w {
				t.Errorf("%s: Departure(%s) = %v, want %v (live %v)", step, node, got, w, d.Live())
			}
		}
	}
	expect("all live", map[string]Departure{"n1": NotDeparted, "n2": NotDeparted, "n3": NotDeparted, "n4": NotDeparted, "n9": Removed})

	// n2 says it stops; n3 and n4 keep beating, then n3 falls silent.
	c.t = c.t.Add(100 * time.Millisecond)
	beat(d, "n2", a2, 5, 2, false, true, c.t)
	beat(d, "n3", a3, 5, 2, true, true, c.t)
	beat(d, "n4", a4, 5, 2, true, true, c.t)
	expect("n2 leaving", map[string]Departure{"n2": Left, "n3": NotDeparted})
	c.t = c.t.Add(300 * time.Millisecond)
	beat(d, "n4", a4, 5, 3, true, true, c.t)
	c.t = c.t.Add(150 * time.Millisecond)
	beat(d, "n4", a4, 5, 4, true, true, c.t)
	recompute(d, c.t)
	// n2 went silent after its goodbye: it still left; n3 died.
	expect("n3 silent", map[string]Departure{"n2": Left, "n3": Silent, "n4": NotDeparted})

	// n4 comes back as a new process before its old one expired, never
	// having said goodbye.
	beat(d, "n4", a4, 9, 1, false, true, c.t)
	expect("n4 restarted", map[string]Departure{"n4": Restarted})
	beat(d, "n4", a4, 9, 2, true, true, c.t)
	expect("n4 ready again", map[string]Departure{"n4": NotDeparted})
	// Its next departure is judged afresh.
	c.t = c.t.Add(100 * time.Millisecond)
	beat(d, "n4", a4, 9, 3, false, true, c.t)
	expect("n4 leaving", map[string]Departure{"n4": Left})

	// n3's Node is deleted.
	d.SetPeers([]Peer{{Name: "n2", Addr: a2}, {Name: "n4", Addr: a4}})
	expect("n3 removed", map[string]Departure{"n3": Removed})
}

func addrOf(node string, addrs ...netip.Addr) netip.Addr {
	return addrs[int(node[1]-'2')]
}
