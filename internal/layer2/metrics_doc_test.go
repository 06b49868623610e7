package layer2

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keeperlb/keeperlb/internal/metricsdoc"
)

// TestMetricsDocumented checks the layer2 table of docs/metrics.md.
func TestMetricsDocumented(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := newMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*prometheus.CounterVec{m.requests, m.responses, m.gratuitous} {
		c.WithLabelValues("198.18.0.1").Inc()
	}
	metricsdoc.Check(t, reg, "../../docs/metrics.md", "layer2")
}
