package config

import (
	"net/netip"
	"reflect"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/keeperlb/keeperlb/api/v1beta1"
	"github.com/keeperlb/keeperlb/api/v1beta2"
)

// parseCase is one Parse input with either the complete list of expected
// errors or checks on the resulting Config.
type parseCase struct {
	name string
	res  Resources
	// allNamespaces leaves Resources.Namespace empty; otherwise it is ns.
	allNamespaces bool
	want          []wantErr
	check         func(t *testing.T, c *Config)
}

func runParseCases(t *testing.T, cases []parseCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.res
			if !tc.allNamespaces {
				r.Namespace = ns
			}
			cfg, err := Parse(r)
			if len(tc.want) > 0 {
				if cfg != nil {
					t.Errorf("Parse returned a Config along with errors")
				}
				checkErrors(t, err, tc.want)
				return
			}
			if err != nil {
				t.Fatalf("Parse failed: %v", err)
			}
			if cfg == nil {
				t.Fatal("Parse returned neither a Config nor an error")
			}
			if tc.check != nil {
				tc.check(t, cfg)
			}
		})
	}
}

func TestParsePools(t *testing.T) {
	pfx := netip.MustParsePrefix
	addr := netip.MustParseAddr
	runParseCases(t, []parseCase{
		{
			name: "no addresses",
			res:  Resources{Pools: []v1beta1.IPAddressPool{pool("blue")}},
			want: []wantErr{poolErr("blue", "spec.addresses", "no addresses")},
		},
		{
			name: "bad CIDR",
			res:  Resources{Pools: []v1beta1.IPAddressPool{pool("blue", "198.18.0.0/24", "198.18.0.0/33")}},
			want: []wantErr{poolErr("blue", "spec.addresses[1]", `"198.18.0.0/33" is neither a CIDR nor a range`)},
		},
		{
			name: "bad range",
			res:  Resources{Pools: []v1beta1.IPAddressPool{pool("blue", "198.18.0.1-banana")}},
			want: []wantErr{poolErr("blue", "spec.addresses[0]", `"banana" is not an IP address`)},
		},
		{
			name: "range start after end",
			res:  Resources{Pools: []v1beta1.IPAddressPool{pool("blue", "198.18.0.9-198.18.0.1")}},
			want: []wantErr{poolErr("blue", "spec.addresses[0]", "range start 198.18.0.9 is after range end 198.18.0.1")},
		},
		{
			name: "mixed-family range",
			res:  Resources{Pools: []v1beta1.IPAddressPool{pool("blue", "198.18.0.1-2001:db8::1")}},
			want: []wantErr{poolErr("blue", "spec.addresses[0]", "mixes an IPv4 and an IPv6 address")},
		},
		{
			name: "IPv4-mapped IPv6 and zones",
			res:  Resources{Pools: []v1beta1.IPAddressPool{pool("blue", "::ffff:198.18.0.0/120", "fe80::1%eth0-fe80::9%eth0")}},
			want: []wantErr{
				poolErr("blue", "spec.addresses[0]", "IPv4-mapped"),
				poolErr("blue", "spec.addresses[1]", "zones are not allowed"),
			},
		},
		{
			name: "every bad entry is reported",
			res: Resources{Pools: []v1beta1.IPAddressPool{
				pool("blue", "x", "198.18.0.0/24", "y/8"),
				pool("red", "1.2.3.4"),
			}},
			want: []wantErr{
				poolErr("blue", "spec.addresses[0]", `"x" is neither`),
				poolErr("blue", "spec.addresses[2]", `"y/8" is neither`),
				poolErr("red", "spec.addresses[0]", "write 1.2.3.4/32"),
			},
		},
		{
			name: "duplicate name in the input",
			res: Resources{Pools: []v1beta1.IPAddressPool{
				pool("blue", "198.18.0.0/24"),
				pool("blue", "198.18.1.0/24"),
			}},
			want: []wantErr{poolErr("blue", "metadata.name", `name "blue" is used by 2 objects`)},
		},
		{
			name:          "duplicate name across namespaces",
			allNamespaces: true,
			res: Resources{Pools: []v1beta1.IPAddressPool{
				with(pool("blue", "198.18.0.0/24"), func(p *v1beta1.IPAddressPool) { p.Namespace = "a" }),
				with(pool("blue", "198.18.1.0/24"), func(p *v1beta1.IPAddressPool) { p.Namespace = "b" }),
			}},
			want: []wantErr{
				{kind: KindIPAddressPool, namespace: "a", name: "blue", field: "metadata.name", reason: "IPAddressPool a/blue, IPAddressPool b/blue"},
				{kind: KindIPAddressPool, namespace: "b", name: "blue", field: "metadata.name", reason: "IPAddressPool a/blue, IPAddressPool b/blue"},
			},
		},
		{
			name: "empty name",
			res:  Resources{Pools: []v1beta1.IPAddressPool{pool("", "198.18.0.0/24")}},
			want: []wantErr{poolErr("", "metadata.name", "must not be empty")},
		},
		{
			name: "objects outside the install namespace are ignored",
			res: Resources{Pools: []v1beta1.IPAddressPool{
				pool("blue", "198.18.0.0/24"),
				with(pool("blue", "nonsense"), func(p *v1beta1.IPAddressPool) { p.Namespace = "default" }),
				with(pool("red", "198.18.0.0/24"), func(p *v1beta1.IPAddressPool) { p.Namespace = "default" }),
			}},
			check: func(t *testing.T, c *Config) {
				if len(c.Pools) != 1 || c.Pools[0].Name != "blue" || c.Pools[0].CIDRs[0] != pfx("198.18.0.0/24") {
					t.Errorf("pools = %+v, want only metallb-system/blue", c.Pools)
				}
			},
		},
		{
			name: "overlap within a pool, CIDR and range",
			res:  Resources{Pools: []v1beta1.IPAddressPool{pool("blue", "198.18.0.0/24", "198.18.0.200-198.18.1.5")}},
			want: []wantErr{
				poolErr("blue", "spec.addresses[0]", `overlaps "198.18.0.200-198.18.1.5" (IPAddressPool metallb-system/blue spec.addresses[1])`),
				poolErr("blue", "spec.addresses[1]", `overlaps "198.18.0.0/24" (IPAddressPool metallb-system/blue spec.addresses[0])`),
			},
		},
		{
			name: "same entry twice in a pool",
			res:  Resources{Pools: []v1beta1.IPAddressPool{pool("blue", "2001:db8::/64", "2001:db8::/64")}},
			want: []wantErr{
				poolErr("blue", "spec.addresses[0]", "overlaps"),
				poolErr("blue", "spec.addresses[1]", "overlaps"),
			},
		},
		{
			name: "overlap across pools names both objects",
			res: Resources{Pools: []v1beta1.IPAddressPool{
				pool("blue", "198.18.0.0/24"),
				pool("red", "198.18.0.128/25"),
			}},
			want: []wantErr{
				poolErr("blue", "spec.addresses[0]", `"198.18.0.0/24" overlaps "198.18.0.128/25" (IPAddressPool metallb-system/red spec.addresses[0])`),
				poolErr("red", "spec.addresses[0]", `"198.18.0.128/25" overlaps "198.18.0.0/24" (IPAddressPool metallb-system/blue spec.addresses[0])`),
			},
		},
		{
			name: "overlap across pools, ranges sharing one address",
			res: Resources{Pools: []v1beta1.IPAddressPool{
				pool("blue", "198.18.0.10-198.18.0.20"),
				pool("red", "198.18.0.20 - 198.18.0.30"),
				pool("green", "2001:db8::/120"),
				pool("yellow", "2001:db8::ff-2001:db8::1ff"),
			}},
			want: []wantErr{
				poolErr("blue", "spec.addresses[0]", "IPAddressPool metallb-system/red"),
				poolErr("red", "spec.addresses[0]", "IPAddressPool metallb-system/blue"),
				poolErr("green", "spec.addresses[0]", "IPAddressPool metallb-system/yellow"),
				poolErr("yellow", "spec.addresses[0]", "IPAddressPool metallb-system/green"),
			},
		},
		{
			name: "host bits set in one pool still overlap another",
			res: Resources{Pools: []v1beta1.IPAddressPool{
				pool("blue", "198.18.0.77/24"),
				pool("red", "198.18.0.1/32"),
			}},
			want: []wantErr{
				poolErr("blue", "spec.addresses[0]", "overlaps"),
				poolErr("red", "spec.addresses[0]", "overlaps"),
			},
		},
		{
			name: "adjacent entries and families do not overlap",
			res: Resources{Pools: []v1beta1.IPAddressPool{
				pool("blue", "198.18.0.0/25", "2001:db8::/64"),
				pool("red", "198.18.0.128-198.18.0.255", "198.19.0.0/32"),
				pool("green", "2001:db8:1::/127"),
			}},
			check: func(t *testing.T, c *Config) {
				if len(c.Pools) != 3 {
					t.Errorf("got %d pools, want 3", len(c.Pools))
				}
			},
		},
		{
			name: "serviceAllocation duplicate namespaces",
			res: Resources{Pools: []v1beta1.IPAddressPool{poolWithAlloc("blue", v1beta1.ServiceAllocation{
				Namespaces: []string{"a", "b", "a"},
			}, "198.18.0.0/24")}},
			want: []wantErr{poolErr("blue", "spec.serviceAllocation.namespaces[2]", `"a" is listed twice (first at spec.serviceAllocation.namespaces[0])`)},
		},
		{
			name: "serviceAllocation empty namespace",
			res: Resources{Pools: []v1beta1.IPAddressPool{poolWithAlloc("blue", v1beta1.ServiceAllocation{
				Namespaces: []string{""},
			}, "198.18.0.0/24")}},
			want: []wantErr{poolErr("blue", "spec.serviceAllocation.namespaces[0]", "must not be empty")},
		},
		{
			name: "serviceAllocation duplicate namespaceSelectors",
			res: Resources{Pools: []v1beta1.IPAddressPool{poolWithAlloc("blue", v1beta1.ServiceAllocation{
				NamespaceSelectors: []metav1.LabelSelector{
					sel("team", "a"),
					{MatchLabels: map[string]string{"team": "b"}},
					{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "team", Operator: metav1.LabelSelectorOpIn, Values: []string{"a"}}}},
					sel("team", "a"),
				},
			}, "198.18.0.0/24")}},
			want: []wantErr{poolErr("blue", "spec.serviceAllocation.namespaceSelectors[3]", "duplicate of spec.serviceAllocation.namespaceSelectors[0] (team=a)")},
		},
		{
			name: "serviceAllocation duplicate serviceSelectors",
			res: Resources{Pools: []v1beta1.IPAddressPool{poolWithAlloc("blue", v1beta1.ServiceAllocation{
				ServiceSelectors: []metav1.LabelSelector{{}, sel("app", "web"), {}},
			}, "198.18.0.0/24")}},
			want: []wantErr{poolErr("blue", "spec.serviceAllocation.serviceSelectors[2]", "duplicate of spec.serviceAllocation.serviceSelectors[0] (matches everything)")},
		},
		{
			name: "serviceAllocation invalid selector",
			res: Resources{Pools: []v1beta1.IPAddressPool{poolWithAlloc("blue", v1beta1.ServiceAllocation{
				ServiceSelectors: []metav1.LabelSelector{badSel()},
			}, "198.18.0.0/24")}},
			want: []wantErr{poolErr("blue", "spec.serviceAllocation.serviceSelectors[0]", "invalid label selector")},
		},
		{
			name: "serviceAllocation negative priority",
			res: Resources{Pools: []v1beta1.IPAddressPool{poolWithAlloc("blue", v1beta1.ServiceAllocation{
				Priority: -1,
			}, "198.18.0.0/24")}},
			want: []wantErr{poolErr("blue", "spec.serviceAllocation.priority", "priority -1 is negative")},
		},
		{
			name: "defaults and normalisation",
			res: Resources{Pools: []v1beta1.IPAddressPool{
				labeledPool("blue", map[string]string{"tier": "gold"}, "2001:db8::1-2001:db8::2", "198.18.0.77/24", "198.18.1.10-198.18.1.20"),
				with(pool("red", "198.19.0.0/16"), func(p *v1beta1.IPAddressPool) {
					p.Spec.AutoAssign = ptr(false)
					p.Spec.AvoidBuggyIPs = true
					p.Spec.ServiceAllocation = &v1beta1.ServiceAllocation{Priority: 5, Namespaces: []string{"web"}}
				}),
				with(pool("green", "2001:db8:1::/64"), func(p *v1beta1.IPAddressPool) { p.Spec.AutoAssign = ptr(true) }),
			}},
			check: func(t *testing.T, c *Config) {
				names := []string{}
				for _, p := range c.Pools {
					names = append(names, p.Name)
				}
				if !slices.Equal(names, []string{"blue", "green", "red"}) {
					t.Fatalf("pools = %v, want sorted blue, green, red", names)
				}
				blue := c.Pool("blue")
				if !blue.AutoAssign || blue.AvoidBuggyIPs || blue.Allocation != nil || blue.Labels["tier"] != "gold" {
					t.Errorf("blue = %+v", blue)
				}
				wantRanges := []Range{
					{addr("198.18.0.0"), addr("198.18.0.255")},
					{addr("198.18.1.10"), addr("198.18.1.20")},
					{addr("2001:db8::1"), addr("2001:db8::2")},
				}
				if !slices.Equal(blue.Ranges, wantRanges) {
					t.Errorf("blue ranges = %v, want %v", blue.Ranges, wantRanges)
				}
				wantCIDRs := []netip.Prefix{
					pfx("198.18.0.0/24"), pfx("198.18.1.10/31"), pfx("198.18.1.12/30"), pfx("198.18.1.16/30"), pfx("198.18.1.20/32"),
					pfx("2001:db8::1/128"), pfx("2001:db8::2/128"),
				}
				if !slices.Equal(blue.CIDRs, wantCIDRs) {
					t.Errorf("blue CIDRs = %v, want %v", blue.CIDRs, wantCIDRs)
				}
				if v4, v6 := blue.Families(); !v4 || !v6 {
					t.Errorf("blue families = %v, %v, want both", v4, v6)
				}
				red := c.Pool("red")
				if red.AutoAssign || !red.AvoidBuggyIPs || red.Allocation == nil || red.Allocation.Priority != 5 ||
					!slices.Equal(red.Allocation.Namespaces, []string{"web"}) {
					t.Errorf("red = %+v, allocation %+v", red, red.Allocation)
				}
				if v4, v6 := red.Families(); !v4 || v6 {
					t.Errorf("red families = %v, %v, want IPv4 only", v4, v6)
				}
				green := c.Pool("green")
				if v4, v6 := green.Families(); v4 || !v6 || !green.AutoAssign {
					t.Errorf("green = %+v, families %v %v", green, v4, v6)
				}
			},
		},
	})
}

