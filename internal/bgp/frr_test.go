package bgp

import (
	"fmt"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/keeperlb/keeperlb/internal/config"
)

// labNode is the node as Plan sees it.
func (l *link) labNode() Node {
	return Node{Name: "node1", Labels: map[string]string{"kubernetes.io/hostname": "node1"}, Addresses: []netip.Addr{l.nodeV4, l.nodeV6}}
}

// labConfig is a configuration with one dual-stack pool "vips" holding the
// link's Service addresses, the given peers and advertisements.
func (l *link) labConfig(peers []*config.Peer, advs ...*config.BGPAdvertisement) *config.Config {
	p := &config.Pool{Name: "vips", AutoAssign: true,
		Ranges: []config.Range{
			{First: l.vip(false, 0), Last: l.vip(false, 255)},
			{First: l.vip(true, 0), Last: l.vip(true, 255)},
		}}
	return &config.Config{Pools: []*config.Pool{p}, Peers: peers, BGPAdvertisements: advs}
}

func labPeer(name string, addr netip.Addr, peerAS uint32, mods ...func(*config.Peer)) *config.Peer {
	ct := 3 * time.Second
	p := &config.Peer{Name: name, MyASN: 64512, PeerASN: peerAS, Addr: addr, Port: 179, ConnectTime: &ct}
	for _, m := range mods {
		m(p)
	}
	return p
}

func labAdv(name string, mods ...func(*config.BGPAdvertisement)) *config.BGPAdvertisement {
	a := &config.BGPAdvertisement{Name: name, AggregationLength: 32, AggregationLengthV6: 128, Pools: []string{"vips"}}
	for _, m := range mods {
		m(a)
	}
	return a
}

func labService(key string, ips ...netip.Addr) Service {
	return Service{Key: key, IPs: ips, Serving: true, Labels: map[string]string{}}
}

func host(a netip.Addr) netip.Prefix { return netip.PrefixFrom(a, a.BitLen()) }

// plan runs Plan and fails on any problem.
func plan(t *testing.T, cfg *config.Config, n Node, svcs ...Service) Desired {
	t.Helper()
	d, problems := Plan(cfg, n, svcs)
	if len(problems) > 0 {
		t.Fatalf("Plan: unexpected problems: %v", problems)
	}
	return d
}

// frrHas is a check that FRR holds prefix with the wanted attributes.
func frrHas(f *frr, p netip.Prefix, check func(frrRoute) error) func() error {
	return func() error {
		paths, err := f.route(p)
		if err != nil {
			return err
		}
		if len(paths) == 0 {
			return fmt.Errorf("FRR has no path for %s", p)
		}
		if check == nil {
			return nil
		}
		return check(paths[0])
	}
}

func communities(r frrRoute) (std, large string) {
	if r.Community != nil {
		std = r.Community.String
	}
	if r.LargeCommunity != nil {
		large = r.LargeCommunity.String
	}
	return std, large
}

