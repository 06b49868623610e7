package election

import (
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/keeperlb/keeperlb/internal/config"
)

var (
	vip  = netip.MustParseAddr("198.18.0.10")
	vip6 = netip.MustParseAddr("2001:db8::10")
)

func pool(name string) *config.Pool {
	return &config.Pool{Name: name, AutoAssign: true, Ranges: []config.Range{
		{First: netip.MustParseAddr("198.18.0.0"), Last: netip.MustParseAddr("198.18.0.255")},
		{First: netip.MustParseAddr("2001:db8::"), Last: netip.MustParseAddr("2001:db8::ffff")},
	}}
}

func cfgWith(ads ...*config.L2Advertisement) *config.Config {
	return &config.Config{Pools: []*config.Pool{pool("p")}, L2Advertisements: ads}
}

func ad(name string, mods ...func(*config.L2Advertisement)) *config.L2Advertisement {
	a := &config.L2Advertisement{Name: name, Pools: []string{"p"}}
	for _, m := range mods {
		m(a)
	}
	return a
}

func sel(kv ...string) labels.Selector {
	set := labels.Set{}
	for i := 0; i+1 < len(kv); i += 2 {
		set[kv[i]] = kv[i+1]
	}
	return labels.SelectorFromSet(set)
}

func nodes(names ...string) []Node {
	out := make([]Node, len(names))
	for i, n := range names {
		out[i] = Node{Name: n, Labels: map[string]string{"kubernetes.io/hostname": n}}
	}
	return out
}

func svc(key string, mods ...func(*Service)) Service {
	s := Service{Key: key, IPs: []netip.Addr{vip}, Serving: true}
	for _, m := range mods {
		m(&s)
	}
	return s
}

func owners(r L2Result) map[netip.Addr]string {
	out := map[netip.Addr]string{}
	for _, a := range r.Announcements {
		out[a.IP] = a.Node
	}
	return out
}

func skipReasons(r L2Result) []string {
	var out []string
	for _, s := range r.Skipped {
		out = append(out, s.Service+" "+s.IP.String()+" "+s.Reason)
	}
	return out
}

