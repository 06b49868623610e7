package config

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/keeperlb/keeperlb/api/v1beta1"
	"github.com/keeperlb/keeperlb/api/v1beta2"
)

func TestErrorsFormatAndOrder(t *testing.T) {
	_, err := Parse(Resources{Namespace: ns, Pools: []v1beta1.IPAddressPool{
		pool("red", "banana"),
		pool("blue", "198.18.0.0/24", "198.18.0.0/33"),
		pool("blue2"),
	}})
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("Parse error = %v (%T), want Errors", err, err)
	}
	want := `IPAddressPool metallb-system/blue: spec.addresses[1]: "198.18.0.0/33" is neither a CIDR nor a range; ` +
		`IPAddressPool metallb-system/blue2: spec.addresses: no addresses: a pool needs at least one CIDR or range; ` +
		`IPAddressPool metallb-system/red: spec.addresses[0]: "banana" is neither a CIDR nor a range`
	if err.Error() != want {
		t.Errorf("Error() =\n%s\nwant\n%s", err.Error(), want)
	}
	if !slices.IsSortedFunc(errs, compareFieldErrors) {
		t.Errorf("errors are not sorted: %v", errs)
	}

	got := errs.ForObject(KindIPAddressPool, ns, "blue")
	if len(got) != 1 || got[0].Field != "spec.addresses[1]" {
		t.Errorf("ForObject(blue) = %v", got)
	}
	if got := errs.ForObject(KindIPAddressPool, "default", "blue"); got != nil {
		t.Errorf("ForObject in another namespace = %v, want nil", got)
	}
	if got := errs.ForObject(KindL2Advertisement, ns, "blue"); got != nil {
		t.Errorf("ForObject of another kind = %v, want nil", got)
	}

	// Error() sorts even a hand-built, unsorted list, and survives nils.
	hand := Errors{
		{Kind: "B", Name: "x", Field: "f", Reason: "r"},
		nil,
		{Kind: "A", Namespace: "n", Name: "y", Field: "f", Reason: "r"},
	}
	if got, want := hand.Error(), "<nil>; A n/y: f: r; B x: f: r"; got != want {
		t.Errorf("hand.Error() = %q, want %q", got, want)
	}
	if hand[0].Kind != "B" {
		t.Errorf("Error() reordered the receiver")
	}
}

