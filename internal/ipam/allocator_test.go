package ipam

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/keeperlb/keeperlb/internal/config"
)

func TestExhaustionAndReuse(t *testing.T) {
	a := newAlloc(t, mkPool(t, "p", "10.0.0.0/30"))
	for i := range 4 {
		checkResult(t, mustEnsure(t, a, svc(fmt.Sprintf("ns/%d", i))), nil, "p", fmt.Sprintf("10.0.0.%d", i), "")
	}
	_, err := a.Ensure(svc("ns/4"))
	checkResult(t, Assignment{}, err, "", "", ReasonPoolExhausted, "ns/4", "p")
	if _, ok := a.Get("ns/4"); ok {
		t.Fatal("failed Service holds something")
	}
	a.Release("ns/2")
	a.Release("ns/1")
	checkResult(t, mustEnsure(t, a, svc("ns/4")), nil, "p", "10.0.0.1", "")
	checkResult(t, mustEnsure(t, a, svc("ns/5")), nil, "p", "10.0.0.2", "")
	if u, _ := a.Usage("p"); u != (Usage{AssignedV4: 4, Services: 4}) {
		t.Fatalf("usage %+v", u)
	}
}

func TestIdempotence(t *testing.T) {
	a := newAlloc(t, mkPool(t, "p", "10.0.0.0/24", "fd00::/120"), mkPool(t, "q", "10.0.1.0/24"))
	services := []*Service{
		svc("ns/plain"),
		{Key: "ns/dual", Namespace: "ns", Families: []Family{IPv6, IPv4}, Policy: PreferDualStack},
		{Key: "ns/req", Namespace: "ns", Families: []Family{IPv4}, RequestedIPs: addrs("10.0.1.9")},
		{Key: "ns/shA", Namespace: "ns", Families: []Family{IPv4}, SharingKey: "k", Ports: tcp(80)},
		{Key: "ns/shB", Namespace: "ns", Families: []Family{IPv4}, SharingKey: "k", Ports: tcp(443, 443)},
		{Key: "ns/named", Namespace: "ns", Families: []Family{IPv4}, Pool: "q", Labels: map[string]string{"a": "b"}},
	}
	first := map[string]Assignment{}
	for _, s := range services {
		first[s.Key] = mustEnsure(t, a, s)
	}
	before := snapshot(a)
	for range 3 {
		for _, s := range services {
			got := mustEnsure(t, a, s)
			if got.Pool != first[s.Key].Pool || !slices.Equal(got.IPs, first[s.Key].IPs) {
				t.Fatalf("%s: %v then %v", s.Key, first[s.Key], got)
			}
		}
	}
	if after := snapshot(a); after != before {
		t.Fatalf("state changed:\n%s\n%s", before, after)
	}
	// The caller's slices are not aliased.
	got, _ := a.Get("ns/plain")
	got.IPs[0] = netip.MustParseAddr("1.2.3.4")
	if again, _ := a.Get("ns/plain"); again.IPs[0].String() != "10.0.0.0" {
		t.Fatal("Get returned internal storage")
	}
}

// snapshot renders the whole allocator state deterministically.
func snapshot(a *Allocator) string {
	out := fmt.Sprint(a.Pools())
	for _, k := range slices.Sorted(maps.Keys(a.svcs)) {
		r := a.svcs[k]
		out += fmt.Sprintf("|%s=%s:%v", k, r.pool.name, r.ips)
	}
	for _, n := range a.Pools() {
		u, _ := a.Usage(n)
		out += fmt.Sprintf("|%s%+v", n, u)
	}
	for _, n := range a.Pools() {
		for _, fs := range a.pools[n].space {
			if fs == nil {
				continue
			}
			fs.used.each(func(node *treapNode) {
				out += "|" + fs.addrAt(node.key).String()
				for _, h := range node.holders {
					out += "," + h.key
				}
			})
		}
	}
	return out
}

func TestDeterministicUnderShuffledInput(t *testing.T) {
	run := func(seed uint64) string {
		rng := rand.New(rand.NewPCG(seed, 1))
		pools := []*config.Pool{
			mkPool(t, "b", "10.0.1.0/28", "fd01::/124"),
			mkPool(t, "a", "10.0.0.0/28"),
			mkPool(t, "c", "10.0.2.0/28", "fd02::/124"),
			mkPool(t, "d", "10.0.3.0/28"),
		}
		pools[2].Allocation = &config.ServiceAllocation{Priority: 3}
		pools[3].Allocation = &config.ServiceAllocation{Priority: 3}
		rng.Shuffle(len(pools), func(i, j int) { pools[i], pools[j] = pools[j], pools[i] })
		a := newAlloc(t, pools...)
		var out string
		for i := range 80 {
			s := svc(fmt.Sprintf("ns/s%d", i%50))
			if i%3 == 0 {
				s.Families, s.Policy = []Family{IPv4, IPv6}, PreferDualStack
			}
			if i%4 == 0 {
				s.SharingKey = "k"
				// Ports and labels in a shuffled order must not matter.
				s.Ports = tcp(int32(i), int32(i+1000), int32(i+2000))
				rng.Shuffle(len(s.Ports), func(x, y int) { s.Ports[x], s.Ports[y] = s.Ports[y], s.Ports[x] })
			}
			s.Labels = map[string]string{"x": "1", "y": "2", "z": "3"}
			got, err := a.Ensure(s)
			out += fmt.Sprintf("%s:%v:%v;", s.Key, got, err)
			if i%7 == 0 {
				a.Release(fmt.Sprintf("ns/s%d", i/2))
			}
		}
		return out + snapshot(a)
	}
	want := run(0)
	for seed := uint64(1); seed < 6; seed++ {
		if got := run(seed); got != want {
			t.Fatalf("seed %d produced a different result", seed)
		}
	}
}

