package lab_test

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keeperlb/keeperlb/internal/lab"
	"github.com/keeperlb/keeperlb/internal/lab/labtest"
)

// requireFRR fails the test (skips it with KEEPERLB_SKIP_LAB=1) when FRR is
// not installed.
func requireFRR(t *testing.T) {
	t.Helper()
	if err := lab.CheckFRR(); err != nil {
		if os.Getenv(labtest.SkipEnv) == "1" {
			t.Skipf("%v (skipped: %s=1)", err, labtest.SkipEnv)
		}
		t.Fatalf("%v; set %s=1 to skip lab tests", err, labtest.SkipEnv)
	}
}

// waitLab polls check every 20 ms for up to 20 s.
func waitLab(t *testing.T, what string, check func() error) {
	t.Helper()
	start := time.Now()
	defer func() { t.Logf("%s: %v", what, time.Since(start).Round(time.Millisecond)) }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestFRR runs FRR as the lab's router and, as its BGP neighbors, FRR in
// two nodes announcing the same prefixes: the router's BGP table shows both
// paths with their attributes, its kernel table one route with two next
// hops, and a node that stops leaves one.
func TestFRR(t *testing.T) {
	requireFRR(t)
	l := labtest.Up(t, lab.Options{Nodes: 2, Router: true, NoControlPlane: true})
	ctx := testCtx(t, 2*time.Minute)
	n1, n2, rt := l.Nodes[0], l.Nodes[1], l.Router
	vip4 := netip.PrefixFrom(l.BGPPool4.Addr().Next().Next().Next().Next().Next(), 32)
	vip6 := netip.PrefixFrom(l.BGPPool6.Addr().Next().Next().Next().Next().Next(), 128)
	absent := netip.PrefixFrom(l.BGPPool4.Addr().Next().Next().Next().Next().Next().Next(), 32)
	nobody := netip.MustParseAddr(strings.TrimSuffix(l.Subnet4.Addr().String(), ".0") + ".99")

	began := time.Now()
	f, err := l.StartFRR(ctx, fmt.Sprintf(`router bgp 64500
 bgp router-id %[1]s
 no bgp ebgp-requires-policy
 neighbor %[2]s remote-as 64512
 neighbor %[3]s remote-as 64512
 neighbor %[4]s remote-as 64512
 neighbor %[5]s remote-as 64512
 neighbor %[6]s remote-as 64999
 address-family ipv4 unicast
  maximum-paths 8
  neighbor %[2]s route-map PREF in
  neighbor %[3]s route-map PREF in
  no neighbor %[4]s activate
  no neighbor %[5]s activate
 exit-address-family
 address-family ipv6 unicast
  maximum-paths 8
  neighbor %[4]s activate
  neighbor %[5]s activate
 exit-address-family
!
route-map PREF permit 10
 set local-preference 250
!
`, rt.IPv4, n1.IPv4, n2.IPv4, n1.IPv6, n2.IPv6, nobody), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("router's FRR up in %v", time.Since(began).Round(time.Millisecond))
	if f.Host != rt || len(f.Procs) != 2 {
		t.Fatalf("StartFRR ran %d daemons in %s, want zebra and bgpd in the router", len(f.Procs), f.Host.Name)
	}
	if noRouter, err := lab.Plan(l.Index, 1, false); err != nil {
		t.Fatal(err)
	} else if _, err := noRouter.StartFRR(ctx, "", ""); err == nil || !strings.Contains(err.Error(), "Options.Router") {
		t.Errorf("StartFRR in a lab without a router: %v", err)
	}
	nodes := map[*lab.Host]*lab.FRR{}
	for _, n := range []*lab.Host{n1, n2} {
		nf, err := l.StartFRRIn(ctx, n, fmt.Sprintf(`router bgp 64512
 bgp router-id %[1]s
 no bgp ebgp-requires-policy
 no bgp network import-check
 neighbor %[2]s remote-as 64500
 neighbor %[3]s remote-as 64500
 address-family ipv4 unicast
  network %[4]s route-map TAG
  no neighbor %[3]s activate
 exit-address-family
 address-family ipv6 unicast
  network %[5]s
  neighbor %[3]s activate
 exit-address-family
!
route-map TAG permit 10
 set community 65000:100 65000:200
 set large-community 64512:1:2
!
`, n.IPv4, rt.IPv4, rt.IPv6, vip4, vip6), "")
		if err != nil {
			t.Fatal(err)
		}
		nodes[n] = nf
	}
	t.Logf("nodes' FRR up %v after the router's", time.Since(began).Round(time.Millisecond))

	for _, a := range []netip.Addr{n1.IPv4, n2.IPv4, n1.IPv6, n2.IPv6} {
		waitLab(t, "session with "+a.String(), func() error { return f.Established(ctx, a) })
	}
	nb, err := f.Neighbor(ctx, n1.IPv4)
	if err != nil {
		t.Fatal(err)
	}
	if nb.State != "Established" || nb.RemoteAS != 64512 || nb.RemoteRouterID != n1.IPv4.String() ||
		nb.Established != 1 || nb.Dropped != 0 || nb.Uptime < 0 || nb.HoldTime != 180*time.Second {
		t.Errorf("neighbor %s: %+v", n1.IPv4, nb)
	}
	if err := f.Established(ctx, nobody); !errors.Is(err, lab.ErrNotEstablished) {
		t.Errorf("Established(%s), a neighbor nobody answers for: %v, want ErrNotEstablished", nobody, err)
	}
	if _, err := f.Neighbor(ctx, netip.MustParseAddr("198.18.255.254")); err == nil {
		t.Error("Neighbor of an address FRR does not know: no error")
	}

	// The BGP table: one path per node, with what the nodes' route-map
	// set and the local preference of the router's.
	var paths []lab.Path
	waitLab(t, "two paths for "+vip4.String(), func() error {
		paths, err = f.Paths(ctx, vip4)
		if err != nil {
			return err
		}
		// FRR marks multipaths after it has both.
		if len(paths) != 2 || !(paths[0].Best || paths[0].Multipath) || !(paths[1].Best || paths[1].Multipath) {
			return fmt.Errorf("paths %+v", paths)
		}
		return nil
	})
	var peers []netip.Addr
	best := 0
	for _, p := range paths {
		peers = append(peers, p.Peer)
		if p.Best {
			best++
		}
		if !p.Valid || p.Stale || p.LocalPref != 250 || p.ASPath != "64512" ||
			!slices.Equal(p.Communities, []string{"65000:100", "65000:200"}) || !slices.Equal(p.LargeCommunities, []string{"64512:1:2"}) ||
			!slices.Equal(p.NextHops, []netip.Addr{p.Peer}) {
			t.Errorf("path %+v", p)
		}
		if !p.Best && !p.Multipath {
			t.Errorf("path from %s is neither best nor multipath", p.Peer)
		}
	}
	slices.SortFunc(peers, netip.Addr.Compare)
	if !slices.Equal(peers, []netip.Addr{n1.IPv4, n2.IPv4}) || best != 1 {
		t.Errorf("paths from %v with %d best, want from both nodes with one best", peers, best)
	}
	if got, err := f.Paths(ctx, absent); err != nil || len(got) != 0 {
		t.Errorf("Paths(%s), a prefix nobody announces: %+v, %v", absent, got, err)
	}
	waitLab(t, "IPv6 paths", func() error {
		p6, err := f.Paths(ctx, vip6)
		if err == nil && len(p6) != 2 {
			err = fmt.Errorf("paths %+v", p6)
		}
		return err
	})

	// The kernel: one route with both nodes as next hops.
	waitLab(t, "ECMP route in the router's kernel", func() error {
		hops, err := l.KernelNextHops(ctx, rt, vip4)
		if err == nil && !slices.Equal(hops, []netip.Addr{n1.IPv4, n2.IPv4}) {
			err = fmt.Errorf("next hops %v", hops)
		}
		return err
	})
	// Over IPv6 FRR sends link-local next hops too, and zebra installs
	// those.
	waitLab(t, "IPv6 ECMP route in the router's kernel", func() error {
		hops, err := l.KernelNextHops(ctx, rt, vip6)
		if err != nil {
			return err
		}
		var want []netip.Addr
		for _, n := range []*lab.Host{n1, n2} {
			if slices.Contains(hops, n.IPv6) {
				want = append(want, n.IPv6)
			} else {
				want = append(want, n.LinkLocal())
			}
		}
		slices.SortFunc(want, netip.Addr.Compare)
		if !slices.Equal(hops, want) {
			return fmt.Errorf("next hops %v, want %v", hops, want)
		}
		return nil
	})
	out, err := l.Exec(ctx, n1, "ip", "-6", "addr", "show", "dev", "eth0", "scope", "link")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), n1.LinkLocal().String()+"/64") {
		t.Errorf("node1's link-local address is not %s:\n%s", n1.LinkLocal(), out)
	}
	if hops, err := l.KernelNextHops(ctx, rt, absent); err != nil || hops != nil {
		t.Errorf("KernelNextHops(%s), no such route: %v, %v", absent, hops, err)
	}
	if _, err := l.Exec(ctx, rt, "ip", "route", "add", absent.String(), "via", n2.IPv4.String()); err != nil {
		t.Fatal(err)
	}
	if hops, err := l.KernelNextHops(ctx, rt, absent); err != nil || !slices.Equal(hops, []netip.Addr{n2.IPv4}) {
		t.Errorf("KernelNextHops(%s), a static route via %s: %v, %v", absent, n2.IPv4, hops, err)
	}
	for _, key := range []string{"net/ipv4/fib_multipath_hash_policy", "net/ipv6/fib_multipath_hash_policy"} {
		out, err := l.Exec(ctx, rt, "cat", "/proc/sys/"+key)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.TrimSpace(string(out)); got != "1" {
			t.Errorf("router %s = %s, want 1 (ECMP hashing on ports)", key, got)
		}
	}

	// FRR counts uptime in whole seconds; by now the session has one.
	if nb, err := f.Neighbor(ctx, n1.IPv4); err != nil || nb.Uptime < time.Second {
		t.Errorf("neighbor %s after a few seconds: %+v, %v", n1.IPv4, nb, err)
	}

	// node2's FRR stops: its next hop leaves the route.
	if err := nodes[n2].Stop(); err != nil {
		t.Fatal(err)
	}
	waitLab(t, "node2's next hop gone", func() error {
		hops, err := l.KernelNextHops(ctx, rt, vip4)
		if err == nil && !slices.Equal(hops, []netip.Addr{n1.IPv4}) {
			err = fmt.Errorf("next hops %v", hops)
		}
		return err
	})
	summary, err := f.Vtysh(ctx, "show bgp ipv4 unicast summary")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(summary, n1.IPv4.String()) {
		t.Errorf("vtysh summary does not name %s:\n%s", n1.IPv4, summary)
	}
	if _, err := f.Vtysh(ctx, "show no-such-thing"); err == nil {
		t.Error("vtysh with an unknown command: no error")
	}
	var v struct{}
	if err := f.JSON(ctx, "show bgp ipv4 unicast summary", &v); err == nil {
		t.Error("JSON of output that is not JSON: no error")
	}
}