// TestFRRAnnouncesAndWithdraws covers eBGP over IPv4 and IPv6 sessions:
// prefixes of both families reach FRR's RIB and kernel table with their
// communities, a change of communities reaches FRR without a session
// restart, and a withdrawal removes the route.
func TestFRRAnnouncesAndWithdraws(t *testing.T) {
	t.Parallel()
	l := newLink(t)
	f := l.startFRR(fmt.Sprintf(`router bgp 64500
 bgp router-id %s
 no bgp ebgp-requires-policy
 neighbor %s remote-as 64512
 neighbor %s remote-as 64512
 address-family ipv6 unicast
  neighbor %s activate
 exit-address-family
!
`, l.rtV4, l.nodeV4, l.nodeV6, l.nodeV6), "")

	web := map[string]string{"app": "web"}
	hold, keepalive := 9*time.Second, 3*time.Second
	cfg := l.labConfig(
		[]*config.Peer{labPeer("r4", l.rtV4, 64500, func(p *config.Peer) { p.HoldTime, p.KeepaliveTime = &hold, &keepalive }), labPeer("r6", l.rtV6, 64500)},
		labAdv("all", func(a *config.BGPAdvertisement) { a.Communities = comms("65000:100", "large:64512:1:2") }),
		labAdv("web", func(a *config.BGPAdvertisement) {
			a.ServiceSelectors = []labels.Selector{sel("app", "web")}
			a.Communities = comms("65000:200")
		}),
	)
	v4, v6 := l.vip(false, 10), l.vip(true, 10)
	svc := labService("ns/a", v4, v6)

	sp := l.startSpeaker()
	applied := time.Now()
	sp.apply(plan(t, cfg, l.labNode(), svc))
	waitFor(t, "FRR session over IPv4", func() error { return f.established(l.nodeV4) })
	waitFor(t, "FRR session over IPv6", func() error { return f.established(l.nodeV6) })
	t.Logf("sessions established %v after the first Apply", time.Since(applied).Round(time.Millisecond))

	// Session parameters as FRR negotiated them: the hold time this node
	// proposed (FRR's own is 180 s), and the node's IPv4 address as router
	// ID, Plan's default.
	var nb map[string]struct {
		RemoteRouterID string `json:"remoteRouterId"`
		HoldMsecs      int    `json:"bgpTimerHoldTimeMsecs"`
	}
	if err := f.json("show bgp neighbors "+l.nodeV4.String()+" json", &nb); err != nil {
		t.Fatal(err)
	}
	if got := nb[l.nodeV4.String()]; got.HoldMsecs != 9000 || got.RemoteRouterID != l.nodeV4.String() {
		t.Errorf("FRR sees hold time %d ms and router ID %q, want 9000 and %s", got.HoldMsecs, got.RemoteRouterID, l.nodeV4)
	}

	nh := func(want netip.Addr) func(frrRoute) error {
		return func(r frrRoute) error {
			if len(r.Nexthops) == 0 || r.Nexthops[0].IP != want.String() {
				return fmt.Errorf("next hop %+v, want %s", r.Nexthops, want)
			}
			return nil
		}
	}
	waitFor(t, "IPv4 prefix in FRR with communities", frrHas(f, host(v4), func(r frrRoute) error {
		if std, large := communities(r); std != "65000:100" || large != "64512:1:2" {
			return fmt.Errorf("communities %q, large %q", std, large)
		}
		return nh(l.nodeV4)(r)
	}))
	waitFor(t, "IPv6 prefix in FRR", frrHas(f, host(v6), nh(l.nodeV6)))
	waitFor(t, "IPv4 prefix in the kernel", l.inKernel(host(v4)))
	waitFor(t, "IPv6 prefix in the kernel", l.inKernel(host(v6)))

	// A second Service, sessions already up: time to the kernel table.
	v4b := l.vip(false, 11)
	sp.apply(plan(t, cfg, l.labNode(), svc, labService("ns/b", v4b)))
	took := waitFor(t, "new Service's prefix in the kernel", l.inKernel(host(v4b)))
	t.Logf("Service added -> route in FRR's kernel table: %v", took.Round(time.Millisecond))

	// The Service gains a label: a second advertisement applies, its
	// community is added to the advertised prefix.
	svc.Labels = web
	sp.apply(plan(t, cfg, l.labNode(), svc, labService("ns/b", v4b)))
	waitFor(t, "new community at FRR", frrHas(f, host(v4), func(r frrRoute) error {
		if std, _ := communities(r); std != "65000:100 65000:200" {
			return fmt.Errorf("communities %q", std)
		}
		return nil
	}))

	// The Service loses its endpoints: both prefixes are withdrawn, the
	// other Service's stays.
	svc.Serving = false
	sp.apply(plan(t, cfg, l.labNode(), svc, labService("ns/b", v4b)))
	took = waitFor(t, "IPv4 prefix withdrawn from the kernel", l.notInKernel(host(v4)))
	t.Logf("Service withdrawn -> route gone from FRR's kernel table: %v", took.Round(time.Millisecond))
	waitFor(t, "IPv6 prefix withdrawn from the kernel", l.notInKernel(host(v6)))
	waitFor(t, "IPv4 prefix gone from FRR", func() error {
		paths, err := f.route(host(v4))
		if err != nil {
			return err
		}
		if len(paths) != 0 {
			return fmt.Errorf("FRR still has %s", host(v4))
		}
		return nil
	})
	if err := l.inKernel(host(v4b))(); err != nil {
		t.Errorf("the other Service's route went too: %v", err)
	}
}

