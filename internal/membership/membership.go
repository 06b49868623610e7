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
// A heartbeat carries the sender's name, its incarnation (start time) and a
// sequence number, and an HMAC-SHA256 over all of it with the shared key (the
// memberlist secret), so an outsider can neither forge a speaker nor replay
// an old heartbeat to keep a dead one alive. The source address must also be
// the address of the named node.
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
)

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
	// Key authenticates heartbeats; every speaker must have the same key.
	// An empty key still works but lets anyone on the network forge
	// heartbeats.
	Key []byte
	// Now is the clock; nil means time.Now. Tests set it.
	Now func() time.Time
}

// MinInterval is the shortest heartbeat interval New accepts: every speaker
// sends one packet per peer per interval, so a shorter one floods the node
// network (and the expiry check, four times per interval, would spin).
const MinInterval = 10 * time.Millisecond

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

// Detector sends and receives heartbeats.
type Detector struct {
	opts        Options
	log         *slog.Logger
	conn        *net.UDPConn
	incarnation uint64
	start       time.Time
	changes     chan struct{}

	mu    sync.Mutex
	seq   uint64
	peers map[string]*peerState
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
	live    []string // last computed, sorted
	rejoins uint64   // see Rejoins
}

type peerState struct {
	addr        netip.Addr
	incarnation uint64
	seq         uint64
	last        time.Time
	ready       bool
}

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
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.SettleMax <= 0 {
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
	d := &Detector{
		opts:        opts,
		log:         log,
		conn:        conn,
		incarnation: uint64(opts.Now().UnixNano()),
		changes:     make(chan struct{}, 1),
		peers:       map[string]*peerState{},
		live:        []string{opts.Node},
	}
	return d, nil
}

// Changes receives a value whenever Live or Ready may have changed.
func (d *Detector) Changes() <-chan struct{} { return d.changes }

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
	d.recomputeLocked(d.opts.Now())
}

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
		if now.Sub(lastSend) >= d.opts.Interval {
			d.send()
			lastSend = now
		}
		d.mu.Lock()
		d.recomputeLocked(now)
		d.mu.Unlock()
	}
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

func (d *Detector) sendReady(ready bool) {
	d.mu.Lock()
	d.seq++
	msg := encode(heartbeat{node: d.opts.Node, incarnation: d.incarnation, seq: d.seq, ready: ready}, d.opts.Key)
	targets := make([]netip.Addr, 0, len(d.peers))
	for _, p := range d.peers {
		targets = append(targets, p.addr)
	}
	d.mu.Unlock()
	for _, a := range targets {
		// Errors (no route while a node is cut off, for instance) are the
		// normal way a dead peer looks; the receiving side decides.
		_, _ = d.conn.WriteToUDPAddrPort(msg, netip.AddrPortFrom(a, uint16(d.opts.Port)))
	}
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
		hb, err := decode(buf[:n], d.opts.Key)
		if err != nil {
			d.log.Debug("membership: dropping packet", "from", from, "err", err)
			continue
		}
		d.accept(hb, from.Addr().Unmap(), d.opts.Now())
	}
}

// accept records a heartbeat if it comes from the address of the node it
// names and is newer than the last one from that node.
func (d *Detector) accept(hb heartbeat, from netip.Addr, now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	p := d.peers[hb.node]
	if p == nil || p.addr.Unmap() != from {
		return
	}
	if hb.incarnation < p.incarnation || (hb.incarnation == p.incarnation && hb.seq <= p.seq) {
		return // a replay or a reordered packet
	}
	if !p.last.IsZero() && now.Sub(p.last) >= d.opts.Timeout-d.opts.Interval {
		// Silent for nearly a Timeout: the cut was probably two-way, so
		// the peer has likely counted this speaker dead and taken over its
		// IPs, even if this side never quite counted the peer dead.
		d.rejoins++
		d.signalLocked()
	}
	p.incarnation, p.seq, p.last, p.ready = hb.incarnation, hb.seq, now, hb.ready
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
		if p.last.IsZero() {
			heardAll = false
			continue
		}
		if now.Sub(p.last) >= d.opts.Timeout {
			continue
		}
		if p.ready {
			live = append(live, name)
		} else {
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
}

// Wire format, big endian:
//
//	magic "KLB" | version 1 | flags (bit 0: ready) | name length | name |
//	incarnation (8) | sequence (8) | HMAC-SHA256 of everything before (32)
const (
	magic     = "KLB"
	version   = 1
	macLen    = sha256.Size
	headerLen = len(magic) + 3
	maxName   = 253 // a DNS name, which Node names are
)

func encode(hb heartbeat, key []byte) []byte {
	b := make([]byte, 0, headerLen+len(hb.node)+16+macLen)
	b = append(b, magic...)
	var flags byte
	if hb.ready {
		flags |= 1
	}
	b = append(b, version, flags, byte(len(hb.node)))
	b = append(b, hb.node...)
	b = binary.BigEndian.AppendUint64(b, hb.incarnation)
	b = binary.BigEndian.AppendUint64(b, hb.seq)
	m := hmac.New(sha256.New, key)
	m.Write(b)
	return m.Sum(b)
}

func decode(b []byte, key []byte) (heartbeat, error) {
	if len(b) < headerLen+16+macLen || string(b[:len(magic)]) != magic {
		return heartbeat{}, errors.New("not a heartbeat")
	}
	if b[3] != version {
		return heartbeat{}, fmt.Errorf("heartbeat version %d, want %d", b[3], version)
	}
	nameLen := int(b[5])
	if nameLen == 0 || nameLen > maxName || len(b) != headerLen+nameLen+16+macLen {
		return heartbeat{}, errors.New("heartbeat length does not match its name length")
	}
	body, mac := b[:len(b)-macLen], b[len(b)-macLen:]
	m := hmac.New(sha256.New, key)
	m.Write(body)
	if !hmac.Equal(mac, m.Sum(nil)) {
		return heartbeat{}, errors.New("heartbeat authentication failed (different memberlist key?)")
	}
	rest := body[headerLen+nameLen:]
	return heartbeat{
		node:        string(body[headerLen : headerLen+nameLen]),
		ready:       b[4]&1 != 0,
		incarnation: binary.BigEndian.Uint64(rest[:8]),
		seq:         binary.BigEndian.Uint64(rest[8:16]),
	}, nil
}

// Close releases the socket if Run was never called; Run closes it itself.
func (d *Detector) Close() error { return d.conn.Close() }