func TestL2(t *testing.T) {
	all := []string{"n1", "n2", "n3"}
	cases := []struct {
		name string
		in   L2Input
		// owner is the expected announcer of vip; "" means not announced.
		owner string
		// among, when set, replaces owner: the announcer must be the
		// rendezvous winner among these nodes.
		among      []string
		interfaces []string
		skips      []string
	}{
		{
			name:  "every live node is a candidate",
			in:    L2Input{Config: cfgWith(ad("a")), Nodes: nodes(all...), Live: all, Services: []Service{svc("ns/s")}},
			among: all,
		},
		{
			name:  "dead speakers are not candidates",
			in:    L2Input{Config: cfgWith(ad("a")), Nodes: nodes(all...), Live: []string{"n2"}, Services: []Service{svc("ns/s")}},
			owner: "n2",
		},
		{
			name: "NetworkUnavailable nodes are not candidates",
			in: L2Input{Config: cfgWith(ad("a")), Live: all, Services: []Service{svc("ns/s")},
				Nodes: []Node{{Name: "n1", NetworkUnavailable: true}, {Name: "n2", NetworkUnavailable: true}, {Name: "n3"}}},
			owner: "n3",
		},
		{
			name: "the exclude label removes a node",
			in: L2Input{Config: cfgWith(ad("a")), Live: all, Services: []Service{svc("ns/s")},
				Nodes: []Node{{Name: "n1", Labels: map[string]string{ExcludeLabel: ""}}, {Name: "n2", Labels: map[string]string{ExcludeLabel: "true"}}, {Name: "n3"}}},
			owner: "n3",
		},
		{
			name: "nodeSelectors restrict the candidates",
			in: L2Input{Config: cfgWith(ad("a", func(a *config.L2Advertisement) {
				a.NodeSelectors = []labels.Selector{sel("kubernetes.io/hostname", "n1"), sel("kubernetes.io/hostname", "n3")}
			})), Nodes: nodes(all...), Live: all, Services: []Service{svc("ns/s")}},
			among: []string{"n1", "n3"},
		},
		{
			name:  "nodes not in the Node list are ignored even if alive",
			in:    L2Input{Config: cfgWith(ad("a")), Nodes: nodes("n1"), Live: all, Services: []Service{svc("ns/s")}},
			owner: "n1",
		},
		{
			name: "externalTrafficPolicy Local keeps nodes with a serving endpoint",
			in: L2Input{Config: cfgWith(ad("a")), Nodes: nodes(all...), Live: all, Services: []Service{svc("ns/s", func(s *Service) {
				s.LocalTrafficPolicy = true
				s.ServingNodes = []string{"n2"}
			})}},
			owner: "n2",
		},
		{
			name: "externalTrafficPolicy Local with endpoints only on dead nodes",
			in: L2Input{Config: cfgWith(ad("a")), Nodes: nodes(all...), Live: []string{"n1", "n3"}, Services: []Service{svc("ns/s", func(s *Service) {
				s.LocalTrafficPolicy = true
				s.ServingNodes = []string{"n2"}
			})}},
			skips: []string{"ns/s 198.18.0.10 NoEligibleNode"},
		},
		{
			name:  "no serving endpoint, no announcement",
			in:    L2Input{Config: cfgWith(ad("a")), Nodes: nodes(all...), Live: all, Services: []Service{svc("ns/s", func(s *Service) { s.Serving = false })}},
			skips: []string{"ns/s 198.18.0.10 NoServingEndpoints"},
		},
		{
			name: "no advertisement for the pool",
			in: L2Input{Config: cfgWith(ad("a", func(a *config.L2Advertisement) { a.Pools = []string{"other"} })),
				Nodes: nodes(all...), Live: all, Services: []Service{svc("ns/s")}},
			skips: []string{"ns/s 198.18.0.10 NoL2Advertisement"},
		},
		{
			name: "serviceSelectors that do not match",
			in: L2Input{Config: cfgWith(ad("a", func(a *config.L2Advertisement) { a.ServiceSelectors = []labels.Selector{sel("tier", "web")} })),
				Nodes: nodes(all...), Live: all, Services: []Service{svc("ns/s")}},
			skips: []string{"ns/s 198.18.0.10 NoL2Advertisement"},
		},
		{
			name: "serviceSelectors that match",
			in: L2Input{Config: cfgWith(ad("a", func(a *config.L2Advertisement) { a.ServiceSelectors = []labels.Selector{sel("tier", "web")} })),
				Nodes: nodes(all...), Live: all, Services: []Service{svc("ns/s", func(s *Service) { s.Labels = map[string]string{"tier": "web"} })}},
			among: all,
		},
		{
			name: "interfaces are the union of the advertisements for the owner",
			in: L2Input{Config: cfgWith(
				ad("a", func(a *config.L2Advertisement) { a.Interfaces = []string{"eth1"} }),
				ad("b", func(a *config.L2Advertisement) { a.Interfaces = []string{"eth0", "eth1"} }),
			), Nodes: nodes("n1"), Live: all, Services: []Service{svc("ns/s")}},
			owner:      "n1",
			interfaces: []string{"eth0", "eth1"},
		},
		{
			name: "an advertisement without interfaces allows all",
			in: L2Input{Config: cfgWith(
				ad("a", func(a *config.L2Advertisement) { a.Interfaces = []string{"eth1"} }),
				ad("b"),
			), Nodes: nodes("n1"), Live: all, Services: []Service{svc("ns/s")}},
			owner: "n1",
		},
		{
			name: "interfaces of an advertisement that does not select the owner do not count",
			in: L2Input{Config: cfgWith(
				ad("a", func(a *config.L2Advertisement) { a.Interfaces = []string{"eth1"} }),
				ad("b", func(a *config.L2Advertisement) {
					a.NodeSelectors = []labels.Selector{sel("kubernetes.io/hostname", "n2")}
				}),
			), Nodes: nodes("n1", "n2"), Live: []string{"n1"}, Services: []Service{svc("ns/s")}},
			owner:      "n1",
			interfaces: []string{"eth1"},
		},
		{
			name: "Services sharing an IP land on a node both accept",
			in: L2Input{Config: cfgWith(ad("a")), Nodes: nodes(all...), Live: all, Services: []Service{
				svc("ns/a", func(s *Service) { s.LocalTrafficPolicy = true; s.ServingNodes = []string{"n1", "n2"} }),
				svc("ns/b", func(s *Service) { s.LocalTrafficPolicy = true; s.ServingNodes = []string{"n2", "n3"} }),
			}},
			owner: "n2",
		},
		{
			name: "Services sharing an IP with no node in common",
			in: L2Input{Config: cfgWith(ad("a")), Nodes: nodes(all...), Live: all, Services: []Service{
				svc("ns/a", func(s *Service) { s.LocalTrafficPolicy = true; s.ServingNodes = []string{"n1"} }),
				svc("ns/b", func(s *Service) { s.LocalTrafficPolicy = true; s.ServingNodes = []string{"n3"} }),
			}},
			skips: []string{"ns/a 198.18.0.10 SharedIPNoCommonNode", "ns/b 198.18.0.10 SharedIPNoCommonNode"},
		},
		{
			name: "an IP outside every pool is not announced",
			in: L2Input{Config: cfgWith(ad("a")), Nodes: nodes("n1"), Live: all, Services: []Service{svc("ns/s", func(s *Service) {
				s.IPs = []netip.Addr{netip.MustParseAddr("198.19.0.1")}
			})}},
			skips: []string{"ns/s 198.19.0.1 NoPool"},
		},
		{
			name: "no configuration, nothing announced",
			in:   L2Input{Nodes: nodes(all...), Live: all, Services: []Service{svc("ns/s")}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := L2(tc.in)
			want := tc.owner
			if tc.among != nil {
				want = Owner(tc.among, vip)
			}
			if got := owners(res)[vip]; got != want {
				t.Errorf("owner of %s = %q, want %q (result %+v)", vip, got, want, res)
			}
			if want != "" && !reflect.DeepEqual(res.Announcements[0].Interfaces, tc.interfaces) {
				t.Errorf("interfaces = %v, want %v", res.Announcements[0].Interfaces, tc.interfaces)
			}
			if got := skipReasons(res); !reflect.DeepEqual(got, tc.skips) {
				t.Errorf("skips = %v, want %v", got, tc.skips)
			}
		})
	}
}