// TestFRRLocalPrefAndDualStack covers an iBGP session over IPv4 that
// carries IPv6 prefixes too (dualStackAddressFamily): localPref reaches
// FRR, and the IPv6 prefix's next hop is the node's IPv6 address.
func TestFRRLocalPrefAndDualStack(t *testing.T) {
	t.Parallel()
	l := newLink(t)
	f := l.startFRR(fmt.Sprintf(`router bgp 64512
 bgp router-id %s
 neighbor %s remote-as 64512
 address-family ipv6 unicast
  neighbor %s activate
 exit-address-family
!
`, l.rtV4, l.nodeV4, l.nodeV4), "")
	cfg := l.labConfig(
		[]*config.Peer{labPeer("ibgp", l.rtV4, 64512, func(p *config.Peer) { p.DualStackAddressFamily = true })},
		labAdv("pref", func(a *config.BGPAdvertisement) { a.LocalPref = 250 }),
	)
	v4, v6 := l.vip(false, 20), l.vip(true, 20)
	sp := l.startSpeaker()
	sp.apply(plan(t, cfg, l.labNode(), labService("ns/a", v4, v6)))
	waitFor(t, "FRR session", func() error { return f.established(l.nodeV4) })
	waitFor(t, "localPref at FRR", frrHas(f, host(v4), func(r frrRoute) error {
		if r.LocPrf != 250 {
			return fmt.Errorf("localPref %d, want 250", r.LocPrf)
		}
		return nil
	}))
	waitFor(t, "IPv6 prefix over the IPv4 session", frrHas(f, host(v6), func(r frrRoute) error {
		if len(r.Nexthops) == 0 || r.Nexthops[0].IP != l.nodeV6.String() {
			return fmt.Errorf("next hop %+v, want %s", r.Nexthops, l.nodeV6)
		}
		if r.LocPrf != 250 {
			return fmt.Errorf("localPref %d, want 250", r.LocPrf)
		}
		return nil
	}))
	waitFor(t, "IPv4 prefix in the kernel", l.inKernel(host(v4)))
	waitFor(t, "IPv6 prefix in the kernel", l.inKernel(host(v6)))
}

// TestFRRSessionFailures covers TCP-MD5 (a wrong password keeps the
// session down with a reason, the right one brings it up) and an AS
// number the router does not expect.
func TestFRRSessionFailures(t *testing.T) {
	t.Parallel()
	l := newLink(t)
	f := l.startFRR(fmt.Sprintf(`router bgp 64500
 bgp router-id %s
 no bgp ebgp-requires-policy
 neighbor %s remote-as 64512
 neighbor %s password right-secret
 neighbor %s remote-as 64999
 address-family ipv6 unicast
  neighbor %s activate
 exit-address-family
!
`, l.rtV4, l.nodeV4, l.nodeV4, l.nodeV6, l.nodeV6), "")
	withPassword := func(pw string) *config.Config {
		return l.labConfig([]*config.Peer{
			labPeer("md5", l.rtV4, 64500, func(p *config.Peer) { p.Password = pw }),
			labPeer("wrong-as", l.rtV6, 64500),
		}, labAdv("all"))
	}
	v4 := l.vip(false, 30)
	sp := l.startSpeaker()
	sp.apply(plan(t, withPassword("wrong-secret"), l.labNode(), labService("ns/a", v4)))
	waitFor(t, "wrong password reported", func() error {
		s := sp.session("md5")
		if s.Up || s.Reason != ReasonPasswordMismatch {
			return fmt.Errorf("md5 session: up %v reason %q (%s)", s.Up, s.Reason, s.Message)
		}
		return nil
	})
	waitFor(t, "ASN mismatch reported", func() error {
		s := sp.session("wrong-as")
		if s.Up || s.Reason != ReasonASNMismatch {
			return fmt.Errorf("wrong-as session: up %v reason %q (%s)", s.Up, s.Reason, s.Message)
		}
		return nil
	})
	t.Logf("wrong password: %s", sp.session("md5").Message)
	t.Logf("wrong AS: %s", sp.session("wrong-as").Message)
	if err := f.established(l.nodeV4); err == nil {
		t.Fatal("FRR established a session with a wrong TCP-MD5 password")
	}

	sp.apply(plan(t, withPassword("right-secret"), l.labNode(), labService("ns/a", v4)))
	waitFor(t, "session up with the right password", func() error { return f.established(l.nodeV4) })
	waitFor(t, "prefix over the MD5 session", l.inKernel(host(v4)))
	waitFor(t, "speaker sees the session up", func() error {
		if s := sp.session("md5"); !s.Up || s.Reason != "" {
			return fmt.Errorf("md5 session: up %v reason %q", s.Up, s.Reason)
		}
		return nil
	})
}

