package speaker

import (
	"fmt"
	"net/netip"

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
}

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
		current: map[[4]string]bool{},
	}
	var err error
	if m.client, err = k8smetrics.New(reg, true); err != nil {
		return nil, err
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.announced, m.live} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("registering speaker metrics: %w", err)
			}
		}
	}
	return m, nil
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
