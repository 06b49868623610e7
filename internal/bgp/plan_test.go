package bgp

import (
	"encoding/json"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/keeperlb/keeperlb/api/v1beta1"
	"github.com/keeperlb/keeperlb/api/v1beta2"
	"github.com/keeperlb/keeperlb/internal/config"
)

var (
	vip    = netip.MustParseAddr("198.19.0.10")
	vip2   = netip.MustParseAddr("198.19.0.20")
	vip6   = netip.MustParseAddr("2001:db8:19::10")
	nodeV4 = netip.MustParseAddr("198.18.0.11")
	nodeV6 = netip.MustParseAddr("2001:db8:18::11")
	rtrV4  = netip.MustParseAddr("198.18.0.1")
	rtrV6  = netip.MustParseAddr("2001:db8:18::1")
)

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func comm(s string) config.Community {
	c, err := config.ParseCommunity(s)
	if err != nil {
		panic(err)
	}
	return c
}

func comms(ss ...string) []config.Community {
	var out []config.Community
	for _, s := range ss {
		out = append(out, comm(s))
	}
	return out
}

func sel(kv ...string) labels.Selector {
	set := labels.Set{}
	for i := 0; i+1 < len(kv); i += 2 {
		set[kv[i]] = kv[i+1]
	}
	return labels.SelectorFromSet(set)
}

func testPool(name string, ranges ...string) *config.Pool {
	p := &config.Pool{Name: name, AutoAssign: true}
	for _, r := range ranges {
		pr := pfx(r)
		last := pr.Addr()
		for a := pr.Addr(); pr.Contains(a); a = a.Next() {
			last = a
		}
		p.Ranges = append(p.Ranges, config.Range{First: pr.Addr(), Last: last})
		p.CIDRs = append(p.CIDRs, pr)
	}
	return p
}

func peer(name string, addr netip.Addr, mods ...func(*config.Peer)) *config.Peer {
	p := &config.Peer{Name: name, MyASN: 64512, PeerASN: 64500, Addr: addr, Port: 179}
	for _, m := range mods {
		m(p)
	}
	return p
}

func adv(name string, mods ...func(*config.BGPAdvertisement)) *config.BGPAdvertisement {
	a := &config.BGPAdvertisement{Name: name, AggregationLength: 32, AggregationLengthV6: 128, Pools: []string{"p"}}
	for _, m := range mods {
		m(a)
	}
	return a
}

func testNode(mods ...func(*Node)) Node {
	n := Node{Name: "n1", Labels: map[string]string{"kubernetes.io/hostname": "n1", "rack": "a"}, Addresses: []netip.Addr{nodeV4, nodeV6}}
	for _, m := range mods {
		m(&n)
	}
	return n
}

func service(key string, mods ...func(*Service)) Service {
	s := Service{Key: key, IPs: []netip.Addr{vip}, Serving: true}
	for _, m := range mods {
		m(&s)
	}
	return s
}

func baseCfg(peers []*config.Peer, advs ...*config.BGPAdvertisement) *config.Config {
	return &config.Config{
		Pools:             []*config.Pool{testPool("p", "198.19.0.0/24", "2001:db8:19::/120"), testPool("q", "198.19.1.0/24")},
		Peers:             peers,
		BGPAdvertisements: advs,
	}
}

func ebgp(name string, addr netip.Addr) PeerConfig {
	v4 := addr.Is4()
	return PeerConfig{Name: name, Address: addr, Port: 179, LocalASN: 64512, PeerASN: 64500, IPv4: v4, IPv6: !v4}
}

func route(peer string, lp uint32, cs ...string) Route {
	return Route{Peer: peer, LocalPref: lp, Communities: comms(cs...)}
}

func dur(d time.Duration) *time.Duration { return &d }

