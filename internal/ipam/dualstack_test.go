package ipam

import (
	"slices"
	"testing"

	"github.com/keeperlb/keeperlb/internal/config"
)

func TestDualStackPolicies(t *testing.T) {
	v4only := func(t *testing.T) *config.Pool { return mkPool(t, "a-v4", "10.0.0.0/24") }
	dual := func(t *testing.T) *config.Pool { return mkPool(t, "b-dual", "10.0.1.0/24", "fd00::/120") }
	v6only := func(t *testing.T) *config.Pool { return mkPool(t, "c-v6", "fd01::/120") }
	cases := []struct {
		name       string
		pools      func(t *testing.T) []*config.Pool
		fams       []Family
		policy     FamilyPolicy
		wantPool   string
		wantIPs    string
		wantReason Reason
		wantMsg    []string
	}{
		{name: "SingleStack IPv4", pools: func(t *testing.T) []*config.Pool { return []*config.Pool{dual(t)} },
			fams: []Family{IPv4}, wantPool: "b-dual", wantIPs: "10.0.1.0"},
		{name: "SingleStack IPv6", pools: func(t *testing.T) []*config.Pool { return []*config.Pool{v4only(t), dual(t)} },
			fams: []Family{IPv6}, wantPool: "b-dual", wantIPs: "fd00::"},
		{name: "PreferDualStack takes both from a dual pool even if later in order", pools: func(t *testing.T) []*config.Pool { return []*config.Pool{v4only(t), dual(t)} },
			fams: []Family{IPv4, IPv6}, policy: PreferDualStack, wantPool: "b-dual", wantIPs: "10.0.1.0,fd00::"},
		{name: "PreferDualStack IPv6 primary orders IPv6 first", pools: func(t *testing.T) []*config.Pool { return []*config.Pool{dual(t)} },
			fams: []Family{IPv6, IPv4}, policy: PreferDualStack, wantPool: "b-dual", wantIPs: "fd00::,10.0.1.0"},
		{name: "PreferDualStack falls back to the primary family", pools: func(t *testing.T) []*config.Pool { return []*config.Pool{v4only(t), v6only(t)} },
			fams: []Family{IPv4, IPv6}, policy: PreferDualStack, wantPool: "a-v4", wantIPs: "10.0.0.0"},
		{name: "PreferDualStack fallback honours an IPv6 primary", pools: func(t *testing.T) []*config.Pool { return []*config.Pool{v4only(t), v6only(t)} },
			fams: []Family{IPv6, IPv4}, policy: PreferDualStack, wantPool: "c-v6", wantIPs: "fd01::"},
		{name: "PreferDualStack on a single-family cluster", pools: func(t *testing.T) []*config.Pool { return []*config.Pool{dual(t)} },
			fams: []Family{IPv4}, policy: PreferDualStack, wantPool: "b-dual", wantIPs: "10.0.1.0"},
		{name: "RequireDualStack from one pool", pools: func(t *testing.T) []*config.Pool { return []*config.Pool{v4only(t), dual(t)} },
			fams: []Family{IPv4, IPv6}, policy: RequireDualStack, wantPool: "b-dual", wantIPs: "10.0.1.0,fd00::"},
		{name: "RequireDualStack never combines two pools", pools: func(t *testing.T) []*config.Pool { return []*config.Pool{v4only(t), v6only(t)} },
			fams: []Family{IPv4, IPv6}, policy: RequireDualStack, wantReason: ReasonNoMatchingPool, wantMsg: []string{"both IPv4 and IPv6", "one pool", "a-v4, c-v6"}},
		{name: "RequireDualStack with one family is invalid", pools: func(t *testing.T) []*config.Pool { return []*config.Pool{dual(t)} },
			fams: []Family{IPv4}, policy: RequireDualStack, wantReason: ReasonInvalidRequest, wantMsg: []string{"RequireDualStack"}},
		{name: "no families is invalid", pools: func(t *testing.T) []*config.Pool { return []*config.Pool{dual(t)} },
			fams: []Family{}, wantReason: ReasonInvalidRequest},
		{name: "repeated family is invalid", pools: func(t *testing.T) []*config.Pool { return []*config.Pool{dual(t)} },
			fams: []Family{IPv4, IPv4}, policy: PreferDualStack, wantReason: ReasonInvalidRequest},
		{name: "unknown policy is invalid", pools: func(t *testing.T) []*config.Pool { return []*config.Pool{dual(t)} },
			fams: []Family{IPv4}, policy: FamilyPolicy(7), wantReason: ReasonInvalidRequest},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := newAlloc(t, tc.pools(t)...)
			s := svc("ns/x")
			s.Families, s.Policy = tc.fams, tc.policy
			got, err := a.Ensure(s)
			checkResult(t, got, err, tc.wantPool, tc.wantIPs, tc.wantReason, tc.wantMsg...)
		})
	}
}

func TestRequireDualStackExhaustion(t *testing.T) {
	a := newAlloc(t, mkPool(t, "d", "10.0.0.0/24", "fd00::1-fd00::1"))
	s := svc("ns/first", IPv4, IPv6)
	s.Policy = RequireDualStack
	checkResult(t, mustEnsure(t, a, s), nil, "d", "10.0.0.0,fd00::1", "")
	s2 := svc("ns/second", IPv4, IPv6)
	s2.Policy = RequireDualStack
	_, err := a.Ensure(s2)
	checkResult(t, Assignment{}, err, "", "", ReasonPoolExhausted, "ns/second", "d")
	if u, _ := a.Usage("d"); u.AssignedV4 != 1 || u.AssignedV6 != 1 {
		t.Fatalf("failed RequireDualStack left addresses held: %+v", u)
	}
	// PreferDualStack in the same situation settles for IPv4.
	s2.Policy = PreferDualStack
	checkResult(t, mustEnsure(t, a, s2), nil, "d", "10.0.0.1", "")
}

