package bgp

import (
	"net/netip"
	"reflect"
	"testing"

	api "github.com/osrg/gobgp/v4/api"
)

func TestBuildPolicy(t *testing.T) {
	ra, rb := ebgp("ra", rtrV4), ebgp("rb", rtrV6)
	rb.IPv4, rb.NextHopIPv4 = true, nodeV4 // dual-stack over IPv6
	d := Desired{Peers: []PeerConfig{ra, rb}, Paths: []Path{
		{Prefix: pfx("198.19.0.10/32"), Routes: []Route{route("ra", 0, "1:1"), route("rb", 0)}},
		{Prefix: pfx("198.19.0.11/32"), Routes: []Route{route("ra", 0, "1:1"), route("ghost", 0)}},
		{Prefix: pfx("198.19.0.12/32"), Routes: []Route{route("ra", 0, "1:1", "large:1:2:3")}},
		{Prefix: pfx("2001:db8:19::10/128"), Routes: []Route{route("rb", 0, "2:2")}},
	}}
	got := buildPolicy(d)
	want := &exportPolicy{
		neighbors: []netip.Addr{rtrV4, rtrV6},
		statements: []policyStatement{
			{peer: rtrV4, communities: comms("1:1"), prefixes: []netip.Prefix{pfx("198.19.0.10/32"), pfx("198.19.0.11/32")}},
			{peer: rtrV4, communities: comms("1:1", "large:1:2:3"), prefixes: []netip.Prefix{pfx("198.19.0.12/32")}},
			{peer: rtrV6, nextHop: nodeV4, prefixes: []netip.Prefix{pfx("198.19.0.10/32")}},
			{peer: rtrV6, communities: comms("2:2"), prefixes: []netip.Prefix{pfx("2001:db8:19::10/128")}},
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("buildPolicy:\n got %+v\nwant %+v", got, want)
	}
	if !got.equal(buildPolicy(d)) {
		t.Error("two builds of one Desired are not equal")
	}
	other := d
	other.Paths = d.Paths[:3]
	if got.equal(buildPolicy(other)) {
		t.Error("policies of different Desired states compare equal")
	}

	sets, pol := got.apiPolicy()
	if len(sets) != 2+4 || len(pol.Statements) != 4 {
		t.Fatalf("apiPolicy: %d sets and %d statements, want 6 and 4", len(sets), len(pol.Statements))
	}
	st := pol.Statements[1]
	if st.Actions.RouteAction != api.RouteAction_ROUTE_ACTION_ACCEPT ||
		!reflect.DeepEqual(st.Actions.Community.Communities, []string{"1:1"}) ||
		!reflect.DeepEqual(st.Actions.LargeCommunity.Communities, []string{"1:2:3"}) ||
		st.Conditions.RouteType != api.Conditions_ROUTE_TYPE_LOCAL {
		t.Errorf("statement 1: %v", st)
	}
	if nh := pol.Statements[2].Actions.Nexthop; nh == nil || nh.Address != nodeV4.String() {
		t.Errorf("cross-family statement next hop: %v", nh)
	}
	for _, s := range sets {
		for _, p := range s.Prefixes {
			if p.MaskLengthMin != p.MaskLengthMax {
				t.Errorf("set %s: prefix %s matches lengths %d-%d, want exactly its own", s.Name, p.IpPrefix, p.MaskLengthMin, p.MaskLengthMax)
			}
		}
	}
}

func TestPeersToRefresh(t *testing.T) {
	p1, p2 := pfx("198.19.0.1/32"), pfx("198.19.0.2/32")
	tr := func(rs ...Route) map[string]treatment {
		m := make(map[string]treatment)
		for _, r := range rs {
			m[r.Peer] = routeTreatment(r)
		}
		return m
	}
	stable := map[string]bool{"a": true, "b": true}
	cases := []struct {
		name          string
		before, after treatments
		want          []string
	}{
		{"nothing changed", treatments{p1: tr(route("a", 0))}, treatments{p1: tr(route("a", 0))}, []string{}},
		{"new prefix needs no refresh", treatments{}, treatments{p1: tr(route("a", 0))}, []string{}},
		{"removed prefix needs no refresh", treatments{p1: tr(route("a", 0))}, treatments{}, []string{}},
		{"communities changed", treatments{p1: tr(route("a", 0, "1:1"), route("b", 0))}, treatments{p1: tr(route("a", 0, "1:2"), route("b", 0))}, []string{"a"}},
		{"localPref changed", treatments{p1: tr(route("b", 100))}, treatments{p1: tr(route("b", 200))}, []string{"b"}},
		{"peer loses a kept prefix", treatments{p1: tr(route("a", 0), route("b", 0))}, treatments{p1: tr(route("b", 0))}, []string{"a"}},
		{"peer gains a kept prefix", treatments{p1: tr(route("a", 0)), p2: tr(route("a", 0))}, treatments{p1: tr(route("a", 0), route("b", 0)), p2: tr(route("a", 0))}, []string{"b"}},
		{"present without attributes differs from absent", treatments{p1: tr(route("a", 0))}, treatments{p1: tr(route("a", 0), route("b", 0))}, []string{"b"}},
		{"new peers are not refreshed", treatments{p1: tr(route("a", 0))}, treatments{p1: tr(route("a", 0), route("new", 0))}, []string{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := peersToRefresh(c.before, c.after, stable)
			if len(got) == 0 && len(c.want) == 0 {
				return
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("got %v, want %v", got, c.want)
			}
		})
	}
}
