package ipam

import (
	"fmt"
	"testing"

	"github.com/keeperlb/keeperlb/internal/config"
)

// BenchmarkAllocate measures one fresh allocation (Ensure of a new
// Service) averaged over filling a pool to n addresses; the allocator is
// rebuilt, off the clock, whenever it is full.
func BenchmarkAllocate(b *testing.B) {
	cases := []struct {
		name   string
		prefix string
		fam    Family
		n      int
	}{
		{"ipv4-slash16-60000", "10.0.0.0/16", IPv4, 60_000},
		{"ipv6-slash64-100000", "2001:db8::/64", IPv6, 100_000},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			pools := []*config.Pool{mkPool(b, "bench", c.prefix)}
			svcs := make([]Service, c.n)
			for i := range svcs {
				svcs[i] = Service{Key: fmt.Sprintf("ns/svc-%d", i), Namespace: "ns", Families: []Family{c.fam}, Ports: tcp(80)}
			}
			a := newAlloc(b, pools...)
			filled := 0
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if filled == c.n {
					b.StopTimer()
					a = newAlloc(b, pools...)
					filled = 0
					b.StartTimer()
				}
				if _, err := a.Ensure(&svcs[filled]); err != nil {
					b.Fatal(err)
				}
				filled++
			}
		})
	}
}
