package k8smetrics

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keeperlb/keeperlb/internal/metricsdoc"
)

// TestMetricsDocumented checks the k8s-client table of docs/metrics.md.
func TestMetricsDocumented(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := New(reg, true); err != nil {
		t.Fatal(err)
	}
	metricsdoc.Check(t, reg, "../../docs/metrics.md", "k8s-client")
}
