package e2e

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/keeperlb/keeperlb/internal/election"
	"github.com/keeperlb/keeperlb/internal/lab"
	"github.com/keeperlb/keeperlb/internal/lab/labtest"
	"github.com/keeperlb/keeperlb/internal/request"
)

// The speakers' heartbeats (internal/membership) against what the threat
// model says anyone on the node network can try: replaying a recording,
// flooding the port, and a speaker whose clocks disagree with its peers'.

const livenessPort = 7946

// ownerIn is a condition on an address: among nodes, the election gives
// it to owner.
type ownerIn struct {
	nodes []string
	owner string
}

// electedIP returns the first address of the lab's IPv4 layer 2 pool (its
// first and last left out) that meets every condition. Tests request it,
// so that who owns a Service, with every node alive and after some died,
// does not depend on the lab's index, which decides the pool.
func (e *env) electedIP(conds ...ownerIn) netip.Addr {
	e.t.Helper()
	pool := e.lab.L2Pool4
	for ip := pool.Addr().Next(); pool.Contains(ip.Next()); ip = ip.Next() {
		if !slices.ContainsFunc(conds, func(c ownerIn) bool { return election.Owner(c.nodes, ip) != c.owner }) {
			return ip
		}
	}
	e.t.Fatalf("no address of %s meets %+v", pool, conds)
	return netip.Addr{}
}

// servicePerNode creates, for every node, a Service "on-<node>" with an
// endpoint on every node, at an address the election gives that node with
// every node alive (and that meets also[node] too), waits until that node
// announces it, and returns the owners by address.
func (e *env) servicePerNode(also map[string]ownerIn) map[netip.Addr]string {
	e.t.Helper()
	all := allNodes(e)
	owners := map[netip.Addr]string{}
	for _, n := range all {
		conds := []ownerIn{{all, n}}
		if c, ok := also[n]; ok {
			conds = append(conds, c)
		}
		ip := e.electedIP(conds...)
		got := e.createService("on-"+n, all, func(s *corev1.Service) {
			s.Annotations = map[string]string{request.AnnotationLoadBalancerIPs: ip.String()}
		})
		if !slices.Equal(got, []netip.Addr{ip}) {
			e.t.Fatalf("Service on-%s asked for %s and got %v", n, ip, got)
		}
		owners[ip] = n
	}
	for ip, n := range owners {
		if got := e.waitAnnouncer("on-"+n, anyNode); got != n {
			e.t.Fatalf("on-%s (%s) is announced by %s, want %s", n, ip, got, n)
		}
	}
	return owners
}

// vipOf returns the address of the Service servicePerNode made for node.
func vipOf(owners map[netip.Addr]string, node string) netip.Addr {
	for ip, n := range owners {
		if n == node {
			return ip
		}
	}
	return netip.Addr{}
}

// strayAnnouncement returns an error for the first gratuitous
// announcement w saw, of an address in owners, from a node that allowed
// does not accept for it.
func (e *env) strayAnnouncement(w *lab.AnnouncementWatch, owners map[netip.Addr]string, allowed func(ip netip.Addr, node string) bool) error {
	for _, a := range w.Seen() {
		if _, ours := owners[a.IP]; !ours || !a.Gratuitous {
			continue
		}
		if n := e.nodeOfMAC(a.MAC.String()); !allowed(a.IP, n) {
			return fmt.Errorf("%s announced %s at %s", n, a.IP, a.At.Format("15:04:05.000"))
		}
	}
	return nil
}

// soleAnswerer checks that exactly one node answers ARP for ip, and that
// it is want.
func (e *env) soleAnswerer(ip netip.Addr, want string) error {
	got := e.arpAnswerers(ip)
	if len(got) != 1 || e.nodeOfMAC(got[0]) != want {
		var nodes []string
		for _, m := range got {
			nodes = append(nodes, e.nodeOfMAC(m))
		}
		return fmt.Errorf("ARP answers for %s from %v, want only %s", ip, nodes, want)
	}
	return nil
}

