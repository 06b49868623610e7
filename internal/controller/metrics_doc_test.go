package controller

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keeperlb/keeperlb/internal/ipam"
	"github.com/keeperlb/keeperlb/internal/metricsdoc"
)

// TestMetricsDocumented checks docs/metrics.md against every series the
// controller registers, each given a value so that its labels show.
func TestMetricsDocumented(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := newMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	m.client.Serve()
	m.set("p", ipam.Usage{AssignedV4: 1, AvailableV4: 3, Services: 1})
	m.allocated(time.Millisecond)
	metricsdoc.Check(t, reg, "../../docs/metrics.md", "k8s-client", "controller")
}