func TestParseL2Advertisements(t *testing.T) {
	pools := []v1beta1.IPAddressPool{
		labeledPool("blue", map[string]string{"tier": "gold"}, "198.18.0.0/24"),
		labeledPool("red", map[string]string{"tier": "silver"}, "198.18.1.0/24"),
		pool("green", "2001:db8::/64"),
	}
	runParseCases(t, []parseCase{
		{
			name: "duplicate ipAddressPools",
			res: Resources{Pools: pools, L2Advs: []v1beta1.L2Advertisement{
				l2("l2", v1beta1.L2AdvertisementSpec{IPAddressPools: []string{"blue", "red", "blue"}}),
			}},
			want: []wantErr{l2Err("l2", "spec.ipAddressPools[2]", `"blue" is listed twice`)},
		},
		{
			name: "duplicate ipAddressPoolSelectors",
			res: Resources{Pools: pools, L2Advs: []v1beta1.L2Advertisement{
				l2("l2", v1beta1.L2AdvertisementSpec{IPAddressPoolSelectors: []metav1.LabelSelector{sel("tier", "gold"), sel("tier", "gold")}}),
			}},
			want: []wantErr{l2Err("l2", "spec.ipAddressPoolSelectors[1]", "duplicate of spec.ipAddressPoolSelectors[0]")},
		},
		{
			name: "duplicate nodeSelectors",
			res: Resources{Pools: pools, L2Advs: []v1beta1.L2Advertisement{
				l2("l2", v1beta1.L2AdvertisementSpec{NodeSelectors: []metav1.LabelSelector{sel("rack", "1", "row", "a"), sel("row", "a", "rack", "1")}}),
			}},
			want: []wantErr{l2Err("l2", "spec.nodeSelectors[1]", "duplicate of spec.nodeSelectors[0] (rack=1,row=a)")},
		},
		{
			name: "duplicate serviceSelectors",
			res: Resources{Pools: pools, L2Advs: []v1beta1.L2Advertisement{
				l2("l2", v1beta1.L2AdvertisementSpec{ServiceSelectors: []metav1.LabelSelector{sel("app", "a"), sel("app", "b"), sel("app", "a")}}),
			}},
			want: []wantErr{l2Err("l2", "spec.serviceSelectors[2]", "duplicate of spec.serviceSelectors[0]")},
		},
		{
			name: "duplicate and empty interfaces",
			res: Resources{Pools: pools, L2Advs: []v1beta1.L2Advertisement{
				l2("l2", v1beta1.L2AdvertisementSpec{Interfaces: []string{"eth0", "eth1", "eth0", ""}}),
			}},
			want: []wantErr{
				l2Err("l2", "spec.interfaces[2]", `"eth0" is listed twice (first at spec.interfaces[0])`),
				l2Err("l2", "spec.interfaces[3]", "interface name must not be empty"),
			},
		},
		{
			name: "invalid selectors",
			res: Resources{Pools: pools, L2Advs: []v1beta1.L2Advertisement{
				l2("l2", v1beta1.L2AdvertisementSpec{
					IPAddressPoolSelectors: []metav1.LabelSelector{badSel()},
					NodeSelectors:          []metav1.LabelSelector{sel("ok", "yes"), badSel()},
					ServiceSelectors:       []metav1.LabelSelector{sel("bad key!", "x")},
				}),
			}},
			want: []wantErr{
				l2Err("l2", "spec.ipAddressPoolSelectors[0]", "invalid label selector"),
				l2Err("l2", "spec.nodeSelectors[1]", "invalid label selector"),
				l2Err("l2", "spec.serviceSelectors[0]", "invalid label selector"),
			},
		},
		{
			name: "pool selection",
			res: Resources{Pools: pools, L2Advs: []v1beta1.L2Advertisement{
				l2("all", v1beta1.L2AdvertisementSpec{Interfaces: []string{"eth1", "eth0"}}),
				l2("by-name-and-label", v1beta1.L2AdvertisementSpec{
					IPAddressPools:         []string{"red", "not-yet-created", "blue"},
					IPAddressPoolSelectors: []metav1.LabelSelector{sel("tier", "gold")},
				}),
				l2("unknown-only", v1beta1.L2AdvertisementSpec{IPAddressPools: []string{"not-yet-created"}}),
				l2("label-only", v1beta1.L2AdvertisementSpec{IPAddressPoolSelectors: []metav1.LabelSelector{sel("tier", "silver")}}),
			}},
			check: func(t *testing.T, c *Config) {
				want := map[string][]string{
					"all":               {"blue", "green", "red"},
					"by-name-and-label": {"blue", "red"},
					"unknown-only":      nil,
					"label-only":        {"red"},
				}
				if len(c.L2Advertisements) != len(want) {
					t.Fatalf("got %d L2 advertisements, want %d", len(c.L2Advertisements), len(want))
				}
				for i, a := range c.L2Advertisements {
					if i > 0 && c.L2Advertisements[i-1].Name >= a.Name {
						t.Errorf("L2 advertisements not sorted by name")
					}
					if !slices.Equal(a.Pools, want[a.Name]) {
						t.Errorf("%s pools = %v, want %v", a.Name, a.Pools, want[a.Name])
					}
				}
				if got := c.L2Advertisements[0]; got.Name != "all" || !slices.Equal(got.Interfaces, []string{"eth1", "eth0"}) ||
					got.NodeSelectors != nil || got.ServiceSelectors != nil {
					t.Errorf("all = %+v", got)
				}
			},
		},
	})
}