// announcedBy checks that each Service servicePerNode made is announced
// by the node want names for its address, and by no other.
func (e *env) announcedBy(owners map[netip.Addr]string, want func(ip netip.Addr) string) error {
	for ip, n := range owners {
		got, err := e.announcers("on-" + n)
		if err != nil {
			return err
		}
		if w := want(ip); !slices.Equal(got, []string{w}) {
			return fmt.Errorf("ServiceL2Status nodes of on-%s (%s) = %v, want %s", n, ip, got, w)
		}
	}
	return nil
}

// memberSample is one reading of a speaker's keeperlb_speaker_live_members,
// taken by a scrape that ended at At.
type memberSample struct {
	node  string
	at    time.Time
	value int
}

// memberWatch scrapes the live member count of some speakers, each as
// often as it answers (every 50 ms at most: each scrape is a TLS
// handshake), until stop.
type memberWatch struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	samples []memberSample
	errs    map[string]int
}

func (e *env) watchMembers(nodes ...string) *memberWatch {
	ctx, cancel := context.WithCancel(e.t.Context())
	w := &memberWatch{cancel: cancel, errs: map[string]int{}}
	for _, n := range nodes {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			for ctx.Err() == nil {
				v, err := e.liveMembers(n)
				at := time.Now()
				w.mu.Lock()
				if err != nil {
					w.errs[n]++
				} else {
					w.samples = append(w.samples, memberSample{n, at, v})
				}
				w.mu.Unlock()
				select {
				case <-ctx.Done():
				case <-time.After(50 * time.Millisecond):
				}
			}
		}()
	}
	e.t.Cleanup(w.stop)
	return w
}

// stop ends the scraping; it may be called more than once.
func (w *memberWatch) stop() {
	w.cancel()
	w.wg.Wait()
}

// seen returns the samples so far, in the order they were taken.
func (w *memberWatch) seen() []memberSample {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.samples)
}

// check returns an error for the first sample ok refuses, and one when a
// node has no sample at all (a watch that saw nothing proves nothing).
func (w *memberWatch) check(nodes []string, ok func(memberSample) bool) error {
	samples := w.seen()
	for _, n := range nodes {
		if !slices.ContainsFunc(samples, func(s memberSample) bool { return s.node == n }) {
			w.mu.Lock()
			errs := w.errs[n]
			w.mu.Unlock()
			return fmt.Errorf("no live member count scraped from %s (%d scrapes failed)", n, errs)
		}
	}
	for _, s := range samples {
		if !ok(s) {
			return fmt.Errorf("at %s the speaker on %s saw %d live speakers", s.at.Format("15:04:05.000"), s.node, s.value)
		}
	}
	return nil
}

// counters reads some unlabelled series of a speaker.
func (e *env) counters(node string, names ...string) map[string]int {
	e.t.Helper()
	out := map[string]int{}
	for _, name := range names {
		v, err := e.metricValue(node, name)
		if err != nil {
			e.t.Fatal(err)
		}
		out[name] = v
	}
	return out
}

const (
	authFailures = "keeperlb_speaker_heartbeat_auth_failures_total"
	unknownBeats = "keeperlb_speaker_heartbeat_unknown_total"
	staleBeats   = "keeperlb_speaker_heartbeat_stale_total"
	droppedBeats = "keeperlb_speaker_heartbeat_dropped_total"
)

// replay sends recorded datagrams again from src (in its namespace, from
// its own address and port, which its dead speaker no longer holds), each
// to its recorded destination. It sends the passes one after the other,
// each at the pace it was recorded; done receives, as each pass ends,
// what it sent to each destination address.
type replay struct {
	done chan map[netip.Addr]int
	errc chan error
}

