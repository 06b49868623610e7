// Package membership tells a speaker which other speakers are alive, fast
// enough for a layer 2 failover under a second.
//
// Every speaker sends a small authenticated UDP heartbeat to every other
// node's address every Interval, and counts a peer alive while its last
// heartbeat is younger than Timeout. With the defaults (100 ms, 400 ms) a
// killed or cut-off speaker is noticed 300–400 ms after it stopped, and three
// heartbeats in a row must be lost before a false alarm.
//
// DESIGN.md proposed hashicorp/memberlist with fast timers. Its failure
// detector probes one random member per interval, then asks others to probe
// indirectly, then waits out a suspicion timeout that grows with the cluster;
// with timers short enough for sub-second detection on three nodes it still
// needs several intervals and its gossip adds a hop before every node agrees.
// All-to-all heartbeats detect in one known, fixed time, need no
// agreement round (every speaker watches every other directly), and are a
// couple of hundred lines that we can test. Their cost is N² small packets:
// 100 nodes send 100 packets of about 100 bytes every 100 ms each, roughly
// 10 kB/s per node, which is acceptable for the cluster sizes layer 2 mode
// serves (one broadcast domain).
//
// A heartbeat carries the sender's name, its incarnation (a random number
// drawn at start), a sequence number, the sender's current challenge and the
// echo of the receiver's challenge, under an HMAC-SHA256 with the shared key
// (the memberlist secret). Only a heartbeat that echoes one of the
// receiver's last two challenges, which each speaker draws anew every ten
// Intervals, keeps a peer alive: a recording replayed later, even to a
// receiver that restarted and forgot what it had seen, echoes a challenge
// the receiver no longer has, so it cannot keep a dead speaker alive. The
// incarnation is not a clock, so a speaker whose clock steps back is
// accepted like any other restart. The source address must be the address
// of the named node, which is checked before the MAC so that a flood of
// junk costs a map lookup, not a hash; the kernel already drops datagrams
// from addresses that are no peer's (a socket filter, see peerFilter), so
// that a flood from elsewhere cannot fill the socket's queue and push the
// peers' heartbeats out of it. A secondary key is accepted beside
// the primary, which signs, so that a key is rotated without a split. See
// docs/architecture.md (threat model) for what this does and does not stop.
//
// A speaker also says whether it is Ready. A starting speaker has not yet
// heard from the others and would believe itself alone; its peers therefore
// ignore it as a candidate until it says it is ready, and it should not
// announce anything before its own Ready. It says it is ready one Timeout
// after it learnt its peers (SetPeers) and once it has heard every one of
// them, and it is Ready once every peer it hears is ready too, so that
// speakers started together, even seconds apart, act on the same view
// instead of the first one announcing everything alone (see
// recomputeLocked). A speaker that stops says "not ready" once
// more on its way out, so a planned restart hands over without waiting for
// the timeout.
package membership

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"golang.org/x/net/bpf"
)

// MinKeyLen is the shortest heartbeat key New accepts. A short key falls to
// a brute-force search from one captured heartbeat (a 3-character key was
// recovered in 38 ms); 16 random bytes cannot be.
const MinKeyLen = 16

// MinInterval is the shortest heartbeat interval New accepts: every speaker
// sends one packet per peer per interval, so a shorter one floods the node
// network (and the expiry check, four times per interval, would spin).
const MinInterval = 10 * time.Millisecond

// Options configures a Detector.
type Options struct {
	// Node is this speaker's node name.
	Node string
	// Port is the UDP port every speaker listens on.
	Port int
	// Listen is the local address to bind; the zero value means every
	// address. Tests bind loopback addresses to run several detectors in
	// one network namespace.
	Listen netip.Addr
	// Interval is the time between two heartbeats to each peer.
	Interval time.Duration
	// Timeout is how long a peer stays alive after its last heartbeat.
	Timeout time.Duration
	// SettleMax bounds each of the two waits of a starting speaker: for
	// known peers it has not heard yet (before it says it is ready), then
	// for heard peers that are not ready yet (before Ready); zero means ten
	// Timeouts.
	SettleMax time.Duration
	// Key signs heartbeats and authenticates them; every speaker must have
	// it (or have it as SecondaryKey). At least MinKeyLen bytes.
	Key []byte
	// SecondaryKey, when set, is accepted too but never signs: a rotation
	// gives every speaker the new key as secondary, then swaps the two,
	// then drops the old one, and no two speakers ever fail to understand
	// each other. Empty, or at least MinKeyLen bytes.
	SecondaryKey []byte
	// Now is the clock; nil means time.Now. Tests set it.
	Now func() time.Time
}

