package bgp

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

// Reasons why a session is not up, for Events and status. They name the
// cause a user can act on, not the engine's internal state.
const (
	// ReasonConnectionRefused: the peer's host answered the TCP connection
	// with a reset (nothing listens on the port).
	ReasonConnectionRefused = "ConnectionRefused"
	// ReasonNoResponse: TCP connection attempts time out. Without a
	// password this is a filtered or absent peer, or a router that
	// expects TCP-MD5.
	ReasonNoResponse = "NoResponse"
	// ReasonPasswordMismatch: TCP connection attempts time out while a
	// TCP-MD5 password is set: a router with a different password, or
	// none, silently drops the segments, which is what this looks like.
	ReasonPasswordMismatch = "PasswordMismatch"
	// ReasonUnreachable: no route, or no neighbour answer, toward the peer.
	ReasonUnreachable = "Unreachable"
	// ReasonConnectError: any other error while connecting, such as a
	// sourceAddress that is not on this node.
	ReasonConnectError = "ConnectError"
	// ReasonConnectionClosed: the peer closed the connection without a
	// NOTIFICATION (often: it does not have this node as a neighbor).
	ReasonConnectionClosed = "ConnectionClosed"
	// ReasonASNMismatch: the OPEN was refused for a bad peer AS, in either
	// direction.
	ReasonASNMismatch = "ASNMismatch"
	// ReasonOpenRejected: the OPEN was refused for another reason (router
	// ID, hold time, capabilities).
	ReasonOpenRejected = "OpenRejected"
	// ReasonHoldTimerExpired: no KEEPALIVE within the hold time.
	ReasonHoldTimerExpired = "HoldTimerExpired"
	// ReasonBFDDown: BFD declared the path down.
	ReasonBFDDown = "BFDDown"
	// ReasonNotificationReceived: the peer closed the session with a
	// NOTIFICATION (administrative shutdown, reset, ...).
	ReasonNotificationReceived = "NotificationReceived"
	// ReasonNotificationSent: this node closed the session with a
	// NOTIFICATION.
	ReasonNotificationSent = "NotificationSent"
	// ReasonDynamicASNMismatch: with dynamicASN the session came up, but
	// the peer's AS is not of the expected kind. The engine cannot refuse
	// it; this reason says so.
	ReasonDynamicASNMismatch = "DynamicASNMismatch"
)

// SessionState is the state of one BGP session, for status, Events and
// the CLI.
type SessionState struct {
	// Peer is the BGPPeer's name.
	Peer string
	// Address is the peer's address.
	Address netip.Addr
	// Port is the peer's port.
	Port uint16
	// State is the BGP FSM state: Idle, Connect, Active, OpenSent,
	// OpenConfirm or Established.
	State string
	// Up is true when the session is Established.
	Up bool
	// Since is when State last changed; when Up, the session's uptime
	// starts there. Zero before the first change.
	Since time.Time
	// LocalAddress is this node's address on the session, while up.
	LocalAddress netip.Addr
	// PeerASN is the AS the peer announced, once a session came up.
	PeerASN uint32
	// Reason is the last reason the session went down or failed to come
	// up, one of the Reason constants; kept while down, cleared when the
	// session comes up (except ReasonDynamicASNMismatch).
	Reason string
	// Message explains Reason in words.
	Message string
	// BFD is the BFD session state (Down, Init, Up, AdminDown), "" without
	// BFD.
	BFD string
	// Advertised is how many prefixes the peer currently receives from
	// this node.
	Advertised int
	// Planned is how many prefixes the last Desired given to Apply sends
	// to the peer; Advertised catches up with it once they are sent.
	Planned int
	// Sent and Received count the BGP messages of the session by type
	// since it was configured.
	Sent, Received MessageCounts
	// BFDSent and BFDReceived count BFD control packets since BFD was
	// enabled on the session.
	BFDSent, BFDReceived uint64
	// BFDUps and BFDDowns count the BFD session's transitions to Up and
	// from Up to Down since the engine started.
	BFDUps, BFDDowns uint64
}