func TestLargeIPv6Pool(t *testing.T) {
	const n = 100_000
	a := newAlloc(t, mkPool(t, "big", "2001:db8::/64"), mkPool(t, "bigger", "2001:db9::/48"))
	keys := make([]string, n)
	for i := range keys {
		keys[i] = "ns/s" + itoa(i)
	}
	start := time.Now()
	s := &Service{Namespace: "ns", Families: famV6}
	for i, k := range keys {
		s.Key = k
		got, err := a.Ensure(s)
		if err != nil {
			t.Fatal(err)
		}
		if i == n-1 {
			if want := "2001:db8::1:869f"; got.IPs[0].String() != want {
				t.Fatalf("last = %s, want %s", got.IPs[0], want)
			}
		}
	}
	// Generous: the point is that it is not quadratic (that would take
	// minutes), not a benchmark.
	if d := time.Since(start); d > 20*time.Second {
		t.Fatalf("100k allocations took %v", d)
	}
	u, _ := a.Usage("big")
	if u.AssignedV6 != n || u.AvailableV6 != ^uint64(0)-n+1 {
		t.Fatalf("usage %+v", u)
	}
	// Release a few in the middle: the lowest hole is reused first.
	a.Release("ns/s70000")
	a.Release("ns/s500")
	s.Key = "ns/again"
	if got := mustEnsure(t, a, s); got.IPs[0].String() != "2001:db8::1f4" {
		t.Fatalf("reuse got %v", got.IPs)
	}
	// The far end of a /48 is reachable and counted.
	r := &Service{Key: "ns/far", Namespace: "ns", Families: famV6, RequestedIPs: addrs("2001:db9:0:ffff:ffff:ffff:ffff:ffff")}
	checkResult(t, mustEnsure(t, a, r), nil, "bigger", "2001:db9:0:ffff:ffff:ffff:ffff:ffff", "")
}

func TestRecordIsolation(t *testing.T) {
	// Changing the caller's maps after Ensure must not change matching.
	p := mkPool(t, "p", "10.0.0.0/24")
	p.Allocation = &config.ServiceAllocation{ServiceSelectors: nil, Namespaces: []string{"ns"}}
	a := newAlloc(t, p)
	s := svc("ns/x")
	s.Labels = map[string]string{"a": "1"}
	mustEnsure(t, a, s)
	s.Labels["a"] = "2"
	if a.svcs["ns/x"].labels["a"] != "1" {
		t.Fatal("allocator aliases the caller's label map")
	}
}

func TestNilAndEmptyService(t *testing.T) {
	a := newAlloc(t, mkPool(t, "p", "10.0.0.0/24"))
	if _, err := a.Ensure(nil); reasonOf(t, err) != ReasonInvalidRequest {
		t.Fatalf("nil service: %v", err)
	}
	if _, err := a.Ensure(&Service{Families: famV4}); reasonOf(t, err) != ReasonInvalidRequest {
		t.Fatalf("empty key: %v", err)
	}
	if _, err := a.Ensure(&Service{Key: "ns/x", Families: []Family{Family(9)}}); reasonOf(t, err) != ReasonInvalidRequest {
		t.Fatalf("bad family: %v", err)
	}
}

func TestStrings(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{IPv4.String(), "IPv4"}, {IPv6.String(), "IPv6"}, {Family(5).String(), "Family(5)"},
		{SingleStack.String(), "SingleStack"}, {PreferDualStack.String(), "PreferDualStack"},
		{RequireDualStack.String(), "RequireDualStack"}, {FamilyPolicy(9).String(), "FamilyPolicy(9)"},
		{string(ReasonInvalidRequest), "InvalidRequest"}, {string(ReasonUnknownPool), "UnknownPool"},
		{string(ReasonPoolNotAllowed), "PoolNotAllowed"}, {string(ReasonIPNotInPool), "IPNotInPool"},
		{string(ReasonIPInUse), "IPInUse"}, {string(ReasonNoMatchingPool), "NoMatchingPool"},
		{string(ReasonPoolExhausted), "PoolExhausted"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

func TestNamespaceLabelsSharedAndIsolated(t *testing.T) {
	a := newAlloc(t, mkPool(t, "p", "10.0.0.0/24"))
	x, y := svc("ns/x"), svc("ns/y")
	x.NamespaceLabels = map[string]string{"env": "prod"}
	y.NamespaceLabels = map[string]string{"env": "prod"}
	mustEnsure(t, a, x)
	mustEnsure(t, a, y)
	rx, ry := a.svcs["ns/x"].nsLabels, a.svcs["ns/y"].nsLabels
	if reflect.ValueOf(rx).Pointer() != reflect.ValueOf(ry).Pointer() {
		t.Error("two Services of one namespace keep separate copies of its labels")
	}
	x.NamespaceLabels["env"] = "dev"
	if rx["env"] != "prod" {
		t.Fatal("allocator aliases the caller's namespace label map")
	}
	// Changed labels get a new copy; the old holder keeps what it saw.
	z := svc("ns/z")
	z.NamespaceLabels = map[string]string{"env": "test"}
	mustEnsure(t, a, z)
	if a.svcs["ns/z"].nsLabels["env"] != "test" || a.svcs["ns/y"].nsLabels["env"] != "prod" {
		t.Fatal("namespace label copies mixed up")
	}
}