// DefaultOptions returns the timers described in the package comment.
func DefaultOptions(node string) Options {
	return Options{Node: node, Port: 7946, Interval: 100 * time.Millisecond, Timeout: 400 * time.Millisecond}
}

// Peer is another speaker to watch.
type Peer struct {
	// Name is its node name.
	Name string
	// Addr is the address its heartbeats come from and go to.
	Addr netip.Addr
}

// Stats counts the packets a Detector dropped, by reason. The speaker
// exports them as metrics.
type Stats struct {
	// AuthFailures are packets from a known peer's address, naming it, whose
	// MAC matches neither key: a different key, or a forgery.
	AuthFailures uint64
	// Unknown are packets that are not heartbeats, or that name no known
	// peer or come from another address than its own.
	Unknown uint64
	// Stale are authentic heartbeats that were replays, reordered, or
	// echoed a challenge this speaker no longer has.
	Stale uint64
	// Dropped are datagrams the kernel dropped at the socket before the
	// detector read them: from an address that is no peer's (see
	// peerFilter), or while the socket's queue was full.
	Dropped uint64
}

// Detector sends and receives heartbeats.
type Detector struct {
	opts        Options
	log         *slog.Logger
	conn        *net.UDPConn
	incarnation uint64
	rotateEvery time.Duration
	start       time.Time
	changes     chan struct{}

	mu    sync.Mutex
	seq   uint64
	peers map[string]*peerState
	// challenge is what peers must echo for a heartbeat to count;
	// prevChallenge is still accepted, for heartbeats in flight across a
	// rotation.
	challenge, prevChallenge uint64
	rotatedAt                time.Time
	// ready is what heartbeats say: the peers have been known for one
	// Timeout and every one of them has been heard (or SettleMax passed).
	ready   bool
	readyAt time.Time
	// settled is what Ready reports: ready, and every peer heard from is
	// ready too (or SettleMax passed since ready). It latches.
	settled bool
	// ineligible keeps the ready bit of heartbeats off whatever ready
	// says: see SetEligible.
	ineligible bool
	live       []string // last computed, sorted
	rejoins    uint64   // see Rejoins
	stats      Stats
	warnedAt   time.Time // last authentication warning
	suppressed uint64    // authentication failures since, not logged
	// filtered are the addresses the socket filter admits, sorted.
	filtered []netip.Addr
	// drops is the kernel's 32-bit drop count when Stats last read it.
	drops uint32
}

// peerState is what is known of one peer.
type peerState struct {
	addr netip.Addr
	// incarnation and seq are the newest authentic heartbeat's; superseded
	// lists the incarnations seen before (a few), whose recordings are
	// refused.
	incarnation, seq uint64
	superseded       []uint64
	// challenge is the peer's, which this speaker echoes to it.
	challenge uint64
	// last is when the last fresh heartbeat came (the one that echoed our
	// challenge), heard when the last authentic one did.
	last, heard time.Time
	ready       bool
	// restarted is set when a new incarnation of the peer is heard, until
	// that one is ready: the previous one stopped without saying so.
	restarted bool
}

// readBuffer is the receive queue asked for, in bytes (the kernel doubles
// it for its own bookkeeping, and caps it).
const readBuffer = 4 << 20

// maxSuperseded bounds the incarnations remembered per peer.
const maxSuperseded = 8

