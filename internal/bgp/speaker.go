package bgp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/config/oc"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"
	"github.com/prometheus/client_golang/prometheus"
)

// Engine defaults, used where the BGPPeer leaves a field unset.
const (
	// DefaultConnectTime is the wait between connection attempts. GoBGP's
	// own default is 120 s, far too slow for a router that reboots.
	DefaultConnectTime = 5 * time.Second
	// DefaultIdleHoldTime is the pause after a session drops before it is
	// retried (GoBGP: 30 s), short so that routes return soon after a
	// link heals, long enough to damp a flapping peer.
	DefaultIdleHoldTime = 2 * time.Second
	// DefaultGracefulRestartTime is the restart time advertised with
	// graceful restart: how long a peer keeps this node's routes while
	// its speaker restarts.
	DefaultGracefulRestartTime = 120 * time.Second
)

// Options tune a Speaker. The zero value is usable.
type Options struct {
	// OnSessionChange, when set, is called whenever a session goes up or
	// down or the reason it is down changes (not on every FSM step of a
	// retry loop), one call at a time, in order, from a goroutine of the
	// Speaker; it may call Sessions. The speaker turns these into Events
	// ("refused", "bad password", "ASN mismatch", ...).
	OnSessionChange func(SessionState)
	// ConnectTime replaces DefaultConnectTime.
	ConnectTime time.Duration
	// IdleHoldTime replaces DefaultIdleHoldTime.
	IdleHoldTime time.Duration
	// GracefulRestartTime replaces DefaultGracefulRestartTime.
	GracefulRestartTime time.Duration
}

// Speaker is one node's BGP engine: an embedded GoBGP server driven by
// Apply. Its methods may be called from several goroutines.
type Speaker struct {
	log     *slog.Logger
	opts    Options
	tracker *tracker

	mu     sync.Mutex
	closed bool
	srv    *server.BgpServer
	cancel context.CancelFunc // stops the event watcher
	asn    uint32
	id     netip.Addr
	// What GoBGP holds, updated item by item so that a failed step leaves
	// an accurate record for the next Apply to diff against.
	peers  map[string]PeerConfig
	rib    map[netip.Prefix]bool
	treat  treatments
	policy *exportPolicy
	// bfdPending names sessions whose BFD is enabled once they first come
	// up; see onUp.
	bfdPending map[string]bool
	// planned counts, per peer name, the prefixes the last Desired sends
	// to it.
	planned map[string]int

	metrics *collector
}

// New returns a Speaker with no sessions. It registers the BGP metrics
// with reg unless reg is nil. GoBGP's own log records go to log, under
// the attribute component=gobgp.
func New(log *slog.Logger, reg prometheus.Registerer, opts Options) (*Speaker, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.ConnectTime <= 0 {
		opts.ConnectTime = DefaultConnectTime
	}
	if opts.IdleHoldTime <= 0 {
		opts.IdleHoldTime = DefaultIdleHoldTime
	}
	if opts.GracefulRestartTime <= 0 {
		opts.GracefulRestartTime = DefaultGracefulRestartTime
	}
	s := &Speaker{
		log:     log,
		opts:    opts,
		tracker: newTracker(opts.OnSessionChange),
		peers:   make(map[string]PeerConfig),
		rib:     make(map[netip.Prefix]bool),
		treat:   make(treatments),

		bfdPending: make(map[string]bool),
	}
	s.tracker.probe = s.probe
	s.tracker.onUp = s.onUp
	s.metrics = newCollector(s.Sessions)
	if reg != nil {
		if err := reg.Register(s.metrics); err != nil {
			s.tracker.stop()
			return nil, fmt.Errorf("registering BGP metrics: %w", err)
		}
	}
	return s, nil
}

