package k8smetrics

import (
	"context"
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

func TestConfigStateNext(t *testing.T) {
	cases := []struct {
		name     string
		attempts []bool // accepted or not, in order
		want     ConfigState
	}{
		{"nothing seen yet", nil, ConfigState{}},
		{"first load", []bool{true}, ConfigState{Loaded: true}},
		{"rejected before any load", []bool{false}, ConfigState{Stale: true}},
		{"rejected after a load: stale, still loaded", []bool{true, false}, ConfigState{Loaded: true, Stale: true}},
		{"fixed again", []bool{true, false, true}, ConfigState{Loaded: true}},
		{"first load after rejections", []bool{false, false, true}, ConfigState{Loaded: true}},
		{"rejected twice", []bool{true, false, false}, ConfigState{Loaded: true, Stale: true}},
	}
	for _, c := range cases {
		var s ConfigState
		for _, ok := range c.attempts {
			s = s.Next(ok)
		}
		if s != c.want {
			t.Errorf("%s: %+v, want %+v", c.name, s, c.want)
		}
	}
}

// value reads one series from reg; ok is false when it is not exported.
func value(t *testing.T, reg *prometheus.Registry, name string) (float64, bool) {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		m := f.GetMetric()[0]
		if g := m.GetGauge(); g != nil {
			return g.GetValue(), true
		}
		return m.GetCounter().GetValue(), true
	}
	return 0, false
}

func TestGaugesFollowLoads(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := New(reg, true)
	if err != nil {
		t.Fatal(err)
	}
	expect := func(step string, loaded, stale float64) {
		t.Helper()
		if v, ok := value(t, reg, NameConfigLoaded); !ok || v != loaded {
			t.Errorf("%s: %s = %v (exported %v), want %v", step, NameConfigLoaded, v, ok, loaded)
		}
		if v, ok := value(t, reg, NameConfigStale); !ok || v != stale {
			t.Errorf("%s: %s = %v (exported %v), want %v", step, NameConfigStale, v, ok, stale)
		}
	}
	expect("start", 0, 0)
	m.Rejected()
	expect("rejected first", 0, 1)
	m.Loaded()
	expect("loaded", 1, 0)
	m.Rejected()
	expect("rejected", 1, 1)
	m.Loaded()
	expect("fixed", 1, 0)
}

// TestStandbyHidesTheConfigGauges checks that a Metrics not serving (a
// standby controller replica) exports the counters but not the gauges,
// which MetalLBConfigNotLoaded would read as a failure, and that Serve
// brings them, and that a second New on one registry shares the first.
func TestStandbyHidesTheConfigGauges(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := New(reg, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := value(t, reg, NameConfigLoaded); ok {
		t.Error("a standby exports config_loaded_bool")
	}
	if _, ok := value(t, reg, NameUpdates); !ok {
		t.Error("a standby does not export updates_total")
	}
	m.Serve()
	if v, ok := value(t, reg, NameConfigLoaded); !ok || v != 0 {
		t.Errorf("after Serve: config_loaded_bool = %v (exported %v), want 0", v, ok)
	}
	again, err := New(reg, true)
	if err != nil {
		t.Fatalf("second New on the same registry: %v", err)
	}
	again.Loaded()
	if v, _ := value(t, reg, NameConfigLoaded); v != 1 {
		t.Errorf("a load through the second Metrics is not seen: %v", v)
	}
}

func TestCountingCountsPassesAndErrors(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := New(reg, true)
	if err != nil {
		t.Fatal(err)
	}
	fail := errors.New("boom")
	var next error
	r := m.Counting(reconcile.Func(func(context.Context, reconcile.Request) (reconcile.Result, error) { return reconcile.Result{}, next }))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, e := range []error{nil, fail, nil, fail} {
		next = e
		if _, err := r.Reconcile(ctx, reconcile.Request{}); err != e {
			t.Fatalf("the wrapper changed the error: %v, want %v", err, e)
		}
	}
	// A pass ended by shutdown is not an error.
	cancel()
	next = context.Canceled
	_, _ = r.Reconcile(ctx, reconcile.Request{})
	if v, _ := value(t, reg, NameUpdates); v != 5 {
		t.Errorf("updates_total = %v, want 5", v)
	}
	if v, _ := value(t, reg, NameUpdateErrors); v != 2 {
		t.Errorf("update_errors_total = %v, want 2", v)
	}
}
