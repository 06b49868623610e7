package lab

import (
	"encoding/json"
	"net/netip"
	"testing"
)

func TestPlanAddresses(t *testing.T) {
	for _, tc := range []struct {
		k                                  int
		node1v4, node1v6, client6, root6   string
		router4, l2v4, l2v6, bgp4, bgp6    string
		far4, far6, farClient4, farClient6 string
		mac                                string
		name, netns, link                  string
	}{
		{
			k: 1, node1v4: "198.18.1.11", node1v6: "2001:db8:1::11", client6: "2001:db8:1::100", root6: "2001:db8:1::254",
			router4: "198.18.1.1", l2v4: "198.18.1.128/26", l2v6: "2001:db8:1::1:0/112", bgp4: "198.19.1.0/24", bgp6: "2001:db8:1:1::/64",
			far4: "198.18.129.0/24", far6: "2001:db8:1:2::/64", farClient4: "198.18.129.2", farClient6: "2001:db8:1:2::2",
			mac: "02:6b:6c:00:01:0b", name: "kl-lab1", netns: "kl-lab1-node1", link: "kl-lab1-host",
		},
		{
			k: 120, node1v4: "198.18.120.11", node1v6: "2001:db8:120::11", client6: "2001:db8:120::100", root6: "2001:db8:120::254",
			router4: "198.18.120.1", l2v4: "198.18.120.128/26", l2v6: "2001:db8:120::1:0/112", bgp4: "198.19.120.0/24", bgp6: "2001:db8:120:1::/64",
			far4: "198.18.248.0/24", far6: "2001:db8:120:2::/64", farClient4: "198.18.248.2", farClient6: "2001:db8:120:2::2",
			mac: "02:6b:6c:00:78:0b", name: "kl-lab120", netns: "kl-lab120-node1", link: "kl-lab120-host",
		},
	} {
		l := newLab(tc.k, 3, true)
		p := plan{tc.k}
		for _, c := range []struct{ what, got, want string }{
			{"node1 v4", l.Nodes[0].IPv4.String(), tc.node1v4},
			{"node1 v6", l.Nodes[0].IPv6.String(), tc.node1v6},
			{"client v6", l.Client.IPv6.String(), tc.client6},
			{"root v6", l.HostIPv6.String(), tc.root6},
			{"router v4", l.Router.IPv4.String(), tc.router4},
			{"l2 pool v4", l.L2Pool4.String(), tc.l2v4},
			{"l2 pool v6", l.L2Pool6.String(), tc.l2v6},
			{"bgp pool v4", l.BGPPool4.String(), tc.bgp4},
			{"bgp pool v6", l.BGPPool6.String(), tc.bgp6},
			{"far v4", l.FarSubnet4.String(), tc.far4},
			{"far v6", l.FarSubnet6.String(), tc.far6},
			{"far client v4", l.Far.IPv4.String(), tc.farClient4},
			{"far client v6", l.Far.IPv6.String(), tc.farClient6},
			{"node1 mac", l.Nodes[0].MAC.String(), tc.mac},
			{"name", l.Name, tc.name},
			{"netns", l.Nodes[0].Netns, tc.netns},
			{"root link", p.rootLink(), tc.link},
		} {
			if c.got != c.want {
				t.Errorf("k=%d %s = %s, want %s", tc.k, c.what, c.got, c.want)
			}
		}
	}
}

