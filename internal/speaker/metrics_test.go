package speaker

import (
	"maps"
	"net/netip"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keeperlb/keeperlb/internal/bgp"
	"github.com/keeperlb/keeperlb/internal/election"
)

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

func TestAdvertisedIPs(t *testing.T) {
	svcs := []election.Service{
		{Key: "ns/a", IPs: addrs("198.18.0.1")},
		{Key: "ns/dual", IPs: addrs("198.18.0.2", "2001:db8::2")},
		{Key: "ns/agg", IPs: addrs("198.18.1.7")},
		{Key: "ns/nopeer", IPs: addrs("198.18.0.3")},
	}
	cases := []struct {
		name    string
		adverts []bgp.ServiceAdvert
		want    map[string][]netip.Addr
	}{
		{"nothing advertised", nil, map[string][]netip.Addr{}},
		{"host routes", []bgp.ServiceAdvert{{Key: "ns/a", Prefixes: []netip.Prefix{netip.MustParsePrefix("198.18.0.1/32")}, Peers: []string{"r"}}},
			map[string][]netip.Addr{"ns/a": addrs("198.18.0.1")}},
		{"one family of two", []bgp.ServiceAdvert{{Key: "ns/dual", Prefixes: []netip.Prefix{netip.MustParsePrefix("2001:db8::2/128")}, Peers: []string{"r6"}}},
			map[string][]netip.Addr{"ns/dual": addrs("2001:db8::2")}},
		{"an aggregate carries the address", []bgp.ServiceAdvert{{Key: "ns/agg", Prefixes: []netip.Prefix{netip.MustParsePrefix("198.18.1.0/24")}, Peers: []string{"r"}}},
			map[string][]netip.Addr{"ns/agg": addrs("198.18.1.7")}},
		{"no peer receives it", []bgp.ServiceAdvert{{Key: "ns/nopeer", Prefixes: []netip.Prefix{netip.MustParsePrefix("198.18.0.3/32")}}},
			map[string][]netip.Addr{}},
		{"a Service the speaker does not know", []bgp.ServiceAdvert{{Key: "ns/gone", Prefixes: []netip.Prefix{netip.MustParsePrefix("198.18.0.9/32")}, Peers: []string{"r"}}},
			map[string][]netip.Addr{}},
	}
	for _, c := range cases {
		got := advertisedIPs(svcs, c.adverts)
		if !maps.EqualFunc(got, c.want, slices.Equal) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

func TestAnnouncedSeries(t *testing.T) {
	got := announcedSeries("node1",
		map[string][]netip.Addr{"ns/a": addrs("198.18.0.1")},
		map[string][]netip.Addr{"ns/a": addrs("198.18.0.1"), "ns/b": addrs("198.18.0.2", "2001:db8::2")})
	want := map[[4]string]bool{
		{"ns/a", "layer2", "node1", "198.18.0.1"}: true,
		{"ns/a", "bgp", "node1", "198.18.0.1"}:    true,
		{"ns/b", "bgp", "node1", "198.18.0.2"}:    true,
		{"ns/b", "bgp", "node1", "2001:db8::2"}:   true,
	}
	if !maps.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if got := announcedSeries("node1", nil, nil); len(got) != 0 {
		t.Errorf("nothing announced: %v", got)
	}
}

func TestUnannouncedSeries(t *testing.T) {
	ip := netip.MustParseAddr
	skipped := []election.Skip{
		{Service: "ns/alone", IP: ip("198.18.0.1"), Reason: election.ReasonNoCandidates},
		{Service: "ns/shared-a", IP: ip("198.18.0.2"), Reason: election.ReasonSharedNoCommon},
		// Not announced by choice or by design: no series.
		{Service: "ns/bgp-only", IP: ip("198.18.0.3"), Reason: election.ReasonNoAdvertisement},
		{Service: "ns/nopool", IP: ip("198.18.0.4"), Reason: election.ReasonNoPool},
		{Service: "ns/idle", IP: ip("198.18.0.5"), Reason: election.ReasonNoEndpoints},
	}
	mine := []election.Announcement{
		{IP: ip("198.18.0.6"), Node: "node1", Services: []string{"ns/ok"}},
		// Two Services share 198.18.0.7; this node has no eligible
		// interface for it.
		{IP: ip("198.18.0.7"), Node: "node1", Services: []string{"ns/s1", "ns/s2"}},
	}
	owned := map[string][]netip.Addr{"ns/ok": {ip("198.18.0.6")}}
	got := unannouncedSeries(skipped, mine, owned)
	want := map[[3]string]bool{
		{"ns/alone", "198.18.0.1", "NoEligibleNode"}:          true,
		{"ns/shared-a", "198.18.0.2", "SharedIPNoCommonNode"}: true,
		{"ns/s1", "198.18.0.7", "NoEligibleInterface"}:        true,
		{"ns/s2", "198.18.0.7", "NoEligibleInterface"}:        true,
	}
	if !maps.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if got := unannouncedSeries(nil, nil, nil); len(got) != 0 {
		t.Errorf("nothing skipped: %v", got)
	}

	// The gauge follows the set: a series that stops being true goes.
	reg := prometheus.NewRegistry()
	m, err := newMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	m.setUnannounced(want)
	m.setUnannounced(map[[3]string]bool{{"ns/alone", "198.18.0.1", "NoEligibleNode"}: true})
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range families {
		if f.GetName() == "keeperlb_layer2_unannounced" {
			n = len(f.GetMetric())
		}
	}
	if n != 1 {
		t.Errorf("after the set shrank, %d series, want 1", n)
	}
}
