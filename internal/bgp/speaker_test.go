package bgp

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v4/api"
	"github.com/osrg/gobgp/v4/pkg/apiutil"
	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"github.com/osrg/gobgp/v4/pkg/server"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// These tests run the engine against real BGP implementations: GoBGP
// routers here, on loopback addresses of the test's own host (no packet
// leaves it), and FRR in network namespaces in frr_test.go. The routers
// are passive; the speaker under test connects to them from 127.0.0.2.

const speakerSource = "127.0.0.2"

// testRouter is a GoBGP instance playing the router.
type testRouter struct {
	srv      *server.BgpServer
	addr     netip.Addr
	port     uint16
	neighbor string
}

// freePort returns a TCP port nobody listens on at addr right now.
func freePort(t *testing.T, addr string) uint16 {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
	if err != nil {
		t.Fatalf("finding a free port: %v", err)
	}
	defer l.Close()
	return uint16(l.Addr().(*net.TCPAddr).Port)
}

func startRouter(t *testing.T, addr string, asn, neighborAS uint32) *testRouter {
	return startRouterIdle(t, addr, asn, neighborAS, 0)
}

// startRouterIdle also sets how long the router waits after a failed
// session before accepting connections again (GoBGP: 30 s).
func startRouterIdle(t *testing.T, addr string, asn, neighborAS uint32, idle uint64) *testRouter {
	t.Helper()
	r := &testRouter{addr: netip.MustParseAddr(addr), port: freePort(t, addr), neighbor: speakerSource}
	r.srv = server.NewBgpServer()
	go r.srv.Serve()
	t.Cleanup(r.srv.Stop)
	ctx := context.Background()
	err := r.srv.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
		Asn: asn, RouterId: "10.0.0." + strings.Split(addr, ".")[3],
		ListenPort: int32(r.port), ListenAddresses: []string{addr},
	}})
	if err != nil {
		t.Fatalf("starting router %s: %v", addr, err)
	}
	fam := func(afi api.Family_Afi) *api.AfiSafi {
		return &api.AfiSafi{Config: &api.AfiSafiConfig{Family: &api.Family{Afi: afi, Safi: api.Family_SAFI_UNICAST}, Enabled: true}}
	}
	err = r.srv.AddPeer(ctx, &api.AddPeerRequest{Peer: &api.Peer{
		Conf:      &api.PeerConf{NeighborAddress: speakerSource, PeerAsn: neighborAS},
		Transport: &api.Transport{PassiveMode: true},
		Timers:    &api.Timers{Config: &api.TimersConfig{IdleHoldTimeAfterReset: idle}},
		AfiSafis:  []*api.AfiSafi{fam(api.Family_AFI_IP), fam(api.Family_AFI_IP6)},
	}})
	if err != nil {
		t.Fatalf("configuring router %s: %v", addr, err)
	}
	return r
}

// received is what the router holds from the speaker for one prefix.
type received struct {
	nextHop     netip.Addr
	communities []string
	localPref   uint32
}

// routes returns the router's Adj-RIB-In from the speaker.
func (r *testRouter) routes(t *testing.T) map[netip.Prefix]received {
	t.Helper()
	out := make(map[netip.Prefix]received)
	for _, fam := range []bgp.Family{bgp.RF_IPv4_UC, bgp.RF_IPv6_UC} {
		err := r.srv.ListPath(apiutil.ListPathRequest{TableType: api.TableType_TABLE_TYPE_ADJ_IN, Name: r.neighbor, Family: fam},
			func(nlri bgp.NLRI, paths []*apiutil.Path) {
				for _, p := range paths {
					if p.Withdrawal {
						continue
					}
					prefix, err := netip.ParsePrefix(nlri.String())
					if err != nil {
						t.Errorf("router got NLRI %q: %v", nlri, err)
						continue
					}
					var rc received
					for _, a := range p.Attrs {
						switch v := a.(type) {
						case *bgp.PathAttributeNextHop:
							rc.nextHop = v.Value
						case *bgp.PathAttributeMpReachNLRI:
							rc.nextHop = v.Nexthop
						case *bgp.PathAttributeCommunities:
							for _, c := range v.Value {
								rc.communities = append(rc.communities, fmt.Sprintf("%d:%d", c>>16, c&0xffff))
							}
						case *bgp.PathAttributeLargeCommunities:
							for _, c := range v.Values {
								rc.communities = append(rc.communities, fmt.Sprintf("large:%d:%d:%d", c.ASN, c.LocalData1, c.LocalData2))
							}
						case *bgp.PathAttributeLocalPref:
							rc.localPref = v.Value
						}
					}
					slices.Sort(rc.communities)
					out[prefix] = rc
				}
			})
		if err != nil && !strings.Contains(err.Error(), "not found") {
			t.Logf("router %s: listing %v: %v", r.addr, fam, err)
		}
	}
	return out
}

