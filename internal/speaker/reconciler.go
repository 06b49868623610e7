package speaker

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/keeperlb/keeperlb/internal/config"
	"github.com/keeperlb/keeperlb/internal/configread"
	"github.com/keeperlb/keeperlb/internal/election"
	"github.com/keeperlb/keeperlb/internal/layer2"
	"github.com/keeperlb/keeperlb/internal/membership"
)

// announcer is the layer 2 data plane (package layer2); an interface so that
// the reconciler's unit tests can watch what it is told.
type announcer interface {
	Set(owned []layer2.Announcement) error
	Reannounce() error
	SetIsolated(isolated bool) error
}

// liveness is the membership detector as the reconciler uses it.
type liveness interface {
	SetEligible(bool)
	SetPeers([]membership.Peer)
	Live() []string
	Ready() bool
	Rejoins() uint64
	Departure(node string) membership.Departure
}

// reconciler computes, on every pass and from scratch, what this node must
// announce and makes the data plane and the status objects match. Every
// trigger (a Service, an EndpointSlice, a Node, a config object, a change of
// live speakers) maps to the same single request, so passes never overlap
// and a burst of changes costs one pass.
type reconciler struct {
	client     client.Client
	namespace  string
	node       string
	lbClass    string
	live       liveness
	l2         announcer
	interfaces func() ([]layer2.Interface, error)
	bgp        bgpEngine // nil: no BGP
	metrics    *metrics
	events     eventRecorder
	log        *slog.Logger

	cfg        *config.Config // last configuration that parsed
	cfgErr     string         // last parse error logged, to log each once
	announcing map[string]bool
	stranded   map[string]string // Services reported as NoEligibleInterface, with the message
	status     *statusWriter
	// settle is the liveness timeout: how long after a rejoin a speaker
	// that was isolated has surely heard every peer still alive.
	settle   time.Duration
	rejoin   rejoinState
	reported map[string]bool // BGP problems already sent as Events
	// bgpAnnounced are the addresses of each Service advertised over BGP
	// by the last plan that applied.
	bgpAnnounced map[string][]netip.Addr
	// owners is the layer 2 owner of every IP as of the last election,
	// and ownersLive the live speakers it ran over.
	owners     map[netip.Addr]string
	ownersLive []string
	// svcOwners is the elected layer 2 announcer of every Service as of
	// the last election (for the nodeAssigned Events).
	svcOwners map[string]string
	// bgpApplied says a pass of this process has applied BGP, so that
	// bgpAnnounced says what the previous pass advertised.
	bgpApplied bool
	lastState  [3]string // last ConfigurationState written
}

// eventRecorder is client-go's events recorder.
type eventRecorder = events.EventRecorder