// Apply makes the engine match d: sessions that are new or whose
// PeerConfig changed are (re)configured, sessions no longer wanted are
// closed with a NOTIFICATION, prefixes are added and withdrawn, and peers
// whose view of an advertised prefix changed get it again. Sessions and
// prefixes that did not change are not touched. A change of ASN or router
// ID restarts every session, as BGP requires.
//
// On error some steps may have been applied; the Speaker keeps an
// accurate record, so calling Apply again (with the same or a newer
// Desired) retries what is missing.
func (s *Speaker) Apply(ctx context.Context, d Desired) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("bgp speaker is closed")
	}
	s.planned = plannedPrefixes(d)
	if len(d.Peers) > 0 && s.srv != nil && (d.ASN != s.asn || d.RouterID != s.id) {
		s.log.Info("BGP identity changed; restarting every session", "asn", d.ASN, "routerID", d.RouterID, "oldASN", s.asn, "oldRouterID", s.id)
		s.stopServer(false)
	}
	if s.srv == nil {
		if len(d.Peers) == 0 {
			return nil
		}
		if err := s.startServer(ctx, d.ASN, d.RouterID); err != nil {
			return err
		}
	}

	var errs []error
	want := make(map[string]PeerConfig, len(d.Peers))
	for _, pc := range d.Peers {
		want[pc.Name] = pc
	}
	inRIB := make(map[netip.Prefix]bool, len(d.Paths))
	for _, p := range d.Paths {
		inRIB[p.Prefix] = true
	}
	newTreat := treatmentsOf(d)

	// 1. Withdraw prefixes nobody wants, while the policy that sent them
	//    is still in force (a withdrawal the policy rejects is not sent).
	var gone []netip.Prefix
	for _, p := range sortedKeys(s.rib, comparePrefixes) {
		if !inRIB[p] {
			gone = append(gone, p)
		}
	}
	if len(gone) > 0 {
		if err := s.deletePaths(gone); err != nil {
			errs = append(errs, err)
		} else {
			for _, p := range gone {
				delete(s.rib, p)
				delete(s.treat, p)
			}
		}
	}

	// 2. Close sessions that are gone or changed.
	stable := make(map[string]bool, len(s.peers))
	var last map[string]SessionState // before the first deletion: the counts GoBGP forgets
	for _, name := range sortedKeys(s.peers, strings.Compare) {
		old := s.peers[name]
		if nw, ok := want[name]; ok && nw == old {
			stable[name] = true
			continue
		}
		if last == nil {
			last = make(map[string]SessionState, len(s.peers))
			for _, st := range s.sessionsLocked() {
				last[st.Peer] = st
			}
		}
		if err := s.srv.DeletePeer(ctx, &api.DeletePeerRequest{Address: old.Address.String()}); err != nil {
			errs = append(errs, fmt.Errorf("closing session with BGPPeer %s (%s): %w", name, old.Address, err))
			continue
		}
		s.metrics.retire(last[name])
		s.tracker.remove(old.Address)
		delete(s.peers, name)
		delete(s.bfdPending, name)
	}

	// 3. Install the export policy for the new state.
	pol := buildPolicy(d)
	if !pol.equal(s.policy) {
		sets, p := pol.apiPolicy()
		if err := s.srv.SetPolicies(ctx, &api.SetPoliciesRequest{DefinedSets: sets, Policies: []*api.Policy{p, importPolicy()}}); err != nil {
			// Without the policy new prefixes and sessions would be
			// evaluated against the old one; stop here and retry later.
			errs = append(errs, fmt.Errorf("installing the export policy: %w", err))
			return errors.Join(errs...)
		}
		if s.policy == nil {
			if err := s.assignPolicies(ctx); err != nil {
				errs = append(errs, err)
				return errors.Join(errs...)
			}
		}
		s.policy = pol
	}

	// 4. Open new and changed sessions.
	for _, pc := range d.Peers {
		if _, ok := s.peers[pc.Name]; ok {
			continue
		}
		s.tracker.add(pc)
		if err := s.srv.AddPeer(ctx, &api.AddPeerRequest{Peer: s.apiPeer(pc, false)}); err != nil {
			s.tracker.remove(pc.Address)
			errs = append(errs, fmt.Errorf("opening session with BGPPeer %s (%s): %w", pc.Name, pc.Address, err))
			continue
		}
		s.peers[pc.Name] = pc
		if pc.BFD.Enabled {
			s.bfdPending[pc.Name] = true
		}
	}

	// 5. Announce new prefixes.
	var added []netip.Prefix
	for _, p := range d.Paths {
		if !s.rib[p.Prefix] {
			added = append(added, p.Prefix)
		}
	}
	if len(added) > 0 {
		if err := s.addPaths(added); err != nil {
			errs = append(errs, err)
		} else {
			for _, p := range added {
				s.rib[p] = true
				s.treat[p] = newTreat[p]
			}
		}
	}

	// 6. Re-send to peers whose view of an advertised prefix changed.
	//    Sessions opened in this call receive everything when they come
	//    up, so only those kept as they were need it.
	kept := make(treatments, len(s.treat))
	for p, t := range s.treat {
		if inRIB[p] {
			kept[p] = t
		}
	}
	refreshed := true
	for _, name := range peersToRefresh(kept, newTreat, stable) {
		pc := s.peers[name]
		if err := s.srv.ResetPeer(ctx, &api.ResetPeerRequest{Address: pc.Address.String(), Soft: true, Direction: api.ResetPeerRequest_DIRECTION_OUT}); err != nil {
			errs = append(errs, fmt.Errorf("re-sending routes to BGPPeer %s: %w", name, err))
			refreshed = false
		}
	}
	if refreshed {
		// Otherwise keep the old view, so that the next Apply sees the
		// difference again and retries.
		for p := range kept {
			s.treat[p] = newTreat[p]
		}
	}
	return errors.Join(errs...)
}

