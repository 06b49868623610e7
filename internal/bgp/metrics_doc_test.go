package bgp

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keeperlb/keeperlb/internal/metricsdoc"
)

// TestMetricsDocumented checks the bgp table of docs/metrics.md against
// what the engine registers, with one session of each kind (with and
// without BFD) so that every series shows.
func TestMetricsDocumented(t *testing.T) {
	reg := prometheus.NewRegistry()
	sp, err := New(nil, reg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	// The engine's own collector, fed with sessions instead of GoBGP's.
	reg.Unregister(sp.metrics)
	sessions := []SessionState{{Peer: "a", Address: rtrV4, Port: 179, BFD: "Up"}, {Peer: "b", Address: rtrV4, Port: 1179}}
	if err := reg.Register(newCollector(func() []SessionState { return sessions })); err != nil {
		t.Fatal(err)
	}
	metricsdoc.Check(t, reg, "../../docs/metrics.md", "bgp")
}