func TestParseBGPAdvertisements(t *testing.T) {
	pools := []v1beta1.IPAddressPool{
		labeledPool("blue", map[string]string{"tier": "gold"}, "198.18.0.0/24"),
		pool("red", "198.18.1.0/28", "198.18.2.0-198.18.2.255"),
		pool("green", "2001:db8::/64", "2001:db8:1::/120"),
	}
	one := func(name string, spec v1beta1.BGPAdvertisementSpec) Resources {
		return Resources{Pools: pools, BGPAdvs: []v1beta1.BGPAdvertisement{bgpAdv(name, spec)}}
	}
	runParseCases(t, []parseCase{
		{
			name: "duplicate ipAddressPools",
			res:  one("adv", v1beta1.BGPAdvertisementSpec{IPAddressPools: []string{"blue", "blue"}}),
			want: []wantErr{bgpErr("adv", "spec.ipAddressPools[1]", `"blue" is listed twice`)},
		},
		{
			name: "duplicate peers",
			res:  one("adv", v1beta1.BGPAdvertisementSpec{Peers: []string{"tor1", "tor2", "tor1"}}),
			want: []wantErr{bgpErr("adv", "spec.peers[2]", `"tor1" is listed twice`)},
		},
		{
			name: "duplicate selectors",
			res: one("adv", v1beta1.BGPAdvertisementSpec{
				IPAddressPoolSelectors: []metav1.LabelSelector{sel("tier", "gold"), sel("tier", "gold")},
				NodeSelectors:          []metav1.LabelSelector{{}, {}},
				ServiceSelectors:       []metav1.LabelSelector{sel("a", "b"), sel("a", "b")},
			}),
			want: []wantErr{
				bgpErr("adv", "spec.ipAddressPoolSelectors[1]", "duplicate of spec.ipAddressPoolSelectors[0]"),
				bgpErr("adv", "spec.nodeSelectors[1]", "duplicate of spec.nodeSelectors[0]"),
				bgpErr("adv", "spec.serviceSelectors[1]", "duplicate of spec.serviceSelectors[0]"),
			},
		},
		{
			name: "duplicate communities, literal and through an alias",
			res: Resources{
				Pools:       pools,
				Communities: []v1beta1.Community{communityObj("aliases", "no-advertise", "65535:65282")},
				BGPAdvs: []v1beta1.BGPAdvertisement{bgpAdv("adv", v1beta1.BGPAdvertisementSpec{
					Communities: []string{"65000:1", "65000:1", "no-advertise", "65535:65282", "large:1:2:3", "large:1:2:3"},
				})},
			},
			want: []wantErr{
				bgpErr("adv", "spec.communities[1]", `"65000:1" is community 65000:1, already listed at spec.communities[0]`),
				bgpErr("adv", "spec.communities[3]", `"65535:65282" is community 65535:65282, already listed at spec.communities[2]`),
				bgpErr("adv", "spec.communities[5]", "already listed at spec.communities[4]"),
			},
		},
		{
			name: "community that is neither a value nor an alias",
			res:  one("adv", v1beta1.BGPAdvertisementSpec{Communities: []string{"65000:1", "no-such-alias", "65536:1"}}),
			want: []wantErr{
				bgpErr("adv", "spec.communities[1]", `"no-such-alias" is not the name of an alias defined in a Community object, and not a community value`),
				bgpErr("adv", "spec.communities[2]", `the first part ("65536") must be a number from 0 to 65535`),
			},
		},
		{
			name: "aggregationLength out of range",
			res: Resources{Pools: pools, BGPAdvs: []v1beta1.BGPAdvertisement{
				bgpAdv("too-long", v1beta1.BGPAdvertisementSpec{AggregationLength: ptr[int32](33), AggregationLengthV6: ptr[int32](129)}),
				bgpAdv("negative", v1beta1.BGPAdvertisementSpec{AggregationLength: ptr[int32](-1), AggregationLengthV6: ptr[int32](-8)}),
			}},
			want: []wantErr{
				bgpErr("too-long", "spec.aggregationLength", "33 is out of range: must be from 0 to 32"),
				bgpErr("too-long", "spec.aggregationLengthV6", "129 is out of range: must be from 0 to 128"),
				bgpErr("negative", "spec.aggregationLength", "-1 is out of range"),
				bgpErr("negative", "spec.aggregationLengthV6", "-8 is out of range"),
			},
		},
		{
			name: "aggregationLength shorter than a pool's prefix",
			res:  one("adv", v1beta1.BGPAdvertisementSpec{IPAddressPools: []string{"blue"}, AggregationLength: ptr[int32](16)}),
			want: []wantErr{bgpErr("adv", "spec.aggregationLength", "16 is shorter than the prefix 198.18.0.0/24 of IPAddressPool metallb-system/blue")},
		},
		{
			name: "aggregationLength checked against prefixes of ranges",
			res:  one("adv", v1beta1.BGPAdvertisementSpec{IPAddressPools: []string{"red"}, AggregationLength: ptr[int32](23)}),
			want: []wantErr{bgpErr("adv", "spec.aggregationLength", "23 is shorter than the prefix 198.18.2.0/24 of IPAddressPool metallb-system/red")},
		},
		{
			name: "aggregationLengthV6 shorter than a pool's prefix",
			res:  one("adv", v1beta1.BGPAdvertisementSpec{AggregationLengthV6: ptr[int32](48)}),
			want: []wantErr{bgpErr("adv", "spec.aggregationLengthV6", "48 is shorter than the prefix 2001:db8::/64 of IPAddressPool metallb-system/green")},
		},
		{
			name: "aggregationLength equal to or longer than the widest prefix",
			res: Resources{Pools: pools, BGPAdvs: []v1beta1.BGPAdvertisement{
				bgpAdv("equal", v1beta1.BGPAdvertisementSpec{IPAddressPools: []string{"blue"}, AggregationLength: ptr[int32](24)}),
				bgpAdv("longer", v1beta1.BGPAdvertisementSpec{IPAddressPools: []string{"blue"}, AggregationLength: ptr[int32](28)}),
				// Only IPv6 pools are selected, so no IPv4 prefix limits the
				// IPv4 length.
				bgpAdv("v6-only", v1beta1.BGPAdvertisementSpec{IPAddressPools: []string{"green"}, AggregationLength: ptr[int32](0), AggregationLengthV6: ptr[int32](64)}),
			}},
			check: func(t *testing.T, c *Config) {
				got := map[string][2]int{}
				for _, a := range c.BGPAdvertisements {
					got[a.Name] = [2]int{a.AggregationLength, a.AggregationLengthV6}
				}
				want := map[string][2]int{"equal": {24, 128}, "longer": {28, 128}, "v6-only": {0, 64}}
				for k, v := range want {
					if got[k] != v {
						t.Errorf("%s aggregation = %v, want %v", k, got[k], v)
					}
				}
			},
		},
		{
			name: "serviceSelectors with a non-default aggregation length",
			res: Resources{Pools: pools, BGPAdvs: []v1beta1.BGPAdvertisement{
				bgpAdv("v4", v1beta1.BGPAdvertisementSpec{IPAddressPools: []string{"blue"}, AggregationLength: ptr[int32](30),
					ServiceSelectors: []metav1.LabelSelector{sel("app", "web")}}),
				bgpAdv("v6", v1beta1.BGPAdvertisementSpec{IPAddressPools: []string{"green"}, AggregationLengthV6: ptr[int32](124),
					ServiceSelectors: []metav1.LabelSelector{sel("app", "web")}}),
			}},
			want: []wantErr{
				bgpErr("v4", "spec.serviceSelectors", "not 30 and 128"),
				bgpErr("v6", "spec.serviceSelectors", "not 32 and 124"),
			},
		},
		{
			name: "serviceSelectors with the default aggregation length written out",
			res: one("adv", v1beta1.BGPAdvertisementSpec{AggregationLength: ptr[int32](32), AggregationLengthV6: ptr[int32](128),
				ServiceSelectors: []metav1.LabelSelector{sel("app", "web")}}),
			check: func(t *testing.T, c *Config) {
				if len(c.BGPAdvertisements[0].ServiceSelectors) != 1 {
					t.Errorf("serviceSelectors = %v", c.BGPAdvertisements[0].ServiceSelectors)
				}
			},
		},
		{
			name: "different localPref for the same pool",
			res: Resources{Pools: pools, BGPAdvs: []v1beta1.BGPAdvertisement{
				bgpAdv("a", v1beta1.BGPAdvertisementSpec{IPAddressPools: []string{"blue"}, LocalPref: 100}),
				bgpAdv("b", v1beta1.BGPAdvertisementSpec{IPAddressPoolSelectors: []metav1.LabelSelector{sel("tier", "gold")}, LocalPref: 200}),
			}},
			want: []wantErr{
				bgpErr("a", "spec.localPref", `localPref 100 for IPAddressPool "blue" conflicts with localPref 200 of BGPAdvertisement metallb-system/b`),
				bgpErr("b", "spec.localPref", `localPref 200 for IPAddressPool "blue" conflicts with localPref 100 of BGPAdvertisement metallb-system/a`),
			},
		},
		{
			name: "different localPref allowed when aggregation, peers or nodes differ",
			res: Resources{Pools: pools, BGPAdvs: []v1beta1.BGPAdvertisement{
				bgpAdv("base", v1beta1.BGPAdvertisementSpec{IPAddressPools: []string{"blue"}, LocalPref: 100}),
				bgpAdv("aggregated", v1beta1.BGPAdvertisementSpec{IPAddressPools: []string{"blue"}, LocalPref: 200, AggregationLength: ptr[int32](24)}),
				bgpAdv("other-peer", v1beta1.BGPAdvertisementSpec{IPAddressPools: []string{"blue"}, LocalPref: 300, Peers: []string{"tor1"}}),
				bgpAdv("other-nodes", v1beta1.BGPAdvertisementSpec{IPAddressPools: []string{"blue"}, LocalPref: 400,
					NodeSelectors: []metav1.LabelSelector{sel("rack", "2")}}),
				// Same shape as base but another pool.
				bgpAdv("other-pool", v1beta1.BGPAdvertisementSpec{IPAddressPools: []string{"red"}, LocalPref: 500}),
			}},
			check: func(t *testing.T, c *Config) {
				if len(c.BGPAdvertisements) != 5 {
					t.Errorf("got %d advertisements, want 5", len(c.BGPAdvertisements))
				}
			},
		},
		{
			name: "identical BGPAdvertisements",
			res: Resources{Pools: pools, BGPAdvs: []v1beta1.BGPAdvertisement{
				bgpAdv("a", v1beta1.BGPAdvertisementSpec{IPAddressPools: []string{"blue", "red"}, Communities: []string{"1:1", "2:2"}, Peers: []string{"x", "y"}}),
				bgpAdv("b", v1beta1.BGPAdvertisementSpec{IPAddressPools: []string{"red", "blue"}, Communities: []string{"2:2", "1:1"}, Peers: []string{"y", "x"},
					AggregationLength: ptr[int32](32)}),
			}},
			want: []wantErr{
				bgpErr("a", "spec", "identical to BGPAdvertisement metallb-system/b"),
				bgpErr("b", "spec", "identical to BGPAdvertisement metallb-system/a"),
			},
		},
		{
			name: "defaults, aliases, unknown peers and pools",
			res: Resources{
				Pools: pools,
				Communities: []v1beta1.Community{
					communityObj("standard", "no-export", "65535:65281"),
					communityObj("large", "big", "large:64512:1:2"),
				},
				BGPAdvs: []v1beta1.BGPAdvertisement{
					bgpAdv("adv", v1beta1.BGPAdvertisementSpec{
						IPAddressPools: []string{"red", "blue", "not-yet"},
						Communities:    []string{"big", "65000:7", "no-export"},
						Peers:          []string{"tor2", "no-such-peer"},
						LocalPref:      150,
						NodeSelectors:  []metav1.LabelSelector{sel("rack", "1")},
					}),
				},
			},
			check: func(t *testing.T, c *Config) {
				a := c.BGPAdvertisements[0]
				if a.AggregationLength != 32 || a.AggregationLengthV6 != 128 || a.LocalPref != 150 {
					t.Errorf("adv = %+v", a)
				}
				if !slices.Equal(a.Pools, []string{"blue", "red"}) {
					t.Errorf("pools = %v", a.Pools)
				}
				if !slices.Equal(a.Peers, []string{"no-such-peer", "tor2"}) {
					t.Errorf("peers = %v", a.Peers)
				}
				var comms []string
				for _, cm := range a.Communities {
					comms = append(comms, cm.String())
				}
				if !slices.Equal(comms, []string{"65000:7", "65535:65281", "large:64512:1:2"}) {
					t.Errorf("communities = %v", comms)
				}
				if len(a.NodeSelectors) != 1 || !a.NodeSelectors[0].Matches(labels.Set{"rack": "1"}) {
					t.Errorf("node selectors = %v", a.NodeSelectors)
				}
			},
		},
	})
}