// New opens the UDP socket. Run starts the work.
func New(log *slog.Logger, opts Options) (*Detector, error) {
	if opts.Node == "" || len(opts.Node) > maxName {
		return nil, fmt.Errorf("membership: node name %q must have 1 to %d characters", opts.Node, maxName)
	}
	if opts.Interval < MinInterval {
		return nil, fmt.Errorf("membership: interval %s is shorter than the minimum %s", opts.Interval, MinInterval)
	}
	if opts.Timeout <= opts.Interval {
		return nil, fmt.Errorf("membership: timeout %s must be longer than interval %s", opts.Timeout, opts.Interval)
	}
	if opts.SettleMax < 0 {
		return nil, fmt.Errorf("membership: settle bound %s is negative", opts.SettleMax)
	}
	if len(opts.Key) < MinKeyLen {
		return nil, fmt.Errorf("membership: the heartbeat key has %d bytes, want at least %d (random bytes; anyone on the node network could forge a shorter one)", len(opts.Key), MinKeyLen)
	}
	if len(opts.SecondaryKey) > 0 && len(opts.SecondaryKey) < MinKeyLen {
		return nil, fmt.Errorf("membership: the secondary heartbeat key has %d bytes, want none or at least %d", len(opts.SecondaryKey), MinKeyLen)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.SettleMax == 0 {
		opts.SettleMax = 10 * opts.Timeout
	}
	laddr := &net.UDPAddr{Port: opts.Port}
	if opts.Listen.IsValid() {
		laddr.IP = opts.Listen.AsSlice()
	}
	conn, err := net.ListenUDP("udp", laddr)
	if err != nil {
		return nil, fmt.Errorf("membership: listening on UDP port %d: %w", opts.Port, err)
	}
	// A deep queue, so that a flood of datagrams forged with a peer's
	// address (which the peer filter lets through) does not overflow it,
	// and push the peers' heartbeats out, whenever the speaker is not
	// scheduled for a few milliseconds: the default (208 KiB, about 200
	// datagrams) lasts 2 ms at 100,000 datagrams a second. The kernel caps
	// the request at net.core.rmem_max.
	if err := conn.SetReadBuffer(readBuffer); err != nil {
		log.Warn("membership: enlarging the heartbeat receive queue", "err", err)
	}
	d := &Detector{
		opts:        opts,
		log:         log,
		conn:        conn,
		incarnation: nonzeroRandom(),
		rotateEvery: 10 * opts.Interval,
		changes:     make(chan struct{}, 1),
		peers:       map[string]*peerState{},
		challenge:   nonzeroRandom(),
		rotatedAt:   opts.Now(),
		live:        []string{opts.Node},
	}
	// No peer is known yet: admit nothing until SetPeers.
	raw, err := peerFilter(nil)
	if err == nil {
		err = attachFilter(conn, raw)
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	return d, nil
}

// nonzeroRandom draws a random 64-bit number other than zero, which means
// "none" on the wire.
func nonzeroRandom() uint64 {
	var b [8]byte
	for {
		_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
		if v := binary.BigEndian.Uint64(b[:]); v != 0 {
			return v
		}
	}
}

// Changes receives a value whenever Live or Ready may have changed.
func (d *Detector) Changes() <-chan struct{} { return d.changes }

// SetEligible says whether this speaker may be a candidate at all. While it
// may not, its heartbeats say "not ready", so every peer leaves it out of
// Live and keeps (or takes over) what it would own. A speaker that has no
// configuration to act on (it started while the configuration does not
// parse) must not be elected: it would be given Services it cannot
// announce. Call it before the first SetPeers, since heartbeats start then.
func (d *Detector) SetEligible(eligible bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.ineligible = !eligible
}

// SetPeers replaces the set of peers, keeping what is known of those that
// stay. The caller derives it from Node objects.
func (d *Detector) SetPeers(peers []Peer) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.start.IsZero() {
		// Ready counts from here: heartbeats from peers are only accepted
		// once they are known.
		d.start = d.opts.Now()
	}
	next := make(map[string]*peerState, len(peers))
	for _, p := range peers {
		if p.Name == d.opts.Node || !p.Addr.IsValid() {
			continue
		}
		st := d.peers[p.Name]
		if st == nil || st.addr != p.Addr {
			st = &peerState{addr: p.Addr}
		}
		next[p.Name] = st
	}
	d.peers = next
	d.filterLocked()
	d.recomputeLocked(d.opts.Now())
}

// filterLocked makes the socket filter admit the peers' addresses, when
// they changed.
func (d *Detector) filterLocked() {
	addrs := make([]netip.Addr, 0, len(d.peers))
	for _, p := range d.peers {
		addrs = append(addrs, p.addr.Unmap())
	}
	slices.SortFunc(addrs, netip.Addr.Compare)
	addrs = slices.Compact(addrs)
	if slices.Equal(addrs, d.filtered) && d.filtered != nil {
		return
	}
	raw, err := peerFilter(addrs)
	if err != nil {
		// Too many peers for one program: admit everything rather than
		// drop a peer; handle still checks every address.
		d.log.Warn("membership: heartbeats from any address reach the speaker, a flood can cost heartbeats", "err", err)
		raw, _ = bpf.Assemble([]bpf.Instruction{bpf.RetConstant{Val: acceptAll}})
	}
	if err := attachFilter(d.conn, raw); err != nil {
		d.log.Warn("membership: the peer filter was not updated; peers new to it look dead", "err", err)
		return
	}
	d.filtered = addrs
}

// Live returns the speakers that are alive and ready, this one included
// (even before it is ready: a speaker always counts itself), sorted.
func (d *Detector) Live() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.live)
}