func (e *env) replay(ctx context.Context, src *lab.Host, passes [][]lab.Datagram) *replay {
	e.t.Helper()
	c, err := e.lab.ListenUDP(src, netip.AddrPortFrom(src.IPv4, livenessPort))
	if err != nil {
		e.t.Fatal(err)
	}
	r := &replay{done: make(chan map[netip.Addr]int, len(passes)), errc: make(chan error, 1)}
	go func() {
		defer c.Close()
		for _, p := range passes {
			sent := map[netip.Addr]int{}
			start := time.Now()
			for _, d := range p {
				// Pace: each datagram as long after the pass's first as it
				// was recorded.
				select {
				case <-ctx.Done():
					return
				case <-time.After(time.Until(start.Add(d.At.Sub(p[0].At)))):
				}
				if _, err := c.WriteToUDPAddrPort(d.Payload, d.Dst); err != nil {
					// A receiver whose speaker is restarting has no socket;
					// should its kernel's port unreachable come back as an
					// error, the datagram is lost like any other to a
					// closed port. Anything else is a failure.
					if ctx.Err() == nil && !errors.Is(err, syscall.ECONNREFUSED) {
						r.errc <- err
						return
					}
					continue
				}
				sent[d.Dst.Addr()]++
			}
			r.done <- sent
		}
	}()
	return r
}

// next waits for the replay's next pass to end, for at most d.
func (r *replay) next(t *testing.T, d time.Duration) map[netip.Addr]int {
	t.Helper()
	select {
	case sent := <-r.done:
		return sent
	case err := <-r.errc:
		t.Fatalf("replaying: %v", err)
	case <-time.After(d):
		t.Fatalf("a pass of the replay took over %s", d)
	}
	return nil
}