// MessageCounts counts BGP messages by type.
type MessageCounts struct {
	// Opens, Updates, Notifications, Keepalives and RouteRefreshes count
	// the messages of each type.
	Opens, Updates, Notifications, Keepalives, RouteRefreshes uint64
	// Total counts every message, of any type.
	Total uint64
}

// fsmStateName names an FSM state the way operators know it.
func fsmStateName(s bgp.FSMState) string {
	switch s {
	case bgp.BGP_FSM_IDLE:
		return "Idle"
	case bgp.BGP_FSM_CONNECT:
		return "Connect"
	case bgp.BGP_FSM_ACTIVE:
		return "Active"
	case bgp.BGP_FSM_OPENSENT:
		return "OpenSent"
	case bgp.BGP_FSM_OPENCONFIRM:
		return "OpenConfirm"
	case bgp.BGP_FSM_ESTABLISHED:
		return "Established"
	}
	return s.String()
}

func apiStateName(s api.PeerState_SessionState) string {
	switch s {
	case api.PeerState_SESSION_STATE_IDLE, api.PeerState_SESSION_STATE_UNSPECIFIED:
		return "Idle"
	case api.PeerState_SESSION_STATE_CONNECT:
		return "Connect"
	case api.PeerState_SESSION_STATE_ACTIVE:
		return "Active"
	case api.PeerState_SESSION_STATE_OPENSENT:
		return "OpenSent"
	case api.PeerState_SESSION_STATE_OPENCONFIRM:
		return "OpenConfirm"
	case api.PeerState_SESSION_STATE_ESTABLISHED:
		return "Established"
	}
	return s.String()
}

func bfdStateName(s api.BfdSessionState) string {
	switch s {
	case api.BfdSessionState_BFD_SESSION_STATE_UP:
		return "Up"
	case api.BfdSessionState_BFD_SESSION_STATE_INIT:
		return "Init"
	case api.BfdSessionState_BFD_SESSION_STATE_ADMIN_DOWN:
		return "AdminDown"
	}
	return "Down"
}

// notificationCode matches GoBGP's rendering of a NOTIFICATION's error
// code and subcode, "code 2(open) subcode 2(bad peer as)".
var notificationCode = regexp.MustCompile(`code (\d+)\(([^)]*)\) subcode (\d+)\(([^)]*)\)`)