func TestConfigPool(t *testing.T) {
	cfg, err := Parse(Resources{Namespace: ns, Pools: []v1beta1.IPAddressPool{
		pool("c", "198.18.2.0/24"), pool("a", "198.18.0.0/24"), pool("b", "198.18.1.0/24"),
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a", "b", "c"} {
		if p := cfg.Pool(name); p == nil || p.Name != name {
			t.Errorf("Pool(%q) = %v", name, p)
		}
	}
	for _, name := range []string{"", "0", "bb", "d"} {
		if p := cfg.Pool(name); p != nil {
			t.Errorf("Pool(%q) = %v, want nil", name, p)
		}
	}
	var nilCfg *Config
	if nilCfg.Pool("a") != nil {
		t.Error("nil Config found a pool")
	}
	hand := &Config{Pools: []*Pool{{Name: "z"}, nil, {Name: "a"}}}
	if p := hand.Pool("a"); p == nil || p.Name != "a" {
		t.Errorf("unsorted Config: Pool(a) = %v", p)
	}
	var nilPool *Pool
	if v4, v6 := nilPool.Families(); v4 || v6 {
		t.Error("nil pool has families")
	}
}

func TestServiceAllocationMatches(t *testing.T) {
	cfg, err := Parse(Resources{Namespace: ns, Pools: []v1beta1.IPAddressPool{
		poolWithAlloc("empty", v1beta1.ServiceAllocation{Priority: 1}, "198.18.0.0/24"),
		poolWithAlloc("ns-list", v1beta1.ServiceAllocation{Namespaces: []string{"web", "api"}}, "198.18.1.0/24"),
		poolWithAlloc("ns-sel", v1beta1.ServiceAllocation{NamespaceSelectors: []metav1.LabelSelector{sel("team", "a"), sel("team", "b")}}, "198.18.2.0/24"),
		poolWithAlloc("ns-both", v1beta1.ServiceAllocation{Namespaces: []string{"web"}, NamespaceSelectors: []metav1.LabelSelector{sel("team", "a")}}, "198.18.3.0/24"),
		poolWithAlloc("svc", v1beta1.ServiceAllocation{ServiceSelectors: []metav1.LabelSelector{sel("app", "x"), sel("app", "y")}}, "198.18.4.0/24"),
		poolWithAlloc("ns-and-svc", v1beta1.ServiceAllocation{Namespaces: []string{"web"}, ServiceSelectors: []metav1.LabelSelector{sel("app", "x")}}, "198.18.5.0/24"),
	}})
	if err != nil {
		t.Fatal(err)
	}
	teamA := map[string]string{"team": "a"}
	appX := map[string]string{"app": "x"}
	tests := []struct {
		pool      string
		namespace string
		nsLabels  map[string]string
		svcLabels map[string]string
		want      bool
	}{
		{"empty", "anything", nil, nil, true},
		{"ns-list", "web", nil, nil, true},
		{"ns-list", "api", nil, appX, true},
		{"ns-list", "other", teamA, nil, false},
		{"ns-sel", "other", teamA, nil, true},
		{"ns-sel", "other", map[string]string{"team": "b"}, nil, true},
		{"ns-sel", "other", map[string]string{"team": "c"}, nil, false},
		{"ns-sel", "other", nil, nil, false},
		{"ns-both", "web", nil, nil, true},
		{"ns-both", "other", teamA, nil, true},
		{"ns-both", "other", nil, nil, false},
		{"svc", "any", nil, appX, true},
		{"svc", "any", nil, map[string]string{"app": "y"}, true},
		{"svc", "any", nil, map[string]string{"app": "z"}, false},
		{"svc", "any", nil, nil, false},
		{"ns-and-svc", "web", nil, appX, true},
		{"ns-and-svc", "web", nil, nil, false},
		{"ns-and-svc", "api", nil, appX, false},
	}
	for _, tt := range tests {
		a := cfg.Pool(tt.pool).Allocation
		if got := a.Matches(tt.namespace, tt.nsLabels, tt.svcLabels); got != tt.want {
			t.Errorf("%s.Matches(%q, %v, %v) = %v, want %v", tt.pool, tt.namespace, tt.nsLabels, tt.svcLabels, got, tt.want)
		}
	}
	var none *ServiceAllocation
	if !none.Matches("x", nil, nil) {
		t.Error("a nil allocation must admit every Service")
	}
	// The namespace part alone: Service selectors do not count.
	for _, tt := range []struct {
		pool, namespace string
		nsLabels        map[string]string
		want            bool
	}{
		{"svc", "any", nil, true},
		{"ns-and-svc", "web", nil, true},
		{"ns-and-svc", "api", nil, false},
		{"ns-sel", "other", teamA, true},
		{"ns-sel", "other", nil, false},
		{"ns-list", "other", teamA, false},
	} {
		if got := cfg.Pool(tt.pool).Allocation.AdmitsNamespace(tt.namespace, tt.nsLabels); got != tt.want {
			t.Errorf("%s.AdmitsNamespace(%q, %v) = %v, want %v", tt.pool, tt.namespace, tt.nsLabels, got, tt.want)
		}
	}
	if !none.AdmitsNamespace("x", nil) {
		t.Error("a nil allocation must admit every namespace")
	}
}

func TestProfileInUse(t *testing.T) {
	r := Resources{Namespace: ns, Peers: []v1beta2.BGPPeer{
		peer("zeta", "192.0.2.1", func(s *v1beta2.BGPPeerSpec) { s.BFDProfile = "fast" }),
		peer("alpha", "192.0.2.2", func(s *v1beta2.BGPPeerSpec) { s.BFDProfile = "fast" }),
		peer("slow", "192.0.2.3", func(s *v1beta2.BGPPeerSpec) { s.BFDProfile = "slow" }),
		peer("none", "192.0.2.4", nil),
		with(peer("elsewhere", "192.0.2.5", func(s *v1beta2.BGPPeerSpec) { s.BFDProfile = "fast" }), func(p *v1beta2.BGPPeer) { p.Namespace = "default" }),
		peer("alpha", "192.0.2.6", func(s *v1beta2.BGPPeerSpec) { s.BFDProfile = "fast" }),
	}}
	if got, want := ProfileInUse(r, "fast"), []string{"alpha", "zeta"}; !slices.Equal(got, want) {
		t.Errorf("ProfileInUse(fast) = %v, want %v", got, want)
	}
	if got := ProfileInUse(r, "unused"); len(got) != 0 {
		t.Errorf("ProfileInUse(unused) = %v, want none", got)
	}
	if got := ProfileInUse(r, ""); len(got) != 0 {
		t.Errorf(`ProfileInUse("") = %v, want none`, got)
	}
}

// fullResources is a valid configuration using every kind and most
// fields.
func fullResources() Resources {
	return Resources{
		Namespace: ns,
		Pools: []v1beta1.IPAddressPool{
			labeledPool("gold", map[string]string{"tier": "gold"}, "198.18.0.0/24", "2001:db8::/120"),
			poolWithAlloc("web", v1beta1.ServiceAllocation{Priority: 2, Namespaces: []string{"web"}}, "198.18.1.0-198.18.1.99"),
			pool("spare", "198.18.2.0/25"),
		},
		L2Advs: []v1beta1.L2Advertisement{
			l2("l2-web", v1beta1.L2AdvertisementSpec{IPAddressPools: []string{"web"}, Interfaces: []string{"eth0"}}),
			l2("l2-all", v1beta1.L2AdvertisementSpec{}),
		},
		BGPAdvs: []v1beta1.BGPAdvertisement{
			bgpAdv("gold-aggregated", v1beta1.BGPAdvertisementSpec{
				IPAddressPoolSelectors: []metav1.LabelSelector{sel("tier", "gold")},
				AggregationLength:      ptr[int32](24),
				AggregationLengthV6:    ptr[int32](120),
				LocalPref:              50,
				Communities:            []string{"blackhole", "large:1:2:3"},
			}),
			bgpAdv("host-routes", v1beta1.BGPAdvertisementSpec{Peers: []string{"tor-b", "tor-a"}}),
		},
		Peers: []v1beta2.BGPPeer{
			peer("tor-b", "192.0.2.2", func(s *v1beta2.BGPPeerSpec) {
				s.PasswordSecret = corev1.SecretReference{Name: "tor-password"}
				s.HoldTime = dur("9s")
				s.KeepaliveTime = dur("3s")
			}),
			peer("tor-a", "192.0.2.1", func(s *v1beta2.BGPPeerSpec) {
				s.BFDProfile = "fast"
				s.NodeSelectors = []metav1.LabelSelector{sel("rack", "a")}
			}),
		},
		BFDProfiles: []v1beta1.BFDProfile{bfdProfile("fast", v1beta1.BFDProfileSpec{ReceiveInterval: ptr[uint32](100)})},
		Communities: []v1beta1.Community{communityObj("well-known", "blackhole", "65535:666")},
		Secrets:     []corev1.Secret{secret("tor-password", corev1.SecretTypeBasicAuth, map[string]string{"password": "pw"})},
		Nodes:       []corev1.Node{node("n1", "rack", "a"), node("n2", "rack", "b")},
	}
}

func TestParseFullConfig(t *testing.T) {
	cfg, err := Parse(fullResources())
	if err != nil {
		t.Fatal(err)
	}
	names := func(n int, name func(int) string) []string {
		var out []string
		for i := range n {
			out = append(out, name(i))
		}
		return out
	}
	checks := []struct {
		what      string
		got, want []string
	}{
		{"pools", names(len(cfg.Pools), func(i int) string { return cfg.Pools[i].Name }), []string{"gold", "spare", "web"}},
		{"peers", names(len(cfg.Peers), func(i int) string { return cfg.Peers[i].Name }), []string{"tor-a", "tor-b"}},
		{"bfd", names(len(cfg.BFDProfiles), func(i int) string { return cfg.BFDProfiles[i].Name }), []string{"fast"}},
		{"l2", names(len(cfg.L2Advertisements), func(i int) string { return cfg.L2Advertisements[i].Name }), []string{"l2-all", "l2-web"}},
		{"bgp", names(len(cfg.BGPAdvertisements), func(i int) string { return cfg.BGPAdvertisements[i].Name }), []string{"gold-aggregated", "host-routes"}},
		{"l2-all pools", cfg.L2Advertisements[0].Pools, []string{"gold", "spare", "web"}},
		{"l2-web pools", cfg.L2Advertisements[1].Pools, []string{"web"}},
		{"gold-aggregated pools", cfg.BGPAdvertisements[0].Pools, []string{"gold"}},
		{"host-routes peers", cfg.BGPAdvertisements[1].Peers, []string{"tor-a", "tor-b"}},
	}
	for _, c := range checks {
		if !slices.Equal(c.got, c.want) {
			t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
		}
	}
	if got := cfg.BGPAdvertisements[0].Communities; len(got) != 2 || got[0].String() != "65535:666" || got[1].String() != "large:1:2:3" {
		t.Errorf("communities = %v", got)
	}
	torB := cfg.Peers[1]
	if torB.Password != "pw" || *torB.HoldTime != 9*time.Second || *torB.KeepaliveTime != 3*time.Second {
		t.Errorf("tor-b = %+v", torB)
	}
	if cfg.BFDProfiles[0].ReceiveInterval != 100 || cfg.BFDProfiles[0].TransmitInterval != 300 {
		t.Errorf("fast = %+v", cfg.BFDProfiles[0])
	}
}

// TestParseOrderIndependent feeds the same objects in other orders and
// expects the same Config, or the same errors.
func TestParseOrderIndependent(t *testing.T) {
	reorder := func(r Resources, perm func(n int) []int) Resources {
		pick := func(n int) []int { return perm(n) }
		out := r
		out.Pools = permute(r.Pools, pick(len(r.Pools)))
		out.L2Advs = permute(r.L2Advs, pick(len(r.L2Advs)))
		out.BGPAdvs = permute(r.BGPAdvs, pick(len(r.BGPAdvs)))
		out.Peers = permute(r.Peers, pick(len(r.Peers)))
		out.BFDProfiles = permute(r.BFDProfiles, pick(len(r.BFDProfiles)))
		out.Communities = permute(r.Communities, pick(len(r.Communities)))
		out.Secrets = permute(r.Secrets, pick(len(r.Secrets)))
		out.Nodes = permute(r.Nodes, pick(len(r.Nodes)))
		return out
	}
	reverse := func(n int) []int {
		p := make([]int, n)
		for i := range p {
			p[i] = n - 1 - i
		}
		return p
	}
	rotate := func(n int) []int {
		p := make([]int, n)
		for i := range p {
			p[i] = (i + 1) % n
		}
		return p
	}

	valid := fullResources()
	base, err := Parse(valid)
	if err != nil {
		t.Fatal(err)
	}
	for _, perm := range []func(int) []int{reverse, rotate} {
		got, err := Parse(reorder(valid, perm))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, base) {
			t.Errorf("reordered input gave a different Config")
		}
	}

	invalid := fullResources()
	invalid.Pools = append(invalid.Pools, pool("overlap", "198.18.0.128/25", "bad"),
		// A second copy of "spare" whose content differs: which copy the
		// cross-object rules keep must not depend on the input order.
		pool("spare", "198.18.0.0/30"))
	invalid.Peers = append(invalid.Peers, peer("tor-c", "192.0.2.1", func(s *v1beta2.BGPPeerSpec) { s.MyASN = 1; s.RouterID = "10.9.9.9" }))
	invalid.BGPAdvs = append(invalid.BGPAdvs, bgpAdv("pref", v1beta1.BGPAdvertisementSpec{IPAddressPools: []string{"gold"}, LocalPref: 7,
		AggregationLength: ptr[int32](24), AggregationLengthV6: ptr[int32](120)}))
	_, baseErr := Parse(invalid)
	if baseErr == nil {
		t.Fatal("invalid configuration parsed")
	}
	for _, perm := range []func(int) []int{reverse, rotate} {
		_, err := Parse(reorder(invalid, perm))
		if err == nil || err.Error() != baseErr.Error() {
			t.Errorf("reordered input gave errors\n%v\nwant\n%v", err, baseErr)
		}
	}
}

func permute[T any](in []T, perm []int) []T {
	out := make([]T, len(in))
	for i, j := range perm {
		out[i] = in[j]
	}
	return out
}

// TestParseDoesNotAlias checks that the Config shares no mutable state with
// the input objects, so callers may reuse or mutate their informer copies.
func TestParseDoesNotAlias(t *testing.T) {
	r := fullResources()
	cfg, err := Parse(r)
	if err != nil {
		t.Fatal(err)
	}
	r.Pools[0].Labels["tier"] = "lead"
	r.Pools[1].Spec.ServiceAllocation.Namespaces[0] = "changed"
	r.L2Advs[0].Spec.Interfaces[0] = "changed"
	if cfg.Pool("gold").Labels["tier"] != "gold" {
		t.Error("pool labels alias the input")
	}
	if cfg.Pool("web").Allocation.Namespaces[0] != "web" {
		t.Error("allocation namespaces alias the input")
	}
	if cfg.L2Advertisements[1].Interfaces[0] != "eth0" {
		t.Error("interfaces alias the input")
	}
}

func TestParseEmpty(t *testing.T) {
	cfg, err := Parse(Resources{})
	if err != nil || cfg == nil {
		t.Fatalf("Parse(empty) = %v, %v", cfg, err)
	}
	if len(cfg.Pools)+len(cfg.Peers)+len(cfg.BFDProfiles)+len(cfg.L2Advertisements)+len(cfg.BGPAdvertisements) != 0 {
		t.Errorf("empty input gave %+v", cfg)
	}
}

// fuzzInput is the part of a configuration FuzzParse varies.
type fuzzInput struct {
	addr1, addr2, comm1, alias, aliasValue      string
	peerAddr, srcAddr, routerID, iface, dynamic string
	myASN, peerASN                              uint32
	hold, keepalive                             int64
	aggLen                                      int32
	labelKey, labelValue                        string
}

// fuzzResources builds a configuration that uses every kind, with the
// fuzzed values in the fields that parse text or relate objects.
func fuzzResources(in fuzzInput) Resources {
	var interfaces []string
	if in.iface != "" {
		interfaces = []string{in.iface}
	}
	return Resources{
		Namespace: ns,
		Pools: []v1beta1.IPAddressPool{
			labeledPool("one", map[string]string{in.labelKey: in.labelValue}, in.addr1),
			pool("two", in.addr2),
		},
		Communities: []v1beta1.Community{communityObj("aliases", in.alias, in.aliasValue)},
		BGPAdvs: []v1beta1.BGPAdvertisement{
			bgpAdv("adv", v1beta1.BGPAdvertisementSpec{
				AggregationLength:      &in.aggLen,
				AggregationLengthV6:    &in.aggLen,
				Communities:            []string{in.comm1, in.alias},
				IPAddressPoolSelectors: []metav1.LabelSelector{sel(in.labelKey, in.labelValue)},
				Peers:                  []string{"p1"},
			}),
			bgpAdv("all", v1beta1.BGPAdvertisementSpec{Communities: []string{in.aliasValue}}),
		},
		L2Advs: []v1beta1.L2Advertisement{l2("l2", v1beta1.L2AdvertisementSpec{
			Interfaces:    interfaces,
			NodeSelectors: []metav1.LabelSelector{sel(in.labelKey, in.labelValue)},
		})},
		BFDProfiles: []v1beta1.BFDProfile{bfdProfile("echo", v1beta1.BFDProfileSpec{EchoMode: ptr(true), ReceiveInterval: ptr(uint32(in.aggLen))})},
		Peers: []v1beta2.BGPPeer{
			peer("p1", in.peerAddr, func(s *v1beta2.BGPPeerSpec) {
				s.MyASN = in.myASN
				s.PeerASN = in.peerASN
				s.DynamicASN = v1beta2.DynamicASNMode(in.dynamic)
				s.SourceAddress = in.srcAddr
				s.RouterID = in.routerID
				s.Interface = in.iface
				s.HoldTime = &metav1.Duration{Duration: time.Duration(in.hold)}
				s.KeepaliveTime = &metav1.Duration{Duration: time.Duration(in.keepalive)}
				s.BFDProfile = "echo"
				s.NodeSelectors = []metav1.LabelSelector{sel(in.labelKey, in.labelValue)}
				s.PasswordSecret = corev1.SecretReference{Name: in.alias}
			}),
			peer("p2", "203.0.113.1", func(s *v1beta2.BGPPeerSpec) { s.RouterID = in.routerID; s.MyASN = in.myASN }),
		},
		Secrets: []corev1.Secret{secret("gold", corev1.SecretTypeBasicAuth, map[string]string{"password": in.aliasValue})},
		Nodes:   []corev1.Node{node("n1", in.labelKey, in.labelValue), node("n2")},
	}
}

// validFuzzInput parses; the test below keeps it so, so that the fuzzer
// starts from a point where the success path is reachable.
func validFuzzInput() fuzzInput {
	return fuzzInput{
		addr1: "198.18.0.0/24", addr2: "198.19.0.0-198.19.0.9", comm1: "65000:1", alias: "gold", aliasValue: "65535:666",
		peerAddr: "192.0.2.1", routerID: "10.0.0.1", myASN: 64500, peerASN: 64501, hold: 9e9, keepalive: 3e9,
		aggLen: 24, labelKey: "tier", labelValue: "gold",
	}
}

func TestFuzzSeedParses(t *testing.T) {
	cfg, err := Parse(fuzzResources(validFuzzInput()))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Peers[0].Password; got != "65535:666" {
		t.Errorf("p1 password = %q", got)
	}
}

func FuzzParse(f *testing.F) {
	v := validFuzzInput()
	f.Add(v.addr1, v.addr2, v.comm1, v.alias, v.aliasValue, v.peerAddr, v.srcAddr, v.routerID, v.iface, v.dynamic,
		v.myASN, v.peerASN, v.hold, v.keepalive, v.aggLen, v.labelKey, v.labelValue)
	f.Add("198.18.0.1-198.18.0.9", "198.18.0.5/32", "large:1:2:3", "x", "bad", "fe80::1%eth0", "::ffff:1.2.3.4", "2001:db8::1", "eth0", "internal", uint32(0), uint32(0), int64(-1), int64(1e9), int32(-5), "bad key", "")
	f.Add("", "::/0", "65536:1", "", "", "", "nope", "0.0.0.0", "", "external", uint32(4294967295), uint32(4294967295), int64(0), int64(0), int32(200), "", "v")
	f.Fuzz(func(t *testing.T, addr1, addr2, comm1, alias, aliasValue, peerAddr, srcAddr, routerID, iface, dynamic string,
		myASN, peerASN uint32, hold, keepalive int64, aggLen int32, labelKey, labelValue string) {
		r := fuzzResources(fuzzInput{
			addr1: addr1, addr2: addr2, comm1: comm1, alias: alias, aliasValue: aliasValue,
			peerAddr: peerAddr, srcAddr: srcAddr, routerID: routerID, iface: iface, dynamic: dynamic,
			myASN: myASN, peerASN: peerASN, hold: hold, keepalive: keepalive, aggLen: aggLen,
			labelKey: labelKey, labelValue: labelValue,
		})
		cfg, err := Parse(r)
		if (cfg == nil) == (err == nil) {
			t.Fatalf("Parse returned config %v and error %v; want exactly one", cfg, err)
		}
		if err != nil {
			errs, ok := err.(Errors)
			if !ok || len(errs) == 0 {
				t.Fatalf("error %v (%T) is not a non-empty Errors", err, err)
			}
			for _, e := range errs {
				if e == nil || e.Kind == "" || e.Name == "" || e.Field == "" || e.Reason == "" || e.Namespace != ns {
					t.Fatalf("incomplete error %#v in %v", e, err)
				}
			}
			if !slices.IsSortedFunc(errs, compareFieldErrors) {
				t.Fatalf("errors not sorted: %v", err)
			}
			if err.Error() == "" || strings.Count(err.Error(), "; ") < len(errs)-1 {
				t.Fatalf("bad message %q", err.Error())
			}
		} else {
			for i, p := range cfg.Pools {
				if cfg.Pool(p.Name) != p {
					t.Fatalf("Pool(%q) does not find pool %d", p.Name, i)
				}
				for j, rg := range p.Ranges {
					if j > 0 && p.Ranges[j-1].Last.Compare(rg.First) >= 0 {
						t.Fatalf("pool %s ranges not sorted and disjoint: %v", p.Name, p.Ranges)
					}
				}
			}
		}
		// Same input, other order: same outcome.
		r.Pools = permute(r.Pools, []int{1, 0})
		r.Peers = permute(r.Peers, []int{1, 0})
		r.BGPAdvs = permute(r.BGPAdvs, []int{1, 0})
		cfg2, err2 := Parse(r)
		if (err == nil) != (err2 == nil) || (err != nil && err.Error() != err2.Error()) {
			t.Fatalf("order changed the outcome:\n%v\n%v", err, err2)
		}
		if err == nil && !reflect.DeepEqual(cfg, cfg2) {
			t.Fatalf("order changed the Config")
		}
	})
}