func TestParseCommunities(t *testing.T) {
	runParseCases(t, []parseCase{
		{
			name: "duplicate alias names across objects",
			res: Resources{Communities: []v1beta1.Community{
				communityObj("first", "gold", "65000:1", "silver", "65000:2"),
				communityObj("second", "gold", "65000:9"),
			}},
			want: []wantErr{
				commErr("first", "spec.communities[0].name", `alias "gold" is defined 2 times (Community metallb-system/first spec.communities[0], Community metallb-system/second spec.communities[0])`),
				commErr("second", "spec.communities[0].name", `alias "gold" is defined 2 times`),
			},
		},
		{
			name: "duplicate alias names within one object",
			res: Resources{Communities: []v1beta1.Community{
				communityObj("first", "gold", "65000:1", "gold", "65000:1"),
			}},
			want: []wantErr{
				commErr("first", "spec.communities[0].name", `alias "gold" is defined 2 times`),
				commErr("first", "spec.communities[1].name", `alias "gold" is defined 2 times`),
			},
		},
		{
			name: "alias values that do not parse, and empty names",
			res: Resources{
				Communities: []v1beta1.Community{communityObj("c", "bad", "65536:1", "", "1:1", "worse", "large:1")},
				// The advertisement using a broken alias is not reported
				// again: the Community object is where the fix goes.
				BGPAdvs: []v1beta1.BGPAdvertisement{bgpAdv("adv", v1beta1.BGPAdvertisementSpec{Communities: []string{"bad"}})},
			},
			want: []wantErr{
				commErr("c", "spec.communities[0].value", `"65536:1" is not a community`),
				commErr("c", "spec.communities[1].name", "alias name must not be empty"),
				commErr("c", "spec.communities[2].value", `"large:1" is not a large community`),
			},
		},
	})
}