// classifyDisconnect turns GoBGP's disconnect reason into a Reason and a
// message. prev is the FSM state the session left; bfdDown says whether
// BFD declared the path down just before.
func classifyDisconnect(reason api.PeerState_DisconnectReason, detail, prev string, bfdDown bool) (string, string) {
	code, sub, what := 0, 0, ""
	if m := notificationCode.FindStringSubmatch(detail); m != nil {
		code, _ = strconv.Atoi(m[1])
		sub, _ = strconv.Atoi(m[3])
		what = m[2] + ": " + m[4]
	}
	switch reason {
	case api.PeerState_DISCONNECT_REASON_HOLD_TIMER_EXPIRED:
		return ReasonHoldTimerExpired, "no KEEPALIVE or UPDATE from the peer within the hold time"
	case api.PeerState_DISCONNECT_REASON_BAD_PEER_AS:
		return ReasonASNMismatch, "the peer announced an AS number other than peerASN"
	case api.PeerState_DISCONNECT_REASON_INVALID_MSG:
		if prev == "OpenSent" || prev == "OpenConfirm" {
			// GoBGP drops a NOTIFICATION received before the session is
			// established without reporting its code. A router answering
			// this node's OPEN that way almost always objects to the AS
			// number; probeOpen (run by the Speaker) replaces this
			// message with the exact code when it can.
			return ReasonOpenRejected, "the peer refused this node's OPEN: most often it expects another AS number from this node (check the router's neighbor statement and myASN); a clashing router ID or a required capability also do this"
		}
		return ReasonNotificationSent, "the peer sent a malformed or unexpected message; this node closed the session"
	case api.PeerState_DISCONNECT_REASON_READ_FAILED, api.PeerState_DISCONNECT_REASON_WRITE_FAILED:
		return ReasonConnectionClosed, "the peer closed the TCP connection without a NOTIFICATION; check that the router has this node as a neighbor"
	case api.PeerState_DISCONNECT_REASON_NOTIFICATION_RECEIVED, api.PeerState_DISCONNECT_REASON_NOTIFICATION_SENT:
		received := reason == api.PeerState_DISCONNECT_REASON_NOTIFICATION_RECEIVED
		switch {
		case code == int(bgp.BGP_ERROR_OPEN_MESSAGE_ERROR) && sub == int(bgp.BGP_ERROR_SUB_BAD_PEER_AS):
			if received {
				return ReasonASNMismatch, "the peer refused the OPEN: bad peer AS (the router expects another AS from this node; check myASN, and peerASN on the router)"
			}
			return ReasonASNMismatch, "the peer's OPEN carried an AS number other than peerASN"
		case code == int(bgp.BGP_ERROR_OPEN_MESSAGE_ERROR):
			return ReasonOpenRejected, fmt.Sprintf("OPEN refused (%s)", what)
		case code == int(bgp.BGP_ERROR_HOLD_TIMER_EXPIRED):
			return ReasonHoldTimerExpired, "the peer's hold timer expired"
		case !received && bfdDown:
			return ReasonBFDDown, "BFD declared the path to the peer down"
		case received:
			return ReasonNotificationReceived, fmt.Sprintf("the peer sent a NOTIFICATION (%s)", what)
		default:
			return ReasonNotificationSent, fmt.Sprintf("this node sent a NOTIFICATION (%s)", what)
		}
	}
	if bfdDown {
		return ReasonBFDDown, "BFD declared the path to the peer down"
	}
	return "", ""
}

// classifyConnectError turns a failed TCP connect into a Reason.
func classifyConnectError(err string, password bool) (string, string) {
	switch {
	case strings.Contains(err, "connection refused"):
		return ReasonConnectionRefused, "the peer refused the TCP connection: nothing listens on its BGP port"
	case strings.Contains(err, "timeout") || strings.Contains(err, "timed out"):
		if password {
			return ReasonPasswordMismatch, "TCP connection attempts time out while a TCP-MD5 password is set; a router with a different password (or none) silently drops them"
		}
		return ReasonNoResponse, "TCP connection attempts time out: the peer is filtered, down, or expects a TCP-MD5 password"
	case strings.Contains(err, "no route to host"), strings.Contains(err, "network is unreachable"), strings.Contains(err, "host is unreachable"):
		return ReasonUnreachable, "the peer is unreachable: " + err
	}
	return ReasonConnectError, "cannot connect: " + err
}

// sessionInfo is what the tracker knows of one session beyond what GoBGP
// reports on request.
type sessionInfo struct {
	name     string
	port     uint16
	password bool
	dynamic  string
	localASN uint32
	state    string
	up       bool
	since    time.Time
	reason   string
	message  string
	bfdDown  time.Time
	probedAt time.Time
}

// bfdHistory is what the engine's log says of one peer's BFD session.
type bfdHistory struct {
	up         bool
	ups, downs uint64
}

// tracker follows session events and hands changes, in order, to a
// callback on its own goroutine, so that a slow callback never blocks the
// BGP engine.
type tracker struct {
	mu       sync.Mutex
	sessions map[netip.Addr]*sessionInfo
	// bfd outlives sessions (a reconfigured session is removed and added
	// again), so that its counts only ever grow.
	bfd    map[netip.Addr]*bfdHistory
	queue  []SessionState
	wake   chan struct{}
	done   chan struct{}
	notify func(SessionState)
	now    func() time.Time
	// probe, when set, is started (in its own goroutine) when a peer
	// refuses the OPEN, at most once per probeInterval per session, to
	// learn why.
	probe func(netip.Addr)
	// onUp, when set, is started (in its own goroutine) when a session
	// comes up.
	onUp func(netip.Addr)
}

// probeInterval limits OPEN probes toward one peer.
const probeInterval = 30 * time.Second

