package ipam

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/keeperlb/keeperlb/internal/config"
)

// restartFixture builds a varied population: plain, shared, dual-stack,
// pool-named and requested Services, then returns them with Current set to
// what the first allocator gave them.
func restartFixture(t *testing.T) ([]*config.Pool, []*Service, map[string]Assignment) {
	pools := []*config.Pool{
		mkPool(t, "dual", "10.0.0.0/26", "fd00::/122"),
		mkPool(t, "v4", "10.0.1.0/26"),
		mkPool(t, "manual", "10.0.2.0/26"),
	}
	pools[2].AutoAssign = false
	a := newAlloc(t, pools...)
	var svcs []*Service
	want := map[string]Assignment{}
	for i := range 60 {
		s := svc(fmt.Sprintf("ns/s%02d", i))
		switch i % 6 {
		case 1:
			s.SharingKey, s.Ports = "web", tcp(int32(8000+i))
		case 2:
			s.Families, s.Policy = []Family{IPv6, IPv4}, PreferDualStack
		case 3:
			s.Pool = "manual"
		case 4:
			s.Families, s.Policy = []Family{IPv4, IPv6}, RequireDualStack
		case 5:
			s.RequestedIPs = addrs(fmt.Sprintf("10.0.1.%d", 63-i/6))
		}
		got := mustEnsure(t, a, s)
		want[s.Key] = got
		svcs = append(svcs, s)
	}
	// Leave holes so that the lowest free address is not after the last
	// one used.
	for _, k := range []string{"ns/s00", "ns/s06", "ns/s12"} {
		a.Release(k)
		delete(want, k)
	}
	var kept []*Service
	for _, s := range svcs {
		if w, ok := want[s.Key]; ok {
			s.Current = w.IPs
			kept = append(kept, s)
		}
	}
	return pools, kept, want
}

func TestRestartKeepsEveryAddress(t *testing.T) {
	for seed := range uint64(5) {
		t.Run(fmt.Sprintf("seed%d", seed), func(t *testing.T) {
			pools, svcs, want := restartFixture(t)
			a := newAlloc(t, pools...)
			// Re-register in an order unrelated to allocation order.
			rand.New(rand.NewPCG(seed, 99)).Shuffle(len(svcs), func(i, j int) { svcs[i], svcs[j] = svcs[j], svcs[i] })
			held := map[netip.Addr]bool{}
			for _, s := range svcs {
				got := mustEnsure(t, a, s)
				if w := want[s.Key]; got.Pool != w.Pool || ipStrings(got.IPs) != ipStrings(w.IPs) {
					t.Fatalf("%s re-registered as %s:%v, had %s:%v", s.Key, got.Pool, got.IPs, w.Pool, w.IPs)
				}
				for _, ip := range got.IPs {
					held[ip] = true
				}
			}
			for i := range 20 {
				s := svc(fmt.Sprintf("new/n%d", i))
				if i%2 == 1 {
					s.Families, s.Policy = []Family{IPv4, IPv6}, PreferDualStack
				}
				got, err := a.Ensure(s)
				if err != nil {
					continue // pools may be full; what matters is no theft
				}
				for _, ip := range got.IPs {
					if held[ip] {
						t.Fatalf("new Service %s was given %s, held by an existing Service", s.Key, ip)
					}
				}
			}
			for k, w := range want {
				if got, _ := a.Get(k); ipStrings(got.IPs) != ipStrings(w.IPs) {
					t.Fatalf("%s changed to %v after new allocations", k, got.IPs)
				}
			}
		})
	}
}

func TestCurrentThatCannotBeKept(t *testing.T) {
	pools := func(t *testing.T) []*config.Pool {
		p := mkPool(t, "p", "10.0.0.0/24", "fd00::/120")
		q := mkPool(t, "q", "10.0.1.0/24")
		q.Allocation = &config.ServiceAllocation{Namespaces: []string{"prod"}}
		return []*config.Pool{p, q}
	}
	cases := []struct {
		name    string
		current string
		mutate  func(*Service)
		before  func(*Service)
		want    string
	}{
		{name: "valid current is kept", current: "10.0.0.77", want: "10.0.0.77"},
		{name: "address in no pool", current: "192.168.0.1", want: "10.0.0.0"},
		{name: "address of a family the Service lacks", current: "fd00::5", want: "10.0.0.0"},
		{name: "pool no longer selects the Service", current: "10.0.1.5", want: "10.0.0.0"},
		{name: "address in another pool than the named one", current: "10.0.0.77", mutate: func(s *Service) { s.Namespace, s.Pool = "prod", "q" }, want: "10.0.1.0"},
		{name: "held by an incompatible Service", current: "10.0.0.77", before: func(s *Service) { s.RequestedIPs = addrs("10.0.0.77") }, want: "10.0.0.0"},
		{name: "held by a compatible Service", current: "10.0.0.77",
			mutate: func(s *Service) { s.SharingKey, s.Ports = "k", tcp(80) },
			before: func(s *Service) { s.RequestedIPs, s.SharingKey, s.Ports = addrs("10.0.0.77"), "k", tcp(443) },
			want:   "10.0.0.77"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := newAlloc(t, pools(t)...)
			if tc.before != nil {
				o := svc("other/o")
				tc.before(o)
				mustEnsure(t, a, o)
			}
			s := svc("ns/x")
			s.Current = addrs(tc.current)
			if tc.mutate != nil {
				tc.mutate(s)
			}
			if got := mustEnsure(t, a, s); ipStrings(got.IPs) != tc.want {
				t.Fatalf("got %v, want %s", got.IPs, tc.want)
			}
		})
	}
}