func TestParsePeers(t *testing.T) {
	basicAuth := corev1.SecretTypeBasicAuth
	v4pool := pool("v4", "198.18.0.0/24")
	v6pool := pool("v6", "2001:db8::/64")
	echo := bfdProfile("echo", v1beta1.BFDProfileSpec{EchoMode: ptr(true)})
	plain := bfdProfile("plain", v1beta1.BFDProfileSpec{})
	runParseCases(t, []parseCase{
		{
			name: "missing myASN",
			res:  Resources{Peers: []v1beta2.BGPPeer{peer("p", "192.0.2.1", func(s *v1beta2.BGPPeerSpec) { s.MyASN = 0 })}},
			want: []wantErr{peerErr("p", "spec.myASN", "myASN is required")},
		},
		{
			name: "both peerASN and dynamicASN",
			res:  Resources{Peers: []v1beta2.BGPPeer{peer("p", "192.0.2.1", func(s *v1beta2.BGPPeerSpec) { s.DynamicASN = v1beta2.ExternalASNMode })}},
			want: []wantErr{peerErr("p", "spec.peerASN", "peerASN and dynamicASN are mutually exclusive")},
		},
		{
			name: "neither peerASN nor dynamicASN",
			res:  Resources{Peers: []v1beta2.BGPPeer{peer("p", "192.0.2.1", func(s *v1beta2.BGPPeerSpec) { s.PeerASN = 0 })}},
			want: []wantErr{peerErr("p", "spec.peerASN", "one of peerASN and dynamicASN is required")},
		},
		{
			name: "unknown dynamicASN mode",
			res: Resources{Peers: []v1beta2.BGPPeer{peer("p", "192.0.2.1", func(s *v1beta2.BGPPeerSpec) {
				s.PeerASN = 0
				s.DynamicASN = "sometimes"
			})}},
			want: []wantErr{peerErr("p", "spec.dynamicASN", `"sometimes" is not a dynamicASN mode`)},
		},
		{
			name: "both peerAddress and interface",
			res:  Resources{Peers: []v1beta2.BGPPeer{peer("p", "192.0.2.1", func(s *v1beta2.BGPPeerSpec) { s.Interface = "eth0" })}},
			want: []wantErr{peerErr("p", "spec.peerAddress", "peerAddress and interface are mutually exclusive")},
		},
		{
			name: "neither peerAddress nor interface",
			res:  Resources{Peers: []v1beta2.BGPPeer{peer("p", "", nil)}},
			want: []wantErr{peerErr("p", "spec.peerAddress", "one of peerAddress and interface is required")},
		},
		{
			name: "unparsable addresses and router IDs",
			res: Resources{Peers: []v1beta2.BGPPeer{
				peer("bad-addr", "192.0.2.300", nil),
				peer("zone", "fe80::1%eth0", nil),
				peer("mapped", "::ffff:192.0.2.1", nil),
				peer("bad-source", "192.0.2.2", func(s *v1beta2.BGPPeerSpec) { s.SourceAddress = "nope" }),
				peer("bad-id", "192.0.2.3", func(s *v1beta2.BGPPeerSpec) { s.RouterID = "10.0.0" }),
				peer("v6-id", "192.0.2.4", func(s *v1beta2.BGPPeerSpec) { s.RouterID = "2001:db8::1" }),
				peer("zero-id", "192.0.2.5", func(s *v1beta2.BGPPeerSpec) { s.RouterID = "0.0.0.0" }),
			}},
			want: []wantErr{
				peerErr("bad-addr", "spec.peerAddress", `"192.0.2.300" is not an IP address`),
				peerErr("zone", "spec.peerAddress", "has an IPv6 zone"),
				peerErr("mapped", "spec.peerAddress", "write the IPv4 address 192.0.2.1"),
				peerErr("bad-source", "spec.sourceAddress", `"nope" is not an IP address`),
				peerErr("bad-id", "spec.routerID", `"10.0.0" is not an IP address`),
				peerErr("v6-id", "spec.routerID", `"2001:db8::1" is not an IPv4 address`),
				peerErr("zero-id", "spec.routerID", "0.0.0.0 is not a valid BGP router ID"),
			},
		},
		{
			name: "ebgpMultiHop on iBGP",
			res: Resources{Peers: []v1beta2.BGPPeer{
				peer("same-asn", "192.0.2.1", func(s *v1beta2.BGPPeerSpec) { s.PeerASN = 64500; s.EBGPMultiHop = true }),
				peer("dynamic-internal", "192.0.2.2", func(s *v1beta2.BGPPeerSpec) {
					s.PeerASN = 0
					s.DynamicASN = v1beta2.InternalASNMode
					s.EBGPMultiHop = true
				}),
				peer("local-asn", "192.0.2.3", func(s *v1beta2.BGPPeerSpec) { s.LocalASN = 64501; s.EBGPMultiHop = true }),
			}},
			want: []wantErr{
				peerErr("same-asn", "spec.ebgpMultiHop", "this session is iBGP (the peer is in AS 64500"),
				peerErr("dynamic-internal", "spec.ebgpMultiHop", "ebgpMultiHop applies only to eBGP"),
				peerErr("local-asn", "spec.ebgpMultiHop", "AS 64501"),
			},
		},
		{
			name: "ebgpMultiHop on eBGP is fine",
			res: Resources{Peers: []v1beta2.BGPPeer{
				peer("static", "192.0.2.1", func(s *v1beta2.BGPPeerSpec) { s.EBGPMultiHop = true }),
				peer("dynamic", "192.0.2.2", func(s *v1beta2.BGPPeerSpec) {
					s.PeerASN = 0
					s.DynamicASN = v1beta2.ExternalASNMode
					s.EBGPMultiHop = true
				}),
				// local-as turns what looks like iBGP into eBGP.
				peer("local-as", "192.0.2.3", func(s *v1beta2.BGPPeerSpec) { s.PeerASN = 64500; s.LocalASN = 64999; s.EBGPMultiHop = true }),
			}},
			check: func(t *testing.T, c *Config) {
				for _, p := range c.Peers {
					if !p.EBGPMultiHop {
						t.Errorf("%s lost ebgpMultiHop", p.Name)
					}
				}
			},
		},
		{
			name: "timers",
			res: Resources{Peers: []v1beta2.BGPPeer{
				peer("hold-short", "192.0.2.1", func(s *v1beta2.BGPPeerSpec) { s.HoldTime = dur("2s") }),
				peer("hold-long", "192.0.2.2", func(s *v1beta2.BGPPeerSpec) { s.HoldTime = dur("65536s") }),
				peer("keepalive-over-hold", "192.0.2.3", func(s *v1beta2.BGPPeerSpec) { s.HoldTime = dur("9s"); s.KeepaliveTime = dur("10s") }),
				peer("keepalive-with-zero-hold", "192.0.2.4", func(s *v1beta2.BGPPeerSpec) { s.HoldTime = dur("0s"); s.KeepaliveTime = dur("1s") }),
				peer("negative", "192.0.2.5", func(s *v1beta2.BGPPeerSpec) { s.HoldTime = dur("-3s"); s.KeepaliveTime = dur("-1s") }),
				peer("connect", "192.0.2.6", func(s *v1beta2.BGPPeerSpec) { s.ConnectTime = dur("500ms") }),
			}},
			want: []wantErr{
				peerErr("hold-short", "spec.holdTime", "2s is too short: must be 0 (no keepalives) or at least 3s"),
				peerErr("hold-long", "spec.holdTime", "is too long"),
				peerErr("keepalive-over-hold", "spec.keepaliveTime", "10s is greater than holdTime 9s"),
				peerErr("keepalive-with-zero-hold", "spec.keepaliveTime", "must be 0 or unset when holdTime is 0"),
				peerErr("negative", "spec.holdTime", "-3s is negative"),
				peerErr("negative", "spec.keepaliveTime", "-1s is negative"),
				peerErr("connect", "spec.connectTime", "500ms is out of range"),
			},
		},
		{
			name: "valid timers and defaults",
			res: Resources{Peers: []v1beta2.BGPPeer{
				peer("zero-hold", "192.0.2.1", func(s *v1beta2.BGPPeerSpec) { s.HoldTime = dur("0s"); s.KeepaliveTime = dur("0s") }),
				peer("set", "192.0.2.2", func(s *v1beta2.BGPPeerSpec) {
					s.HoldTime = dur("3s")
					s.KeepaliveTime = dur("3s")
					s.ConnectTime = dur("10s")
					s.PeerPort = 1179
				}),
				peer("unset", "192.0.2.3", nil),
			}},
			check: func(t *testing.T, c *Config) {
				zero, set, unset := c.Peers[2], c.Peers[0], c.Peers[1]
				if zero.HoldTime == nil || *zero.HoldTime != 0 || zero.KeepaliveTime == nil || *zero.KeepaliveTime != 0 {
					t.Errorf("zero-hold timers = %v, %v", zero.HoldTime, zero.KeepaliveTime)
				}
				if *set.HoldTime != 3*time.Second || *set.KeepaliveTime != 3*time.Second || *set.ConnectTime != 10*time.Second || set.Port != 1179 {
					t.Errorf("set = %+v", set)
				}
				if unset.HoldTime != nil || unset.KeepaliveTime != nil || unset.ConnectTime != nil || unset.Port != 179 {
					t.Errorf("unset = %+v", unset)
				}
			},
		},
		{
			name: "password and passwordSecret together",
			res: Resources{
				Secrets: []corev1.Secret{secret("bgp", basicAuth, map[string]string{"password": "s3cret"})},
				Peers: []v1beta2.BGPPeer{peer("p", "192.0.2.1", func(s *v1beta2.BGPPeerSpec) {
					s.Password = "plain"
					s.PasswordSecret = corev1.SecretReference{Name: "bgp"}
				})},
			},
			want: []wantErr{peerErr("p", "spec.password", "password and passwordSecret are mutually exclusive")},
		},
		{
			name: "passwordSecret problems",
			res: Resources{
				Secrets: []corev1.Secret{
					secret("opaque", corev1.SecretTypeOpaque, map[string]string{"password": "x"}),
					secret("no-key", basicAuth, map[string]string{"username": "x"}),
					with(secret("elsewhere", basicAuth, map[string]string{"password": "x"}), func(s *corev1.Secret) { s.Namespace = "default" }),
				},
				Peers: []v1beta2.BGPPeer{
					peer("missing", "192.0.2.1", func(s *v1beta2.BGPPeerSpec) { s.PasswordSecret = corev1.SecretReference{Name: "nope"} }),
					peer("wrong-type", "192.0.2.2", func(s *v1beta2.BGPPeerSpec) { s.PasswordSecret = corev1.SecretReference{Name: "opaque"} }),
					peer("no-key", "192.0.2.3", func(s *v1beta2.BGPPeerSpec) { s.PasswordSecret = corev1.SecretReference{Name: "no-key", Namespace: ns} }),
					peer("other-ns", "192.0.2.4", func(s *v1beta2.BGPPeerSpec) {
						s.PasswordSecret = corev1.SecretReference{Name: "elsewhere", Namespace: "default"}
					}),
					peer("no-name", "192.0.2.5", func(s *v1beta2.BGPPeerSpec) { s.PasswordSecret = corev1.SecretReference{Namespace: ns} }),
				},
			},
			want: []wantErr{
				peerErr("missing", "spec.passwordSecret.name", "Secret metallb-system/nope does not exist"),
				peerErr("wrong-type", "spec.passwordSecret.name", `has type "Opaque"; it must be "kubernetes.io/basic-auth"`),
				peerErr("no-key", "spec.passwordSecret.name", `has no non-empty "password" key`),
				peerErr("other-ns", "spec.passwordSecret.namespace", `must be in the peer's namespace "metallb-system", not "default"`),
				peerErr("no-name", "spec.passwordSecret.name", "passwordSecret.name is empty"),
			},
		},
		{
			name: "passwordSecret resolved",
			res: Resources{
				Secrets: []corev1.Secret{secret("bgp", basicAuth, map[string]string{"username": "u", "password": "s3cret"})},
				Peers: []v1beta2.BGPPeer{
					peer("secret", "192.0.2.1", func(s *v1beta2.BGPPeerSpec) { s.PasswordSecret = corev1.SecretReference{Name: "bgp"} }),
					peer("inline", "192.0.2.2", func(s *v1beta2.BGPPeerSpec) { s.Password = "inline" }),
				},
			},
			check: func(t *testing.T, c *Config) {
				if c.Peers[0].Password != "inline" || c.Peers[1].Password != "s3cret" {
					t.Errorf("passwords = %q, %q", c.Peers[0].Password, c.Peers[1].Password)
				}
			},
		},
		{
			name: "identical peers",
			res: Resources{Peers: []v1beta2.BGPPeer{
				peer("a", "", func(s *v1beta2.BGPPeerSpec) { s.Interface = "eth0" }),
				peer("b", "", func(s *v1beta2.BGPPeerSpec) { s.Interface = "eth0"; s.PeerPort = 179 }),
			}},
			want: []wantErr{
				peerErr("a", "spec", "identical to BGPPeer metallb-system/b"),
				peerErr("b", "spec", "identical to BGPPeer metallb-system/a"),
			},
		},
		{
			name: "duplicate address in one VRF, whatever the port",
			res: Resources{Peers: []v1beta2.BGPPeer{
				peer("a", "192.0.2.1", nil),
				peer("b", "192.0.2.1", func(s *v1beta2.BGPPeerSpec) { s.PeerPort = 1179 }),
				peer("c", "2001:db8::1", func(s *v1beta2.BGPPeerSpec) { s.VRF = "red" }),
				peer("d", "2001:db8::1", func(s *v1beta2.BGPPeerSpec) { s.VRF = "red"; s.PeerASN = 65000 }),
			}},
			want: []wantErr{
				peerErr("a", "spec.peerAddress", "address 192.0.2.1 in the default VRF is also the address of BGPPeer metallb-system/b"),
				peerErr("b", "spec.peerAddress", "also the address of BGPPeer metallb-system/a"),
				peerErr("c", "spec.peerAddress", `address 2001:db8::1 in VRF "red" is also the address of BGPPeer metallb-system/d`),
				peerErr("d", "spec.peerAddress", "also the address of BGPPeer metallb-system/c"),
			},
		},
		{
			name: "same address in different VRFs",
			res: Resources{Peers: []v1beta2.BGPPeer{
				peer("a", "192.0.2.1", nil),
				peer("b", "192.0.2.1", func(s *v1beta2.BGPPeerSpec) { s.VRF = "red" }),
			}},
			check: func(t *testing.T, c *Config) {
				if len(c.Peers) != 2 || c.Peers[1].VRF != "red" {
					t.Errorf("peers = %+v", c.Peers)
				}
			},
		},
		{
			name: "peers on every node disagree on myASN, without any Node",
			res: Resources{Peers: []v1beta2.BGPPeer{
				peer("a", "192.0.2.1", nil),
				peer("b", "192.0.2.2", func(s *v1beta2.BGPPeerSpec) { s.MyASN = 64999 }),
			}},
			want: []wantErr{
				peerErr("a", "spec.myASN", "myASN 64500 differs from myASN 64999 of BGPPeer metallb-system/b, which also peers on every node"),
				peerErr("b", "spec.myASN", "myASN 64999 differs from myASN 64500 of BGPPeer metallb-system/a"),
			},
		},
		{
			name: "peers sharing a listed node disagree on routerID",
			res: Resources{
				Nodes: []corev1.Node{node("n2", "rack", "2"), node("n1", "rack", "1")},
				Peers: []v1beta2.BGPPeer{
					peer("everywhere", "192.0.2.1", func(s *v1beta2.BGPPeerSpec) { s.RouterID = "10.0.0.1" }),
					peer("rack1", "192.0.2.2", func(s *v1beta2.BGPPeerSpec) {
						s.RouterID = "10.0.0.2"
						s.NodeSelectors = []metav1.LabelSelector{sel("rack", "1")}
					}),
				},
			},
			want: []wantErr{
				peerErr("everywhere", "spec.routerID", `routerID 10.0.0.1 differs from routerID 10.0.0.2 of BGPPeer metallb-system/rack1, which also peers on node "n1"; peers sharing a node in the default VRF must agree on routerID`),
				peerErr("rack1", "spec.routerID", "routerID 10.0.0.2 differs from routerID 10.0.0.1 of BGPPeer metallb-system/everywhere"),
			},
		},
		{
			name: "set and unset routerID on a shared node disagree",
			res: Resources{
				Nodes: []corev1.Node{node("n1", "rack", "1")},
				Peers: []v1beta2.BGPPeer{
					peer("a", "192.0.2.1", func(s *v1beta2.BGPPeerSpec) { s.NodeSelectors = []metav1.LabelSelector{sel("rack", "1")} }),
					peer("b", "192.0.2.2", func(s *v1beta2.BGPPeerSpec) {
						s.RouterID = "10.0.0.2"
						s.NodeSelectors = []metav1.LabelSelector{{}}
					}),
				},
			},
			want: []wantErr{
				peerErr("a", "spec.routerID", "routerID (unset) differs from routerID 10.0.0.2"),
				peerErr("b", "spec.routerID", "routerID 10.0.0.2 differs from routerID (unset)"),
			},
		},
		{
			name: "peers that never share a node, or differ in VRF, may disagree",
			res: Resources{
				Nodes: []corev1.Node{node("n1", "rack", "1"), node("n2", "rack", "2")},
				Peers: []v1beta2.BGPPeer{
					peer("rack1", "192.0.2.1", func(s *v1beta2.BGPPeerSpec) {
						s.RouterID = "10.0.0.1"
						s.NodeSelectors = []metav1.LabelSelector{sel("rack", "1")}
					}),
					peer("rack2", "192.0.2.2", func(s *v1beta2.BGPPeerSpec) {
						s.MyASN = 64999
						s.RouterID = "10.0.0.2"
						s.NodeSelectors = []metav1.LabelSelector{sel("rack", "2")}
					}),
					peer("rack3", "192.0.2.3", func(s *v1beta2.BGPPeerSpec) {
						s.MyASN = 65001
						s.NodeSelectors = []metav1.LabelSelector{sel("rack", "3")}
					}),
					peer("vrf", "192.0.2.4", func(s *v1beta2.BGPPeerSpec) {
						s.MyASN = 65002
						s.VRF = "red"
					}),
				},
			},
			check: func(t *testing.T, c *Config) {
				if len(c.Peers) != 4 {
					t.Errorf("got %d peers, want 4", len(c.Peers))
				}
				if c.Peers[0].Name != "rack1" || c.Peers[0].RouterID != netip.MustParseAddr("10.0.0.1") || len(c.Peers[0].NodeSelectors) != 1 {
					t.Errorf("rack1 = %+v", c.Peers[0])
				}
			},
		},
		{
			name: "bfdProfile that does not exist",
			res: Resources{
				BFDProfiles: []v1beta1.BFDProfile{plain},
				Peers: []v1beta2.BGPPeer{
					peer("a", "192.0.2.1", func(s *v1beta2.BGPPeerSpec) { s.BFDProfile = "fast" }),
					peer("b", "192.0.2.2", func(s *v1beta2.BGPPeerSpec) { s.BFDProfile = "plain" }),
				},
			},
			want: []wantErr{peerErr("a", "spec.bfdProfile", `BFDProfile "fast" does not exist`)},
		},
		{
			name: "BFD echo mode on a peer carrying IPv6 pools",
			res: Resources{
				Pools:       []v1beta1.IPAddressPool{v4pool, v6pool},
				BFDProfiles: []v1beta1.BFDProfile{echo},
				BGPAdvs: []v1beta1.BGPAdvertisement{
					bgpAdv("v4-to-all", v1beta1.BGPAdvertisementSpec{IPAddressPools: []string{"v4"}}),
					bgpAdv("v6-to-b", v1beta1.BGPAdvertisementSpec{IPAddressPools: []string{"v6"}, Peers: []string{"b"}}),
				},
				Peers: []v1beta2.BGPPeer{
					peer("a", "192.0.2.1", func(s *v1beta2.BGPPeerSpec) { s.BFDProfile = "echo" }),
					peer("b", "192.0.2.2", func(s *v1beta2.BGPPeerSpec) { s.BFDProfile = "echo" }),
				},
			},
			want: []wantErr{peerErr("b", "spec.bfdProfile", `BFDProfile "echo" enables echo mode, which works only over IPv4, but this peer carries IPv6 addresses of IPAddressPool metallb-system/v6 through BGPAdvertisement metallb-system/v6-to-b`)},
		},
		{
			name: "BFD echo mode through an advertisement to every peer",
			res: Resources{
				Pools:       []v1beta1.IPAddressPool{v4pool, v6pool},
				BFDProfiles: []v1beta1.BFDProfile{echo, plain},
				BGPAdvs:     []v1beta1.BGPAdvertisement{bgpAdv("all", v1beta1.BGPAdvertisementSpec{})},
				Peers: []v1beta2.BGPPeer{
					peer("a", "192.0.2.1", func(s *v1beta2.BGPPeerSpec) { s.BFDProfile = "echo" }),
					peer("b", "192.0.2.2", func(s *v1beta2.BGPPeerSpec) { s.BFDProfile = "plain" }),
				},
			},
			want: []wantErr{peerErr("a", "spec.bfdProfile", "through BGPAdvertisement metallb-system/all")},
		},
		{
			name: "every field carried over",
			res: Resources{
				BFDProfiles: []v1beta1.BFDProfile{plain},
				Peers: []v1beta2.BGPPeer{peer("full", "2001:db8::1", func(s *v1beta2.BGPPeerSpec) {
					s.PeerASN = 0
					s.DynamicASN = v1beta2.ExternalASNMode
					s.LocalASN = 64777
					s.SourceAddress = "2001:db8::2"
					s.RouterID = "10.1.1.1"
					s.BFDProfile = "plain"
					s.EBGPMultiHop = true
					s.VRF = "blue"
					s.EnableGracefulRestart = true
					s.DisableMP = true
					s.DualStackAddressFamily = true
					s.NodeSelectors = []metav1.LabelSelector{sel("bgp", "yes")}
				})},
			},
			check: func(t *testing.T, c *Config) {
				p := c.Peers[0]
				want := Peer{
					Name: "full", MyASN: 64500, DynamicASN: "external", LocalASN: 64777,
					Addr: netip.MustParseAddr("2001:db8::1"), SourceAddr: netip.MustParseAddr("2001:db8::2"), Port: 179,
					RouterID: netip.MustParseAddr("10.1.1.1"), BFDProfile: "plain", EBGPMultiHop: true, VRF: "blue",
					EnableGracefulRestart: true, DisableMP: true, DualStackAddressFamily: true,
				}
				got := *p
				got.NodeSelectors = nil
				if !reflect.DeepEqual(got, want) {
					t.Errorf("peer = %+v\nwant %+v", got, want)
				}
				if len(p.NodeSelectors) != 1 || !p.NodeSelectors[0].Matches(labels.Set{"bgp": "yes"}) || p.NodeSelectors[0].Matches(labels.Set{}) {
					t.Errorf("node selectors = %v", p.NodeSelectors)
				}
			},
		},
	})
}