// TestL2HeartbeatReplayAfterRestart records node3's heartbeats, kills its
// speaker, and replays the recording from node3's own address, the way
// anyone on the node network could: first its last second at once to the
// survivors, which remember node3 (the sequence numbers stop it, though
// the echoes may still be of current challenges), then, while node1's
// speaker restarts and so forgets all it knew of node3, the whole
// recording three times over (the challenge echo stops it). node3 must
// never come alive again on either survivor, its address must stay with
// the survivor the election gives it to (node2, chosen so that node1's
// restart does not move it), and the survivors must count the replay as
// stale: proof it arrived and was refused, not lost.
func TestL2HeartbeatReplayAfterRestart(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.applyL2(e.defaultPool(), nil)
	survivors := []string{"node1", "node2"}
	owners := e.servicePerNode(map[string]ownerIn{"node3": {survivors, "node2"}})
	vip3 := vipOf(owners, "node3")
	n1, n2, n3 := e.lab.Node("node1").IPv4, e.lab.Node("node2").IPv4, e.lab.Node("node3")

	uw, err := e.lab.WatchUDP(n3, livenessPort)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = uw.Stop() })
	heartbeats := func(ds []lab.Datagram) []lab.Datagram {
		var out []lab.Datagram
		for _, d := range ds {
			if d.Src == netip.AddrPortFrom(n3.IPv4, livenessPort) && d.Dst.Port() == livenessPort {
				out = append(out, d)
			}
		}
		return out
	}
	// Three seconds of heartbeats (ten a second) to each survivor: three
	// challenge rotations.
	eventually(t, 10*time.Second, func() error {
		to := map[netip.Addr]int{}
		for _, d := range heartbeats(uw.Seen()) {
			to[d.Dst.Addr()]++
		}
		if to[n1] < 30 || to[n2] < 30 {
			return fmt.Errorf("recorded %d heartbeats from node3 to node1, %d to node2", to[n1], to[n2])
		}
		return nil
	})
	if err := e.speakers["node3"].Kill(); err != nil {
		t.Fatal(err)
	}
	delete(e.speakers, "node3")
	seen, err := uw.Stop()
	if err != nil {
		t.Fatalf("recording node3's heartbeats: %v", err)
	}
	rec := heartbeats(seen)
	last := rec[len(rec)-1].At
	var tail []lab.Datagram
	for _, d := range rec {
		if last.Sub(d.At) < time.Second {
			tail = append(tail, d)
		}
	}

	e.waitMembers()
	if got := e.waitAnnouncer("on-node3", not("node3")); got != "node2" {
		t.Fatalf("node3's address %s went to %s, want node2", vip3, got)
	}
	before := map[string]int{}
	for _, n := range survivors {
		before[n] = e.counters(n, staleBeats)[staleBeats]
	}
	aw, err := e.lab.WatchAnnouncements(e.lab.Client)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = aw.Stop() })
	mw := e.watchMembers(survivors...)
	revived := func(s memberSample) bool { return s.value <= 2 }

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	r := e.replay(ctx, n3, [][]lab.Datagram{tail, rec, rec, rec})
	started := time.Now()
	tailSent := r.next(t, 5*time.Second)
	// node1 still knows node3: all of the tail is stale to it.
	eventually(t, 5*time.Second, func() error {
		if err := mw.check(nil, revived); err != nil {
			t.Fatalf("the replayed tail revived node3: %v", err)
		}
		if got := e.counters("node1", staleBeats)[staleBeats] - before["node1"]; got < tailSent[n1]*9/10 {
			return fmt.Errorf("node1 counted %d of the %d replayed heartbeats of the tail as stale", got, tailSent[n1])
		}
		return nil
	})
	if err := mw.check(nil, revived); err != nil {
		t.Fatalf("the replayed tail revived node3: %v", err)
	}
	if err := e.speakers["node1"].Kill(); err != nil {
		t.Fatal(err)
	}
	e.startSpeaker("node1")
	// While the rest is replayed: node3's address stays with node2, the
	// others' with their owners (node1's moves to node2 and back while
	// node1 restarts), and nobody else announces any of them.
	allowed := func(ip netip.Addr, n string) bool {
		return n == "node2" || (n == "node1" && owners[ip] == "node1")
	}
	sent := map[netip.Addr]int{n1: tailSent[n1], n2: tailSent[n2]}
	var lastPass map[netip.Addr]int
	for passes := 0; passes < 3; {
		select {
		case p := <-r.done:
			passes++
			for a, k := range p {
				sent[a] += k
			}
			lastPass = p
			continue
		case err := <-r.errc:
			t.Fatalf("replaying: %v", err)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Since(started) > 30*time.Second {
			t.Fatal("the replay of three passes of the recording took over 30 s")
		}
		if got, err := e.announcers("on-node3"); err != nil || !slices.Equal(got, []string{"node2"}) {
			t.Fatalf("during the replay, on-node3's ServiceL2Status nodes are %v (%v), want node2", got, err)
		}
		if err := e.strayAnnouncement(aw, owners, allowed); err != nil {
			t.Fatalf("during the replay: %v", err)
		}
		if err := mw.check(nil, revived); err != nil {
			t.Fatalf("the replay revived node3: %v", err)
		}
	}
	t.Logf("replayed %d heartbeats to node1 and %d to node2 in %s (the tail of %d, then 3 × %d)",
		sent[n1], sent[n2], time.Since(started).Round(time.Millisecond), len(tail), len(rec))
	e.waitMembers()
	mw.stop()
	if err := mw.check(survivors, revived); err != nil {
		t.Fatalf("the replay revived node3: %v", err)
	}
	if err := e.strayAnnouncement(aw, owners, allowed); err != nil {
		t.Fatalf("after the replay: %v", err)
	}
	for ip, n := range owners {
		if n == "node3" {
			n = "node2"
		}
		if err := e.soleAnswerer(ip, n); err != nil {
			t.Fatalf("after the replay: %v", err)
		}
	}

	// The replay arrived and was refused as stale. node2 remembers node3,
	// so every replayed heartbeat is older than the last it took. node1,
	// restarted, forgot: the first pass it hears only teaches it node3's
	// (dead) incarnation, and every later one is stale, so at least the
	// last pass is (the first may have come before node1 knew its peers,
	// and the kernel dropped it).
	stale1 := e.counters("node1", staleBeats, droppedBeats)
	stale2 := e.counters("node2", staleBeats)[staleBeats] - before["node2"]
	t.Logf("node2 counted %d of the %d heartbeats replayed to it as stale; node1, after its restart, %d stale (%d dropped by the kernel) of the %d replayed to it",
		stale2, sent[n2], stale1[staleBeats], stale1[droppedBeats], sent[n1]-tailSent[n1])
	if stale2 < sent[n2]*9/10 {
		t.Errorf("node2 counted %d stale heartbeats, but %d were replayed to it", stale2, sent[n2])
	}
	if stale1[staleBeats] < lastPass[n1]*9/10 {
		t.Errorf("node1 counted %d stale heartbeats after its restart, want at least the last pass's %d", stale1[staleBeats], lastPass[n1])
	}
}