func newTracker(notify func(SessionState)) *tracker {
	t := &tracker{
		sessions: make(map[netip.Addr]*sessionInfo),
		bfd:      make(map[netip.Addr]*bfdHistory),
		wake:     make(chan struct{}, 1),
		done:     make(chan struct{}),
		notify:   notify,
		now:      time.Now,
	}
	go t.dispatch()
	return t
}

// dispatch delivers queued changes until stop.
func (t *tracker) dispatch() {
	for {
		select {
		case <-t.done:
			return
		case <-t.wake:
		}
		for {
			t.mu.Lock()
			if len(t.queue) == 0 {
				t.mu.Unlock()
				break
			}
			s := t.queue[0]
			t.queue = t.queue[1:]
			t.mu.Unlock()
			if t.notify != nil {
				t.notify(s)
			}
		}
	}
}

func (t *tracker) stop() {
	select {
	case <-t.done:
	default:
		close(t.done)
	}
}

// changed queues the state of one session; t.mu must be held.
func (t *tracker) changed(addr netip.Addr, s *sessionInfo) {
	if t.notify == nil {
		return
	}
	t.queue = append(t.queue, SessionState{
		Peer: s.name, Address: addr, Port: s.port, State: s.state, Up: s.up, Since: s.since,
		Reason: s.reason, Message: s.message,
	})
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// add starts tracking a configured session.
func (t *tracker) add(pc PeerConfig) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sessions[pc.Address] = &sessionInfo{name: pc.Name, port: pc.Port, password: pc.Password != "",
		dynamic: pc.DynamicASN, localASN: pc.LocalASN, state: "Idle"}
}

// remove stops tracking a session; later events about it are ignored.
func (t *tracker) remove(addr netip.Addr) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.sessions, addr)
}

// peerEvent records a state change reported by GoBGP.
func (t *tracker) peerEvent(addr netip.Addr, state bgp.FSMState, peerAS uint32, reason api.PeerState_DisconnectReason, detail string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.sessions[addr]
	if s == nil {
		return
	}
	name := fsmStateName(state)
	prev := s.state
	wasUp := s.up
	if name != s.state {
		s.state, s.since = name, t.now()
	}
	// Callers hear about a session going up or down and about a new
	// reason, not about every FSM step of a retry loop.
	s.up = state == bgp.BGP_FSM_ESTABLISHED
	changed := s.up != wasUp
	switch {
	case s.up && !wasUp:
		if t.onUp != nil {
			go t.onUp(addr)
		}
		s.reason, s.message = "", ""
		if s.dynamic != "" && peerAS != 0 && (peerAS == s.localASN) != (s.dynamic == DynamicInternal) {
			s.reason = ReasonDynamicASNMismatch
			s.message = fmt.Sprintf("dynamicASN is %q but the peer is in AS %d (this node presents AS %d); the engine cannot refuse it", s.dynamic, peerAS, s.localASN)
		}
	case !s.up && reason != api.PeerState_DISCONNECT_REASON_UNSPECIFIED:
		bfd := !s.bfdDown.IsZero() && t.now().Sub(s.bfdDown) < 5*time.Second
		r, m := classifyDisconnect(reason, detail, prev, bfd)
		if r == ReasonOpenRejected && s.reason != ReasonOpenRejected && s.reason != ReasonASNMismatch && t.probe != nil && t.now().Sub(s.probedAt) > probeInterval {
			s.probedAt = t.now()
			go t.probe(addr)
		}
		if r == ReasonOpenRejected && s.reason == ReasonASNMismatch {
			// Keep the probe's more precise answer for this streak.
			r, m = s.reason, s.message
		}
		if r != "" && (r != s.reason || m != s.message) {
			s.reason, s.message = r, m
			changed = true
		}
	}
	if changed {
		t.changed(addr, s)
	}
}

