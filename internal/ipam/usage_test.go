package ipam

import (
	"testing"

	"github.com/keeperlb/keeperlb/internal/config"
)

// TestUsageCountsServices follows Usage.Services, the count behind
// metallb_allocator_services_allocated_total, through allocations, sharing,
// releases and pool changes.
func TestUsageCountsServices(t *testing.T) {
	p := mkPool(t, "p", "10.0.0.0/30")
	q := mkPool(t, "q", "10.0.1.0/30", "fd00::/126")
	shared := func(key string, port int32) *Service {
		s := svc(key)
		s.SharingKey, s.Ports = "k", tcp(port)
		return s
	}
	dual := func(key string) *Service {
		s := svc(key, IPv4, IPv6)
		s.Policy, s.Pool = RequireDualStack, "q"
		return s
	}
	type step struct {
		name string
		do   func(t *testing.T, a *Allocator)
		want map[string]uint64 // pool -> Services
	}
	steps := []step{
		{"empty pools", func(*testing.T, *Allocator) {}, map[string]uint64{"p": 0, "q": 0}},
		{"one Service", func(t *testing.T, a *Allocator) { mustEnsure(t, a, svc("ns/a")) }, map[string]uint64{"p": 1, "q": 0}},
		{"Ensure again counts once", func(t *testing.T, a *Allocator) { mustEnsure(t, a, svc("ns/a")) }, map[string]uint64{"p": 1, "q": 0}},
		{"two sharing one address count twice", func(t *testing.T, a *Allocator) {
			mustEnsure(t, a, shared("ns/s1", 80))
			mustEnsure(t, a, shared("ns/s2", 443))
		}, map[string]uint64{"p": 3, "q": 0}},
		{"a dual-stack Service counts once", func(t *testing.T, a *Allocator) { mustEnsure(t, a, dual("ns/d")) }, map[string]uint64{"p": 3, "q": 1}},
		{"moving to another pool", func(t *testing.T, a *Allocator) {
			s := svc("ns/a")
			s.Pool = "q"
			mustEnsure(t, a, s)
		}, map[string]uint64{"p": 2, "q": 2}},
		{"release", func(t *testing.T, a *Allocator) { a.Release("ns/s1") }, map[string]uint64{"p": 1, "q": 2}},
		{"release of an unknown Service", func(t *testing.T, a *Allocator) { a.Release("ns/nobody") }, map[string]uint64{"p": 1, "q": 2}},
		{"a refused Service counts nowhere", func(t *testing.T, a *Allocator) {
			s := svc("ns/x")
			s.Pool = "nosuch"
			if _, err := a.Ensure(s); err == nil {
				t.Fatal("Ensure from an unknown pool succeeded")
			}
		}, map[string]uint64{"p": 1, "q": 2}},
		{"pools replaced: holdings carried over", func(t *testing.T, a *Allocator) {
			a.SetPools([]*config.Pool{mkPool(t, "p", "10.0.0.0/30"), mkPool(t, "q", "10.0.1.0/30", "fd00::/126")})
		}, map[string]uint64{"p": 1, "q": 2}},
		{"pool removed: its Services drop out", func(t *testing.T, a *Allocator) {
			a.SetPools([]*config.Pool{mkPool(t, "q", "10.0.1.0/30", "fd00::/126")})
		}, map[string]uint64{"q": 2}},
	}
	a := newAlloc(t, p, q)
	for _, st := range steps {
		st.do(t, a)
		for _, name := range a.Pools() {
			u, _ := a.Usage(name)
			want, ok := st.want[name]
			if !ok {
				t.Fatalf("%s: pool %s exists, not expected", st.name, name)
			}
			if u.Services != want {
				t.Errorf("%s: Usage(%s).Services = %d, want %d", st.name, name, u.Services, want)
			}
		}
		if len(a.Pools()) != len(st.want) {
			t.Fatalf("%s: pools %v, want %v", st.name, a.Pools(), st.want)
		}
	}
}