// Ready reports whether this speaker may act on Live: it has known its
// peers for one Timeout, so it has heard from every live one, and each peer
// it hears is ready too. The second half matters when speakers start
// together: without it the first to be ready would see itself alone,
// announce every IP, and hand most of them over a moment later. Waiting for
// heard peers is bounded by SettleMax, so a peer stuck before its own
// readiness cannot hold this one back for long.
func (d *Detector) Ready() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.settled
}

// Rejoins counts the peers heard again after a silence of nearly a
// Timeout or more. Such a peer has probably counted this speaker dead and
// announced its IPs meanwhile, so the speaker re-announces its own when the
// count changes.
func (d *Detector) Rejoins() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.rejoins
}

// Departure says why a speaker is not among the live ones.
type Departure int

const (
	// NotDeparted: the speaker is live (or is this one).
	NotDeparted Departure = iota
	// Silent: its heartbeats stopped while it said it was ready: it died,
	// or the network between the two is cut.
	Silent
	// Left: its last heartbeat said it is not ready: a speaker says so on
	// its way out, and while it has no configuration to act on.
	Left
	// Restarted: a new process of it is heard, and the previous one never
	// said it was leaving.
	Restarted
	// Removed: it is not a peer any more (its Node is gone or has no
	// address), or never was.
	Removed
)

// String returns the name of the departure.
func (d Departure) String() string {
	switch d {
	case NotDeparted:
		return "NotDeparted"
	case Silent:
		return "Silent"
	case Left:
		return "Left"
	case Restarted:
		return "Restarted"
	case Removed:
		return "Removed"
	}
	return fmt.Sprintf("Departure(%d)", int(d))
}

// Departure says why node is not in Live, as of the last computation of
// Live.
func (d *Detector) Departure(node string) Departure {
	d.mu.Lock()
	defer d.mu.Unlock()
	if slices.Contains(d.live, node) {
		return NotDeparted
	}
	p := d.peers[node]
	switch {
	case p == nil:
		return Removed
	case p.restarted:
		return Restarted
	case !p.ready:
		return Left
	}
	return Silent
}

// Stats returns the counts of dropped packets so far.
func (d *Detector) Stats() Stats {
	d.mu.Lock()
	defer d.mu.Unlock()
	// Read under the lock, so that two readers add each drop once.
	if raw, err := socketDrops(d.conn); err == nil {
		// The kernel's count is 32 bits wide; between two reads it
		// cannot have wrapped more than once at any real rate.
		d.stats.Dropped += uint64(raw - d.drops)
		d.drops = raw
	}
	return d.stats
}

// Run sends heartbeats and watches for expiries until ctx ends.
func (d *Detector) Run(ctx context.Context) error {
	done := make(chan struct{})
	defer close(done)
	go func() {
		<-done
		d.conn.Close()
	}()
	go d.receive()
	// Checking expiries four times per interval bounds the detection
	// error at a quarter interval.
	tick := time.NewTicker(d.opts.Interval / 4)
	defer tick.Stop()
	var lastSend time.Time
	for {
		select {
		case <-ctx.Done():
			d.leave()
			return nil
		case <-tick.C:
		}
		now := d.opts.Now()
		d.mu.Lock()
		d.rotateLocked(now)
		d.mu.Unlock()
		if now.Sub(lastSend) >= d.opts.Interval {
			d.send()
			lastSend = now
		}
		d.mu.Lock()
		d.recomputeLocked(now)
		d.mu.Unlock()
	}
}

