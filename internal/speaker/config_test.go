package speaker

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/keeperlb/keeperlb/api/v1beta1"
	"github.com/keeperlb/keeperlb/internal/k8smetrics"
	"github.com/keeperlb/keeperlb/internal/membership"
)

// gatherValue reads an unlabelled gauge or counter; ok is false when it is
// not exported.
func gatherValue(t *testing.T, g prometheus.Gatherer, name string) (float64, bool) {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) > 0 {
			m := mf.GetMetric()[0]
			if m.GetGauge() != nil {
				return m.GetGauge().GetValue(), true
			}
			return m.GetCounter().GetValue(), true
		}
	}
	return 0, false
}

// freeUDPPort returns a UDP port free on loopback right now.
func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// TestConfigGaugesOnARealAPIServer runs the speaker's reconcile pass against
// a real API server while the configuration breaks and is fixed, and
// follows MetalLB's two configuration gauges. The pass stops before the
// data plane: its liveness detector is never ready (a one-hour timeout), as
// in a speaker that has just started, so the pass reads and loads the
// configuration and nothing more.
func TestConfigGaugesOnARealAPIServer(t *testing.T) {
	cfg := controlPlane(t)
	scheme, err := NewScheme()
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ns := fmt.Sprintf("speaker-cfg-%d", time.Now().UnixNano())
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	m, err := newMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	lopts := membership.DefaultOptions("node1")
	lopts.Listen, lopts.Port = netip.MustParseAddr("127.0.0.1"), freeUDPPort(t)
	lopts.Timeout = time.Hour
	lopts.Key = []byte("sixteen-byte-key")
	det, err := membership.New(slog.New(slog.DiscardHandler), lopts)
	if err != nil {
		t.Fatal(err)
	}
	defer det.Close()
	r := &reconciler{client: c, namespace: ns, node: "node1", live: det, metrics: m, log: slog.New(slog.DiscardHandler)}
	pass := m.client.Counting(r)

	expect := func(step string, loaded, stale float64) {
		t.Helper()
		if _, err := pass.Reconcile(ctx, reconcile.Request{}); err != nil {
			t.Fatalf("%s: pass: %v", step, err)
		}
		if v, ok := gatherValue(t, reg, k8smetrics.NameConfigLoaded); !ok || v != loaded {
			t.Errorf("%s: config_loaded_bool = %v (exported %v), want %v", step, v, ok, loaded)
		}
		if v, ok := gatherValue(t, reg, k8smetrics.NameConfigStale); !ok || v != stale {
			t.Errorf("%s: config_stale_bool = %v (exported %v), want %v", step, v, ok, stale)
		}
	}
	pool := func(name, cidr string) *v1beta1.IPAddressPool {
		return &v1beta1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: v1beta1.IPAddressPoolSpec{Addresses: []string{cidr}}}
	}
	create := func(obj client.Object) {
		t.Helper()
		if err := c.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
	remove := func(obj client.Object) {
		t.Helper()
		if err := c.Delete(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}

	if v, ok := gatherValue(t, reg, k8smetrics.NameConfigLoaded); !ok || v != 0 {
		t.Errorf("before any pass: config_loaded_bool = %v (exported %v), want 0", v, ok)
	}
	create(pool("a", "198.18.50.0/30"))
	overlap := pool("overlap", "198.18.50.0/29")
	create(overlap)
	expect("broken from the start", 0, 1)
	if r.cfg != nil {
		t.Fatal("a configuration was put in force though none parsed")
	}
	remove(overlap)
	expect("fixed", 1, 0)
	create(pool("overlap", "198.18.50.0/29"))
	expect("broken again", 1, 1)
	if r.cfg == nil || len(r.cfg.Pools) != 1 {
		t.Errorf("the last good configuration is not in force: %+v", r.cfg)
	}
	remove(overlap)
	expect("fixed again", 1, 0)
	if v, _ := gatherValue(t, reg, k8smetrics.NameUpdates); v != 4 {
		t.Errorf("updates_total = %v after four passes", v)
	}
}
