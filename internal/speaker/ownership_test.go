package speaker

import (
	"maps"
	"net/netip"
	"testing"

	"github.com/keeperlb/keeperlb/internal/membership"
)

func TestOwnershipChanges(t *testing.T) {
	ip1, ip2, ip3 := netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("198.18.0.2"), netip.MustParseAddr("2001:db8::3")
	gone := map[string]membership.Departure{"n2": membership.Silent, "n3": membership.Left, "n4": membership.Restarted, "n5": membership.Removed}
	departure := func(n string) membership.Departure { return gone[n] }
	all := []string{"n1", "n2", "n3", "n4", "n5"}
	cases := []struct {
		name           string
		prev, next     map[netip.Addr]string
		prevLive, live []string
		want           map[string]int
	}{
		{"nothing moved", map[netip.Addr]string{ip1: "n1", ip2: "n2"}, map[netip.Addr]string{ip1: "n1", ip2: "n2"}, all, all, map[string]int{}},
		{"first pass: no previous owner", nil, map[netip.Addr]string{ip1: "n1"}, nil, all, map[string]int{}},
		{"taken from a dead peer", map[netip.Addr]string{ip1: "n2", ip2: "n2"}, map[netip.Addr]string{ip1: "n1", ip2: "n1"},
			all, []string{"n1", "n3"}, map[string]int{reasonPeerDead: 2}},
		{"taken from a peer that left", map[netip.Addr]string{ip1: "n3"}, map[netip.Addr]string{ip1: "n1"},
			all, []string{"n1", "n2"}, map[string]int{reasonPeerLeft: 1}},
		{"taken from a peer that restarted without a goodbye", map[netip.Addr]string{ip1: "n4"}, map[netip.Addr]string{ip1: "n1"},
			all, []string{"n1"}, map[string]int{reasonPeerDead: 1}},
		{"taken from a peer whose Node is gone", map[netip.Addr]string{ip3: "n5"}, map[netip.Addr]string{ip3: "n1"},
			all, []string{"n1"}, map[string]int{reasonPeerLeft: 1}},
		{"taken from a live peer: it counts, not us", map[netip.Addr]string{ip1: "n2"}, map[netip.Addr]string{ip1: "n1"},
			all, all, map[string]int{}},
		{"given to a live peer: ours to count", map[netip.Addr]string{ip1: "n1"}, map[netip.Addr]string{ip1: "n2"},
			all, all, map[string]int{reasonConfig: 1}},
		{"given to a peer that just joined", map[netip.Addr]string{ip1: "n1", ip2: "n1"}, map[netip.Addr]string{ip1: "n2", ip2: "n1"},
			[]string{"n1"}, []string{"n1", "n2"}, map[string]int{reasonPeerJoined: 1}},
		{"moves between two others are theirs", map[netip.Addr]string{ip1: "n2"}, map[netip.Addr]string{ip1: "n3"},
			all, []string{"n1", "n3"}, map[string]int{}},
		{"an IP that stops being announced did not move", map[netip.Addr]string{ip1: "n1"}, map[netip.Addr]string{},
			all, all, map[string]int{}},
	}
	for _, c := range cases {
		got := ownershipChanges("n1", c.prev, c.next, c.prevLive, c.live, departure)
		if !maps.Equal(got, c.want) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}