func TestPlan(t *testing.T) {
	r4 := []*config.Peer{peer("r4", rtrV4)}
	type tc struct {
		name     string
		cfg      *config.Config
		node     Node
		services []Service
		want     Desired
		problems []string // Problem.Error() texts, as substrings in order
	}
	oneV4 := func(paths ...Path) Desired {
		d := Desired{ASN: 64512, RouterID: nodeV4, Peers: []PeerConfig{ebgp("r4", rtrV4)}, Paths: paths}
		return d
	}
	cases := []tc{
		{name: "nil config", cfg: nil, node: testNode(), services: []Service{service("ns/a")}, want: Desired{}},
		{
			name: "no peers selects this node: nothing, even with advertisements", node: testNode(),
			cfg:      baseCfg([]*config.Peer{peer("r4", rtrV4, func(p *config.Peer) { p.NodeSelectors = []labels.Selector{sel("rack", "b")} })}, adv("a")),
			services: []Service{service("ns/a")},
			want:     Desired{},
		},
		{
			name: "one eBGP peer, one /32", node: testNode(), cfg: baseCfg(r4, adv("a")),
			services: []Service{service("ns/a")},
			want: func() Desired {
				d := oneV4(Path{Prefix: pfx("198.19.0.10/32"), Routes: []Route{route("r4", 0)}})
				d.Services = []ServiceAdvert{{Key: "ns/a", Prefixes: []netip.Prefix{pfx("198.19.0.10/32")}, Peers: []string{"r4"}}}
				return d
			}(),
		},
		{
			name: "peer nodeSelectors that match", node: testNode(),
			cfg: baseCfg([]*config.Peer{peer("r4", rtrV4, func(p *config.Peer) {
				p.NodeSelectors = []labels.Selector{sel("rack", "b"), sel("rack", "a")}
			})}),
			want: oneV4(),
		},
		{
			name: "no serving endpoint: nothing advertised", node: testNode(), cfg: baseCfg(r4, adv("a")),
			services: []Service{service("ns/a", func(s *Service) { s.Serving = false })},
			want:     oneV4(),
		},
		{
			name: "ETP Cluster: advertised from a node without a local endpoint", node: testNode(), cfg: baseCfg(r4, adv("a")),
			services: []Service{service("ns/a", func(s *Service) { s.ServingNodes = []string{"n2"} })},
			want: func() Desired {
				d := oneV4(Path{Prefix: pfx("198.19.0.10/32"), Routes: []Route{route("r4", 0)}})
				d.Services = []ServiceAdvert{{Key: "ns/a", Prefixes: []netip.Prefix{pfx("198.19.0.10/32")}, Peers: []string{"r4"}}}
				return d
			}(),
		},
		{
			name: "ETP Local: only from a node with a serving endpoint", node: testNode(), cfg: baseCfg(r4, adv("a")),
			services: []Service{
				service("ns/away", func(s *Service) { s.LocalTrafficPolicy = true; s.ServingNodes = []string{"n2"} }),
				service("ns/here", func(s *Service) {
					s.IPs = []netip.Addr{vip2}
					s.LocalTrafficPolicy = true
					s.ServingNodes = []string{"n0", "n1"}
				}),
			},
			want: func() Desired {
				d := oneV4(Path{Prefix: pfx("198.19.0.20/32"), Routes: []Route{route("r4", 0)}})
				d.Services = []ServiceAdvert{{Key: "ns/here", Prefixes: []netip.Prefix{pfx("198.19.0.20/32")}, Peers: []string{"r4"}}}
				return d
			}(),
		},
		{
			name: "excluded node keeps its sessions but advertises nothing",
			node: testNode(func(n *Node) { n.Labels[ExcludeLabel] = "" }), cfg: baseCfg(r4, adv("a")),
			services: []Service{service("ns/a")},
			want:     oneV4(),
		},
		{
			name: "node with unavailable network advertises nothing",
			node: testNode(func(n *Node) { n.NetworkUnavailable = true }), cfg: baseCfg(r4, adv("a")),
			services: []Service{service("ns/a")},
			want:     oneV4(),
		},
		{
			name: "advertisement nodeSelectors exclude the node", node: testNode(),
			cfg:      baseCfg(r4, adv("a", func(a *config.BGPAdvertisement) { a.NodeSelectors = []labels.Selector{sel("rack", "b")} })),
			services: []Service{service("ns/a")},
			want:     oneV4(),
		},
		{
			name: "advertisement of another pool", node: testNode(),
			cfg:      baseCfg(r4, adv("a", func(a *config.BGPAdvertisement) { a.Pools = []string{"q"} })),
			services: []Service{service("ns/a")},
			want:     oneV4(),
		},
		{
			name: "serviceSelectors pick Services", node: testNode(),
			cfg: baseCfg(r4, adv("a", func(a *config.BGPAdvertisement) { a.ServiceSelectors = []labels.Selector{sel("app", "web")} })),
			services: []Service{
				service("ns/db", func(s *Service) { s.Labels = map[string]string{"app": "db"} }),
				service("ns/web", func(s *Service) { s.IPs = []netip.Addr{vip2}; s.Labels = map[string]string{"app": "web"} }),
			},
			want: func() Desired {
				d := oneV4(Path{Prefix: pfx("198.19.0.20/32"), Routes: []Route{route("r4", 0)}})
				d.Services = []ServiceAdvert{{Key: "ns/web", Prefixes: []netip.Prefix{pfx("198.19.0.20/32")}, Peers: []string{"r4"}}}
				return d
			}(),
		},
		{
			name: "aggregation: two Services in one /24 make one prefix", node: testNode(),
			cfg:      baseCfg(r4, adv("a", func(a *config.BGPAdvertisement) { a.AggregationLength = 24 })),
			services: []Service{service("ns/a"), service("ns/b", func(s *Service) { s.IPs = []netip.Addr{vip2} })},
			want: func() Desired {
				d := oneV4(Path{Prefix: pfx("198.19.0.0/24"), Routes: []Route{route("r4", 0)}})
				d.Services = []ServiceAdvert{
					{Key: "ns/a", Prefixes: []netip.Prefix{pfx("198.19.0.0/24")}, Peers: []string{"r4"}},
					{Key: "ns/b", Prefixes: []netip.Prefix{pfx("198.19.0.0/24")}, Peers: []string{"r4"}},
				}
				return d
			}(),
		},
		{
			name: "aggregationLengthV6 on an IPv6 session", node: testNode(),
			cfg:      baseCfg([]*config.Peer{peer("r6", rtrV6)}, adv("a", func(a *config.BGPAdvertisement) { a.AggregationLengthV6 = 124 })),
			services: []Service{service("ns/a", func(s *Service) { s.IPs = []netip.Addr{vip, vip6} })},
			want: Desired{ASN: 64512, RouterID: nodeV4, Peers: []PeerConfig{ebgp("r6", rtrV6)},
				Paths:    []Path{{Prefix: pfx("2001:db8:19::10/124"), Routes: []Route{route("r6", 0)}}},
				Services: []ServiceAdvert{{Key: "ns/a", Prefixes: []netip.Prefix{pfx("2001:db8:19::10/124")}, Peers: []string{"r6"}}},
			},
		},
		{
			name: "each session carries its own family", node: testNode(),
			cfg:      baseCfg([]*config.Peer{peer("r4", rtrV4), peer("r6", rtrV6)}, adv("a")),
			services: []Service{service("ns/a", func(s *Service) { s.IPs = []netip.Addr{vip6, vip} })},
			want: Desired{ASN: 64512, RouterID: nodeV4, Peers: []PeerConfig{ebgp("r4", rtrV4), ebgp("r6", rtrV6)},
				Paths: []Path{
					{Prefix: pfx("198.19.0.10/32"), Routes: []Route{route("r4", 0)}},
					{Prefix: pfx("2001:db8:19::10/128"), Routes: []Route{route("r6", 0)}},
				},
				Services: []ServiceAdvert{{Key: "ns/a", Prefixes: []netip.Prefix{pfx("198.19.0.10/32"), pfx("2001:db8:19::10/128")}, Peers: []string{"r4", "r6"}}},
			},
		},
		{
			name: "dualStackAddressFamily: IPv6 prefixes over an IPv4 session, next hop the node's IPv6 address", node: testNode(),
			cfg:      baseCfg([]*config.Peer{peer("r4", rtrV4, func(p *config.Peer) { p.DualStackAddressFamily = true })}, adv("a")),
			services: []Service{service("ns/a", func(s *Service) { s.IPs = []netip.Addr{vip, vip6} })},
			want: func() Desired {
				pc := ebgp("r4", rtrV4)
				pc.IPv6, pc.NextHopIPv6 = true, nodeV6
				return Desired{ASN: 64512, RouterID: nodeV4, Peers: []PeerConfig{pc},
					Paths: []Path{
						{Prefix: pfx("198.19.0.10/32"), Routes: []Route{route("r4", 0)}},
						{Prefix: pfx("2001:db8:19::10/128"), Routes: []Route{route("r4", 0)}},
					},
					Services: []ServiceAdvert{{Key: "ns/a", Prefixes: []netip.Prefix{pfx("198.19.0.10/32"), pfx("2001:db8:19::10/128")}, Peers: []string{"r4"}}},
				}
			}(),
		},
		{
			name: "dualStackAddressFamily on an IPv6 session uses the node's IPv4 address",
			node: testNode(func(n *Node) {
				n.Addresses = []netip.Addr{netip.MustParseAddr("fe80::1"), nodeV6, netip.MustParseAddr("::ffff:198.18.0.12")}
			}),
			cfg: baseCfg([]*config.Peer{peer("r6", rtrV6, func(p *config.Peer) { p.DualStackAddressFamily = true })}),
			want: func() Desired {
				pc := ebgp("r6", rtrV6)
				pc.IPv4, pc.NextHopIPv4 = true, netip.MustParseAddr("198.18.0.12")
				return Desired{ASN: 64512, RouterID: netip.MustParseAddr("198.18.0.12"), Peers: []PeerConfig{pc}}
			}(),
		},
		{
			name:     "dualStackAddressFamily without a node address of the other family",
			node:     testNode(func(n *Node) { n.Addresses = []netip.Addr{nodeV4, netip.MustParseAddr("fe80::1")} }),
			cfg:      baseCfg([]*config.Peer{peer("r4", rtrV4, func(p *config.Peer) { p.DualStackAddressFamily = true })}, adv("a")),
			services: []Service{service("ns/a", func(s *Service) { s.IPs = []netip.Addr{vip6} })},
			want:     oneV4(),
			problems: []string{"BGPPeer r4: spec.dualStackAddressFamily: node n1 has no global IPv6 address"},
		},
		{
			name: "disableMP wins over dualStackAddressFamily", node: testNode(),
			cfg: baseCfg([]*config.Peer{peer("r4", rtrV4, func(p *config.Peer) {
				p.DualStackAddressFamily = true
				p.DisableMP = true
			})}),
			want:     oneV4(),
			problems: []string{"BGPPeer r4: spec.disableMP: disableMP and dualStackAddressFamily are both set"},
		},
		{
			name: "overlapping advertisements union their communities; peers restricts one of them", node: testNode(),
			cfg: baseCfg([]*config.Peer{peer("ra", rtrV4), peer("rb", netip.MustParseAddr("198.18.0.2"))},
				adv("all", func(a *config.BGPAdvertisement) { a.Communities = comms("65000:1", "large:1:2:3") }),
				adv("only-ra", func(a *config.BGPAdvertisement) {
					a.Peers = []string{"ra"}
					a.Communities = comms("65000:1", "65000:2", "large:4:5:6")
				}),
			),
			services: []Service{service("ns/a")},
			want: Desired{ASN: 64512, RouterID: nodeV4, Peers: []PeerConfig{ebgp("ra", rtrV4), ebgp("rb", netip.MustParseAddr("198.18.0.2"))},
				Paths: []Path{{Prefix: pfx("198.19.0.10/32"), Routes: []Route{
					route("ra", 0, "65000:1", "65000:2", "large:1:2:3", "large:4:5:6"),
					route("rb", 0, "65000:1", "large:1:2:3"),
				}}},
				Services: []ServiceAdvert{{Key: "ns/a", Prefixes: []netip.Prefix{pfx("198.19.0.10/32")}, Peers: []string{"ra", "rb"}}},
			},
		},
		{
			name: "advertisement peers naming a peer this node does not have", node: testNode(),
			cfg:      baseCfg(r4, adv("a", func(a *config.BGPAdvertisement) { a.Peers = []string{"elsewhere"} })),
			services: []Service{service("ns/a")},
			want:     oneV4(),
		},
		{
			name: "localPref only on internal sessions", node: testNode(),
			cfg: baseCfg([]*config.Peer{
				peer("ext", rtrV4),
				peer("int", netip.MustParseAddr("198.18.0.2"), func(p *config.Peer) { p.PeerASN = 64512 }),
				peer("dyn", netip.MustParseAddr("198.18.0.3"), func(p *config.Peer) { p.PeerASN = 0; p.DynamicASN = DynamicInternal }),
				peer("dynext", netip.MustParseAddr("198.18.0.4"), func(p *config.Peer) { p.PeerASN = 0; p.DynamicASN = DynamicExternal }),
			}, adv("a", func(a *config.BGPAdvertisement) { a.LocalPref = 250 })),
			services: []Service{service("ns/a")},
			want: func() Desired {
				in := ebgp("int", netip.MustParseAddr("198.18.0.2"))
				in.PeerASN = 64512
				dyn := ebgp("dyn", netip.MustParseAddr("198.18.0.3"))
				dyn.PeerASN, dyn.DynamicASN = 0, DynamicInternal
				dynext := ebgp("dynext", netip.MustParseAddr("198.18.0.4"))
				dynext.PeerASN, dynext.DynamicASN = 0, DynamicExternal
				return Desired{ASN: 64512, RouterID: nodeV4, Peers: []PeerConfig{dyn, dynext, ebgp("ext", rtrV4), in},
					Paths: []Path{{Prefix: pfx("198.19.0.10/32"), Routes: []Route{
						route("dyn", 250), route("dynext", 0), route("ext", 0), route("int", 250),
					}}},
					Services: []ServiceAdvert{{Key: "ns/a", Prefixes: []netip.Prefix{pfx("198.19.0.10/32")}, Peers: []string{"dyn", "dynext", "ext", "int"}}},
				}
			}(),
		},
		{
			name: "conflicting localPref: the highest wins, the loser is reported", node: testNode(),
			cfg: baseCfg([]*config.Peer{peer("int", rtrV4, func(p *config.Peer) { p.PeerASN = 64512 })},
				adv("low", func(a *config.BGPAdvertisement) { a.LocalPref = 100; a.Peers = []string{"int"} }),
				adv("high", func(a *config.BGPAdvertisement) { a.LocalPref = 300 }),
			),
			services: []Service{service("ns/a")},
			want: func() Desired {
				in := ebgp("int", rtrV4)
				in.PeerASN = 64512
				return Desired{ASN: 64512, RouterID: nodeV4, Peers: []PeerConfig{in},
					Paths:    []Path{{Prefix: pfx("198.19.0.10/32"), Routes: []Route{route("int", 300)}}},
					Services: []ServiceAdvert{{Key: "ns/a", Prefixes: []netip.Prefix{pfx("198.19.0.10/32")}, Peers: []string{"int"}}},
				}
			}(),
			problems: []string{"BGPAdvertisement low: spec.localPref: localPref 100 for 198.19.0.10/32 to BGPPeer int conflicts with localPref 300 of BGPAdvertisement high"},
		},
		{
			name: "shared IP: one path, both Services listed", node: testNode(), cfg: baseCfg(r4, adv("a")),
			services: []Service{service("ns/b"), service("ns/a")},
			want: func() Desired {
				d := oneV4(Path{Prefix: pfx("198.19.0.10/32"), Routes: []Route{route("r4", 0)}})
				d.Services = []ServiceAdvert{
					{Key: "ns/a", Prefixes: []netip.Prefix{pfx("198.19.0.10/32")}, Peers: []string{"r4"}},
					{Key: "ns/b", Prefixes: []netip.Prefix{pfx("198.19.0.10/32")}, Peers: []string{"r4"}},
				}
				return d
			}(),
		},
		{
			name: "the pool is the one holding the address; an address in no pool is skipped", node: testNode(),
			cfg: baseCfg(r4, adv("a", func(a *config.BGPAdvertisement) { a.Pools = []string{"q"} })),
			services: []Service{
				service("ns/a", func(s *Service) { s.IPs = []netip.Addr{netip.MustParseAddr("198.19.1.7")} }),
				service("ns/b", func(s *Service) { s.IPs = []netip.Addr{netip.MustParseAddr("198.19.1.8")} }),
				service("ns/c", func(s *Service) {
					s.IPs = []netip.Addr{netip.MustParseAddr("198.19.9.9"), netip.MustParseAddr("2001:db8:99::1")}
				}),
			},
			want: func() Desired {
				d := oneV4(
					Path{Prefix: pfx("198.19.1.7/32"), Routes: []Route{route("r4", 0)}},
					Path{Prefix: pfx("198.19.1.8/32"), Routes: []Route{route("r4", 0)}},
				)
				d.Services = []ServiceAdvert{
					{Key: "ns/a", Prefixes: []netip.Prefix{pfx("198.19.1.7/32")}, Peers: []string{"r4"}},
					{Key: "ns/b", Prefixes: []netip.Prefix{pfx("198.19.1.8/32")}, Peers: []string{"r4"}},
				}
				return d
			}(),
		},
		{
			name: "session fields", node: testNode(),
			cfg: baseCfg([]*config.Peer{peer("r4", rtrV4, func(p *config.Peer) {
				p.Port = 1179
				p.SourceAddr = nodeV4
				p.LocalASN = 64999
				p.HoldTime, p.KeepaliveTime, p.ConnectTime = dur(9*time.Second), dur(3*time.Second), dur(5*time.Second)
				p.Password = "s3cret"
				p.EBGPMultiHop = true
				p.EnableGracefulRestart = true
				p.RouterID = netip.MustParseAddr("10.255.0.1")
			})}),
			want: func() Desired {
				pc := ebgp("r4", rtrV4)
				pc.Port, pc.SourceAddress, pc.LocalASN = 1179, nodeV4, 64999
				pc.HoldTime, pc.KeepaliveTime, pc.ConnectTime = 9*time.Second, 3*time.Second, 5*time.Second
				pc.Password, pc.EBGPMultiHop, pc.GracefulRestart = "s3cret", true, true
				return Desired{ASN: 64512, RouterID: netip.MustParseAddr("10.255.0.1"), Peers: []PeerConfig{pc}}
			}(),
		},
		{
			name: "timers that are not whole seconds are rounded and reported; hold time 0 falls back", node: testNode(),
			cfg: baseCfg([]*config.Peer{peer("r4", rtrV4, func(p *config.Peer) {
				p.HoldTime, p.ConnectTime = dur(0), dur(1500*time.Millisecond)
			})}),
			want: func() Desired {
				pc := ebgp("r4", rtrV4)
				pc.ConnectTime = 2 * time.Second
				return Desired{ASN: 64512, RouterID: nodeV4, Peers: []PeerConfig{pc}}
			}(),
			problems: []string{
				"BGPPeer r4: spec.connectTime: 1.5s is not a whole number of seconds",
				"BGPPeer r4: spec.holdTime: a hold time of 0 (no keepalives) is not supported",
			},
		},
		{
			name: "BFD profile, with the fields GoBGP cannot honour reported once", node: testNode(),
			cfg: func() *config.Config {
				c := baseCfg([]*config.Peer{
					peer("ra", rtrV4, func(p *config.Peer) { p.BFDProfile = "fast" }),
					peer("rb", netip.MustParseAddr("198.18.0.2"), func(p *config.Peer) { p.BFDProfile = "fast" }),
					peer("rc", netip.MustParseAddr("198.18.0.3"), func(p *config.Peer) { p.BFDProfile = "fast"; p.EBGPMultiHop = true }),
				})
				c.BFDProfiles = []*config.BFDProfile{{Name: "fast", ReceiveInterval: 300, TransmitInterval: 200, DetectMultiplier: 3, EchoInterval: 50, EchoMode: true, PassiveMode: true, MinimumTTL: 250}}
				return c
			}(),
			want: func() Desired {
				b := BFDConfig{Enabled: true, Profile: "fast", ReceiveInterval: 300 * time.Millisecond, TransmitInterval: 200 * time.Millisecond, DetectMultiplier: 3}
				ra, rb, rc := ebgp("ra", rtrV4), ebgp("rb", netip.MustParseAddr("198.18.0.2")), ebgp("rc", netip.MustParseAddr("198.18.0.3"))
				ra.BFD, rb.BFD, rc.EBGPMultiHop = b, b, true
				return Desired{ASN: 64512, RouterID: nodeV4, Peers: []PeerConfig{ra, rb, rc}}
			}(),
			problems: []string{
				"BFDProfile fast: spec.echoMode: BFD echo mode is not supported",
				"BFDProfile fast: spec.minimumTtl: minimumTtl 250 is not enforced",
				"BFDProfile fast: spec.passiveMode: BFD passive mode is not supported",
				"BGPPeer rc: spec.bfdProfile: multi-hop BFD (RFC 5883) is not supported",
			},
		},
		{
			name: "VRF, unnumbered and duplicate-address peers are not opened", node: testNode(),
			cfg: baseCfg([]*config.Peer{
				peer("a-vrf", rtrV4, func(p *config.Peer) { p.VRF = "red" }),
				peer("b-unnumbered", netip.Addr{}, func(p *config.Peer) { p.Interface = "eth1" }),
				peer("c", rtrV4),
				peer("d-dup", rtrV4, func(p *config.Peer) { p.Port = 1179 }),
			}),
			want: Desired{ASN: 64512, RouterID: nodeV4, Peers: []PeerConfig{ebgp("c", rtrV4)}},
			problems: []string{
				`BGPPeer a-vrf: spec.vrf: VRF "red" is not supported`,
				`BGPPeer b-unnumbered: spec.interface: unnumbered sessions (interface "eth1") are not supported`,
				"BGPPeer d-dup: spec.peerAddress: 198.18.0.1 is also the address of BGPPeer c",
			},
		},
		{
			name: "peers that disagree on routerID: the first by name wins", node: testNode(),
			cfg: baseCfg([]*config.Peer{
				peer("a", rtrV4),
				peer("b", netip.MustParseAddr("198.18.0.2"), func(p *config.Peer) { p.RouterID = netip.MustParseAddr("10.0.0.2") }),
				peer("c", netip.MustParseAddr("198.18.0.3"), func(p *config.Peer) { p.RouterID = netip.MustParseAddr("10.0.0.3") }),
			}),
			want: Desired{ASN: 64512, RouterID: netip.MustParseAddr("10.0.0.2"), Peers: []PeerConfig{
				ebgp("a", rtrV4), ebgp("b", netip.MustParseAddr("198.18.0.2")), ebgp("c", netip.MustParseAddr("198.18.0.3")),
			}},
			problems: []string{"BGPPeer c: spec.routerID: routerID 10.0.0.3 differs from 10.0.0.2 of BGPPeer b"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, problems := Plan(c.cfg, c.node, c.services)
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("Plan:\n got %s\nwant %s", js(got), js(c.want))
			}
			if len(problems) != len(c.problems) {
				t.Fatalf("problems: got %d, want %d:\n%s", len(problems), len(c.problems), js(problems))
			}
			for i, p := range problems {
				if !strings.Contains(p.Error(), c.problems[i]) {
					t.Errorf("problem %d: got %q, want it to contain %q", i, p.Error(), c.problems[i])
				}
			}
		})
	}
}