// junkHeartbeat is shaped like a heartbeat of node (membership's wire
// format, version 2: "KLB", the version, flags, the name's length, the
// name, incarnation, sequence, challenge and echo of 8 bytes each, then a
// 32-byte HMAC-SHA256), with random fields and a random MAC: it passes the
// receiver's shape check, so what drops it is the address check or the MAC.
func junkHeartbeat(node string) []byte {
	b := append([]byte("KLB"), 2, 1, byte(len(node)))
	b = append(b, node...)
	fields := make([]byte, 32+32)
	_, _ = rand.Read(fields)
	return append(b, fields...)
}

// TestL2HeartbeatFloodMovesNothing floods node1's heartbeat port from the
// client for 10 s at the rate one core sends, twice. First with junk from
// the client's own address, shaped like node2's heartbeats: the kernel
// drops it before the speaker's queue (membership's peer filter), so it
// costs the speaker nothing and cannot push real heartbeats out of the
// queue (without the filter, the queue dropped a tenth or more of
// everything, node2's heartbeats too, and once, on a machine loaded by
// other builds, node1 announced node2's address while node2 held it). Then
// with junk forged from node2's address, which the kernel lets through:
// half of it names node3 (the speaker's address check drops it before the
// MAC) and half node2 (it costs a MAC each). Nothing may move: no speaker
// loses sight of another, no node announces an address it does not own,
// every address has its one answerer throughout, and the counters show
// where the flood went.
func TestL2HeartbeatFloodMovesNothing(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.applyL2(e.defaultPool(), nil)
	owners := e.servicePerNode(nil)
	all := allNodes(e)
	target, peer := e.lab.Node("node1"), e.lab.Node("node2")
	aw, err := e.lab.WatchAnnouncements(e.lab.Client)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = aw.Stop() })
	mw := e.watchMembers(all...)
	owner := func(ip netip.Addr) string { return owners[ip] }
	steady := func() error {
		if err := e.strayAnnouncement(aw, owners, func(ip netip.Addr, n string) bool { return owners[ip] == n }); err != nil {
			return err
		}
		if err := e.announcedBy(owners, owner); err != nil {
			return err
		}
		return mw.check(nil, func(s memberSample) bool { return s.value == len(all) })
	}
	var vips []netip.Addr
	for _, n := range all {
		vips = append(vips, vipOf(owners, n))
	}

	counted := []string{droppedBeats, unknownBeats, authFailures}
	for _, phase := range []struct {
		name     string
		from     netip.AddrPort
		forge    bool
		payloads [][]byte
		// check judges the counters' rises for the packets sent.
		check func(rose map[string]int, sent int) error
	}{
		{"junk from the client's address", netip.AddrPortFrom(e.lab.Client.IPv4, livenessPort), false,
			[][]byte{junkHeartbeat(peer.Name)},
			func(rose map[string]int, sent int) error {
				// The kernel's count has all of it, bar what the lab's
				// own links may lose; the speaker saw none of it.
				if rose[droppedBeats] < sent/2 || rose[unknownBeats] != 0 || rose[authFailures] != 0 {
					return errors.New("want at least half the flood dropped by the kernel, and no unknown heartbeat or authentication failure")
				}
				return nil
			}},
		{"junk forged from node2's address", netip.AddrPortFrom(peer.IPv4, livenessPort), true,
			[][]byte{junkHeartbeat("node3"), junkHeartbeat(peer.Name)},
			func(rose map[string]int, sent int) error {
				// What the speaker reads is half unknown (node3's name
				// from node2's address, no MAC computed) and half
				// authentication failures; the queue may overflow under
				// the flood, and the kernel counts what it dropped. The
				// speaker must read a fair share (a twentieth of each
				// half), and all of it must be accounted for.
				if rose[unknownBeats] < sent/40 || rose[authFailures] < sent/40 ||
					rose[droppedBeats]+rose[unknownBeats]+rose[authFailures] < sent/2 {
					return errors.New("want unknown heartbeats and authentication failures each over a fortieth of the flood, and at least half of it counted")
				}
				return nil
			}},
	} {
		open := e.lab.ListenUDP
		if phase.forge {
			open = e.lab.ForgeUDP
		}
		c, err := open(e.lab.Client, phase.from)
		if err != nil {
			t.Fatal(err)
		}
		before := e.counters(target.Name, counted...)
		type flood struct {
			res lab.FloodResult
			err error
		}
		done := make(chan flood, 1)
		go func() {
			res, err := e.lab.FloodUDP(t.Context(), c, netip.AddrPortFrom(target.IPv4, livenessPort), phase.payloads,
				lab.FloodLimit{Packets: 10_000_000, Duration: 10 * time.Second})
			done <- flood{res, err}
		}()
		var f flood
		for i := 0; ; i++ {
			if err := steady(); err != nil {
				c.Close()
				t.Fatalf("flooding with %s: %v", phase.name, err)
			}
			select {
			case f = <-done:
			default:
				// One address a round: arping takes a second or two.
				if err := e.soleAnswerer(vips[i%len(vips)], owners[vips[i%len(vips)]]); err != nil {
					c.Close()
					t.Fatalf("flooding with %s: %v", phase.name, err)
				}
				continue
			}
			break
		}
		c.Close()
		if f.err != nil {
			t.Fatal(f.err)
		}
		after := e.counters(target.Name, counted...)
		rose := map[string]int{}
		for _, k := range counted {
			rose[k] = after[k] - before[k]
		}
		// The machine's load says whether other work competed with the
		// speakers, should this fail.
		load, _ := os.ReadFile("/proc/loadavg")
		t.Logf("%s: %d packets in %s (%.0f/s); node1 counted %d dropped by the kernel, %d unknown, %d authentication failures; load %s",
			phase.name, f.res.Packets, f.res.Took.Round(time.Millisecond), f.res.Rate(), rose[droppedBeats], rose[unknownBeats], rose[authFailures],
			strings.TrimSpace(string(load)))
		if err := phase.check(rose, f.res.Packets); err != nil {
			t.Errorf("%s: %v", phase.name, err)
		}
	}
	// A failover caused by the flood could come just after it.
	never(t, 3*time.Second, "after the flood", steady)
	for _, ip := range vips {
		if err := e.soleAnswerer(ip, owners[ip]); err != nil {
			t.Fatalf("after the flood: %v", err)
		}
	}
	mw.stop()
	if err := mw.check(all, func(s memberSample) bool { return s.value == len(all) }); err != nil {
		t.Fatalf("the flood made a speaker lose sight of another: %v", err)
	}
}