// peerConfig is a session from the speaker to this router.
func (r *testRouter) peerConfig(name string, peerAS uint32) PeerConfig {
	return PeerConfig{Name: name, Address: r.addr, Port: r.port, SourceAddress: netip.MustParseAddr(speakerSource),
		LocalASN: 64512, PeerASN: peerAS, IPv4: true, ConnectTime: 2 * time.Second}
}

// eventually retries check until it passes or the deadline, which is
// generous: it bounds a hung test, it does not measure anything.
func eventually(t *testing.T, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("KEEPERLB_BGP_DEBUG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// testWriter sends log lines to t.Log, so that they show only on failure.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func sessionsUp(s *Speaker, names ...string) error {
	up := make(map[string]bool)
	for _, st := range s.Sessions() {
		up[st.Peer] = st.Up
	}
	for _, n := range names {
		if !up[n] {
			return fmt.Errorf("session %s is not up: %+v", n, s.Sessions())
		}
	}
	return nil
}

func expectRoutes(r *testRouter, t *testing.T, want map[netip.Prefix]received) func() error {
	return func() error {
		got := r.routes(t)
		if len(got) != len(want) {
			return fmt.Errorf("router %s has %v, want %v", r.addr, got, want)
		}
		for p, w := range want {
			g, ok := got[p]
			if !ok || g.nextHop != w.nextHop || g.localPref != w.localPref || !slices.Equal(g.communities, w.communities) {
				return fmt.Errorf("router %s: %s is %+v (present %v), want %+v", r.addr, p, g, ok, w)
			}
		}
		return nil
	}
}

func since(s *Speaker, name string) time.Time {
	for _, st := range s.Sessions() {
		if st.Peer == name {
			return st.Since
		}
	}
	return time.Time{}
}

// TestSpeakerAppliesDifferences drives one speaker with two sessions
// through a series of Desired states and checks, at the routers, that
// each difference and only it went out.
func TestSpeakerAppliesDifferences(t *testing.T) {
	ra := startRouter(t, "127.0.0.1", 64500, 64512) // eBGP
	rb := startRouter(t, "127.0.0.3", 64512, 64512) // iBGP
	reg := prometheus.NewPedanticRegistry()
	sp, err := New(testLogger(t), reg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	ctx := context.Background()
	src := netip.MustParseAddr(speakerSource)
	v6NextHop := netip.MustParseAddr("2001:db8:18::2")

	pa := ra.peerConfig("ra", 64500)
	pb := rb.peerConfig("rb", 64512)
	pb.IPv6, pb.NextHopIPv6 = true, v6NextHop // dualStackAddressFamily
	d1 := Desired{ASN: 64512, RouterID: netip.MustParseAddr("10.0.0.2"), Peers: []PeerConfig{pa, pb},
		Paths: []Path{
			{Prefix: pfx("198.19.0.10/32"), Routes: []Route{route("ra", 0, "65000:1", "large:64512:1:2"), route("rb", 200)}},
			{Prefix: pfx("2001:db8:19::10/128"), Routes: []Route{route("rb", 0, "65000:6")}},
		}}
	if err := sp.Apply(ctx, d1); err != nil {
		t.Fatal(err)
	}
	eventually(t, "sessions up", func() error { return sessionsUp(sp, "ra", "rb") })
	eventually(t, "first routes at ra", expectRoutes(ra, t, map[netip.Prefix]received{
		pfx("198.19.0.10/32"): {nextHop: src, communities: []string{"65000:1", "large:64512:1:2"}},
	}))
	eventually(t, "first routes at rb", expectRoutes(rb, t, map[netip.Prefix]received{
		pfx("198.19.0.10/32"):      {nextHop: src, localPref: 200},
		pfx("2001:db8:19::10/128"): {nextHop: v6NextHop, localPref: 100, communities: []string{"65000:6"}},
	}))
	upA, upB := since(sp, "ra"), since(sp, "rb")

	// New communities on an advertised prefix, a new prefix for ra
	// only, an IPv6 prefix withdrawn: no session is touched.
	d2 := d1
	d2.Paths = []Path{
		{Prefix: pfx("198.19.0.10/32"), Routes: []Route{route("ra", 0, "65000:2"), route("rb", 200)}},
		{Prefix: pfx("198.19.0.11/32"), Routes: []Route{route("ra", 0)}},
	}
	if err := sp.Apply(ctx, d2); err != nil {
		t.Fatal(err)
	}
	eventually(t, "changed routes at ra", expectRoutes(ra, t, map[netip.Prefix]received{
		pfx("198.19.0.10/32"): {nextHop: src, communities: []string{"65000:2"}},
		pfx("198.19.0.11/32"): {nextHop: src},
	}))
	eventually(t, "changed routes at rb", expectRoutes(rb, t, map[netip.Prefix]received{
		pfx("198.19.0.10/32"): {nextHop: src, localPref: 200},
	}))

	// An advertised prefix stops going to ra but stays for rb.
	d3 := d2
	d3.Paths = []Path{
		{Prefix: pfx("198.19.0.10/32"), Routes: []Route{route("rb", 300)}},
		{Prefix: pfx("198.19.0.11/32"), Routes: []Route{route("ra", 0)}},
	}
	if err := sp.Apply(ctx, d3); err != nil {
		t.Fatal(err)
	}
	eventually(t, "prefix withdrawn from ra only", expectRoutes(ra, t, map[netip.Prefix]received{
		pfx("198.19.0.11/32"): {nextHop: src},
	}))
	eventually(t, "new localPref at rb", expectRoutes(rb, t, map[netip.Prefix]received{
		pfx("198.19.0.10/32"): {nextHop: src, localPref: 300},
	}))
	if got := since(sp, "ra"); !got.Equal(upA) {
		t.Errorf("session ra restarted (up since %v, then %v) though its config did not change", upA, got)
	}
	if got := since(sp, "rb"); !got.Equal(upB) {
		t.Errorf("session rb restarted (up since %v, then %v) though its config did not change", upB, got)
	}

	// Metrics, under MetalLB's names and labels.
	labelA := netip.AddrPortFrom(ra.addr, ra.port).String()
	eventually(t, "metrics", func() error {
		m := gather(t, reg)
		if v := m["metallb_bgp_session_up"][labelA]; v != 1 {
			return fmt.Errorf("metallb_bgp_session_up{peer=%q} = %v, want 1 (all: %v)", labelA, v, m)
		}
		if v := m["metallb_bgp_announced_prefixes_total"][labelA]; v != 1 {
			return fmt.Errorf("metallb_bgp_announced_prefixes_total{peer=%q} = %v, want 1", labelA, v)
		}
		if v := m["metallb_bgp_updates_total"][labelA]; v < 3 {
			return fmt.Errorf("metallb_bgp_updates_total{peer=%q} = %v, want at least 3", labelA, v)
		}
		if v := m["metallb_bgp_pending_prefixes_total"][labelA]; v != 1 {
			return fmt.Errorf("metallb_bgp_pending_prefixes_total{peer=%q} = %v, want 1 (198.19.0.11/32)", labelA, v)
		}
		// The message counters of MetalLB's FRR mode, from GoBGP's.
		for _, name := range []string{"opens_sent", "opens_received", "keepalives_sent", "keepalives_received"} {
			if v := m["metallb_bgp_"+name][labelA]; v < 1 {
				return fmt.Errorf("metallb_bgp_%s{peer=%q} = %v, want at least 1", name, labelA, v)
			}
		}
		sent := m["metallb_bgp_opens_sent"][labelA] + m["metallb_bgp_updates_total"][labelA] + m["metallb_bgp_keepalives_sent"][labelA]
		if v := m["metallb_bgp_total_sent"][labelA]; v < sent {
			return fmt.Errorf("metallb_bgp_total_sent{peer=%q} = %v, less than its OPENs, UPDATEs and KEEPALIVEs (%v)", labelA, v, sent)
		}
		if _, ok := m["metallb_bfd_session_up"]; ok {
			return fmt.Errorf("BFD series for sessions without BFD: %v", m["metallb_bfd_session_up"])
		}
		return nil
	})

	// A change to rb's session restarts rb only.
	labelB := netip.AddrPortFrom(rb.addr, rb.port).String()
	opensBefore := gather(t, reg)["metallb_bgp_opens_sent"][labelB]
	if opensBefore < 1 {
		t.Fatalf("metallb_bgp_opens_sent{peer=%q} = %v with the session up", labelB, opensBefore)
	}
	d4 := d3
	pb2 := pb
	pb2.HoldTime = 30 * time.Second
	d4.Peers = []PeerConfig{pa, pb2}
	if err := sp.Apply(ctx, d4); err != nil {
		t.Fatal(err)
	}
	eventually(t, "rb restarted", func() error {
		if err := sessionsUp(sp, "rb"); err != nil {
			return err
		}
		if since(sp, "rb").Equal(upB) {
			return fmt.Errorf("rb has not restarted yet")
		}
		return nil
	})
	eventually(t, "rb routes after restart", expectRoutes(rb, t, map[netip.Prefix]received{
		pfx("198.19.0.10/32"): {nextHop: src, localPref: 300},
	}))
	// GoBGP counts rb's messages afresh for the new session; the
	// counter carries on from what the old one had sent.
	var opensNow uint64
	for _, st := range sp.Sessions() {
		if st.Peer == "rb" {
			opensNow = st.Sent.Opens
		}
	}
	if v := gather(t, reg)["metallb_bgp_opens_sent"][labelB]; v < opensBefore+float64(opensNow) {
		t.Errorf("metallb_bgp_opens_sent{peer=%q} = %v, want at least %v before the reconfiguration + %d since", labelB, v, opensBefore, opensNow)
	}
	if got := since(sp, "ra"); !got.Equal(upA) {
		t.Errorf("session ra restarted when only rb changed (up since %v, then %v)", upA, got)
	}

	// Nothing wanted: everything withdrawn and closed.
	if err := sp.Apply(ctx, Desired{}); err != nil {
		t.Fatal(err)
	}
	if got := sp.Sessions(); len(got) != 0 {
		t.Errorf("sessions after an empty Apply: %+v", got)
	}
	eventually(t, "ra empty", expectRoutes(ra, t, map[netip.Prefix]received{}))
	eventually(t, "rb empty", expectRoutes(rb, t, map[netip.Prefix]received{}))
}

// gather returns metric name -> peer label -> value.
func gather(t *testing.T, reg *prometheus.Registry) map[string]map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gathering metrics: %v", err)
	}
	out := make(map[string]map[string]float64)
	for _, mf := range mfs {
		m := make(map[string]float64)
		for _, metric := range mf.GetMetric() {
			var peer string
			for _, l := range metric.GetLabel() {
				if l.GetName() == "peer" {
					peer = l.GetValue()
				}
			}
			m[peer] = metricValue(metric)
		}
		out[mf.GetName()] = m
	}
	return out
}

