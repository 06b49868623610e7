package lab

import (
	"net/netip"
	"slices"
	"testing"
)

// TestParseNextHops covers the shapes `ip -j route show` gives a route.
func TestParseNextHops(t *testing.T) {
	addrs := func(ss ...string) []netip.Addr {
		var out []netip.Addr
		for _, s := range ss {
			out = append(out, netip.MustParseAddr(s))
		}
		return out
	}
	for _, c := range []struct {
		name string
		in   string
		want []netip.Addr
	}{
		{"no route", "", nil},
		{"no route, empty list", "[]\n", nil},
		{"single gateway", `[{"dst":"198.19.3.5","gateway":"198.18.3.11","dev":"eth0","protocol":"bgp","metric":20,"flags":[]}]`,
			addrs("198.18.3.11")},
		{"multipath, unsorted", `[{"dst":"198.19.3.5","nhid":27,"protocol":"bgp","metric":20,"flags":[],"nexthops":[
			{"gateway":"198.18.3.13","dev":"eth0","weight":1,"flags":[]},
			{"gateway":"198.18.3.11","dev":"eth0","weight":1,"flags":[]},
			{"gateway":"198.18.3.12","dev":"eth0","weight":1,"flags":[]}]}]`,
			addrs("198.18.3.11", "198.18.3.12", "198.18.3.13")},
		{"IPv6 multipath as separate entries", `[
			{"dst":"2001:db8:3:1::5","gateway":"2001:db8:3::12","dev":"eth0","protocol":"bgp","metric":20,"flags":[]},
			{"dst":"2001:db8:3:1::5","gateway":"2001:db8:3::11","dev":"eth0","protocol":"bgp","metric":20,"flags":[]}]`,
			addrs("2001:db8:3::11", "2001:db8:3::12")},
		{"IPv4 via IPv6", `[{"dst":"198.19.3.5","via":{"family":"inet6","host":"2001:db8:3::11"},"dev":"eth0","flags":[]}]`,
			addrs("2001:db8:3::11")},
		{"repeated next hop", `[{"dst":"198.19.3.5","nexthops":[{"gateway":"198.18.3.11"},{"gateway":"198.18.3.11"}]}]`,
			addrs("198.18.3.11")},
		{"unreachable", `[{"type":"unreachable","dst":"198.19.3.5","flags":[]}]`, nil},
		{"directly connected", `[{"dst":"198.19.3.5","dev":"eth0","scope":"link","flags":[]}]`, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := parseNextHops([]byte(c.in))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, c.want) {
				t.Fatalf("got %v, want %v", got, c.want)
			}
		})
	}
	for _, bad := range []string{`{"dst":`, `[{"gateway":"not-an-address"}]`, `[{"nexthops":[{"gateway":"198.18.3"}]}]`} {
		if got, err := parseNextHops([]byte(bad)); err == nil {
			t.Errorf("parseNextHops(%q) = %v, want an error", bad, got)
		}
	}
}
