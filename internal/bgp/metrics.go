package bgp

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// collector exports the session metrics, read from the engine at scrape
// time so that they are never stale. The names and labels are MetalLB's:
// metallb_bgp_session_up, _updates_total, _announced_prefixes_total and
// _pending_prefixes_total as its native BGP mode exports them; the other
// message counters and the metallb_bfd_* series as its FRR mode does
// (where KeeperLB, without VRFs, never sets the vrf label). BGP series are
// labelled peer="addr:port", BFD series peer="addr", as MetalLB labels
// them.
type collector struct {
	sessions func() []SessionState

	up, prefixes, pending *prometheus.Desc
	counters              []counterDesc

	bfdUp, bfdState *prometheus.Desc
	bfdCounters     []counterDesc

	mu   sync.Mutex
	seen monotonic
}

// counterDesc is one counter and how to read it from a session.
type counterDesc struct {
	desc *prometheus.Desc
	get  func(SessionState) uint64
	// kept is true for counts the engine keeps across reconfigurations
	// (the tracker's), false for GoBGP's, which start again from zero.
	kept bool
}

// bfdStates are the values of keeperlb_bfd_session_state's state label.
var bfdStates = []string{"Down", "Init", "Up", "AdminDown"}

func newCollector(sessions func() []SessionState) *collector {
	bgpDesc := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("metallb_bgp_"+name, help, []string{"peer"}, nil)
	}
	bfdDesc := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("metallb_bfd_"+name, help, []string{"peer"}, nil)
	}
	counter := func(name, help string, get func(SessionState) uint64) counterDesc {
		return counterDesc{bgpDesc(name, help), get, false}
	}
	bfdCounter := func(name, help string, get func(SessionState) uint64) counterDesc {
		return counterDesc{bfdDesc(name, help), get, false}
	}
	return &collector{
		sessions: sessions,
		up:       bgpDesc("session_up", "BGP session state (1 is up, 0 is down)"),
		prefixes: bgpDesc("announced_prefixes_total", "Number of prefixes currently being advertised on the BGP session"),
		pending:  bgpDesc("pending_prefixes_total", "Number of prefixes that should be advertised on the BGP session"),
		counters: []counterDesc{
			counter("updates_total", "Number of BGP UPDATE messages sent", func(s SessionState) uint64 { return s.Sent.Updates }),
			counter("updates_total_received", "Number of BGP UPDATE messages received", func(s SessionState) uint64 { return s.Received.Updates }),
			counter("opens_sent", "Number of BGP OPEN messages sent", func(s SessionState) uint64 { return s.Sent.Opens }),
			counter("opens_received", "Number of BGP OPEN messages received", func(s SessionState) uint64 { return s.Received.Opens }),
			counter("notifications_sent", "Number of BGP NOTIFICATION messages sent", func(s SessionState) uint64 { return s.Sent.Notifications }),
			counter("keepalives_sent", "Number of BGP KEEPALIVE messages sent", func(s SessionState) uint64 { return s.Sent.Keepalives }),
			counter("keepalives_received", "Number of BGP KEEPALIVE messages received", func(s SessionState) uint64 { return s.Received.Keepalives }),
			counter("route_refresh_sent", "Number of BGP ROUTE-REFRESH messages sent", func(s SessionState) uint64 { return s.Sent.RouteRefreshes }),
			counter("total_sent", "Number of BGP messages sent, of any type", func(s SessionState) uint64 { return s.Sent.Total }),
			counter("total_received", "Number of BGP messages received, of any type", func(s SessionState) uint64 { return s.Received.Total }),
		},
		bfdUp: bfdDesc("session_up", "BFD session state (1 is up, 0 is down)"),
		bfdState: prometheus.NewDesc("keeperlb_bfd_session_state",
			"BFD session state: 1 for the state the session is in (Down, Init, Up, AdminDown), 0 for the others", []string{"peer", "state"}, nil),
		bfdCounters: []counterDesc{
			bfdCounter("control_packet_input", "Number of BFD control packets received", func(s SessionState) uint64 { return s.BFDReceived }),
			bfdCounter("control_packet_output", "Number of BFD control packets sent", func(s SessionState) uint64 { return s.BFDSent }),
			{bfdDesc("session_up_events", "Number of times the BFD session went up"), func(s SessionState) uint64 { return s.BFDUps }, true},
			{bfdDesc("session_down_events", "Number of times the BFD session went down from up"), func(s SessionState) uint64 { return s.BFDDowns }, true},
		},
		seen: monotonic{},
	}
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.up
	ch <- c.prefixes
	ch <- c.pending
	for _, d := range c.counters {
		ch <- d.desc
	}
	ch <- c.bfdUp
	ch <- c.bfdState
	for _, d := range c.bfdCounters {
		ch <- d.desc
	}
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	sessions := c.sessions()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, st := range sessions {
		label := peerLabel(st.Address, st.Port)
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, boolValue(st.Up), label)
		ch <- prometheus.MustNewConstMetric(c.prefixes, prometheus.GaugeValue, float64(st.Advertised), label)
		ch <- prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, float64(st.Planned), label)
		for _, d := range c.counters {
			ch <- prometheus.MustNewConstMetric(d.desc, prometheus.CounterValue, c.seen.value(d.desc, label, d.get(st)), label)
		}
		if st.BFD == "" {
			continue // no BFD on this session
		}
		addr := st.Address.String()
		ch <- prometheus.MustNewConstMetric(c.bfdUp, prometheus.GaugeValue, boolValue(st.BFD == "Up"), addr)
		for _, s := range bfdStates {
			ch <- prometheus.MustNewConstMetric(c.bfdState, prometheus.GaugeValue, boolValue(st.BFD == s), addr, s)
		}
		for _, d := range c.bfdCounters {
			ch <- prometheus.MustNewConstMetric(d.desc, prometheus.CounterValue, c.seen.value(d.desc, addr, d.get(st)), addr)
		}
	}
}

// retire records the last counts of a session that the engine is about to
// delete (a reconfiguration, or the engine stopping): GoBGP forgets them,
// the exported counters carry on from them.
func (c *collector) retire(st SessionState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	label := peerLabel(st.Address, st.Port)
	for _, d := range c.counters {
		c.seen.retire(d.desc, label, d.get(st))
	}
	if st.BFD == "" {
		return
	}
	for _, d := range c.bfdCounters {
		if !d.kept {
			c.seen.retire(d.desc, st.Address.String(), d.get(st))
		}
	}
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// monotonic turns counts that start again from zero into counters that
// never go down: GoBGP counts per configured peer and forgets the counts
// when a peer is reconfigured (its session is deleted and added again).
// The engine retires a session's counts before it deletes it; a count that
// goes down without that is taken as a reset too.
type monotonic map[monotonicKey]*monotonicState

type monotonicKey struct {
	desc  *prometheus.Desc
	label string
}

type monotonicState struct {
	last, base uint64
}

func (m monotonic) state(d *prometheus.Desc, label string) *monotonicState {
	k := monotonicKey{d, label}
	st := m[k]
	if st == nil {
		st = &monotonicState{}
		m[k] = st
	}
	return st
}

// retire adds the final reading of a count that is about to start again
// from zero.
func (m monotonic) retire(d *prometheus.Desc, label string, reading uint64) {
	st := m.state(d, label)
	st.base += max(reading, st.last)
	st.last = 0
}

// value returns the counter for a reading of the engine's count.
func (m monotonic) value(d *prometheus.Desc, label string, reading uint64) float64 {
	st := m.state(d, label)
	if reading < st.last {
		st.base += st.last
	}
	st.last = reading
	return float64(st.base + reading)
}