// startServer creates and starts a GoBGP server; s.mu is held.
func (s *Speaker) startServer(ctx context.Context, asn uint32, id netip.Addr) error {
	gobgpLog := slog.New(&logHook{next: s.log.With("component", "gobgp").Handler(), tracker: s.tracker})
	srv := server.NewBgpServer(server.LoggerOption(gobgpLog, nil))
	go srv.Serve()
	err := srv.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn:      asn,
		RouterId: id.String(),
		// The speaker only connects out: listening on 179 would clash
		// with any other BGP daemon on the host, and is not needed.
		ListenPort: -1,
		// Families are indices into GoBGP's table of families.
		Families: []uint32{
			uint32(oc.AfiSafiTypeToIntMap[oc.AFI_SAFI_TYPE_IPV4_UNICAST]),
			uint32(oc.AfiSafiTypeToIntMap[oc.AFI_SAFI_TYPE_IPV6_UNICAST]),
		},
	}})
	if err != nil {
		srv.Stop()
		return fmt.Errorf("starting BGP (AS %d, router ID %s): %w", asn, id, err)
	}
	wctx, cancel := context.WithCancel(context.Background())
	err = srv.WatchEvent(wctx, server.WatchEventMessageCallbacks{
		OnPeerUpdate: func(ev *apiutil.WatchEventMessage_PeerEvent, _ time.Time) {
			if ev.Type != apiutil.PEER_EVENT_STATE {
				return
			}
			st := ev.Peer.State
			s.tracker.peerEvent(st.NeighborAddress.Unmap(), st.SessionState, st.PeerASN, st.DisconnectReason, st.DisconnectMessage)
		},
	}, server.WatchPeer())
	if err != nil {
		cancel()
		srv.Stop()
		return fmt.Errorf("watching BGP sessions: %w", err)
	}
	s.srv, s.cancel, s.asn, s.id = srv, cancel, asn, id
	s.peers = make(map[string]PeerConfig)
	s.rib = make(map[netip.Prefix]bool)
	s.treat = make(treatments)
	s.policy = nil
	s.bfdPending = make(map[string]bool)
	s.log.Info("BGP started", "asn", asn, "routerID", id)
	return nil
}

// stopServer stops GoBGP; s.mu is held. With graceful, sessions that
// negotiated graceful restart are closed without a NOTIFICATION, so that
// their peers keep this node's routes until a new speaker takes over.
func (s *Speaker) stopServer(graceful bool) {
	if s.srv == nil {
		return
	}
	for _, st := range s.sessionsLocked() {
		s.metrics.retire(st)
	}
	if err := s.srv.StopBgp(context.Background(), &api.StopBgpRequest{AllowGracefulRestart: graceful}); err != nil {
		s.log.Warn("stopping BGP", "error", err)
	}
	// Stop also ends the BFD server; it reports that BGP is already
	// stopped, which is expected.
	s.srv.Stop()
	s.cancel()
	for _, pc := range s.peers {
		s.tracker.remove(pc.Address)
	}
	s.srv, s.cancel = nil, nil
	s.peers = make(map[string]PeerConfig)
	s.rib = make(map[netip.Prefix]bool)
	s.treat = make(treatments)
	s.policy = nil
}

