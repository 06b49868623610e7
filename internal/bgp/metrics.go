package bgp

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// collector exports the session metrics under MetalLB's names and labels,
// read from the engine at scrape time so that they are never stale.
type collector struct {
	s        *Speaker
	up       *prometheus.Desc
	updates  *prometheus.Desc
	prefixes *prometheus.Desc

	// GoBGP counts UPDATEs per configured peer and starts again from zero
	// when a peer is reconfigured; base keeps the counter monotonic.
	mu   sync.Mutex
	last map[string]uint64
	base map[string]uint64
}

func newCollector(s *Speaker) *collector {
	return &collector{
		s:        s,
		up:       prometheus.NewDesc("metallb_bgp_session_up", "BGP session state (1 is up, 0 is down)", []string{"peer"}, nil),
		updates:  prometheus.NewDesc("metallb_bgp_updates_total", "Number of BGP UPDATE messages sent", []string{"peer"}, nil),
		prefixes: prometheus.NewDesc("metallb_bgp_announced_prefixes_total", "Number of prefixes currently being advertised on the BGP session", []string{"peer"}, nil),
		last:     make(map[string]uint64),
		base:     make(map[string]uint64),
	}
}

// Describe implements prometheus.Collector.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.up
	ch <- c.updates
	ch <- c.prefixes
}

// Collect implements prometheus.Collector.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	sessions := c.s.Sessions()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, st := range sessions {
		label := peerLabel(st.Address, st.Port)
		up := 0.0
		if st.Up {
			up = 1
		}
		if st.UpdatesSent < c.last[label] {
			c.base[label] += c.last[label]
		}
		c.last[label] = st.UpdatesSent
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, up, label)
		ch <- prometheus.MustNewConstMetric(c.updates, prometheus.CounterValue, float64(c.base[label]+st.UpdatesSent), label)
		ch <- prometheus.MustNewConstMetric(c.prefixes, prometheus.GaugeValue, float64(st.Advertised), label)
	}
}