// TestL2HeartbeatClockStepBack: a speaker whose clock is an hour behind
// its peers' (and behind its own before it restarted) is a live peer
// within a second of its first heartbeat, and nothing else moves.
//
// Which clock. No heartbeat carries a time (incarnations are random,
// freshness is the echo of a random challenge), and internal/membership
// reads time.Now only to subtract one reading from another, which Go does
// on the monotonic reading: the wall clock (CLOCK_REALTIME) is read but
// never used. What a running speaker's timing does use is CLOCK_MONOTONIC
// (durations, timers, tickers; and CLOCK_BOOTTIME beside it), and a time
// namespace shifts exactly those for one process, so that is what this
// test shifts. The wall clock cannot be shifted for one process: the
// speaker is a static Go binary (no LD_PRELOAD faketime) that reads the
// clock through the vDSO (no system call to intercept), and stepping the
// machine's clock would break the API server, etcd and every other
// process on the machine. A regression to a wall-clock incarnation would
// therefore not be caught here, only one to a monotonic or boot-time one
// (a process's uptime, say): with incarnations taken from CLOCK_BOOTTIME
// and smaller ones refused, this test fails, and passes again when node3's
// clocks step forward instead.
//
// An hour behind, with forward offsets only: the kernel refuses an offset
// that makes a clock negative, so a backward one fails on a machine booted
// less than an hour ago (a fresh CI machine). Every speaker therefore
// starts an hour ahead, and node3 is restarted in the machine's own time:
// its clocks step back an hour, and are an hour behind its peers'.
func TestL2HeartbeatClockStepBack(t *testing.T) {
	labtest.Require(t, true, "unshare")
	e := newEnv(t, envOptions{noSpeakers: true})
	ahead := lab.InTimeNamespace(time.Hour)
	all := allNodes(e)
	e.speakerWrap = map[string][]string{}
	for _, n := range all {
		e.speakerWrap[n] = ahead
		e.startSpeaker(n)
	}
	e.waitMembers()
	offset := func(n string) time.Duration {
		t.Helper()
		mono, boot, err := lab.TimeOffsets(e.speakers[n].PID)
		if err != nil {
			t.Fatalf("the speaker on %s: %v", n, err)
		}
		if mono != boot {
			t.Fatalf("the speaker on %s has clock offsets %s (monotonic) and %s (boot time)", n, mono, boot)
		}
		return mono
	}
	for _, n := range all {
		if got := offset(n); got != time.Hour {
			t.Fatalf("the speaker on %s runs with its clocks %s ahead, want 1h", n, got)
		}
	}
	e.applyL2(e.defaultPool(), nil)
	owners := e.servicePerNode(nil)
	vip3 := vipOf(owners, "node3")

	if err := e.speakers["node3"].Kill(); err != nil {
		t.Fatal(err)
	}
	delete(e.speakers, "node3")
	e.waitMembers()
	interim := e.waitAnnouncer("on-node3", not("node3"))

	n3 := e.lab.Node("node3")
	uw, err := e.lab.WatchUDP(n3, livenessPort)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = uw.Stop() })
	aw, err := e.lab.WatchAnnouncements(e.lab.Client)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = aw.Stop() })
	peers := []string{"node1", "node2"}
	mw := e.watchMembers(peers...)
	delete(e.speakerWrap, "node3")
	started := time.Now()
	e.startSpeaker("node3")
	eventually(t, 10*time.Second, func() error {
		for _, n := range peers {
			if !slices.ContainsFunc(mw.seen(), func(s memberSample) bool { return s.node == n && s.value == 3 }) {
				return fmt.Errorf("the speaker on %s does not see node3 yet", n)
			}
		}
		return nil
	})
	var first time.Time
	for _, d := range uw.Seen() {
		if d.Src == netip.AddrPortFrom(n3.IPv4, livenessPort) && d.At.After(started) {
			first = d.At
			break
		}
	}
	if first.IsZero() {
		t.Fatal("a peer sees node3, but no heartbeat from node3 was recorded")
	}
	// Read now that node3's speaker surely runs (before, the process
	// could still have been the ip command that starts it).
	if got := offset("node3"); got != 0 {
		t.Fatalf("the restarted speaker on node3 runs with its clocks %s ahead, want 0", got)
	}
	samples := mw.seen()
	for _, n := range peers {
		// The scrape's end: when the peer saw node3 at the latest.
		i := slices.IndexFunc(samples, func(s memberSample) bool { return s.node == n && s.value == 3 })
		lag := samples[i].at.Sub(first)
		t.Logf("%s sees node3 %s after its first heartbeat (%s after its start)", n, lag.Round(time.Millisecond),
			samples[i].at.Sub(started).Round(time.Millisecond))
		if lag > time.Second {
			t.Errorf("%s saw node3, an hour behind, %s after its first heartbeat, want within 1s", n, lag.Round(time.Millisecond))
		}
	}
	// No failover: the peers never lost each other, and nobody announced
	// an address it does not own (node3's went back from the survivor
	// that held it).
	allowed := func(ip netip.Addr, n string) bool { return n == owners[ip] || (ip == vip3 && n == interim) }
	e.waitAnnouncer("on-node3", func(n string) bool { return n == "node3" })
	mw.stop()
	if err := mw.check(peers, func(s memberSample) bool { return s.value >= 2 }); err != nil {
		t.Fatalf("while node3 joined: %v", err)
	}
	if err := e.strayAnnouncement(aw, owners, allowed); err != nil {
		t.Fatalf("while node3 joined: %v", err)
	}
	for ip, n := range owners {
		if err := e.soleAnswerer(ip, n); err != nil {
			t.Fatalf("after node3 joined: %v", err)
		}
	}
}