// assignPolicies makes the export policy the global export policy, with
// everything else rejected, and rejects every received route (accepting
// only local ones): a node never uses or passes on what routers tell it.
func (s *Speaker) assignPolicies(ctx context.Context) error {
	if err := s.srv.SetPolicyAssignment(ctx, &api.SetPolicyAssignmentRequest{Assignment: &api.PolicyAssignment{
		Name:          "global",
		Direction:     api.PolicyDirection_POLICY_DIRECTION_EXPORT,
		Policies:      []*api.Policy{{Name: exportPolicyName}},
		DefaultAction: api.RouteAction_ROUTE_ACTION_REJECT,
	}}); err != nil {
		return fmt.Errorf("assigning the export policy: %w", err)
	}
	if err := s.srv.SetPolicyAssignment(ctx, &api.SetPolicyAssignmentRequest{Assignment: &api.PolicyAssignment{
		Name:          "global",
		Direction:     api.PolicyDirection_POLICY_DIRECTION_IMPORT,
		Policies:      []*api.Policy{{Name: importPolicyName}},
		DefaultAction: api.RouteAction_ROUTE_ACTION_REJECT,
	}}); err != nil {
		return fmt.Errorf("assigning the import policy: %w", err)
	}
	return nil
}

// onUp runs when a session comes up. A session with BFD gets it now, not
// when it is configured: routers such as FRR create or re-create their
// BFD session when the BGP session comes up, and a BFD session that was
// already Up here would read the router's fresh Down as a failure and
// reset the BGP session it had just established (a flap that cost about
// four seconds on every speaker start). Enabling BFD on an established
// session does not reset it. Later re-establishments keep BFD, and the
// router keeps its BFD session, so this is needed once per configuration.
func (s *Speaker) onUp(addr netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv == nil {
		return
	}
	for name, pc := range s.peers {
		if pc.Address != addr || !s.bfdPending[name] {
			continue
		}
		if _, err := s.srv.UpdatePeer(context.Background(), &api.UpdatePeerRequest{Peer: s.apiPeer(pc, true)}); err != nil {
			s.log.Warn("enabling BFD", "peer", name, "error", err)
			return
		}
		delete(s.bfdPending, name)
		s.log.Debug("BFD enabled", "peer", name)
	}
}

// apiPeer renders a session for GoBGP, with or without its BFD.
func (s *Speaker) apiPeer(pc PeerConfig, withBFD bool) *api.Peer {
	secs := func(d time.Duration) uint64 { return uint64(d / time.Second) }
	connect := pc.ConnectTime
	if connect == 0 {
		connect = s.opts.ConnectTime
	}
	p := &api.Peer{
		Conf: &api.PeerConf{
			NeighborAddress: pc.Address.String(),
			PeerAsn:         pc.PeerASN,
			LocalAsn:        pc.LocalASN,
			AuthPassword:    pc.Password,
			Description:     pc.Name,
		},
		Transport: &api.Transport{RemotePort: uint32(pc.Port)},
		Timers: &api.Timers{Config: &api.TimersConfig{
			ConnectRetry:           secs(connect),
			HoldTime:               secs(pc.HoldTime),
			KeepaliveInterval:      secs(pc.KeepaliveTime),
			IdleHoldTimeAfterReset: max(1, secs(s.opts.IdleHoldTime)),
		}},
	}
	if pc.SourceAddress.IsValid() {
		p.Transport.LocalAddress = pc.SourceAddress.String()
	}
	if pc.EBGPMultiHop {
		p.EbgpMultihop = &api.EbgpMultihop{Enabled: true, MultihopTtl: 255}
	}
	if pc.GracefulRestart {
		p.GracefulRestart = &api.GracefulRestart{Enabled: true, RestartTime: uint32(s.opts.GracefulRestartTime / time.Second)}
	}
	family := func(afi api.Family_Afi) *api.AfiSafi {
		return &api.AfiSafi{
			Config:            &api.AfiSafiConfig{Family: &api.Family{Afi: afi, Safi: api.Family_SAFI_UNICAST}, Enabled: true},
			MpGracefulRestart: &api.MpGracefulRestart{Config: &api.MpGracefulRestartConfig{Enabled: pc.GracefulRestart}},
		}
	}
	if pc.IPv4 {
		p.AfiSafis = append(p.AfiSafis, family(api.Family_AFI_IP))
	}
	if pc.IPv6 {
		p.AfiSafis = append(p.AfiSafis, family(api.Family_AFI_IP6))
	}
	if b := pc.BFD; b.Enabled && withBFD {
		p.Bfd = &api.BfdPeerConfig{
			Enabled:                  true,
			DesiredMinimumTxInterval: uint32(b.TransmitInterval / time.Microsecond),
			RequiredMinimumReceive:   uint32(b.ReceiveInterval / time.Microsecond),
			DetectionMultiplier:      b.DetectMultiplier,
		}
	}
	return p
}

