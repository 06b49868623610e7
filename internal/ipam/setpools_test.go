package ipam

import (
	"fmt"
	"slices"
	"testing"

	"github.com/keeperlb/keeperlb/internal/config"
	"k8s.io/apimachinery/pkg/labels"
)

func TestSetPools(t *testing.T) {
	// Every case starts from pool "a" 10.0.0.0/24 and pool "b"
	// 10.0.1.0/24 (restricted to namespace "team" by label), with
	// ns/s0..s3 in a (10.0.0.0-3) and team/t0 in b (10.0.1.0).
	initial := func(t *testing.T) []*config.Pool {
		b := mkPool(t, "b", "10.0.1.0/24")
		b.Allocation = &config.ServiceAllocation{Priority: 1, NamespaceSelectors: []labels.Selector{sel(t, "team=yes")}}
		return []*config.Pool{mkPool(t, "a", "10.0.0.0/24"), b}
	}
	cases := []struct {
		name         string
		pools        func(t *testing.T) []*config.Pool
		wantAffected []string
		want         map[string]string // key -> "pool:ips", "" when dropped
	}{
		{
			name:  "unchanged",
			pools: initial,
			want:  map[string]string{"ns/s0": "a:10.0.0.0", "team/t0": "b:10.0.1.0"},
		},
		{
			name: "grown",
			pools: func(t *testing.T) []*config.Pool {
				ps := initial(t)
				ps[0] = mkPool(t, "a", "10.0.0.0/24", "10.5.0.0/16")
				ps[1].Ranges = mkPool(t, "", "10.0.1.0-10.0.3.255").Ranges
				return ps
			},
			want: map[string]string{"ns/s0": "a:10.0.0.0", "ns/s3": "a:10.0.0.3", "team/t0": "b:10.0.1.0"},
		},
		{
			name: "address moves to another pool",
			pools: func(t *testing.T) []*config.Pool {
				return []*config.Pool{mkPool(t, "a", "10.0.0.0/23"), mkPool(t, "b", "10.0.2.0/24")}
			},
			wantAffected: []string{"team/t0"},
			want:         map[string]string{"ns/s0": "a:10.0.0.0", "ns/s3": "a:10.0.0.3", "team/t0": "a:10.0.1.0"},
		},
		{
			name: "shrunk",
			pools: func(t *testing.T) []*config.Pool {
				ps := initial(t)
				ps[0] = mkPool(t, "a", "10.0.0.2-10.0.0.200")
				return ps
			},
			wantAffected: []string{"ns/s0", "ns/s1"},
			want:         map[string]string{"ns/s0": "", "ns/s1": "", "ns/s2": "a:10.0.0.2", "ns/s3": "a:10.0.0.3", "team/t0": "b:10.0.1.0"},
		},
		{
			name: "renamed",
			pools: func(t *testing.T) []*config.Pool {
				ps := initial(t)
				ps[0].Name = "z"
				return ps
			},
			wantAffected: []string{"ns/s0", "ns/s1", "ns/s2", "ns/s3"},
			want:         map[string]string{"ns/s0": "z:10.0.0.0", "ns/s3": "z:10.0.0.3", "team/t0": "b:10.0.1.0"},
		},
		{
			name: "split into two pools",
			pools: func(t *testing.T) []*config.Pool {
				ps := initial(t)
				ps[0] = mkPool(t, "a", "10.0.0.0/31")
				return append(ps, mkPool(t, "a2", "10.0.0.2/31"))
			},
			wantAffected: []string{"ns/s2", "ns/s3"},
			want:         map[string]string{"ns/s0": "a:10.0.0.0", "ns/s2": "a2:10.0.0.2", "ns/s3": "a2:10.0.0.3"},
		},
		{
			name: "removed",
			pools: func(t *testing.T) []*config.Pool {
				return initial(t)[1:]
			},
			wantAffected: []string{"ns/s0", "ns/s1", "ns/s2", "ns/s3"},
			want:         map[string]string{"ns/s0": "", "team/t0": "b:10.0.1.0"},
		},
		{
			name: "selector changed",
			pools: func(t *testing.T) []*config.Pool {
				ps := initial(t)
				ps[1].Allocation = &config.ServiceAllocation{NamespaceSelectors: []labels.Selector{sel(t, "team=other")}}
				return ps
			},
			wantAffected: []string{"team/t0"},
			want:         map[string]string{"ns/s0": "a:10.0.0.0", "team/t0": ""},
		},
		{
			name: "autoAssign turned off keeps holdings",
			pools: func(t *testing.T) []*config.Pool {
				ps := initial(t)
				ps[0].AutoAssign = false
				return ps
			},
			want: map[string]string{"ns/s0": "a:10.0.0.0", "ns/s3": "a:10.0.0.3"},
		},
		{
			name: "avoidBuggyIPs turned on drops .0",
			pools: func(t *testing.T) []*config.Pool {
				ps := initial(t)
				ps[0].AvoidBuggyIPs = true
				return ps
			},
			wantAffected: []string{"ns/s0"},
			want:         map[string]string{"ns/s0": "", "ns/s1": "a:10.0.0.1"},
		},
		{
			name:         "everything removed",
			pools:        func(*testing.T) []*config.Pool { return nil },
			wantAffected: []string{"ns/s0", "ns/s1", "ns/s2", "ns/s3", "team/t0"},
			want:         map[string]string{"ns/s0": "", "team/t0": ""},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := newAlloc(t, initial(t)...)
			for i := range 4 {
				mustEnsure(t, a, svc(fmt.Sprintf("ns/s%d", i)))
			}
			team := svc("team/t0")
			team.NamespaceLabels = map[string]string{"team": "yes"}
			checkResult(t, mustEnsure(t, a, team), nil, "b", "10.0.1.0", "")

			got := a.SetPools(tc.pools(t))
			if !slices.Equal(got, tc.wantAffected) {
				t.Fatalf("affected = %v, want %v", got, tc.wantAffected)
			}
			for k, w := range tc.want {
				asg, ok := a.Get(k)
				desc := ""
				if ok {
					desc = asg.Pool + ":" + ipStrings(asg.IPs)
				}
				if desc != w {
					t.Errorf("%s = %q, want %q", k, desc, w)
				}
			}
			checkUsageMatchesGet(t, a, []string{"ns/s0", "ns/s1", "ns/s2", "ns/s3", "team/t0"})
			// Affected Services re-run Ensure; kept ones do not move.
			for k, w := range tc.want {
				s := svc(k)
				if k == "team/t0" {
					s = team
				}
				asg, err := a.Ensure(s)
				if err == nil && w != "" && asg.Pool+":"+ipStrings(asg.IPs) != w {
					t.Errorf("%s moved on re-Ensure to %s:%v", k, asg.Pool, asg.IPs)
				}
			}
		})
	}
}