// Reconcile implements reconcile.Reconciler.
func (r *reconciler) Reconcile(ctx context.Context, _ reconcile.Request) (reconcile.Result, error) {
	var nodes corev1.NodeList
	if err := r.client.List(ctx, &nodes); err != nil {
		return reconcile.Result{}, fmt.Errorf("listing Nodes: %w", err)
	}
	// The configuration before the peers: a speaker that has never had a
	// configuration that parses (it started while an object is invalid)
	// must not be a candidate, or it would be elected for Services it
	// cannot announce and take them away from the nodes that do. The last
	// good one stays in force once there is one.
	r.loadConfig(ctx)
	r.live.SetEligible(r.cfg != nil)
	// Peers next: heartbeats are only accepted from known nodes, and
	// readiness counts from the moment they are known.
	peers := memberPeers(nodes.Items)
	r.live.SetPeers(peers)
	if !r.live.Ready() {
		// The detector signals when it becomes ready; this is a backstop.
		return reconcile.Result{RequeueAfter: 100 * time.Millisecond}, nil
	}
	live := r.live.Live()
	r.metrics.live.Set(float64(len(live)))
	var svcs corev1.ServiceList
	if err := r.client.List(ctx, &svcs); err != nil {
		return reconcile.Result{}, fmt.Errorf("listing Services: %w", err)
	}
	var eps discoveryv1.EndpointSliceList
	if err := r.client.List(ctx, &eps); err != nil {
		return reconcile.Result{}, fmt.Errorf("listing EndpointSlices: %w", err)
	}
	services := electionServices(svcs.Items, servingEndpoints(eps.Items), r.lbClass)
	res := election.L2(election.L2Input{
		Config:   r.cfg,
		Nodes:    electionNodes(nodes.Items),
		Live:     live,
		Services: services,
	})
	mine := res.For(r.node)
	next := owners(res)
	for reason, n := range ownershipChanges(r.node, r.owners, next, r.ownersLive, live, r.live.Departure) {
		r.metrics.ownership.WithLabelValues(reason).Add(float64(n))
	}
	prevLive, prevSvcOwners := r.ownersLive, r.svcOwners
	r.owners, r.ownersLive, r.svcOwners = next, live, serviceOwners(res)

	known := 0
	for _, p := range peers {
		if p.Name != r.node {
			known++
		}
	}
	step := r.rejoin.next(time.Now(), rejoinInput{
		livePeers: len(live) - 1, knownPeers: known, rejoins: r.live.Rejoins(), settle: r.settle})
	// Before any takeover of this pass, so that an isolated node's
	// takeovers send no repeats.
	if err := r.l2.SetIsolated(step.isolated); err != nil {
		return reconcile.Result{}, fmt.Errorf("layer 2: %w", err)
	}
	// The data plane first: a takeover must not wait for API writes.
	owned, statuses, stranded, err := r.announce(mine)
	if err != nil {
		return reconcile.Result{}, err
	}
	// A speaker heard again after a partition has probably counted this
	// one dead and told clients it owned IPs that are ours; say again that
	// they are. (A departure needs nothing: it moves IPs, which Set
	// announces.)
	if step.reannounce && len(mine) > 0 {
		if err := r.l2.Reannounce(); err != nil {
			return reconcile.Result{}, fmt.Errorf("re-announcing over layer 2: %w", err)
		}
	}
	again := step.again
	snap := statusSnapshot{l2: statuses, live: live}
	var bgpAnnounced map[string][]netip.Addr
	var bgpMoves []bgpChange
	if r.bgp != nil {
		var settling bool
		snap.bgp, settling, err = r.syncBGP(ctx, nodes.Items, services)
		if settling && (again == 0 || bfdPollInterval < again) {
			again = bfdPollInterval
		}
		if snap.bgp != nil {
			was := r.bgpAnnounced
			r.bgpAnnounced = advertisedIPs(services, snap.bgp.adverts)
			bgpMoves = r.bgpChanges(ctx, was, prevLive, live, step.isolated)
			r.bgpApplied = true
		}
		// After a failed apply the last plan that applied still stands.
		bgpAnnounced = r.bgpAnnounced
	} else {
		r.reportProblems(ctx, nil)
	}
	r.report(svcs.Items, owned, stranded, bgpAnnounced)
	r.metrics.setUnannounced(unannouncedSeries(res.Skipped, mine, owned))
	r.reportMoves(ctx, svcs.Items, owned, prevSvcOwners, prevLive, live, bgpMoves)
	// The status objects are written in the background: the next pass,
	// which may move IPs, must not wait for them. After a failed BGP
	// apply the BGP ones stay as they were (a nil part is not written).
	if err != nil {
		snap.bgp = nil
	}
	r.status.Update(snap)
	return reconcile.Result{RequeueAfter: again}, err
}