// localPath renders a locally originated prefix. Attributes that differ
// per peer come from the export policy; the next hop is left unspecified
// so that GoBGP puts the session's local address there.
func localPath(p netip.Prefix, withdraw bool) (*apiutil.Path, error) {
	nlri, err := bgp.NewIPAddrPrefix(p)
	if err != nil {
		return nil, fmt.Errorf("prefix %s: %w", p, err)
	}
	attrs := []bgp.PathAttributeInterface{bgp.NewPathAttributeOrigin(bgp.BGP_ORIGIN_ATTR_TYPE_IGP)}
	family := bgp.RF_IPv4_UC
	if p.Addr().Is4() {
		nh, err := bgp.NewPathAttributeNextHop(netip.IPv4Unspecified())
		if err != nil {
			return nil, err
		}
		attrs = append(attrs, nh)
	} else {
		family = bgp.RF_IPv6_UC
		mp, err := bgp.NewPathAttributeMpReachNLRI(family, []bgp.PathNLRI{{NLRI: nlri}}, netip.IPv6Unspecified())
		if err != nil {
			return nil, err
		}
		attrs = append(attrs, mp)
	}
	return &apiutil.Path{Family: family, Nlri: nlri, Attrs: attrs, Withdrawal: withdraw}, nil
}

func (s *Speaker) addPaths(prefixes []netip.Prefix) error {
	paths := make([]*apiutil.Path, 0, len(prefixes))
	for _, p := range prefixes {
		ap, err := localPath(p, false)
		if err != nil {
			return err
		}
		paths = append(paths, ap)
	}
	if _, err := s.srv.AddPath(apiutil.AddPathRequest{Paths: paths}); err != nil {
		return fmt.Errorf("announcing %d prefixes: %w", len(paths), err)
	}
	return nil
}

func (s *Speaker) deletePaths(prefixes []netip.Prefix) error {
	paths := make([]*apiutil.Path, 0, len(prefixes))
	for _, p := range prefixes {
		ap, err := localPath(p, true)
		if err != nil {
			return err
		}
		paths = append(paths, ap)
	}
	if err := s.srv.DeletePath(apiutil.DeletePathRequest{Paths: paths}); err != nil {
		return fmt.Errorf("withdrawing %d prefixes: %w", len(paths), err)
	}
	return nil
}

// Sessions returns the state of every configured session, sorted by peer
// name.
func (s *Speaker) Sessions() []SessionState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessionsLocked()
}

