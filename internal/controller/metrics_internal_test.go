package controller

import (
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keeperlb/keeperlb/internal/ipam"
)

func TestLacks(t *testing.T) {
	a, b := netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("2001:db8::1")
	waiting := &failure{reason: string(ipam.ReasonPoolExhausted)}
	cases := []struct {
		name    string
		ingress []string
		want    desired
		lacks   bool
	}{
		{"has what it should", []string{"198.18.0.1"}, desired{ips: []netip.Addr{a}}, false},
		{"has both families, any order", []string{"198.18.0.1", "2001:db8::1"}, desired{ips: []netip.Addr{b, a}}, false},
		{"has nothing yet", nil, desired{ips: []netip.Addr{a}}, true},
		{"has another address", []string{"198.18.0.9"}, desired{ips: []netip.Addr{a}}, true},
		{"misses a family", []string{"198.18.0.1"}, desired{ips: []netip.Addr{a, b}}, true},
		{"waits with nothing", nil, desired{failure: waiting}, true},
		{"waits, losing what it has", []string{"198.18.0.1"}, desired{failure: waiting}, true},
		{"invalid but keeps its address", []string{"198.18.0.1"}, desired{ips: []netip.Addr{a}, failure: &failure{reason: ReasonInvalidService}}, false},
	}
	for _, c := range cases {
		if got := lacks(c.ingress, c.want); got != c.lacks {
			t.Errorf("%s: lacks = %v, want %v", c.name, got, c.lacks)
		}
	}
}

func TestLackingSinceKeepsTheFirstSighting(t *testing.T) {
	s := newState()
	t0 := time.Unix(1000, 0)
	if got := s.lackingSince("ns/a", t0); !got.Equal(t0) {
		t.Fatalf("first sighting: %v", got)
	}
	// A later version (the controller's own "waiting" status write) does
	// not restart the clock.
	if got := s.lackingSince("ns/a", t0.Add(time.Minute)); !got.Equal(t0) {
		t.Errorf("later version restarted the clock: %v", got)
	}
	// An earlier one (views are built before they are reconciled) moves
	// it back.
	if got := s.lackingSince("ns/a", t0.Add(-time.Second)); !got.Equal(t0.Add(-time.Second)) {
		t.Errorf("earlier version: %v", got)
	}
}

func TestWaitingByReason(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := newMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	s := newState()
	s.pending = map[string]string{"a/1": "PoolExhausted", "a/2": "PoolExhausted", "b/1": ReasonNoConfig, "c/1": "SomethingNew"}
	m.setWaiting(s.waitingByReason())
	for reason, want := range map[string]float64{"PoolExhausted": 2, ReasonNoConfig: 1, "SomethingNew": 1, ReasonInvalidService: 0} {
		if got := gauge(t, reg, "keeperlb_controller_services_waiting", reason); got != want {
			t.Errorf("waiting{reason=%s} = %v, want %v", reason, got, want)
		}
	}
	// Everyone served: every reason seen stays, at 0.
	s.pending = map[string]string{}
	m.setWaiting(s.waitingByReason())
	for _, reason := range []string{"PoolExhausted", ReasonNoConfig, "SomethingNew"} {
		if got := gauge(t, reg, "keeperlb_controller_services_waiting", reason); got != 0 {
			t.Errorf("after recovery waiting{reason=%s} = %v, want 0", reason, got)
		}
	}
}

func gauge(t *testing.T, g prometheus.Gatherer, name, reason string) float64 {
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
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	t.Fatalf("%s{reason=%q} not exported", name, reason)
	return 0
}