func TestPreferDualStackUpgrade(t *testing.T) {
	p := mkPool(t, "p", "10.0.0.0/24")
	a := newAlloc(t, p)
	s := svc("ns/x", IPv4, IPv6)
	s.Policy = PreferDualStack
	checkResult(t, mustEnsure(t, a, s), nil, "p", "10.0.0.0", "")
	plain := svc("ns/plain")
	mustEnsure(t, a, plain)

	// The pool gains IPv6: the Service is reported and upgraded in place.
	grown := mkPool(t, "p", "10.0.0.0/24", "fd00::/120")
	if got := a.SetPools([]*config.Pool{grown}); !slices.Equal(got, []string{"ns/x"}) {
		t.Fatalf("affected = %v, want [ns/x]", got)
	}
	checkResult(t, mustEnsure(t, a, s), nil, "p", "10.0.0.0,fd00::", "")
	if got := a.SetPools([]*config.Pool{grown}); len(got) != 0 {
		t.Fatalf("affected after re-applying the same pools = %v", got)
	}

	// IPv6 goes away again: the Service keeps its IPv4 address reserved
	// and is reported so that its status is rewritten.
	if got := a.SetPools([]*config.Pool{p}); !slices.Equal(got, []string{"ns/x"}) {
		t.Fatalf("affected = %v, want [ns/x]", got)
	}
	if got, _ := a.Get("ns/x"); ipStrings(got.IPs) != "10.0.0.0" {
		t.Fatalf("after losing IPv6: %v", got.IPs)
	}
	checkResult(t, mustEnsure(t, a, svc("ns/late")), nil, "p", "10.0.0.2", "")
	checkResult(t, mustEnsure(t, a, s), nil, "p", "10.0.0.0", "")
}

func TestKeptDualStackLosesOneFamily(t *testing.T) {
	// The pool's IPv6 range moves: the Service keeps its IPv4 address and
	// gets a new IPv6 one from the same pool.
	a := newAlloc(t, mkPool(t, "p", "10.0.0.0/24", "fd00::/120"))
	s := svc("ns/x", IPv4, IPv6)
	s.Policy = RequireDualStack
	checkResult(t, mustEnsure(t, a, s), nil, "p", "10.0.0.0,fd00::", "")
	mustEnsure(t, a, svc("ns/y"))
	a.SetPools([]*config.Pool{mkPool(t, "p", "10.0.0.0/24", "fd99::/120")})
	s.Current = addrs("10.0.0.0", "fd00::")
	checkResult(t, mustEnsure(t, a, s), nil, "p", "10.0.0.0,fd99::", "")
}

func TestRequireDualStackMovesWhenItsPoolCannotComplete(t *testing.T) {
	// x holds IPv4 from pool a (restart, via Current); pool a has no IPv6,
	// so RequireDualStack moves to pool b, which has both.
	a := newAlloc(t, mkPool(t, "a", "10.0.0.0/24"), mkPool(t, "b", "10.0.1.0/24", "fd00::/120"))
	s := svc("ns/x", IPv4, IPv6)
	s.Policy = RequireDualStack
	s.Current = addrs("10.0.0.7")
	checkResult(t, mustEnsure(t, a, s), nil, "b", "10.0.1.0,fd00::", "")
	if u, _ := a.Usage("a"); u.AssignedV4 != 0 {
		t.Fatalf("pool a still has %d in use", u.AssignedV4)
	}

	// With no pool able to complete, the Service ends up holding nothing.
	a2 := newAlloc(t, mkPool(t, "a", "10.0.0.0/24"))
	_, err := a2.Ensure(s)
	checkResult(t, Assignment{}, err, "", "", ReasonNoMatchingPool, "both IPv4 and IPv6")
	if _, ok := a2.Get("ns/x"); ok {
		t.Fatal("failed RequireDualStack still holds an address")
	}
}

func TestPolicyNarrowingKeepsPrimary(t *testing.T) {
	a := newAlloc(t, mkPool(t, "p", "10.0.0.0/24", "fd00::/120"))
	mustEnsure(t, a, svc("ns/first"))
	s := svc("ns/x", IPv6, IPv4)
	s.Policy = RequireDualStack
	checkResult(t, mustEnsure(t, a, s), nil, "p", "fd00::,10.0.0.1", "")
	s.Policy, s.Families = SingleStack, []Family{IPv6}
	checkResult(t, mustEnsure(t, a, s), nil, "p", "fd00::", "")
	if u, _ := a.Usage("p"); u.AssignedV4 != 1 || u.AssignedV6 != 1 {
		t.Fatalf("usage after narrowing: %+v", u)
	}
	// Switching the only family discards the old address.
	s.Families = []Family{IPv4}
	checkResult(t, mustEnsure(t, a, s), nil, "p", "10.0.0.1", "")
	if u, _ := a.Usage("p"); u.AssignedV6 != 0 {
		t.Fatalf("IPv6 still held: %+v", u)
	}
}