// TestPlanStaysInside checks, for every index and the largest lab, that all
// addresses are in the documentation/benchmark ranges, that hosts are in
// their subnets but outside the VIP pools, that no two hosts share an
// address, and that no two labs overlap or touch the Service CIDRs.
func TestPlanStaysInside(t *testing.T) {
	bench := netip.MustParsePrefix("198.18.0.0/15")
	doc := netip.MustParsePrefix("2001:db8::/32")
	svc4 := netip.MustParsePrefix("198.19.128.0/17")
	svc6 := netip.MustParsePrefix("2001:db8:fff0::/112")
	seen := map[netip.Prefix]int{}
	for k := 1; k <= MaxIndex; k++ {
		l := newLab(k, MaxNodes, true)
		if link := (plan{k}).rootLink(); len(link) > 15 {
			t.Fatalf("k=%d: root link name %q longer than IFNAMSIZ-1", k, link)
		}
		prefixes := []netip.Prefix{l.Subnet4, l.Subnet6, l.BGPPool4, l.BGPPool6, l.FarSubnet4, l.FarSubnet6}
		for _, p := range prefixes {
			inside := bench
			svc := svc4
			if p.Addr().Is6() {
				inside, svc = doc, svc6
			}
			if !inside.Contains(p.Addr()) || p.Bits() < inside.Bits() {
				t.Errorf("k=%d: %s outside %s", k, p, inside)
			}
			if p.Overlaps(svc) {
				t.Errorf("k=%d: %s overlaps the Service CIDR %s", k, p, svc)
			}
			if other, dup := seen[p]; dup {
				t.Errorf("k=%d: %s also used by lab %d", k, p, other)
			}
			for q, other := range seen {
				if q.Overlaps(p) {
					t.Errorf("k=%d: %s overlaps %s of lab %d", k, p, q, other)
				}
			}
		}
		for _, p := range prefixes {
			seen[p] = k
		}
		if !l.Subnet4.Contains(l.L2Pool4.Addr()) || !l.Subnet6.Contains(l.L2Pool6.Addr()) {
			t.Errorf("k=%d: L2 pools %s %s outside the subnets", k, l.L2Pool4, l.L2Pool6)
		}
		addrs := map[netip.Addr]string{}
		check := func(who string, a netip.Addr, subnet, pool netip.Prefix) {
			if !subnet.Contains(a) {
				t.Errorf("k=%d: %s %s outside %s", k, who, a, subnet)
			}
			if pool.IsValid() && pool.Contains(a) {
				t.Errorf("k=%d: %s %s inside the L2 pool %s", k, who, a, pool)
			}
			if prev, dup := addrs[a]; dup {
				t.Errorf("k=%d: %s and %s share %s", k, who, prev, a)
			}
			addrs[a] = who
		}
		for _, h := range append(l.bridgedHosts(), &Host{Name: "root", IPv4: l.HostIPv4, IPv6: l.HostIPv6}) {
			check(h.Name, h.IPv4, l.Subnet4, l.L2Pool4)
			check(h.Name, h.IPv6, l.Subnet6, l.L2Pool6)
		}
		for _, a := range []netip.Addr{l.Far.IPv4, l.RouterFarIPv4} {
			check("far link", a, l.FarSubnet4, netip.Prefix{})
		}
		for _, a := range []netip.Addr{l.Far.IPv6, l.RouterFarIPv6} {
			check("far link", a, l.FarSubnet6, netip.Prefix{})
		}
	}
}

func TestDecHex(t *testing.T) {
	for n, want := range map[int]uint16{0: 0, 1: 1, 9: 9, 10: 0x10, 11: 0x11, 100: 0x100, 254: 0x254, 9999: 0x9999} {
		if got := decHex(n); got != want {
			t.Errorf("decHex(%d) = %#x, want %#x", n, got, want)
		}
	}
}

func TestHostJSONRoundTrip(t *testing.T) {
	h := newLab(5, 1, false).Nodes[0]
	b, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	var got Host
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.Name != h.Name || got.Netns != h.Netns || got.IPv4 != h.IPv4 || got.IPv6 != h.IPv6 ||
		got.MAC.String() != h.MAC.String() || got.Interface != h.Interface {
		t.Fatalf("round trip: got %+v, want %+v (json %s)", got, *h, b)
	}
	if err := json.Unmarshal([]byte(`{"name":"x","mac":"zz"}`), &got); err == nil {
		t.Fatal("a bad MAC was accepted")
	}
}

func TestProcessStart(t *testing.T) {
	if _, err := processStart(0); err == nil {
		t.Error("pid 0 accepted")
	}
	s := &State{OwnerPID: 1 << 30}
	if s.Alive() {
		t.Error("a PID that cannot exist is alive")
	}
}

func TestOurs(t *testing.T) {
	for path, want := range map[string]bool{
		"/tmp/keeperlb-kl-lab1-42-abcd": true,
		"/tmp/keeperlb-kl-lab12-42":     false,
		"/":                             false,
		"":                              false,
		"tmp/keeperlb-kl-lab1-1":        false,
		"/home/user":                    false,
	} {
		if got := ours(path, "keeperlb-kl-lab1-"); got != want {
			t.Errorf("ours(%q) = %v, want %v", path, got, want)
		}
	}
}