func metricValue(m *dto.Metric) float64 {
	switch {
	case m.GetGauge() != nil:
		return m.GetGauge().GetValue()
	case m.GetCounter() != nil:
		return m.GetCounter().GetValue()
	}
	return 0
}

// TestSpeakerReportsWhySessionsAreDown checks the reasons a user sees for
// a refused connection and for an AS number the router does not expect.
func TestSpeakerReportsWhySessionsAreDown(t *testing.T) {
	wrongAS := startRouterIdle(t, "127.0.0.4", 64500, 64999, 1)
	closedPort := freePort(t, "127.0.0.5")
	var mu sync.Mutex
	reasons := make(map[string][]string)
	sp, err := New(testLogger(t), nil, Options{OnSessionChange: func(st SessionState) {
		mu.Lock()
		defer mu.Unlock()
		if st.Reason != "" {
			reasons[st.Peer] = append(reasons[st.Peer], st.Reason+": "+st.Message)
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	refused := PeerConfig{Name: "refused", Address: netip.MustParseAddr("127.0.0.5"), Port: closedPort,
		SourceAddress: netip.MustParseAddr(speakerSource), LocalASN: 64512, PeerASN: 64500, IPv4: true, ConnectTime: 2 * time.Second}
	// dynamicASN: GoBGP accepts any AS, so a peer of the wrong kind comes
	// up, and the reason says so; one of the right kind comes up clean.
	dynWrong := startRouter(t, "127.0.0.6", 64500, 64512).peerConfig("dyn-internal", 0)
	dynWrong.DynamicASN = DynamicInternal
	dynRight := startRouter(t, "127.0.0.7", 64500, 64512).peerConfig("dyn-external", 0)
	dynRight.DynamicASN = DynamicExternal
	d := Desired{ASN: 64512, RouterID: netip.MustParseAddr("10.0.0.2"), Peers: []PeerConfig{dynRight, dynWrong, refused, wrongAS.peerConfig("wrong-as", 64500)}}
	if err := sp.Apply(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"refused": ReasonConnectionRefused, "wrong-as": ReasonASNMismatch, "dyn-internal": ReasonDynamicASNMismatch}
	for peer, reason := range want {
		eventually(t, peer+" reason", func() error {
			mu.Lock()
			got := slices.Clone(reasons[peer])
			mu.Unlock()
			for _, r := range got {
				if strings.HasPrefix(r, reason+": ") {
					return nil
				}
			}
			return fmt.Errorf("reasons for %s: %q, want %s", peer, got, reason)
		})
		for _, st := range sp.Sessions() {
			wantUp := reason == ReasonDynamicASNMismatch
			if st.Peer == peer && (st.Up != wantUp || st.Reason != reason) {
				t.Errorf("Sessions() for %s: up %v reason %q, want up %v with %s", peer, st.Up, st.Reason, wantUp, reason)
			}
		}
	}
	eventually(t, "dynamic external session up", func() error { return sessionsUp(sp, "dyn-external") })
	for _, st := range sp.Sessions() {
		if st.Peer == "dyn-external" && (st.Reason != "" || st.PeerASN != 64500) {
			t.Errorf("dyn-external: reason %q, peer AS %d; want none and 64500", st.Reason, st.PeerASN)
		}
	}
}