func TestParseBFDProfiles(t *testing.T) {
	u := func(v uint32) *uint32 { return &v }
	runParseCases(t, []parseCase{
		{
			name: "bounds",
			res: Resources{BFDProfiles: []v1beta1.BFDProfile{
				bfdProfile("low", v1beta1.BFDProfileSpec{
					ReceiveInterval: u(9), TransmitInterval: u(9), DetectMultiplier: u(1), EchoInterval: u(9), MinimumTTL: u(0),
				}),
				bfdProfile("high", v1beta1.BFDProfileSpec{
					ReceiveInterval: u(60001), TransmitInterval: u(60001), DetectMultiplier: u(256), EchoInterval: u(60001), MinimumTTL: u(255),
				}),
			}},
			want: []wantErr{
				bfdErr("low", "spec.receiveInterval", "9 is out of range: must be from 10 to 60000"),
				bfdErr("low", "spec.transmitInterval", "9 is out of range"),
				bfdErr("low", "spec.detectMultiplier", "1 is out of range: must be from 2 to 255"),
				bfdErr("low", "spec.echoInterval", "9 is out of range"),
				bfdErr("low", "spec.minimumTtl", "0 is out of range: must be from 1 to 254"),
				bfdErr("high", "spec.receiveInterval", "60001 is out of range"),
				bfdErr("high", "spec.transmitInterval", "60001 is out of range"),
				bfdErr("high", "spec.detectMultiplier", "256 is out of range"),
				bfdErr("high", "spec.echoInterval", "60001 is out of range"),
				bfdErr("high", "spec.minimumTtl", "255 is out of range"),
			},
		},
		{
			name:          "duplicate names",
			allNamespaces: true,
			res: Resources{BFDProfiles: []v1beta1.BFDProfile{
				bfdProfile("fast", v1beta1.BFDProfileSpec{}),
				with(bfdProfile("fast", v1beta1.BFDProfileSpec{}), func(p *v1beta1.BFDProfile) { p.Namespace = "other" }),
			}},
			want: []wantErr{
				bfdErr("fast", "metadata.name", `name "fast" is used by 2 objects`),
				{kind: KindBFDProfile, namespace: "other", name: "fast", field: "metadata.name", reason: `name "fast" is used by 2 objects`},
			},
		},
		{
			name: "defaults and limits accepted",
			res: Resources{BFDProfiles: []v1beta1.BFDProfile{
				bfdProfile("default", v1beta1.BFDProfileSpec{}),
				bfdProfile("edges", v1beta1.BFDProfileSpec{
					ReceiveInterval: u(10), TransmitInterval: u(60000), DetectMultiplier: u(255), EchoInterval: u(10),
					MinimumTTL: u(254), EchoMode: ptr(true), PassiveMode: ptr(true),
				}),
			}},
			check: func(t *testing.T, c *Config) {
				want := []BFDProfile{
					{Name: "default", ReceiveInterval: 300, TransmitInterval: 300, DetectMultiplier: 3, EchoInterval: 50},
					{Name: "edges", ReceiveInterval: 10, TransmitInterval: 60000, DetectMultiplier: 255, EchoInterval: 10,
						MinimumTTL: 254, EchoMode: true, PassiveMode: true},
				}
				if len(c.BFDProfiles) != len(want) {
					t.Fatalf("got %d profiles", len(c.BFDProfiles))
				}
				for i := range want {
					if *c.BFDProfiles[i] != want[i] {
						t.Errorf("profile %d = %+v, want %+v", i, *c.BFDProfiles[i], want[i])
					}
				}
			},
		},
	})
}