func TestSetPoolsPoolsAndUsage(t *testing.T) {
	a := New()
	if len(a.Pools()) != 0 {
		t.Fatal("new allocator has pools")
	}
	if _, ok := a.Usage("x"); ok {
		t.Fatal("Usage of unknown pool reported ok")
	}
	six := mkPool(t, "six", "2001:db8::/64")
	huge := mkPool(t, "huge", "2001:db9::/48")
	four := mkPool(t, "four", "10.0.0.0/24", "10.0.2.0/23")
	a.SetPools([]*config.Pool{six, four, huge})
	if got := a.Pools(); !slices.Equal(got, []string{"four", "huge", "six"}) {
		t.Fatalf("Pools() = %v", got)
	}
	u, _ := a.Usage("four")
	if u != (Usage{AvailableV4: 768}) {
		t.Fatalf("four: %+v", u)
	}
	for i := range 3 {
		s := svc(fmt.Sprintf("ns/%d", i), IPv6)
		s.Pool = "six"
		mustEnsure(t, a, s)
	}
	u, _ = a.Usage("six")
	if u.AssignedV6 != 3 || u.AvailableV6 != ^uint64(0)-2 || u.TotalV6() != ^uint64(0) {
		t.Fatalf("six: %+v", u)
	}
	u, _ = a.Usage("huge")
	if u.AvailableV6 != ^uint64(0) || u.Total() != ^uint64(0) {
		t.Fatalf("huge: %+v", u)
	}
}

// checkUsageMatchesGet recomputes every pool's assigned counts from Get.
func checkUsageMatchesGet(t testing.TB, a *Allocator, keys []string) {
	t.Helper()
	type pf struct {
		pool string
		fam  Family
	}
	distinct := map[pf]map[string]bool{}
	for _, k := range keys {
		asg, ok := a.Get(k)
		if !ok {
			continue
		}
		for _, ip := range asg.IPs {
			x := pf{asg.Pool, familyOf(ip)}
			if distinct[x] == nil {
				distinct[x] = map[string]bool{}
			}
			distinct[x][ip.String()] = true
		}
	}
	for _, name := range a.Pools() {
		u, _ := a.Usage(name)
		if int(u.AssignedV4) != len(distinct[pf{name, IPv4}]) || int(u.AssignedV6) != len(distinct[pf{name, IPv6}]) {
			t.Fatalf("pool %s usage %+v, Get says v4=%d v6=%d", name, u, len(distinct[pf{name, IPv4}]), len(distinct[pf{name, IPv6}]))
		}
	}
}