// rotateLocked draws a new challenge every rotateEvery, keeping the last
// one valid for the heartbeats in flight.
func (d *Detector) rotateLocked(now time.Time) {
	if now.Sub(d.rotatedAt) < d.rotateEvery {
		return
	}
	d.prevChallenge, d.challenge, d.rotatedAt = d.challenge, nonzeroRandom(), now
}

// leave tells the peers that this speaker stops, so that they take over
// at once instead of after Timeout: a heartbeat that says "not ready"
// removes a speaker from every peer's Live.
func (d *Detector) leave() {
	d.mu.Lock()
	d.ready = false
	d.mu.Unlock()
	d.sendReady(false)
}

func (d *Detector) send() {
	d.mu.Lock()
	ready := d.ready && !d.ineligible
	d.mu.Unlock()
	d.sendReady(ready)
}

// sendReady sends one heartbeat to every peer.
func (d *Detector) sendReady(ready bool) {
	d.mu.Lock()
	out := d.outgoingLocked(ready)
	d.mu.Unlock()
	for _, o := range out {
		// Errors (no route while a node is cut off, for instance) are the
		// normal way a dead peer looks; the receiving side decides.
		_, _ = d.conn.WriteToUDPAddrPort(encode(o.hb, d.opts.Key), netip.AddrPortFrom(o.addr, uint16(d.opts.Port)))
	}
}

// outgoing is one heartbeat to send and where.
type outgoing struct {
	addr netip.Addr
	hb   heartbeat
}

// outgoingLocked makes the next round of heartbeats, one per peer, each
// echoing that peer's own challenge.
func (d *Detector) outgoingLocked(ready bool) []outgoing {
	d.seq++
	out := make([]outgoing, 0, len(d.peers))
	for _, p := range d.peers {
		out = append(out, outgoing{p.addr, heartbeat{node: d.opts.Node, incarnation: d.incarnation, seq: d.seq, ready: ready,
			challenge: d.challenge, echo: p.challenge}})
	}
	return out
}

func (d *Detector) receive() {
	buf := make([]byte, 512)
	for {
		n, from, err := d.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			d.log.Warn("membership: reading heartbeat", "err", err)
			continue
		}
		d.handle(buf[:n], from.Addr().Unmap(), d.opts.Now())
	}
}

// handle checks one received packet, cheapest check first: its shape, then
// whether it names a known peer and comes from that peer's address (a map
// lookup), and only then its MAC.
func (d *Detector) handle(b []byte, from netip.Addr, now time.Time) {
	hb, body, mac, err := parse(b)
	if err == nil {
		d.mu.Lock()
		p := d.peers[hb.node]
		if p == nil || p.addr.Unmap() != from {
			err = errors.New("not from a known peer's address")
		}
		d.mu.Unlock()
	}
	if err != nil {
		d.mu.Lock()
		d.stats.Unknown++
		d.mu.Unlock()
		return
	}
	if !verify(body, mac, d.opts.Key) && (len(d.opts.SecondaryKey) == 0 || !verify(body, mac, d.opts.SecondaryKey)) {
		d.authFailed(hb.node, from, now)
		return
	}
	d.accept(hb, from, now)
}

// authFailed counts an authentication failure and warns, at most once per
// ten seconds: a key mismatch must be visible, a flood must not flood the
// log.
func (d *Detector) authFailed(node string, from netip.Addr, now time.Time) {
	d.mu.Lock()
	d.stats.AuthFailures++
	if !d.warnedAt.IsZero() && now.Sub(d.warnedAt) < 10*time.Second {
		d.suppressed++
		d.mu.Unlock()
		return
	}
	suppressed := d.suppressed
	d.warnedAt, d.suppressed = now, 0
	d.mu.Unlock()
	d.log.Warn("membership: heartbeat authentication failed: the speakers' memberlist keys differ, or someone forges heartbeats",
		"node", node, "from", from, "suppressedSinceLastWarning", suppressed)
}