// cutNode drops every packet in and out of the node namespace, silently,
// as a dead link or a frozen node would.
func (l *link) cutNode(t *testing.T) {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", l.node, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(`table inet klcut {
	chain in { type filter hook input priority -300; policy drop; }
	chain out { type filter hook output priority -300; policy drop; }
}
`)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft: %v: %s", err, out)
	}
}

// TestFRRBFD cuts the node off silently and expects BFD (300 ms x 3) to
// remove its route at the router long before the hold timer (90 s) could.
func TestFRRBFD(t *testing.T) {
	t.Parallel()
	for _, gr := range []bool{false, true} {
		t.Run(fmt.Sprintf("gracefulRestart=%v", gr), func(t *testing.T) {
			t.Parallel()
			testFRRBFD(t, gr)
		})
	}
}

// testFRRBFD is TestFRRBFD with or without graceful restart on the
// session: a BFD failure must withdraw the route either way (FRR closes
// the session with Cease/BFD Down, which graceful restart does not cover).
func testFRRBFD(t *testing.T, gr bool) {
	l := newLink(t)
	f := l.startFRR(fmt.Sprintf(`router bgp 64500
 bgp router-id %s
 bgp graceful-restart
 no bgp ebgp-requires-policy
 neighbor %s remote-as 64512
 neighbor %s bfd profile fast
!
`, l.rtV4, l.nodeV4, l.nodeV4), `bfd
 profile fast
  receive-interval 300
  transmit-interval 300
  detect-multiplier 3
 !
!
`)
	cfg := l.labConfig([]*config.Peer{labPeer("r4", l.rtV4, 64500, func(p *config.Peer) {
		p.BFDProfile = "fast"
		p.EnableGracefulRestart = gr
	})}, labAdv("all"))
	cfg.BFDProfiles = []*config.BFDProfile{{Name: "fast", ReceiveInterval: 300, TransmitInterval: 300, DetectMultiplier: 3, EchoInterval: 50}}
	v4 := l.vip(false, 40)
	sp := l.startSpeaker()
	sp.apply(plan(t, cfg, l.labNode(), labService("ns/a", v4)))
	waitFor(t, "route in the kernel", l.inKernel(host(v4)))
	waitFor(t, "BFD up at FRR", func() error {
		var peers []struct {
			Peer   string `json:"peer"`
			Status string `json:"status"`
		}
		if err := f.json("show bfd peers json", &peers); err != nil {
			return err
		}
		for _, p := range peers {
			if p.Peer == l.nodeV4.String() && p.Status == "up" {
				return nil
			}
		}
		return fmt.Errorf("FRR BFD peers: %+v", peers)
	})
	waitFor(t, "BFD up at the speaker", func() error {
		if s := sp.session("r4"); s.BFD != "Up" {
			return fmt.Errorf("speaker BFD state %q", s.BFD)
		}
		return nil
	})
	// What the metallb_bfd_* series are made of: GoBGP's packet counts
	// and the transitions read from its log.
	waitFor(t, "BFD counts at the speaker", func() error {
		if s := sp.session("r4"); s.BFDUps != 1 || s.BFDDowns != 0 || s.BFDSent == 0 || s.BFDReceived == 0 {
			return fmt.Errorf("speaker BFD: %d ups, %d downs, %d packets sent, %d received; want 1 up, no down, packets both ways",
				s.BFDUps, s.BFDDowns, s.BFDSent, s.BFDReceived)
		}
		return nil
	})

	// The session must not have flapped while BFD started (see
	// Speaker.onUp), or the cut below would measure nothing.
	var before map[string]struct {
		Dropped int `json:"connectionsDropped"`
	}
	if err := f.json("show bgp neighbors "+l.nodeV4.String()+" json", &before); err != nil {
		t.Fatal(err)
	}
	if d := before[l.nodeV4.String()].Dropped; d != 0 {
		t.Fatalf("FRR dropped the session %d times while BFD came up", d)
	}
	if err := l.inKernel(host(v4))(); err != nil {
		t.Fatal(err)
	}

	l.cutNode(t)
	took := waitFor(t, "route gone after the cut", l.notInKernel(host(v4)))
	t.Logf("node cut off -> route gone from FRR's kernel table: %v (BFD 300ms x 3; hold time 90s)", took.Round(time.Millisecond))
	// FRR closes a session whose BFD went down with Cease/BFD Down.
	var n map[string]struct {
		LastNotificationReason string `json:"lastNotificationReason"`
	}
	if err := f.json("show bgp neighbors "+l.nodeV4.String()+" json", &n); err != nil {
		t.Fatal(err)
	}
	if why := n[l.nodeV4.String()].LastNotificationReason; !strings.Contains(why, "BFD") {
		raw, _ := f.vtysh("show bgp neighbors " + l.nodeV4.String() + " json")
		t.Errorf("FRR's last notification was %q, want Cease/BFD Down\n%s", why, raw)
	}
	waitFor(t, "speaker reports BFD down", func() error {
		if s := sp.session("r4"); s.Up || s.Reason != ReasonBFDDown {
			return fmt.Errorf("speaker: up %v reason %q", s.Up, s.Reason)
		}
		return nil
	})
	if s := sp.session("r4"); s.BFDDowns != 1 {
		t.Errorf("speaker BFD: %d down events after the cut, want 1", s.BFDDowns)
	}
}

// TestFRRGracefulRestart kills the speaker: the route of the session with
// graceful restart stays at the router (stale) until a new speaker takes
// over, while the route of the session without it goes at once.
func TestFRRGracefulRestart(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name       string
		bfd, close bool
	}{{"killed", false, false}, {"killed with BFD", true, false}, {"closed", false, true}} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			testFRRGracefulRestart(t, c.bfd, c.close)
		})
	}
}

// testFRRGracefulRestart is TestFRRGracefulRestart, with or without BFD
// on the graceful-restart session, the speaker killed or stopped with
// Close.
func testFRRGracefulRestart(t *testing.T, bfd, close bool) {
	l := newLink(t)
	bfdLine, bfdConf := "", ""
	if bfd {
		bfdLine = fmt.Sprintf(" neighbor %s bfd profile fast\n", l.nodeV4)
		bfdConf = "bfd\n profile fast\n  receive-interval 300\n  transmit-interval 300\n !\n!\n"
	}
	f := l.startFRR(fmt.Sprintf(`router bgp 64500
 bgp router-id %s
 bgp graceful-restart
 no bgp ebgp-requires-policy
 neighbor %s remote-as 64512
