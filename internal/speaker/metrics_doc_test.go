package speaker

import (
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keeperlb/keeperlb/internal/election"
	"github.com/keeperlb/keeperlb/internal/membership"
	"github.com/keeperlb/keeperlb/internal/metricsdoc"
)

// TestMetricsDocumented checks docs/metrics.md against every series the
// speaker package registers (the layer2 and bgp packages check theirs).
func TestMetricsDocumented(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := newMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	o := membership.DefaultOptions("node1")
	o.Listen, o.Port, o.Key = netip.MustParseAddr("127.0.0.1"), 0, []byte("sixteen-byte-key")
	det, err := membership.New(slog.New(slog.DiscardHandler), o)
	if err != nil {
		t.Fatal(err)
	}
	defer det.Close()
	if err := registerMembershipMetrics(reg, det); err != nil {
		t.Fatal(err)
	}
	if err := registerStatusMetrics(reg, newStatusWriter(nil, "ns", "node1", slog.New(slog.DiscardHandler))); err != nil {
		t.Fatal(err)
	}
	m.setAnnounced(map[[4]string]bool{{"ns/a", protocolLayer2, "node1", "198.18.0.1"}: true})
	m.setUnannounced(map[[3]string]bool{{"ns/a", "198.18.0.1", election.ReasonNoCandidates}: true})
	m.observeStatusWrite(time.Millisecond, nil)
	metricsdoc.Check(t, reg, "../../docs/metrics.md", "k8s-client", "speaker")
}