func TestL2SharedIPListsEveryService(t *testing.T) {
	all := []string{"n1", "n2"}
	res := L2(L2Input{Config: cfgWith(ad("a")), Nodes: nodes(all...), Live: all,
		Services: []Service{svc("ns/b"), svc("ns/a"), svc("ns/c", func(s *Service) { s.IPs = []netip.Addr{vip6} })}})
	if len(res.Announcements) != 2 {
		t.Fatalf("want 2 announcements, got %+v", res.Announcements)
	}
	if got := res.Announcements[0]; got.IP != vip || !slices.Equal(got.Services, []string{"ns/a", "ns/b"}) {
		t.Errorf("first announcement %+v, want %s for ns/a and ns/b", got, vip)
	}
	if got := res.Announcements[1]; got.IP != vip6 || !slices.Equal(got.Services, []string{"ns/c"}) {
		t.Errorf("second announcement %+v, want %s for ns/c", got, vip6)
	}
}

// manyServices gives n Services with one distinct IPv4 address each.
func manyServices(n int) []Service {
	out := make([]Service, n)
	for i := range out {
		out[i] = svc(fmt.Sprintf("ns/s%03d", i), func(s *Service) {
			s.IPs = []netip.Addr{netip.AddrFrom4([4]byte{198, 18, 0, byte(i)})}
		})
	}
	return out
}