// accept records an authentic heartbeat that came from the address of the
// node it names. Only a fresh one (it echoes one of our last two
// challenges) counts for liveness; any newer one teaches the peer's
// incarnation and challenge, which is how two speakers that do not know
// each other's challenges yet get to know them, but not while the peer is
// alive through fresh heartbeats, so that a replayed recording cannot make
// this speaker echo a stale challenge.
func (d *Detector) accept(hb heartbeat, from netip.Addr, now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	p := d.peers[hb.node]
	if p == nil || p.addr.Unmap() != from {
		return
	}
	if slices.Contains(p.superseded, hb.incarnation) || (hb.incarnation == p.incarnation && hb.seq <= p.seq) {
		d.stats.Stale++
		return // a recording or a reordered packet
	}
	fresh := hb.echo != 0 && (hb.echo == d.challenge || hb.echo == d.prevChallenge)
	alive := !p.last.IsZero() && now.Sub(p.last) < d.opts.Timeout
	if !fresh && alive {
		d.stats.Stale++
		return
	}
	if hb.incarnation != p.incarnation {
		if p.incarnation != 0 {
			p.superseded = append(p.superseded, p.incarnation)
			if len(p.superseded) > maxSuperseded {
				p.superseded = p.superseded[1:]
			}
		}
		p.restarted = p.incarnation != 0
		p.incarnation, p.ready = hb.incarnation, false
	}
	p.seq, p.challenge, p.heard = hb.seq, hb.challenge, now
	if fresh {
		if !p.last.IsZero() && now.Sub(p.last) >= d.opts.Timeout-d.opts.Interval {
			// Silent for nearly a Timeout: the cut was probably two-way, so
			// the peer has likely counted this speaker dead and taken over
			// its IPs, even if this side never quite counted the peer dead.
			d.rejoins++
			d.signalLocked()
		}
		p.last, p.ready = now, hb.ready
		if hb.ready {
			p.restarted = false
		}
	}
	d.recomputeLocked(now)
}

// recomputeLocked refreshes ready and live and signals a change.
//
// A starting speaker goes through two waits. It says it is ready once it
// has known its peers for one Timeout and has heard every one of them at
// least once: the Node objects say which speakers should exist, and one
// that has not started sending yet (speakers of a cold start or a rollout
// come up seconds apart) would otherwise be missing from the view of the
// first one up, which would take every IP and hand most of them over a
// moment later. It then acts (Ready) once every peer it hears says it is
// ready too, so that all of them act on the same view. Each wait is
// bounded by SettleMax, so a Node whose speaker is dead, or that runs none,
// delays a start by SettleMax at most; peers ignore a speaker until it says
// it is ready, so that delay never darkens an IP it would own.
func (d *Detector) recomputeLocked(now time.Time) {
	live := []string{d.opts.Node}
	heardReady, heardAll := true, true
	for name, p := range d.peers {
		if p.heard.IsZero() {
			heardAll = false
			continue
		}
		switch {
		case !p.last.IsZero() && now.Sub(p.last) < d.opts.Timeout:
			if p.ready {
				live = append(live, name)
			} else {
				heardReady = false
			}
		case now.Sub(p.heard) < d.opts.Timeout:
			// Heard, but not fresh yet: it does not know our challenge,
			// so it is starting; wait for it like a peer not ready.
			heardReady = false
		}
	}
	slices.Sort(live)
	ready, readyAt := d.ready, d.readyAt
	if !ready && !d.start.IsZero() {
		since := now.Sub(d.start)
		if since >= d.opts.Timeout && (heardAll || since >= d.opts.SettleMax) {
			ready, readyAt = true, now
		}
	}
	settled := d.settled || (ready && (heardReady || now.Sub(readyAt) >= d.opts.SettleMax))
	if ready == d.ready && settled == d.settled && slices.Equal(live, d.live) {
		return
	}
	if settled != d.settled {
		d.log.Info("membership: ready", "waited", now.Sub(d.start).Round(time.Millisecond), "live", live)
	} else if !slices.Equal(live, d.live) {
		d.log.Info("membership: live speakers changed", "live", live)
	}
	if ready && !d.ready {
		d.readyAt = readyAt
		if !heardAll {
			d.log.Warn("membership: ready without having heard every known peer", "waited", now.Sub(d.start).Round(time.Millisecond), "live", live)
		}
	}
	d.ready, d.settled, d.live = ready, settled, live
	d.signalLocked()
}