// connectFailed records a failed TCP connection attempt.
func (t *tracker) connectFailed(addr netip.Addr, err string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.sessions[addr]
	if s == nil || s.up {
		return
	}
	r, m := classifyConnectError(err, s.password)
	if r == s.reason && m == s.message {
		return
	}
	s.reason, s.message = r, m
	t.changed(addr, s)
}

// refine replaces the reason of a session that is still down for reason
// was, with what a probe found out.
func (t *tracker) refine(addr netip.Addr, was, reason, message string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.sessions[addr]
	if s == nil || s.up || s.reason != was || (reason == s.reason && message == s.message) {
		return
	}
	s.reason, s.message = reason, message
	t.changed(addr, s)
}

// bfdTransition records a BFD session going to Up, or to Down; only a
// Down that follows an Up counts as a down event, as FRR counts them.
func (t *tracker) bfdTransition(addr netip.Addr, up bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	h := t.bfd[addr]
	if h == nil {
		h = &bfdHistory{}
		t.bfd[addr] = h
	}
	switch {
	case up && !h.up:
		h.ups++
	case !up && h.up:
		h.downs++
	}
	h.up = up
}

// bfdEvents returns a peer's BFD up and down events so far.
func (t *tracker) bfdEvents(addr netip.Addr) (ups, downs uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if h := t.bfd[addr]; h != nil {
		return h.ups, h.downs
	}
	return 0, 0
}

// bfdDown records that BFD declared a session down; the session drop that
// follows is attributed to BFD.
func (t *tracker) bfdWentDown(addr netip.Addr) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if s := t.sessions[addr]; s != nil {
		s.bfdDown = t.now()
	}
}

// info returns a copy of what is known of a session.
func (t *tracker) info(addr netip.Addr) (sessionInfo, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.sessions[addr]
	if s == nil {
		return sessionInfo{}, false
	}
	return *s, true
}

// logHook is a slog.Handler placed under GoBGP's logger: it forwards
// every record the caller's handler wants, and picks out the few that
// carry facts GoBGP reports nowhere else (why a TCP connect failed, that
// BFD expired). GoBGP logs failed connects at debug level, so this
// handler must accept debug records even when the caller's does not.
type logHook struct {
	next    slog.Handler
	key     string // the "Key" attribute GoBGP binds to a peer's logger
	tracker *tracker
}

func (h *logHook) Enabled(context.Context, slog.Level) bool { return true }

func (h *logHook) Handle(ctx context.Context, r slog.Record) error {
	switch r.Message {
	case "failed to connect":
		if a, err := netip.ParseAddr(h.key); err == nil {
			var e string
			r.Attrs(func(at slog.Attr) bool {
				if at.Key == "Error" {
					e = at.Value.String()
					return false
				}
				return true
			})
			h.tracker.connectFailed(a.Unmap(), e)
		}
	case "Expired", "Remote peer signaled BFD down":
		if a, ok := bfdPeer(r); ok {
			h.tracker.bfdWentDown(a)
		}
	case "Set state to UP", "Set state to DOWN":
		// GoBGP's BFD logs every transition to Up and to Down (at debug
		// level); its API counts none of them.
		if a, ok := bfdPeer(r); ok {
			h.tracker.bfdTransition(a, r.Message == "Set state to UP")
		}
	}
	if h.next.Enabled(ctx, r.Level) {
		return h.next.Handle(ctx, r)
	}
	return nil
}

// bfdPeer is the peer address of a record of GoBGP's BFD.
func bfdPeer(r slog.Record) (netip.Addr, bool) {
	var peer netip.Addr
	found := false
	r.Attrs(func(at slog.Attr) bool {
		if at.Key != "Peer" {
			return true
		}
		if a, err := netip.ParseAddr(at.Value.String()); err == nil {
			peer, found = a.Unmap(), true
		}
		return false
	})
	return peer, found
}

func (h *logHook) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	for _, a := range attrs {
		if a.Key == "Key" {
			c.key = a.Value.String()
		}
	}
	c.next = h.next.WithAttrs(attrs)
	return &c
}

func (h *logHook) WithGroup(name string) slog.Handler {
	c := *h
	c.next = h.next.WithGroup(name)
	return &c
}