func js(v any) string {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err.Error()
	}
	return string(b)
}

func TestPlanRouterIDOfIPv6OnlyNode(t *testing.T) {
	cfg := baseCfg([]*config.Peer{peer("r6", rtrV6)})
	n1 := testNode(func(n *Node) { n.Addresses = []netip.Addr{nodeV6} })
	n2 := testNode(func(n *Node) { n.Name = "n2"; n.Addresses = []netip.Addr{nodeV6} })
	d1, _ := Plan(cfg, n1, nil)
	again, _ := Plan(cfg, n1, nil)
	d2, _ := Plan(cfg, n2, nil)
	if !d1.RouterID.Is4() || d1.RouterID.IsUnspecified() {
		t.Fatalf("router ID %v: want a non-zero IPv4-form identifier", d1.RouterID)
	}
	if d1.RouterID != again.RouterID {
		t.Errorf("router ID not stable: %v then %v", d1.RouterID, again.RouterID)
	}
	if d1.RouterID == d2.RouterID {
		t.Errorf("nodes n1 and n2 got the same router ID %v", d1.RouterID)
	}
}

// TestPlanDeterministic feeds the same Services in random orders and
// expects equal plans.
func TestPlanDeterministic(t *testing.T) {
	cfg := baseCfg([]*config.Peer{peer("ra", rtrV4), peer("rb", netip.MustParseAddr("198.18.0.2")), peer("r6", rtrV6)},
		adv("x", func(a *config.BGPAdvertisement) { a.Communities = comms("1:1", "large:1:1:1") }),
		adv("y", func(a *config.BGPAdvertisement) { a.Peers = []string{"rb"}; a.Communities = comms("2:2") }),
		adv("z", func(a *config.BGPAdvertisement) { a.AggregationLength = 28; a.Communities = comms("3:3") }),
	)
	var services []Service
	for i := range 60 {
		ip4 := netip.AddrFrom4([4]byte{198, 19, 0, byte(i)})
		ip6 := netip.MustParseAddr("2001:db8:19::").As16()
		ip6[15] = byte(i)
		services = append(services, service("ns/s"+string(rune('a'+i%26))+string(rune('a'+i/26)), func(s *Service) {
			s.IPs = []netip.Addr{ip4, netip.AddrFrom16(ip6)}
			s.LocalTrafficPolicy = i%3 == 0
			s.ServingNodes = []string{"n1"}
		}))
	}
	want, wantProblems := Plan(cfg, testNode(), services)
	if len(want.Paths) == 0 {
		t.Fatal("plan is empty; the test would prove nothing")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20 {
		shuffled := slices.Clone(services)
		rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		got, problems := Plan(cfg, testNode(), shuffled)
		if !reflect.DeepEqual(got, want) || !reflect.DeepEqual(problems, wantProblems) {
			t.Fatal("a different input order gave a different plan")
		}
	}
}

// TestPlanFromParsedConfig runs Plan on a Config built by config.Parse from
// metallb.io objects, so that the two packages agree on representation
// (aliases resolved, defaults applied, password taken from the Secret).
func TestPlanFromParsedConfig(t *testing.T) {
	const ns = "metallb-system"
	meta := func(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Name: name, Namespace: ns} }
	i32 := func(v int32) *int32 { return &v }
	res := config.Resources{
		Namespace: ns,
		Pools: []v1beta1.IPAddressPool{{ObjectMeta: meta("p"), Spec: v1beta1.IPAddressPoolSpec{
			Addresses: []string{"198.19.0.0/24", "2001:db8:19::/120"}}}},
		Communities: []v1beta1.Community{{ObjectMeta: meta("c"), Spec: v1beta1.CommunitySpec{
			Communities: []v1beta1.CommunityAlias{{Name: "no-export", Value: "65535:65281"}}}}},
		BGPAdvs: []v1beta1.BGPAdvertisement{{ObjectMeta: meta("a"), Spec: v1beta1.BGPAdvertisementSpec{
			IPAddressPools: []string{"p"}, AggregationLengthV6: i32(124),
			Communities: []string{"no-export", "large:64512:1:2"}}}},
		Peers: []v1beta2.BGPPeer{{ObjectMeta: meta("r4"), Spec: v1beta2.BGPPeerSpec{
			MyASN: 64512, PeerASN: 64500, PeerAddress: rtrV4.String(), DualStackAddressFamily: true,
			PasswordSecret: corev1.SecretReference{Name: "pw"}, BFDProfile: "fast",
			HoldTime: &metav1.Duration{Duration: 9 * time.Second}}}},
		BFDProfiles: []v1beta1.BFDProfile{{ObjectMeta: meta("fast")}},
		Secrets: []corev1.Secret{{ObjectMeta: meta("pw"), Type: corev1.SecretTypeBasicAuth,
			Data: map[string][]byte{"password": []byte("from-secret")}}},
	}
	cfg, err := config.Parse(res)
	if err != nil {
		t.Fatal(err)
	}
	got, problems := Plan(cfg, testNode(), []Service{service("ns/a", func(s *Service) { s.IPs = []netip.Addr{vip, vip6} })})
	if len(problems) != 0 {
		t.Errorf("unexpected problems: %v", problems)
	}
	pc := ebgp("r4", rtrV4)
	pc.HoldTime, pc.Password = 9*time.Second, "from-secret"
	pc.IPv6, pc.NextHopIPv6 = true, nodeV6
	pc.BFD = BFDConfig{Enabled: true, Profile: "fast", ReceiveInterval: 300 * time.Millisecond, TransmitInterval: 300 * time.Millisecond, DetectMultiplier: 3}
	want := Desired{ASN: 64512, RouterID: nodeV4, Peers: []PeerConfig{pc},
		Paths: []Path{
			{Prefix: pfx("198.19.0.10/32"), Routes: []Route{route("r4", 0, "65535:65281", "large:64512:1:2")}},
			{Prefix: pfx("2001:db8:19::10/124"), Routes: []Route{route("r4", 0, "65535:65281", "large:64512:1:2")}},
		},
		Services: []ServiceAdvert{{Key: "ns/a", Prefixes: []netip.Prefix{pfx("198.19.0.10/32"), pfx("2001:db8:19::10/124")}, Peers: []string{"r4"}}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Plan:\n got %s\nwant %s", js(got), js(want))
	}
}