%s neighbor %s remote-as 64512
 address-family ipv6 unicast
  neighbor %s activate
 exit-address-family
!
`, l.rtV4, l.nodeV4, bfdLine, l.nodeV6, l.nodeV6), bfdConf)
	cfg := l.labConfig([]*config.Peer{
		labPeer("gr", l.rtV4, 64500, func(p *config.Peer) {
			p.EnableGracefulRestart = true
			if bfd {
				p.BFDProfile = "fast"
			}
		}),
		labPeer("plain", l.rtV6, 64500),
	}, labAdv("all"))
	cfg.BFDProfiles = []*config.BFDProfile{{Name: "fast", ReceiveInterval: 300, TransmitInterval: 300, DetectMultiplier: 3, EchoInterval: 50}}
	v4, v6 := l.vip(false, 50), l.vip(true, 50)
	d := plan(t, cfg, l.labNode(), labService("ns/a", v4, v6))
	sp := l.startSpeaker()
	sp.apply(d)
	waitFor(t, "IPv4 route (graceful restart) in the kernel", l.inKernel(host(v4)))
	waitFor(t, "IPv6 route (no graceful restart) in the kernel", l.inKernel(host(v6)))
	if bfd {
		waitFor(t, "BFD up", func() error {
			if s := sp.session("gr"); s.BFD != "Up" {
				return fmt.Errorf("BFD %q", s.BFD)
			}
			return nil
		})
	}

	how := "killed"
	if close {
		how = "closed"
		sp.close()
	} else {
		sp.kill()
	}
	killed := time.Now()
	took := waitFor(t, "route without graceful restart gone", l.notInKernel(host(v6)))
	t.Logf("speaker %s -> route without graceful restart gone: %v", how, took.Round(time.Millisecond))
	waitFor(t, "route with graceful restart marked stale", frrHas(f, host(v4), func(r frrRoute) error {
		if !r.Stale {
			return fmt.Errorf("path not stale: %+v", r)
		}
		return nil
	}))
	if err := l.inKernel(host(v4))(); err != nil {
		t.Fatalf("graceful restart: %v", err)
	}

	// A new speaker takes over; the route must stay throughout.
	sp2 := l.startSpeaker()
	sp2.apply(d)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if err := l.inKernel(host(v4))(); err != nil {
			t.Fatalf("%v after the speaker restarted (%v after the kill)", err, time.Since(killed))
		}
		paths, err := f.route(host(v4))
		if err != nil {
			t.Fatal(err)
		}
		if len(paths) == 1 && !paths[0].Stale && f.established(l.nodeV4) == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("route still stale or session down: %+v", paths)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("speaker %s -> new speaker's route refreshed at FRR: %v (the route never left the kernel table)", how, time.Since(killed).Round(time.Millisecond))
	waitFor(t, "route without graceful restart back", l.inKernel(host(v6)))
}
