package speaker

import (
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keeperlb/keeperlb/internal/bgp"
	"github.com/keeperlb/keeperlb/internal/election"
	"github.com/keeperlb/keeperlb/internal/k8smetrics"
	"github.com/keeperlb/keeperlb/internal/membership"
)

// metrics are the speaker's own series; layer 2 packet counters belong to
// package layer2, BGP and BFD session series to package bgp.
type metrics struct {
	client    *k8smetrics.Metrics
	announced *prometheus.GaugeVec
	// current remembers the label sets set to 1, so that a pass deletes
	// exactly the series that stopped being true instead of resetting all
	// (a scrape between a reset and the refill would see nothing).
	current map[[4]string]bool
	live    prometheus.Gauge
	// unannounced and its current set: the layer 2 addresses that should
	// be announced and are not, as seen from this node.
	unannounced        *prometheus.GaugeVec
	currentUnannounced map[[3]string]bool

	statusWrites   *prometheus.HistogramVec
	statusRequests *prometheus.CounterVec
	ownership      *prometheus.CounterVec
}

// statusWriteBuckets span one quick write (a few milliseconds) to a write
// that lists and rewrites hundreds of objects under the client's rate limit.
var statusWriteBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		announced: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "metallb_speaker_announced",
			Help: "Services announced from this node: 1 per service, protocol, node and IP.",
		}, []string{"service", "protocol", "node", "ip"}),
		live: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "keeperlb_speaker_live_members",
			Help: "Speakers this one sees alive, itself included.",
		}),
		statusWrites: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "keeperlb_speaker_status_write_duration_seconds",
			Help:    "Time the status writer took to make this node's ServiceL2Status, ServiceBGPStatus and BGPSessionState objects match one pass, by result (success, error).",
			Buckets: statusWriteBuckets,
		}, []string{"result"}),
		statusRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keeperlb_speaker_status_requests_total",
			Help: "API requests of the status writer (ServiceL2Status, ServiceBGPStatus, BGPSessionState), by verb (create, update of the status, delete, get to settle a conflict) and result (success, conflict, not_found, already_exists, error). Lists come from the cache and cost none.",
		}, []string{"verb", "result"}),
		ownership: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keeperlb_layer2_ownership_changes_total",
			Help: "Layer 2 IPs that moved from one node to another, by reason (peer_dead, peer_left, peer_joined, config); each move is counted once, by the node that took the IP when its previous owner is gone, else by the previous owner.",
		}, []string{"reason"}),
		unannounced: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "keeperlb_layer2_unannounced",
			Help: "1 for each layer 2 address that an L2Advertisement selects and that has serving endpoints, but that no node announces: no live eligible node (NoEligibleNode), Services sharing it have no eligible node in common (SharedIPNoCommonNode), or this node was elected and has no eligible interface (NoEligibleInterface).",
		}, []string{"service", "ip", "reason"}),
		current:            map[[4]string]bool{},
		currentUnannounced: map[[3]string]bool{},
	}
	for _, r := range ownershipReasons {
		m.ownership.WithLabelValues(r)
	}
	for _, r := range []string{resultSuccess, resultError} {
		m.statusWrites.WithLabelValues(r)
	}
	for _, v := range []string{verbCreate, verbUpdate, verbDelete, verbGet} {
		m.statusRequests.WithLabelValues(v, resultSuccess)
	}
	var err error
	if m.client, err = k8smetrics.New(reg, true); err != nil {
		return nil, err
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.announced, m.live, m.unannounced, m.statusWrites, m.statusRequests, m.ownership} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("registering speaker metrics: %w", err)
			}
		}
	}
	return m, nil
}

// Result label values of the status write histogram.
const (
	resultSuccess = "success"
	resultError   = "error"
)

// observeStatusWrite records one write of the status writer.
func (m *metrics) observeStatusWrite(took time.Duration, err error) {
	result := resultSuccess
	if err != nil {
		result = resultError
	}
	m.statusWrites.WithLabelValues(result).Observe(took.Seconds())
}

// countStatusRequest counts one API request of the status writer.
func (m *metrics) countStatusRequest(verb, result string) {
	m.statusRequests.WithLabelValues(verb, result).Inc()
}

// registerStatusMetrics exports how far the status writer is behind.
func registerStatusMetrics(reg prometheus.Registerer, w *statusWriter) error {
	if reg == nil {
		return nil
	}
	g := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "keeperlb_speaker_status_backlog_seconds",
		Help: "How far this node's status objects are behind the data plane: the age of the oldest pass whose status is not written yet, 0 when all are. Passes that arrive during a write are merged, so the backlog is a time, not a queue length.",
	}, func() float64 { return w.backlog().Seconds() })
	if err := reg.Register(g); err != nil {
		return fmt.Errorf("registering the status backlog: %w", err)
	}
	return nil
}

// Protocol label values of metallb_speaker_announced, MetalLB's.
const (
	protocolLayer2 = "layer2"
	protocolBGP    = "bgp"
)

