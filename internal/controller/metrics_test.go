package controller_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/keeperlb/keeperlb/api/v1beta1"
	"github.com/keeperlb/keeperlb/internal/controller"
)

// series reads one series: a gauge's or counter's value, or a histogram's
// sample count. ok is false when the series is not exported.
func series(t *testing.T, g prometheus.Gatherer, name string, labels ...string) (float64, bool) {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if !hasLabels(m, labels) {
				continue
			}
			switch {
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue(), true
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue(), true
			case m.GetHistogram() != nil:
				return float64(m.GetHistogram().GetSampleCount()), true
			}
		}
	}
	return 0, false
}

// hasLabels reports whether m carries every name=value pair of kv.
func hasLabels(m *dto.Metric, kv []string) bool {
	for i := 0; i+1 < len(kv); i += 2 {
		found := false
		for _, l := range m.GetLabel() {
			if l.GetName() == kv[i] && l.GetValue() == kv[i+1] {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// waitSeries waits until the series is exported with the value want.
func (e *env) waitSeries(g prometheus.Gatherer, want float64, name string, labels ...string) {
	e.t.Helper()
	var last float64
	var exported bool
	err := wait.PollUntilContextTimeout(e.ctx, 20*time.Millisecond, 20*time.Second, true, func(context.Context) (bool, error) {
		last, exported = series(e.t, g, name, labels...)
		return exported && last == want, nil
	})
	if err != nil {
		e.t.Fatalf("%s{%s}: want %v, last %v (exported: %v)", name, strings.Join(labels, ","), want, last, exported)
	}
}

// TestConfigGaugesFollowTheConfiguration breaks the configuration on a real
// API server and follows MetalLB's two configuration gauges: config_loaded
// is 0 until a configuration loads and 1 from then on, config_stale is 1
// exactly while the latest configuration is rejected (MetalLB's
// MetalLBConfigNotLoaded and MetalLBStaleConfig alerts read them).
func TestConfigGaugesFollowTheConfiguration(t *testing.T) {
	e := newEnv(t)
	reg := e.opts.Registry.(*prometheus.Registry)
	const loaded, stale = "metallb_k8s_client_config_loaded_bool", "metallb_k8s_client_config_stale_bool"

	// Broken from the start: nothing was ever loaded.
	e.pool("a", []string{"198.18.40.0/30"})
	e.pool("overlap", []string{"198.18.40.0/29"})
	e.start()
	waitConfigState(t, e, v1beta1.ConfigurationResultInvalid, "overlap")
	e.waitSeries(reg, 1, stale)
	e.waitSeries(reg, 0, loaded)
	e.createSvc("s")
	e.waitPending("s", controller.ReasonNoConfig)
	e.waitSeries(reg, 1, "keeperlb_controller_services_waiting", "reason", controller.ReasonNoConfig)

	// Fixed: loaded, not stale.
	e.deletePool("overlap")
	e.waitSeries(reg, 0, stale)
	e.waitSeries(reg, 1, loaded)
	e.waitIPs("s", "198.18.40.0")
	e.waitSeries(reg, 0, "keeperlb_controller_services_waiting", "reason", controller.ReasonNoConfig)

	// Broken again: stale, and still loaded (the last good one runs).
	e.pool("overlap", []string{"198.18.40.0/29"})
	waitConfigState(t, e, v1beta1.ConfigurationResultInvalid, "overlap")
	e.waitSeries(reg, 1, stale)
	e.waitSeries(reg, 1, loaded)
	e.createSvc("t")
	e.waitIPs("t", "198.18.40.1") // allocated from the last good configuration

	e.deletePool("overlap")
	e.waitSeries(reg, 0, stale)
	e.waitSeries(reg, 1, loaded)

	if v, _ := series(t, reg, "metallb_k8s_client_updates_total"); v < 4 {
		t.Errorf("metallb_k8s_client_updates_total = %v after four configuration changes and two Services", v)
	}
}

func (e *env) deletePool(name string) {
	e.t.Helper()
	if err := e.c.Delete(e.ctx, &v1beta1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: name}}); err != nil {
		e.t.Fatal(err)
	}
}

// TestStandbyExportsNoConfigGauges runs two replicas with their own
// registries: the standby loads no configuration, so it must not say
// config_loaded_bool 0 (MetalLBConfigNotLoaded would fire for it) until it
// leads and loads one.
func TestStandbyExportsNoConfigGauges(t *testing.T) {
	e := newEnv(t)
	e.opts.LeaseDuration, e.opts.RenewDeadline, e.opts.RetryPeriod = 4*time.Second, 3*time.Second, 500*time.Millisecond
	e.pool("p", []string{"198.18.41.0/30"})
	first := e.opts.Registry
	e.start()
	stopFirst := e.stopController
	e.stopController = nil
	waitLeaseHolder(t, e, "")
	e.waitSeries(first.(prometheus.Gatherer), 1, "metallb_k8s_client_config_loaded_bool")

	second := prometheus.NewRegistry()
	e.opts.Registry = second
	e.start()
	e.createSvc("a")
	e.waitIPs("a", "198.18.41.0")
	time.Sleep(500 * time.Millisecond) // the standby has had time to start
	for _, name := range []string{"metallb_k8s_client_config_loaded_bool", "metallb_k8s_client_config_stale_bool"} {
		if v, ok := series(t, second, name); ok {
			t.Errorf("the standby exports %s = %v", name, v)
		}
	}
	stopFirst()
	e.waitSeries(second, 1, "metallb_k8s_client_config_loaded_bool")
	e.waitSeries(second, 0, "metallb_k8s_client_config_stale_bool")
}

// TestAllocatorMetrics follows the pool gauges, the waiting Services by
// reason and the allocation latency through an exhausted pool.
func TestAllocatorMetrics(t *testing.T) {
	e := newEnv(t)
	reg := e.opts.Registry.(*prometheus.Registry)
	e.pool("tiny", []string{"198.18.42.0/31"})
	e.start()
	pool := func(n string) string { return "metallb_allocator_" + n }
	e.waitSeries(reg, 2, pool("addresses_total"), "pool", "tiny")
	e.waitSeries(reg, 0, pool("services_allocated_total"), "pool", "tiny")
	for _, r := range []string{"PoolExhausted", "NoMatchingPool", controller.ReasonInvalidService} {
		e.waitSeries(reg, 0, "keeperlb_controller_services_waiting", "reason", r)
	}

	e.createSvc("a")
	e.waitIPs("a", "198.18.42.0")
	e.createSvc("b")
	e.waitIPs("b", "198.18.42.1")
	e.createSvc("c")
	e.waitPending("c", "PoolExhausted")
	e.waitSeries(reg, 2, pool("addresses_in_use_total"), "pool", "tiny")
	e.waitSeries(reg, 2, pool("ipv4_addresses_in_use_total"), "pool", "tiny")
	e.waitSeries(reg, 2, pool("services_allocated_total"), "pool", "tiny")
	e.waitSeries(reg, 1, "keeperlb_controller_services_waiting", "reason", "PoolExhausted")
	e.waitSeries(reg, 2, "keeperlb_controller_allocation_duration_seconds")

	// c gets b's address: one more allocation, nobody waits.
	time.Sleep(300 * time.Millisecond)
	if err := e.c.Delete(e.ctx, e.getSvc("b")); err != nil {
		t.Fatal(err)
	}
	e.waitIPs("c", "198.18.42.1")
	e.waitSeries(reg, 0, "keeperlb_controller_services_waiting", "reason", "PoolExhausted")
	e.waitSeries(reg, 3, "keeperlb_controller_allocation_duration_seconds")
	e.waitSeries(reg, 2, pool("services_allocated_total"), "pool", "tiny")

	// The wait counts in c's latency: it waited more than the 300 ms
	// before b was deleted, a and b far less.
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "keeperlb_controller_allocation_duration_seconds" {
			continue
		}
		for _, b := range mf.GetMetric()[0].GetHistogram().GetBucket() {
			if b.GetUpperBound() == 0.25 && b.GetCumulativeCount() != 2 {
				t.Errorf("%d allocations took 250 ms or less, want 2 (a and b; c waited): %v", b.GetCumulativeCount(), mf)
			}
		}
	}

	// A Service whose annotation does not parse waits for InvalidService.
	e.createSvc("bad", func(s *corev1.Service) { s.Annotations = map[string]string{"metallb.io/loadBalancerIPs": "not-an-ip"} })
	e.waitPending("bad", controller.ReasonInvalidService)
	e.waitSeries(reg, 1, "keeperlb_controller_services_waiting", "reason", controller.ReasonInvalidService)
}
