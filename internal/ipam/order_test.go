package ipam

import (
	"testing"

	"github.com/keeperlb/keeperlb/internal/config"
	"k8s.io/apimachinery/pkg/labels"
)

func TestPoolOrder(t *testing.T) {
	withAlloc := func(p *config.Pool, sa config.ServiceAllocation) *config.Pool {
		p.Allocation = &sa
		return p
	}
	manual := func(p *config.Pool) *config.Pool {
		p.AutoAssign = false
		return p
	}
	cases := []struct {
		name       string
		pools      func(t *testing.T) []*config.Pool
		svc        func() *Service
		wantPool   string
		wantReason Reason
		wantMsg    []string
	}{
		{
			name: "plain pools by name",
			pools: func(t *testing.T) []*config.Pool {
				return []*config.Pool{mkPool(t, "zeta", "10.0.9.0/24"), mkPool(t, "alpha", "10.0.8.0/24")}
			},
			wantPool: "alpha",
		},
		{
			name: "lower priority first",
			pools: func(t *testing.T) []*config.Pool {
				return []*config.Pool{
					withAlloc(mkPool(t, "a", "10.0.1.0/24"), config.ServiceAllocation{Priority: 20}),
					withAlloc(mkPool(t, "b", "10.0.2.0/24"), config.ServiceAllocation{Priority: 10}),
				}
			},
			wantPool: "b",
		},
		{
			name: "priority 0 comes after every positive priority",
			pools: func(t *testing.T) []*config.Pool {
				return []*config.Pool{
					withAlloc(mkPool(t, "a", "10.0.1.0/24"), config.ServiceAllocation{Priority: 0}),
					withAlloc(mkPool(t, "b", "10.0.2.0/24"), config.ServiceAllocation{Priority: 99}),
				}
			},
			wantPool: "b",
		},
		{
			name: "equal priority breaks ties by name",
			pools: func(t *testing.T) []*config.Pool {
				return []*config.Pool{
					withAlloc(mkPool(t, "m", "10.0.1.0/24"), config.ServiceAllocation{Priority: 5}),
					withAlloc(mkPool(t, "c", "10.0.2.0/24"), config.ServiceAllocation{Priority: 5}),
					withAlloc(mkPool(t, "x", "10.0.3.0/24"), config.ServiceAllocation{Priority: 5}),
				}
			},
			wantPool: "c",
		},
		{
			name: "matching serviceAllocation pools before plain pools",
			pools: func(t *testing.T) []*config.Pool {
				return []*config.Pool{
					mkPool(t, "aaa", "10.0.1.0/24"),
					withAlloc(mkPool(t, "zzz", "10.0.2.0/24"), config.ServiceAllocation{Namespaces: []string{"ns"}}),
				}
			},
			wantPool: "zzz",
		},
		{
			name: "non-matching serviceAllocation pool is not a candidate",
			pools: func(t *testing.T) []*config.Pool {
				return []*config.Pool{
					withAlloc(mkPool(t, "a", "10.0.1.0/24"), config.ServiceAllocation{Priority: 1, Namespaces: []string{"other"}}),
					mkPool(t, "b", "10.0.2.0/24"),
				}
			},
			wantPool: "b",
		},
		{
			name: "namespace selector matches namespace labels",
			pools: func(t *testing.T) []*config.Pool {
				return []*config.Pool{
					mkPool(t, "a", "10.0.1.0/24"),
					withAlloc(mkPool(t, "b", "10.0.2.0/24"), config.ServiceAllocation{NamespaceSelectors: []labels.Selector{sel(t, "team=web")}}),
				}
			},
			svc: func() *Service {
				s := svc("ns/x")
				s.NamespaceLabels = map[string]string{"team": "web"}
				return s
			},
			wantPool: "b",
		},
		{
			name: "namespace selector that does not match",
			pools: func(t *testing.T) []*config.Pool {
				return []*config.Pool{
					mkPool(t, "a", "10.0.1.0/24"),
					withAlloc(mkPool(t, "b", "10.0.2.0/24"), config.ServiceAllocation{NamespaceSelectors: []labels.Selector{sel(t, "team=web")}}),
				}
			},
			svc: func() *Service {
				s := svc("ns/x")
				s.NamespaceLabels = map[string]string{"team": "db"}
				return s
			},
			wantPool: "a",
		},
		{
			name: "namespace listed or selected: either suffices",
			pools: func(t *testing.T) []*config.Pool {
				return []*config.Pool{
					mkPool(t, "a", "10.0.1.0/24"),
					withAlloc(mkPool(t, "b", "10.0.2.0/24"), config.ServiceAllocation{
						Namespaces:         []string{"ns"},
						NamespaceSelectors: []labels.Selector{sel(t, "team=web")},
					}),
				}
			},
			wantPool: "b",
		},
		{
			name: "service selector must match too (AND)",
			pools: func(t *testing.T) []*config.Pool {
				return []*config.Pool{
					mkPool(t, "a", "10.0.1.0/24"),
					withAlloc(mkPool(t, "b", "10.0.2.0/24"), config.ServiceAllocation{
						Namespaces:       []string{"ns"},
						ServiceSelectors: []labels.Selector{sel(t, "tier=front")},
					}),
				}
			},
			svc: func() *Service {
				s := svc("ns/x")
				s.Labels = map[string]string{"tier": "back"}
				return s
			},
			wantPool: "a",
		},
		{
			name: "service selector alone matches in any namespace",
			pools: func(t *testing.T) []*config.Pool {
				return []*config.Pool{
					mkPool(t, "a", "10.0.1.0/24"),
					withAlloc(mkPool(t, "b", "10.0.2.0/24"), config.ServiceAllocation{
						ServiceSelectors: []labels.Selector{sel(t, "tier=back"), sel(t, "tier=front")},
					}),
				}
			},
			svc: func() *Service {
				s := svc("anywhere/x")
				s.Labels = map[string]string{"tier": "front"}
				return s
			},
			wantPool: "b",
		},
		{
			name: "autoAssign false pool is skipped",
			pools: func(t *testing.T) []*config.Pool {
				return []*config.Pool{manual(mkPool(t, "a", "10.0.1.0/24")), mkPool(t, "b", "10.0.2.0/24")}
			},
			wantPool: "b",
		},
		{
			name: "autoAssign false pool with matching serviceAllocation is still skipped",
			pools: func(t *testing.T) []*config.Pool {
				return []*config.Pool{
					manual(withAlloc(mkPool(t, "a", "10.0.1.0/24"), config.ServiceAllocation{Priority: 1})),
					mkPool(t, "b", "10.0.2.0/24"),
				}
			},
			wantPool: "b",
		},
		{
			name: "autoAssign false pool is used when named",
			pools: func(t *testing.T) []*config.Pool {
				return []*config.Pool{manual(mkPool(t, "a", "10.0.1.0/24")), mkPool(t, "b", "10.0.2.0/24")}
			},
			svc: func() *Service {
				s := svc("ns/x")
				s.Pool = "a"
				return s
			},
			wantPool: "a",
		},
		{
			name: "only autoAssign false pools",
			pools: func(t *testing.T) []*config.Pool {
				return []*config.Pool{manual(mkPool(t, "a", "10.0.1.0/24"))}
			},
			wantReason: ReasonNoMatchingPool,
			wantMsg:    []string{"ns/x", `"ns"`, "IPv4", "autoAssign: false", ": a."},
		},
		{
			name: "named pool excluded by serviceAllocation",
			pools: func(t *testing.T) []*config.Pool {
				return []*config.Pool{withAlloc(mkPool(t, "a", "10.0.1.0/24"), config.ServiceAllocation{Namespaces: []string{"prod"}})}
			},
			svc: func() *Service {
				s := svc("ns/x")
				s.Pool = "a"
				return s
			},
			wantReason: ReasonPoolNotAllowed, wantMsg: []string{`"a"`, "ns/x"},
		},
		{
			name: "named pool missing",
			pools: func(t *testing.T) []*config.Pool {
				return []*config.Pool{mkPool(t, "a", "10.0.1.0/24")}
			},
			svc: func() *Service {
				s := svc("ns/x")
				s.Pool = "b"
				return s
			},
			wantReason: ReasonUnknownPool, wantMsg: []string{`"b"`, "pools its namespace may use: a"},
		},
		{
			name: "no pool selects the namespace",
			pools: func(t *testing.T) []*config.Pool {
				return []*config.Pool{withAlloc(mkPool(t, "a", "10.0.1.0/24"), config.ServiceAllocation{Namespaces: []string{"prod"}})}
			},
			wantReason: ReasonNoMatchingPool, wantMsg: []string{"ns/x", "1 pool(s) with IPv4 addresses are reserved for other namespaces"},
		},
		{
			name: "no pool has the family",
			pools: func(t *testing.T) []*config.Pool {
				return []*config.Pool{mkPool(t, "a", "10.0.1.0/24")}
			},
			svc:        func() *Service { return svc("ns/x", IPv6) },
			wantReason: ReasonNoMatchingPool, wantMsg: []string{"IPv6", "pools considered: a"},
		},
		{
			name: "named pool lacks the family",
			pools: func(t *testing.T) []*config.Pool {
				return []*config.Pool{mkPool(t, "a", "10.0.1.0/24")}
			},
			svc: func() *Service {
				s := svc("ns/x", IPv6)
				s.Pool = "a"
				return s
			},
			wantReason: ReasonNoMatchingPool, wantMsg: []string{`"a"`, "IPv6"},
		},
		{
			name: "earlier pool full, next one used",
			pools: func(t *testing.T) []*config.Pool {
				return []*config.Pool{mkPool(t, "a", "10.0.1.1-10.0.1.1"), mkPool(t, "b", "10.0.2.0/24")}
			},
			svc:      func() *Service { return svc("ns/second") },
			wantPool: "b",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := newAlloc(t, tc.pools(t)...)
			if tc.name == "earlier pool full, next one used" {
				checkResult(t, mustEnsure(t, a, svc("ns/first")), nil, "a", "10.0.1.1", "")
			}
			s := svc("ns/x")
			if tc.svc != nil {
				s = tc.svc()
			}
			got, err := a.Ensure(s)
			if r := reasonOf(t, err); r != tc.wantReason {
				t.Fatalf("reason %q (%v), want %q", r, err, tc.wantReason)
			}
			if err != nil {
				checkResult(t, got, err, "", "", tc.wantReason, tc.wantMsg...)
				return
			}
			if got.Pool != tc.wantPool {
				t.Fatalf("pool = %s, want %s", got.Pool, tc.wantPool)
			}
		})
	}
}

func TestPoolExhaustedNamesPools(t *testing.T) {
	a := newAlloc(t, mkPool(t, "a", "10.0.0.1-10.0.0.2"), mkPool(t, "b", "10.0.1.1-10.0.1.1"))
	for _, k := range []string{"ns/1", "ns/2", "ns/3"} {
		mustEnsure(t, a, svc(k))
	}
	_, err := a.Ensure(svc("ns/4"))
	checkResult(t, Assignment{}, err, "", "", ReasonPoolExhausted, "ns/4", "a, b", "IPv4")
}