// signalLocked tells the watcher of Changes that something changed.
func (d *Detector) signalLocked() {
	select {
	case d.changes <- struct{}{}:
	default:
	}
}

// heartbeat is the content of one packet.
type heartbeat struct {
	node        string
	incarnation uint64
	seq         uint64
	ready       bool
	// challenge is the sender's current challenge; echo is the
	// receiver's, as the sender last learnt it (zero: none yet).
	challenge, echo uint64
}

// Wire format, big endian:
//
//	magic "KLB" | version 2 | flags (bit 0: ready) | name length | name |
//	incarnation (8) | sequence (8) | challenge (8) | echo (8) |
//	HMAC-SHA256 of everything before (32)
const (
	magic     = "KLB"
	version   = 2
	macLen    = sha256.Size
	headerLen = len(magic) + 3
	fixedLen  = 32  // incarnation, sequence, challenge, echo
	maxName   = 253 // a DNS name, which Node names are
)

func encode(hb heartbeat, key []byte) []byte {
	b := make([]byte, 0, headerLen+len(hb.node)+fixedLen+macLen)
	b = append(b, magic...)
	var flags byte
	if hb.ready {
		flags |= 1
	}
	b = append(b, version, flags, byte(len(hb.node)))
	b = append(b, hb.node...)
	b = binary.BigEndian.AppendUint64(b, hb.incarnation)
	b = binary.BigEndian.AppendUint64(b, hb.seq)
	b = binary.BigEndian.AppendUint64(b, hb.challenge)
	b = binary.BigEndian.AppendUint64(b, hb.echo)
	m := hmac.New(sha256.New, key)
	m.Write(b)
	return m.Sum(b)
}

// parse reads a packet's fields without checking its MAC, and returns the
// signed body and the MAC for verify.
func parse(b []byte) (hb heartbeat, body, mac []byte, err error) {
	if len(b) < headerLen+fixedLen+macLen || string(b[:len(magic)]) != magic {
		return heartbeat{}, nil, nil, errors.New("not a heartbeat")
	}
	if b[3] != version {
		return heartbeat{}, nil, nil, fmt.Errorf("heartbeat version %d, want %d", b[3], version)
	}
	if b[4]&^1 != 0 {
		return heartbeat{}, nil, nil, errors.New("heartbeat has unknown flags")
	}
	nameLen := int(b[5])
	if nameLen == 0 || len(b) != headerLen+nameLen+fixedLen+macLen {
		return heartbeat{}, nil, nil, errors.New("heartbeat length does not match its name length")
	}
	body, mac = b[:len(b)-macLen], b[len(b)-macLen:]
	rest := body[headerLen+nameLen:]
	return heartbeat{
		node:        string(body[headerLen : headerLen+nameLen]),
		ready:       b[4]&1 != 0,
		incarnation: binary.BigEndian.Uint64(rest[0:8]),
		seq:         binary.BigEndian.Uint64(rest[8:16]),
		challenge:   binary.BigEndian.Uint64(rest[16:24]),
		echo:        binary.BigEndian.Uint64(rest[24:32]),
	}, body, mac, nil
}

// verify checks a MAC in constant time.
func verify(body, mac, key []byte) bool {
	m := hmac.New(sha256.New, key)
	m.Write(body)
	return hmac.Equal(mac, m.Sum(nil))
}

// decode parses and authenticates a packet with one key.
func decode(b []byte, key []byte) (heartbeat, error) {
	hb, body, mac, err := parse(b)
	if err != nil {
		return heartbeat{}, err
	}
	if !verify(body, mac, key) {
		return heartbeat{}, errors.New("heartbeat authentication failed (different memberlist key?)")
	}
	return hb, nil
}

// Close releases the socket if Run was never called; Run closes it itself.
func (d *Detector) Close() error { return d.conn.Close() }