func (s *Speaker) sessionsLocked() []SessionState {
	if s.srv == nil {
		return nil
	}
	live := make(map[netip.Addr]*api.Peer)
	err := s.srv.ListPeer(context.Background(), &api.ListPeerRequest{EnableAdvertised: true}, func(p *api.Peer) {
		if p.State == nil {
			return
		}
		if a, err := netip.ParseAddr(p.State.NeighborAddress); err == nil {
			live[a.Unmap()] = p
		}
	})
	if err != nil {
		s.log.Warn("listing BGP sessions", "error", err)
	}
	out := make([]SessionState, 0, len(s.peers))
	for _, name := range sortedKeys(s.peers, strings.Compare) {
		pc := s.peers[name]
		st := SessionState{Peer: name, Address: pc.Address, Port: pc.Port, State: "Idle"}
		if info, ok := s.tracker.info(pc.Address); ok {
			st.State, st.Up, st.Since, st.Reason, st.Message = info.state, info.up, info.since, info.reason, info.message
		}
		if p := live[pc.Address]; p != nil {
			st.State = apiStateName(p.State.SessionState)
			st.Up = p.State.SessionState == api.PeerState_SESSION_STATE_ESTABLISHED
			if st.Up {
				st.PeerASN = p.State.PeerAsn
				if p.Transport != nil {
					if a, err := netip.ParseAddr(p.Transport.LocalAddress); err == nil {
						st.LocalAddress = a.Unmap()
					}
				}
				if p.Timers != nil && p.Timers.State != nil && p.Timers.State.Uptime != nil {
					st.Since = p.Timers.State.Uptime.AsTime()
				}
				for _, af := range p.AfiSafis {
					if af.State != nil {
						st.Advertised += int(af.State.Advertised)
					}
				}
			}
			if m := p.State.Messages; m != nil {
				st.Sent, st.Received = messageCounts(m.Sent), messageCounts(m.Received)
			}
			if b := p.State.BfdState; pc.BFD.Enabled && b != nil {
				st.BFD = bfdStateName(b.SessionState)
				if c := b.BfdAsync; c != nil {
					st.BFDSent, st.BFDReceived = c.TransmittedPackets, c.ReceivedPackets
				}
			}
		}
		st.Planned = s.planned[name]
		if pc.BFD.Enabled {
			st.BFDUps, st.BFDDowns = s.tracker.bfdEvents(pc.Address)
		}
		out = append(out, st)
	}
	return out
}

// messageCounts copies GoBGP's message counts.
func messageCounts(m *api.Message) MessageCounts {
	if m == nil {
		return MessageCounts{}
	}
	return MessageCounts{Opens: m.Open, Updates: m.Update, Notifications: m.Notification,
		Keepalives: m.Keepalive, RouteRefreshes: m.Refresh, Total: m.Total}
}

// plannedPrefixes counts, per peer, the prefixes d sends to it.
func plannedPrefixes(d Desired) map[string]int {
	out := make(map[string]int, len(d.Peers))
	for _, p := range d.Paths {
		for _, r := range p.Routes {
			out[r.Peer]++
		}
	}
	return out
}

// Close stops the engine gracefully: sessions that negotiated graceful
// restart are closed without a NOTIFICATION, so their peers keep this
// node's routes (marked stale) for the restart time while a new speaker
// starts; the others receive a Cease and withdraw them at once. To
// withdraw everything instead, Apply an empty Desired first.
func (s *Speaker) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.stopServer(true)
	s.tracker.stop()
	return nil
}

// OPEN probe pacing: attempts and the pause between them.
const (
	probeAttempts = 15
	probePause    = 700 * time.Millisecond
)

// probe asks a peer that refused this node's OPEN why, and refines the
// session's reason with the answer.
func (s *Speaker) probe(addr netip.Addr) {
	s.mu.Lock()
	var pc PeerConfig
	found := false
	for _, p := range s.peers {
		if p.Address == addr {
			pc, found = p, true
		}
	}
	id := s.id
	s.mu.Unlock()
	if !found {
		return
	}
	// A router that just refused an OPEN often refuses connections for a
	// moment (its FSM sits in Idle), so a reset is retried for a while.
	var v openVerdict
	var err error
	for range probeAttempts {
		if v, err = probeOpen(context.Background(), pc, id, 5*time.Second); err == nil {
			break
		}
		s.log.Debug("probing a peer that refused the OPEN", "peer", pc.Name, "error", err)
		time.Sleep(probePause)
	}
	if err != nil {
		return
	}
	r, m := describeOpenVerdict(v, pc, id)
	s.tracker.refine(addr, ReasonOpenRejected, r, m)
}

// peerLabel is a session's "peer" metric label, address:port as MetalLB
// writes it.
func peerLabel(addr netip.Addr, port uint16) string {
	return netip.AddrPortFrom(addr, port).String()
}