// TestL2MovesOnlyTheDeadNodesIPs checks the property failover relies on:
// when a node dies, only its IPs move, and they spread over the survivors.
func TestL2MovesOnlyTheDeadNodesIPs(t *testing.T) {
	all := []string{"n1", "n2", "n3", "n4"}
	services := manyServices(200)
	before := owners(L2(L2Input{Config: cfgWith(ad("a")), Nodes: nodes(all...), Live: all, Services: services}))
	after := owners(L2(L2Input{Config: cfgWith(ad("a")), Nodes: nodes(all...), Live: []string{"n1", "n2", "n4"}, Services: services}))
	if len(before) != 200 || len(after) != 200 {
		t.Fatalf("announced %d then %d IPs, want 200 each", len(before), len(after))
	}
	per := map[string]int{}
	movedTo := map[string]int{}
	for ip, was := range before {
		per[was]++
		now := after[ip]
		switch {
		case was == "n3" && now == "n3":
			t.Errorf("%s still on dead node n3", ip)
		case was != "n3" && now != was:
			t.Errorf("%s moved from live %s to %s", ip, was, now)
		case was == "n3":
			movedTo[now]++
		}
	}
	for _, n := range all {
		if per[n] < 25 {
			t.Errorf("node %s owns %d of 200 IPs; rendezvous hashing should spread them (got %v)", n, per[n], per)
		}
	}
	if len(movedTo) < 2 {
		t.Errorf("the dead node's IPs all went to %v; they should spread over the survivors", movedTo)
	}
}

// TestL2IgnoresInputOrder checks that every speaker, whatever order its
// informers list objects in, computes the same result.
func TestL2IgnoresInputOrder(t *testing.T) {
	all := []string{"n1", "n2", "n3"}
	services := manyServices(50)
	services = append(services, svc("ns/z", func(s *Service) { s.Serving = false }))
	in := L2Input{Config: cfgWith(ad("a")), Nodes: nodes(all...), Live: all, Services: services}
	want := L2(in)
	rev := L2Input{Config: in.Config, Nodes: slices.Clone(in.Nodes), Live: slices.Clone(in.Live), Services: slices.Clone(in.Services)}
	slices.Reverse(rev.Nodes)
	slices.Reverse(rev.Live)
	slices.Reverse(rev.Services)
	if got := L2(rev); !reflect.DeepEqual(got, want) {
		t.Errorf("reversed input gave a different result")
	}
}

func TestOwnerIsOrderIndependentAndStable(t *testing.T) {
	a := Owner([]string{"n1", "n2", "n3"}, vip)
	b := Owner([]string{"n3", "n1", "n2"}, vip)
	if a != b {
		t.Fatalf("Owner depends on order: %s vs %s", a, b)
	}
	// The hash is part of the protocol between speakers of different
	// versions: pin a few results (checked independently with Python's
	// hashlib: SHA-256 of name, a zero byte and the 16-byte address) so a
	// change is noticed.
	got := []string{Owner([]string{"n1", "n2", "n3"}, vip), Owner([]string{"n1", "n2", "n3"}, vip6), Owner([]string{"a", "b"}, vip)}
	t.Logf("pinned owners: %v", got)
	if want := []string{"n3", "n2", "a"}; !slices.Equal(got, want) {
		t.Errorf("rendezvous winners changed: got %v, want %v; speakers of different versions would disagree", got, want)
	}
}