// announce hands this node's announcements to the layer 2 data plane and
// returns them per Service (for metrics and Events), the statuses to write,
// and the IPs this node was elected for but cannot announce, per Service:
// none of its interfaces is eligible.
func (r *reconciler) announce(mine []election.Announcement) (map[string][]netip.Addr, map[string]l2Status, map[string][]string, error) {
	sys, err := r.interfaces()
	if err != nil {
		return nil, nil, nil, fmt.Errorf("listing network interfaces: %w", err)
	}
	stranded := map[string][]string{}
	owned := map[string][]netip.Addr{}
	statuses := map[string]l2Status{}
	var set []layer2.Announcement
	for _, a := range mine {
		ifs := layer2.Eligible(sys, a.Interfaces)
		if len(ifs) == 0 {
			// Reported once per Service by report, not on every pass.
			r.log.Debug("elected to announce but no eligible interface", "ip", a.IP, "allowed", a.Interfaces)
			allowed := "any interface"
			if len(a.Interfaces) > 0 {
				allowed = strings.Join(a.Interfaces, ", ")
			}
			for _, s := range a.Services {
				stranded[s] = append(stranded[s], fmt.Sprintf("%s (allowed: %s)", a.IP, allowed))
			}
			continue
		}
		set = append(set, layer2.Announcement{IP: a.IP, Interfaces: ifs})
		for _, s := range a.Services {
			owned[s] = append(owned[s], a.IP)
			st := statuses[s]
			st.service = s
			st.interfaces = mergeSorted(st.interfaces, ifs)
			statuses[s] = st
		}
	}
	if err := r.l2.Set(set); err != nil {
		return nil, nil, nil, fmt.Errorf("announcing over layer 2: %w", err)
	}
	return owned, statuses, stranded, nil
}

// report updates the announced metric and emits a Warning on each Service
// this node was elected for but cannot announce (stranded), once until that
// changes: otherwise the IP is silently not answered.
func (r *reconciler) report(svcs []corev1.Service, owned map[string][]netip.Addr, stranded map[string][]string, bgpAnnounced map[string][]netip.Addr) {
	r.metrics.setAnnounced(announcedSeries(r.node, owned, bgpAnnounced))

	nextStranded := make(map[string]string, len(stranded))
	for i := range svcs {
		s := &svcs[i]
		key := s.Namespace + "/" + s.Name
		ips, ok := stranded[key]
		if !ok {
			continue
		}
		msg := fmt.Sprintf("node %q was elected to announce %s but has no eligible interface; the address is not announced",
			r.node, strings.Join(ips, ", "))
		nextStranded[key] = msg
		if r.stranded[key] == msg {
			continue
		}
		r.log.Warn("elected to announce but no eligible interface", "service", key, "ips", ips)
		if r.events != nil {
			r.events.Eventf(s, nil, corev1.EventTypeWarning, "NoEligibleInterface", "Announce", "%s", msg)
		}
	}
	for key := range r.stranded {
		if _, ok := nextStranded[key]; !ok {
			r.log.Info("no longer elected without an eligible interface", "service", key)
		}
	}
	r.stranded = nextStranded
}

// loadConfig parses the configuration objects. A configuration that does not
// parse leaves the last good one in force: announcements continue as they
// were (the controller reports the errors on the objects).
func (r *reconciler) loadConfig(ctx context.Context) {
	res, err := configread.Read(ctx, r.client, r.namespace)
	if err == nil {
		err = configread.ListSecrets(ctx, r.client, &res)
	}
	if err == nil {
		var cfg *config.Config
		if cfg, err = config.Parse(res); err == nil {
			if r.cfgErr != "" || r.cfg == nil || !reflect.DeepEqual(cfg, r.cfg) {
				r.log.Info("configuration loaded", "pools", len(cfg.Pools), "l2Advertisements", len(cfg.L2Advertisements))
			}
			r.cfg, r.cfgErr = cfg, ""
			r.metrics.client.Loaded()
			return
		}
		// Read, but rejected: as MetalLB, only this makes the
		// configuration stale (a failed read is retried and says
		// nothing about the configuration).
		r.metrics.client.Rejected()
	}
	if msg := err.Error(); msg != r.cfgErr {
		r.cfgErr = msg
		if r.cfg == nil {
			r.log.Warn("configuration rejected and none loaded before: this node announces nothing and is no candidate until it parses", "err", err)
		} else {
			r.log.Warn("configuration rejected; keeping the last good one", "err", err)
		}
	}
}

func parseAddr(s string) (netip.Addr, error) {
	ip, err := netip.ParseAddr(s)
	return ip.Unmap(), err
}

func clientKey(ns, name string) client.ObjectKey { return client.ObjectKey{Namespace: ns, Name: name} }

func mergeSorted(a, b []string) []string {
	out := append(slices.Clone(a), b...)
	slices.Sort(out)
	return slices.Compact(out)
}