// announcedSeries are the label sets of metallb_speaker_announced (service,
// protocol, node, ip) for the addresses this node announces over layer 2
// and advertises over BGP, per Service.
func announcedSeries(node string, l2, bgp map[string][]netip.Addr) map[[4]string]bool {
	out := map[[4]string]bool{}
	for proto, owned := range map[string]map[string][]netip.Addr{protocolLayer2: l2, protocolBGP: bgp} {
		for svc, ips := range owned {
			for _, ip := range ips {
				out[[4]string{svc, proto, node, ip.String()}] = true
			}
		}
	}
	return out
}

// advertisedIPs returns, per Service advertised to at least one peer, its
// addresses that the advertised prefixes carry (a prefix is the address
// itself, or its aggregate).
func advertisedIPs(svcs []election.Service, adverts []bgp.ServiceAdvert) map[string][]netip.Addr {
	ips := make(map[string][]netip.Addr, len(svcs))
	for _, s := range svcs {
		ips[s.Key] = s.IPs
	}
	out := map[string][]netip.Addr{}
	for _, a := range adverts {
		if len(a.Peers) == 0 {
			continue
		}
		for _, ip := range ips[a.Key] {
			for _, p := range a.Prefixes {
				if p.Contains(ip) {
					out[a.Key] = append(out[a.Key], ip)
					break
				}
			}
		}
	}
	return out
}

// setAnnounced makes the announced series equal to want.
func (m *metrics) setAnnounced(want map[[4]string]bool) {
	for k := range m.current {
		if !want[k] {
			m.announced.DeleteLabelValues(k[:]...)
		}
	}
	for k := range want {
		m.announced.WithLabelValues(k[:]...).Set(1)
	}
	m.current = want
}

// registerMembershipMetrics exports the heartbeats the detector dropped, by
// reason: a key mismatch or a forgery shows up here (and in a Warn log
// line), where before it only looked like dead peers.
func registerMembershipMetrics(reg prometheus.Registerer, det *membership.Detector) error {
	if reg == nil {
		return nil
	}
	for _, c := range []struct {
		name, help string
		get        func(membership.Stats) uint64
	}{
		{"keeperlb_speaker_heartbeat_auth_failures_total", "Heartbeats from a peer's address whose MAC matches no key (a different memberlist key, or a forgery).",
			func(s membership.Stats) uint64 { return s.AuthFailures }},
		{"keeperlb_speaker_heartbeat_unknown_total", "Packets on the liveness port that are not heartbeats of a known peer from its own address.",
			func(s membership.Stats) uint64 { return s.Unknown }},
		{"keeperlb_speaker_heartbeat_stale_total", "Authentic heartbeats dropped as replays, reordered, or echoing an expired challenge.",
			func(s membership.Stats) uint64 { return s.Stale }},
		{"keeperlb_speaker_heartbeat_dropped_total", "Datagrams the kernel dropped at the liveness socket before the speaker read them: from an address that is no speaker's node, or while the socket's queue was full (a flood).",
			func(s membership.Stats) uint64 { return s.Dropped }},
	} {
		get := c.get
		if err := reg.Register(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: c.name, Help: c.help},
			func() float64 { return float64(get(det.Stats())) })); err != nil {
			return fmt.Errorf("registering %s: %w", c.name, err)
		}
	}
	return nil
}

// ReasonNoEligibleInterface is the keeperlb_layer2_unannounced reason of an
// address this node was elected for but cannot announce: none of its
// interfaces is eligible. The other reasons are the election's.
const ReasonNoEligibleInterface = "NoEligibleInterface"

// unannouncedSeries are the label sets of keeperlb_layer2_unannounced
// (service, ip, reason): the addresses that want an announcer and have
// none. From the election's skips, only those that mean that: a missing
// pool or advertisement is the configuration's choice, and a Service with
// no serving endpoint is not announced by design (as in MetalLB). Every
// speaker runs the same election, so every one exports those; the
// addresses elected to this node that it cannot announce (mine, minus
// what owned says it announces) only this node knows.
func unannouncedSeries(skipped []election.Skip, mine []election.Announcement, owned map[string][]netip.Addr) map[[3]string]bool {
	out := map[[3]string]bool{}
	for _, s := range skipped {
		switch s.Reason {
		case election.ReasonNoCandidates, election.ReasonSharedNoCommon:
			out[[3]string{s.Service, s.IP.String(), s.Reason}] = true
		}
	}
	for _, a := range mine {
		for _, svc := range a.Services {
			if !slices.Contains(owned[svc], a.IP) {
				out[[3]string{svc, a.IP.String(), ReasonNoEligibleInterface}] = true
			}
		}
	}
	return out
}

// setUnannounced makes the unannounced series equal to want.
func (m *metrics) setUnannounced(want map[[3]string]bool) {
	for k := range m.currentUnannounced {
		if !want[k] {
			m.unannounced.DeleteLabelValues(k[:]...)
		}
	}
	for k := range want {
		m.unannounced.WithLabelValues(k[:]...).Set(1)
	}
	m.currentUnannounced = want
}