// TestL2OneOwnerPerService pins the rule MetalLB follows: every IP of a
// Service, of both families, is announced by the node elected for its first
// IP, whatever node each IP would win on its own.
func TestL2OneOwnerPerService(t *testing.T) {
	// Enough node sets that some split the two families when elected per
	// IP; the test is only meaningful if such a set exists.
	split := 0
	for n := 2; n <= 12; n++ {
		var all []string
		for i := 1; i <= n; i++ {
			all = append(all, fmt.Sprintf("n%d", i))
		}
		if Owner(all, vip) != Owner(all, vip6) {
			split++
		}
		for _, order := range [][]netip.Addr{{vip, vip6}, {vip6, vip}} {
			res := L2(L2Input{Config: cfgWith(ad("a")), Nodes: nodes(all...), Live: all,
				Services: []Service{svc("ns/dual", func(s *Service) { s.IPs = order })}})
			got := owners(res)
			want := Owner(all, order[0])
			if len(got) != 2 || got[vip] != want || got[vip6] != want {
				t.Errorf("%d nodes, IPs %v: owners %v, want both on %s (the first IP's winner)", n, order, got, want)
			}
		}
	}
	if split == 0 {
		t.Fatal("no node set elects the two addresses apart; the test proves nothing")
	}
}

// TestL2SharedIPGroupsLandOnOneNode checks that Services joined through a
// shared IP (a single-stack one sharing the IPv4 address of a dual-stack
// one) are announced by one node, on every IP any of them holds, keyed by
// the smallest first IP among them.
func TestL2SharedIPGroupsLandOnOneNode(t *testing.T) {
	other6 := netip.MustParseAddr("2001:db8::99")
	for n := 2; n <= 8; n++ {
		var all []string
		for i := 1; i <= n; i++ {
			all = append(all, fmt.Sprintf("n%d", i))
		}
		res := L2(L2Input{Config: cfgWith(ad("a")), Nodes: nodes(all...), Live: all, Services: []Service{
			svc("ns/six", func(s *Service) { s.IPs = []netip.Addr{other6} }),
			svc("ns/dual", func(s *Service) { s.IPs = []netip.Addr{vip6, vip} }),
			svc("ns/four", func(s *Service) { s.IPs = []netip.Addr{vip} }),
		}})
		got := owners(res)
		want := Owner(all, vip) // ns/four's first IP is the smallest
		if got[vip] != want || got[vip6] != want {
			t.Errorf("%d nodes: shared group owners %v, want %s", n, got, want)
		}
		if got[other6] != Owner(all, other6) {
			t.Errorf("%d nodes: the unrelated Service's owner %s, want %s", n, got[other6], Owner(all, other6))
		}
	}
}

// TestL2ServiceAddressesWithoutACommonNode checks a Service whose two
// addresses come from pools announced on disjoint nodes: it is refused as a
// whole, with a reason on each address, rather than split across nodes.
func TestL2ServiceAddressesWithoutACommonNode(t *testing.T) {
	p4 := &config.Pool{Name: "four", Ranges: []config.Range{{First: vip, Last: vip}}}
	p6 := &config.Pool{Name: "six", Ranges: []config.Range{{First: vip6, Last: vip6}}}
	cfg := &config.Config{Pools: []*config.Pool{p4, p6}, L2Advertisements: []*config.L2Advertisement{
		{Name: "a", Pools: []string{"four"}, NodeSelectors: []labels.Selector{sel("kubernetes.io/hostname", "n1")}},
		{Name: "b", Pools: []string{"six"}, NodeSelectors: []labels.Selector{sel("kubernetes.io/hostname", "n2")}},
	}}
	res := L2(L2Input{Config: cfg, Nodes: nodes("n1", "n2"), Live: []string{"n1", "n2"},
		Services: []Service{svc("ns/dual", func(s *Service) { s.IPs = []netip.Addr{vip, vip6} })}})
	if len(res.Announcements) != 0 {
		t.Errorf("announcements %+v, want none", res.Announcements)
	}
	if got, want := skipReasons(res), []string{"ns/dual 198.18.0.10 NoEligibleNode", "ns/dual 2001:db8::10 NoEligibleNode"}; !reflect.DeepEqual(got, want) {
		t.Errorf("skips = %v, want %v", got, want)
	}
}
