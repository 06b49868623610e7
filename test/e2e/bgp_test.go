package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/keeperlb/keeperlb/api/v1beta1"
	"github.com/keeperlb/keeperlb/api/v1beta2"
	"github.com/keeperlb/keeperlb/internal/lab"
	"github.com/keeperlb/keeperlb/internal/lab/labtest"
	"github.com/keeperlb/keeperlb/internal/speaker"
)

// The BGP tests run the lab with its router: FRR (zebra, bgpd and, for
// BFD, bfdd) in the router namespace peers with the speaker of every node,
// and the far client behind the router reaches the Services through the
// routes zebra puts in the router's kernel. What is checked is what the
// router holds (FRR's BGP table and the kernel's routes), what the far
// client reaches, and what a user reads with kubectl.

const (
	nodeASN   = 64512
	routerASN = 64500
	hostname  = "kubernetes.io/hostname"
)

// router describes the FRR configuration of a test.
type router struct {
	// asn is the router's AS; 0 means routerASN (eBGP with the nodes).
	asn uint32
	// ipv6 adds a neighbor for every node's IPv6 address.
	ipv6 bool
	// password is the TCP-MD5 password of every neighbor.
	password string
	// bfd runs bfdd with profile "fast" (300 ms x 3) on every neighbor.
	bfd bool
	// gracefulRestart turns on graceful restart (helper mode).
	gracefulRestart bool
	// holdTimers sets keepalive 3 s and hold 9 s.
	holdTimers bool
}

func (r router) as() uint32 {
	if r.asn == 0 {
		return routerASN
	}
	return r.asn
}

// bgpd renders bgpd's configuration: explicit neighbors (BFD needs them),
// ECMP over up to 8 paths for eBGP and iBGP, both families on every
// neighbor so that dual-stack sessions can carry the other family.
func (r router) bgpd(l *lab.Lab) string {
	var b strings.Builder
	fmt.Fprintf(&b, "router bgp %d\n bgp router-id %s\n no bgp ebgp-requires-policy\n", r.as(), l.Router.IPv4)
	if r.gracefulRestart {
		b.WriteString(" bgp graceful-restart\n")
	}
	if r.holdTimers {
		b.WriteString(" timers bgp 3 9\n")
	}
	var neighbors []netip.Addr
	for _, n := range l.Nodes {
		neighbors = append(neighbors, n.IPv4)
		if r.ipv6 {
			neighbors = append(neighbors, n.IPv6)
		}
	}
	for _, a := range neighbors {
		fmt.Fprintf(&b, " neighbor %s remote-as %d\n", a, nodeASN)
		if r.password != "" {
			fmt.Fprintf(&b, " neighbor %s password %s\n", a, r.password)
		}
		if r.bfd {
			fmt.Fprintf(&b, " neighbor %s bfd profile fast\n", a)
		}
	}
	for _, afi := range []string{"ipv4", "ipv6"} {
		fmt.Fprintf(&b, " address-family %s unicast\n  maximum-paths 8\n  maximum-paths ibgp 8\n", afi)
		for _, a := range neighbors {
			fmt.Fprintf(&b, "  neighbor %s activate\n", a)
		}
		b.WriteString(" exit-address-family\n")
	}
	b.WriteString("!\n")
	return b.String()
}

func (r router) bfdd() string {
	if !r.bfd {
		return ""
	}
	return "bfd\n profile fast\n  receive-interval 300\n  transmit-interval 300\n  detect-multiplier 3\n !\n!\n"
}

// bgpEnv is a lab with its router running FRR, the controller and a
// speaker on every node.
type bgpEnv struct {
	*env
	rt  router
	frr *lab.FRR
}

// newBGPEnv brings up the lab (with router), KeeperLB and FRR.
func newBGPEnv(t *testing.T, rt router) *bgpEnv {
	t.Helper()
	return newBGPEnvWith(t, rt, envOptions{})
}

// newBGPEnvWith is newBGPEnv with more options for newEnv (router is
// always on).
func newBGPEnvWith(t *testing.T, rt router, o envOptions) *bgpEnv {
	t.Helper()
	labtest.Require(t, true, "vtysh")
	if err := lab.CheckFRR(); err != nil {
		if os.Getenv(labtest.SkipEnv) == "1" {
			t.Skipf("%v (skipped: %s=1)", err, labtest.SkipEnv)
		}
		t.Fatalf("%v; set %s=1 to skip lab tests", err, labtest.SkipEnv)
	}
	o.router = true
	e := newEnv(t, o)
	f, err := e.lab.StartFRR(t.Context(), rt.bgpd(e.lab), rt.bfdd())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			for _, c := range []string{"show bgp summary", "show bgp ipv4 unicast", "show bgp ipv6 unicast", "show bfd peers brief"} {
				out, err := f.Vtysh(ctx, c)
				t.Logf("router# %s\n%s%v", c, out, errOrEmpty(err))
			}
		}
	})
	return &bgpEnv{env: e, rt: rt, frr: f}
}

func errOrEmpty(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// create creates an object in the install namespace (Services go through
// createService).
func (e *env) create(obj client.Object) {
	e.t.Helper()
	if obj.GetNamespace() == "" {
		obj.SetNamespace(installNS)
	}
	if err := e.c.Create(e.t.Context(), obj); err != nil {
		e.t.Fatalf("creating %T %s: %v", obj, obj.GetName(), err)
	}
}

// update reads obj afresh, applies change and writes it, retrying on
// conflicts.
func update[T client.Object](e *env, obj T, change func(T)) {
	e.t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := e.c.Get(e.t.Context(), client.ObjectKeyFromObject(obj), obj); err != nil {
			return err
		}
		change(obj)
		return e.c.Update(e.t.Context(), obj)
	})
	if err != nil {
		e.t.Fatalf("updating %T %s: %v", obj, obj.GetName(), err)
	}
}

// pool creates an IPAddressPool.
func (e *bgpEnv) pool(name string, addresses ...string) {
	e.t.Helper()
	e.create(&v1beta1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1beta1.IPAddressPoolSpec{Addresses: addresses}})
}

// peer creates a BGPPeer from every node (unless mod sets nodeSelectors)
// to addr, in the router's AS, retrying connections every second.
func (e *bgpEnv) peer(name string, addr netip.Addr, mod func(*v1beta2.BGPPeerSpec)) *v1beta2.BGPPeer {
	e.t.Helper()
	p := &v1beta2.BGPPeer{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1beta2.BGPPeerSpec{
		MyASN: nodeASN, PeerASN: e.rt.as(), PeerAddress: addr.String(),
		ConnectTime: &metav1.Duration{Duration: time.Second},
	}}
	if mod != nil {
		mod(&p.Spec)
	}
	e.create(p)
	return p
}

// advertise creates a BGPAdvertisement.
func (e *bgpEnv) advertise(name string, mod func(*v1beta1.BGPAdvertisementSpec)) *v1beta1.BGPAdvertisement {
	e.t.Helper()
	a := &v1beta1.BGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if mod != nil {
		mod(&a.Spec)
	}
	e.create(a)
	return a
}

func onNodes(names ...string) []metav1.LabelSelector {
	return []metav1.LabelSelector{{MatchExpressions: []metav1.LabelSelectorRequirement{
		{Key: hostname, Operator: metav1.LabelSelectorOpIn, Values: names},
	}}}
}

func allNodes(e *env) []string {
	var out []string
	for _, n := range e.lab.Nodes {
		out = append(out, n.Name)
	}
	return out
}

func hostPrefix(ip netip.Addr) netip.Prefix { return netip.PrefixFrom(ip, ip.BitLen()) }

// nodeOfHop names the node a next hop belongs to (its IPv4, IPv6 or
// link-local address), or returns the address itself.
func (e *bgpEnv) nodeOfHop(a netip.Addr) string {
	for _, n := range e.lab.Nodes {
		if a == n.IPv4 || a == n.IPv6 || a == n.LinkLocal() {
			return n.Name
		}
	}
	return a.String()
}

// hopNodes returns the nodes the router's kernel route for p leads to,
// sorted; none when there is no route.
func (e *bgpEnv) hopNodes(p netip.Prefix) ([]string, error) {
	hops, err := e.lab.KernelNextHops(e.t.Context(), e.lab.Router, p)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, h := range hops {
		out = append(out, e.nodeOfHop(h))
	}
	slices.Sort(out)
	return out, nil
}

// waitHops waits until the router's kernel route for p leads to exactly
// the given nodes (no route at all when none are given) and returns how
// long that took.
func (e *bgpEnv) waitHops(p netip.Prefix, nodes ...string) time.Duration {
	e.t.Helper()
	want := slices.Sorted(slices.Values(nodes))
	start := time.Now()
	eventually(e.t, 30*time.Second, func() error {
		got, err := e.hopNodes(p)
		if err != nil {
			return err
		}
		if !slices.Equal(got, want) {
			return fmt.Errorf("router's kernel route for %s leads to %v, want %v", p, got, want)
		}
		return nil
	})
	return time.Since(start)
}

// waitPaths waits until check accepts FRR's paths for p and returns them.
func (e *bgpEnv) waitPaths(p netip.Prefix, check func([]lab.Path) error) []lab.Path {
	e.t.Helper()
	var paths []lab.Path
	eventually(e.t, 30*time.Second, func() error {
		var err error
		if paths, err = e.frr.Paths(e.t.Context(), p); err != nil {
			return err
		}
		if err := check(paths); err != nil {
			return fmt.Errorf("FRR's paths for %s: %w: %+v", p, err, paths)
		}
		return nil
	})
	return paths
}

// pathsFrom is a check that the paths come from exactly these neighbors.
func pathsFrom(want ...netip.Addr) func([]lab.Path) error {
	return func(paths []lab.Path) error {
		var got []netip.Addr
		for _, p := range paths {
			got = append(got, p.Peer)
		}
		slices.SortFunc(got, netip.Addr.Compare)
		w := slices.SortedFunc(slices.Values(want), netip.Addr.Compare)
		if !slices.Equal(got, w) {
			return fmt.Errorf("from %v, want %v", got, w)
		}
		return nil
	}
}

// farCurl asks ip from the far client, through the router.
func (e *bgpEnv) farCurl(ip netip.Addr) (string, error) {
	ctx, cancel := context.WithTimeout(e.t.Context(), 2*time.Second)
	defer cancel()
	return e.lab.Curl(ctx, e.lab.Far, ip, 80)
}

// spread sends n requests from the far client, each on a new connection
// (a new source port, so a new ECMP hash), and counts the answering nodes.
func (e *bgpEnv) spread(ip netip.Addr, n int) map[string]int {
	e.t.Helper()
	got := map[string]int{}
	for range n {
		node, err := e.farCurl(ip)
		if err != nil {
			e.t.Fatalf("far client to %s: %v", ip, err)
		}
		got[node]++
	}
	return got
}

// bgpStatuses returns the nodes whose ServiceBGPStatus names the Service,
// sorted, after checking each object's content.
func (e *env) bgpStatuses(svc string) (map[string][]string, error) {
	var list v1beta1.ServiceBGPStatusList
	if err := e.c.List(e.t.Context(), &list, client.InNamespace(installNS),
		client.MatchingLabels{speaker.LabelServiceName: svc, speaker.LabelServiceNamespace: appNS}); err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for _, s := range list.Items {
		st := s.Status
		if st.Node == "" || s.Labels[speaker.LabelNode] != st.Node || st.ServiceName != svc || st.ServiceNamespace != appNS {
			return nil, fmt.Errorf("ServiceBGPStatus %s: labels %v, status %+v", s.Name, s.Labels, st)
		}
		if _, dup := out[st.Node]; dup {
			return nil, fmt.Errorf("two ServiceBGPStatus objects of node %s for %s", st.Node, svc)
		}
		out[st.Node] = st.Peers
	}
	return out, nil
}

// waitBGPStatuses waits until the ServiceBGPStatus objects of svc name
// exactly these nodes, each with these peers.
func (e *env) waitBGPStatuses(svc string, peers []string, nodes ...string) {
	e.t.Helper()
	eventually(e.t, 20*time.Second, func() error {
		got, err := e.bgpStatuses(svc)
		if err != nil {
			return err
		}
		var names []string
		for n, p := range got {
			names = append(names, n)
			if !slices.Equal(p, peers) {
				return fmt.Errorf("ServiceBGPStatus of %s on %s names peers %v, want %v", svc, n, p, peers)
			}
		}
		slices.Sort(names)
		if want := slices.Sorted(slices.Values(nodes)); !slices.Equal(names, want) {
			return fmt.Errorf("ServiceBGPStatus of %s on nodes %v, want %v", svc, names, want)
		}
		return nil
	})
}

// sessions returns the BGPSessionState objects by node and peer name,
// after checking that labels and status agree.
func (e *env) sessions() (map[[2]string]v1beta1.BGPSessionStateStatus, error) {
	var list v1beta1.BGPSessionStateList
	if err := e.c.List(e.t.Context(), &list, client.InNamespace(installNS)); err != nil {
		return nil, err
	}
	out := map[[2]string]v1beta1.BGPSessionStateStatus{}
	for _, s := range list.Items {
		node, peer := s.Labels[speaker.LabelNode], s.Labels[speaker.LabelPeer]
		if node == "" || peer == "" || s.Status.Node != node {
			return nil, fmt.Errorf("BGPSessionState %s: labels %v, status %+v", s.Name, s.Labels, s.Status)
		}
		out[[2]string{node, peer}] = s.Status
	}
	return out, nil
}

// waitRouterBFDUp waits until the router's BFD session with every node is
// up, in FRR's own view: a speaker's BGPSessionState can still be the one a
// stopped speaker wrote.
func (e *bgpEnv) waitRouterBFDUp() {
	e.t.Helper()
	eventually(e.t, 30*time.Second, func() error {
		peers, err := e.frr.BFDPeers(e.t.Context())
		if err != nil {
			return err
		}
		for _, a := range e.nodeAddrs(false) {
			if peers[a] != "up" {
				return fmt.Errorf("FRR's BFD sessions: %v", peers)
			}
		}
		return nil
	})
}

// waitSessions waits until the BGPSessionState objects are exactly one per
// (node, peer) in want and each passes check.
func (e *env) waitSessions(want [][2]string, check func(key [2]string, s v1beta1.BGPSessionStateStatus) error) {
	e.t.Helper()
	eventually(e.t, 30*time.Second, func() error {
		got, err := e.sessions()
		if err != nil {
			return err
		}
		var keys [][2]string
		for k, s := range got {
			keys = append(keys, k)
			if err := check(k, s); err != nil {
				return fmt.Errorf("BGPSessionState of node %s, peer %s: %w (%+v)", k[0], k[1], err, s)
			}
		}
		cmp := func(a, b [2]string) int { return strings.Compare(a[0]+"/"+a[1], b[0]+"/"+b[1]) }
		slices.SortFunc(keys, cmp)
		if w := slices.SortedFunc(slices.Values(want), cmp); !slices.Equal(keys, w) {
			return fmt.Errorf("BGPSessionState objects for %v, want %v", keys, w)
		}
		return nil
	})
}

func sessionKeys(peer string, nodes ...string) [][2]string {
	var out [][2]string
	for _, n := range nodes {
		out = append(out, [2]string{n, peer})
	}
	return out
}

// established checks a BGPSessionState of an established session.
func established(peerAddr netip.Addr, bfd string) func([2]string, v1beta1.BGPSessionStateStatus) error {
	return func(_ [2]string, s v1beta1.BGPSessionStateStatus) error {
		if s.BGPStatus != "Established" || s.Peer != peerAddr.String() || s.BFDStatus != bfd || s.Reason != "" {
			return fmt.Errorf("want Established with %s, BFD %s and no reason", peerAddr, bfd)
		}
		return nil
	}
}

// waitEvent waits for an Event about an object of the install namespace
// with this type and reason whose message contains every string of
// contains, and returns its message.
func (e *env) waitEvent(kind, name, typ, reason string, contains ...string) string {
	e.t.Helper()
	return e.waitEventIn(installNS, kind, name, typ, reason, contains...)
}

// waitEventIn is waitEvent for an object of namespace ns.
func (e *env) waitEventIn(ns, kind, name, typ, reason string, contains ...string) string {
	e.t.Helper()
	var msg string
	eventually(e.t, 30*time.Second, func() error {
		var evs corev1.EventList
		if err := e.c.List(e.t.Context(), &evs, client.InNamespace(ns)); err != nil {
			return err
		}
		var seen []string
		for _, ev := range evs.Items {
			if ev.InvolvedObject.Kind != kind || ev.InvolvedObject.Name != name {
				continue
			}
			seen = append(seen, ev.Type+"/"+ev.Reason+": "+ev.Message)
			if ev.Type != typ || ev.Reason != reason {
				continue
			}
			ok := true
			for _, c := range contains {
				ok = ok && strings.Contains(ev.Message, c)
			}
			if ok {
				msg = ev.Message
				return nil
			}
		}
		return fmt.Errorf("no %s Event %q on %s %s containing %q; seen %q", typ, reason, kind, name, contains, seen)
	})
	return msg
}

// neighborCounts records FRR's established/dropped counters of neighbors.
func (e *bgpEnv) neighborCounts(addrs ...netip.Addr) map[netip.Addr][2]int {
	e.t.Helper()
	out := map[netip.Addr][2]int{}
	for _, a := range addrs {
		n, err := e.frr.Neighbor(e.t.Context(), a)
		if err != nil {
			e.t.Fatal(err)
		}
		out[a] = [2]int{n.Established, n.Dropped}
	}
	return out
}

func (e *bgpEnv) nodeAddrs(v6 bool) []netip.Addr {
	var out []netip.Addr
	for _, n := range e.lab.Nodes {
		if v6 {
			out = append(out, n.IPv6)
		} else {
			out = append(out, n.IPv4)
		}
	}
	return out
}

func (e *bgpEnv) waitEstablished(addrs ...netip.Addr) {
	e.t.Helper()
	for _, a := range addrs {
		eventually(e.t, 30*time.Second, func() error { return e.frr.Established(e.t.Context(), a) })
	}
}

// TestBGPECMPLocalPolicyAndWithdraw: every node advertises a Service, the
// router installs one route with three next hops and the far client's
// connections spread over the nodes; the status objects say so; with
// externalTrafficPolicy Local only the node with the endpoint advertises,
// and the route follows the endpoint; deleting the Service withdraws it.
func TestBGPECMPLocalPolicyAndWithdraw(t *testing.T) {
	e := newBGPEnv(t, router{})
	e.pool("bgp", e.lab.BGPPool4.String())
	e.peer("router", e.lab.Router.IPv4, nil)
	e.advertise("all", nil)
	nodes := allNodes(e.env)

	ip := v4(e.createService("web", nodes, nil))
	if !e.lab.BGPPool4.Contains(ip) {
		t.Fatalf("Service got %s, outside the BGP pool %s", ip, e.lab.BGPPool4)
	}
	took := e.waitHops(hostPrefix(ip), nodes...)
	t.Logf("%s in the router's kernel with 3 next hops %v after the Service got its IP", ip, took.Round(time.Millisecond))
	e.waitPaths(hostPrefix(ip), func(paths []lab.Path) error {
		if err := pathsFrom(e.nodeAddrs(false)...)(paths); err != nil {
			return err
		}
		for _, p := range paths {
			if !p.Valid || !(p.Best || p.Multipath) || p.ASPath != "64512" || !slices.Equal(p.NextHops, []netip.Addr{p.Peer}) {
				return fmt.Errorf("path from %s: valid %v best %v multipath %v AS path %q next hops %v",
					p.Peer, p.Valid, p.Best, p.Multipath, p.ASPath, p.NextHops)
			}
		}
		return nil
	})

	// ECMP for real: new connections from the far client, each with its
	// own source port, land on every node.
	got := e.spread(ip, 60)
	t.Logf("60 connections from the far client to %s: %v", ip, got)
	for _, n := range nodes {
		if got[n] == 0 {
			t.Errorf("no connection from the far client reached %s: %v", n, got)
		}
	}

	e.waitBGPStatuses("web", []string{"router"}, nodes...)
	e.waitSessions(sessionKeys("router", nodes...), established(e.lab.Router.IPv4, "N/A"))

	// externalTrafficPolicy Local: the node with the endpoint, then the
	// one the endpoint moves to, then nobody.
	lip := v4(e.createService("local", []string{"node2"}, func(s *corev1.Service) {
		s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	}))
	e.waitHops(hostPrefix(lip), "node2")
	if n, err := e.farCurl(lip); err != nil || n != "node2" {
		t.Fatalf("far client to the Local Service %s: %q, %v; want node2", lip, n, err)
	}
	e.waitBGPStatuses("local", []string{"router"}, "node2")
	e.setEndpoints("local", "node1", "node3")
	took = e.waitHops(hostPrefix(lip), "node1", "node3")
	t.Logf("endpoints moved from node2 to node1 and node3: route followed in %v", took.Round(time.Millisecond))
	e.waitBGPStatuses("local", []string{"router"}, "node1", "node3")
	// `kubectl describe svc local` tells it: node2 stopped advertising,
	// node1 and node3 started.
	e.waitEventIn(appNS, "Service", "local", corev1.EventTypeNormal, "nodeWithdrawn",
		`node "node2" stopped advertising it with protocol "bgp"`)
	for _, n := range []string{"node1", "node3"} {
		e.waitEventIn(appNS, "Service", "local", corev1.EventTypeNormal, "nodeAssigned",
			fmt.Sprintf("announcing from node %q with protocol \"bgp\"", n))
	}
	e.setEndpoints("local")
	e.waitHops(hostPrefix(lip))
	e.waitBGPStatuses("local", nil)

	// Deleting the Service withdraws its route everywhere.
	if err := e.c.Delete(t.Context(), &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: appNS, Name: "web"}}); err != nil {
		t.Fatal(err)
	}
	took = e.waitHops(hostPrefix(ip))
	t.Logf("Service deleted: route gone from the router's kernel after %v", took.Round(time.Millisecond))
	e.waitPaths(hostPrefix(ip), func(paths []lab.Path) error {
		if len(paths) != 0 {
			return errors.New("still there")
		}
		return nil
	})
	e.waitBGPStatuses("web", nil)
	// The sessions stayed up throughout.
	for a, c := range e.neighborCounts(e.nodeAddrs(false)...) {
		if c != [2]int{1, 0} {
			t.Errorf("FRR's session with %s: established %d times, dropped %d, want once and never", a, c[0], c[1])
		}
	}
}

// TestBGPCommunitiesLocalPrefAggregationAndUpdate runs iBGP over IPv4 and
// IPv6 sessions. An IPv6 Service: the communities (standard, large, and an
// alias from a Community object) of two overlapping advertisements arrive
// as their union, with localPref. An IPv4 Service of a /24 pool advertised
// with aggregationLength 24: the router learns the /24. Changing the
// communities and localPref reaches the router without resetting any
// session.
func TestBGPCommunitiesLocalPrefAggregationAndUpdate(t *testing.T) {
	e := newBGPEnv(t, router{asn: nodeASN, ipv6: true})
	nodes := allNodes(e.env)
	e.pool("tagged", e.lab.BGPPool6.String())
	e.pool("agg", e.lab.BGPPool4.String())
	e.create(&v1beta1.Community{ObjectMeta: metav1.ObjectMeta{Name: "aliases"}, Spec: v1beta1.CommunitySpec{
		Communities: []v1beta1.CommunityAlias{{Name: "big", Value: "large:64512:7:7"}},
	}})
	e.peer("r4", e.lab.Router.IPv4, nil)
	e.peer("r6", e.lab.Router.IPv6, nil)
	tagged := e.advertise("tagged", func(s *v1beta1.BGPAdvertisementSpec) {
		s.IPAddressPools = []string{"tagged"}
		s.Communities = []string{"65000:100", "large:64512:1:2", "big"}
		s.LocalPref = 200
	})
	// Naming the peer sets this advertisement apart from "tagged" (which
	// goes to every peer), so that it may leave localPref unset; on the
	// IPv6 sessions the two overlap.
	e.advertise("extra", func(s *v1beta1.BGPAdvertisementSpec) {
		s.IPAddressPools = []string{"tagged"}
		s.Peers = []string{"r6"}
		s.Communities = []string{"65000:200", "65000:100"}
	})
	e.advertise("summary", func(s *v1beta1.BGPAdvertisementSpec) {
		s.IPAddressPools = []string{"agg"}
		s.AggregationLength = new(int32(24))
	})

	a := v6(e.createService("a", nodes, func(s *corev1.Service) {
		s.Annotations = map[string]string{"metallb.io/address-pool": "tagged"}
		s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol}
	}))
	b := v4(e.createService("b", nodes, func(s *corev1.Service) {
		s.Annotations = map[string]string{"metallb.io/address-pool": "agg"}
	}))
	if !a.IsValid() || !b.IsValid() {
		t.Fatalf("Services got %s and %s", a, b)
	}
	attrs := func(from []netip.Addr, comms, large []string, pref uint32) func([]lab.Path) error {
		return func(paths []lab.Path) error {
			if err := pathsFrom(from...)(paths); err != nil {
				return err
			}
			for _, p := range paths {
				if !slices.Equal(p.Communities, comms) || !slices.Equal(p.LargeCommunities, large) || p.LocalPref != pref || p.ASPath != "Local" {
					return fmt.Errorf("path from %s: communities %v large %v localPref %d AS path %q; want %v %v %d and an empty AS path (iBGP, \"Local\")",
						p.Peer, p.Communities, p.LargeCommunities, p.LocalPref, p.ASPath, comms, large, pref)
				}
			}
			return nil
		}
	}
	e.waitPaths(hostPrefix(a), attrs(e.nodeAddrs(true), []string{"65000:100", "65000:200"}, []string{"64512:1:2", "64512:7:7"}, 200))
	e.waitHops(hostPrefix(a), nodes...)
	if n, err := e.farCurl(a); err != nil {
		t.Errorf("far client to %s: %v", a, err)
	} else {
		t.Logf("far client reached %s on %s", a, n)
	}

	// Aggregation: the router learns the /24, not the Service's /32, and
	// the far client reaches b through it.
	agg := netip.PrefixFrom(b, 24).Masked()
	e.waitPaths(agg, attrs(e.nodeAddrs(false), nil, nil, 100))
	e.waitHops(agg, nodes...)
	if paths, err := e.frr.Paths(t.Context(), hostPrefix(b)); err != nil || len(paths) != 0 {
		t.Errorf("the router has %+v (%v) for %s, want only the aggregate %s", paths, err, hostPrefix(b), agg)
	}
	if n, err := e.farCurl(b); err != nil {
		t.Errorf("far client to %s through the aggregate: %v", b, err)
	} else {
		t.Logf("far client reached %s through %s on %s", b, agg, n)
	}

	// A change of communities and localPref: new attributes at the router,
	// the same sessions.
	all := append(e.nodeAddrs(false), e.nodeAddrs(true)...)
	before := e.neighborCounts(all...)
	update(e.env, tagged, func(a *v1beta1.BGPAdvertisement) {
		a.Spec.Communities = []string{"65000:300", "big"}
		a.Spec.LocalPref = 300
	})
	changed := time.Now()
	e.waitPaths(hostPrefix(a), attrs(e.nodeAddrs(true), []string{"65000:100", "65000:200", "65000:300"}, []string{"64512:7:7"}, 300))
	t.Logf("new communities and localPref at the router %v after the update", time.Since(changed).Round(time.Millisecond))
	if after := e.neighborCounts(all...); !maps2Equal(before, after) {
		t.Errorf("sessions reset by an advertisement change: FRR counters (established, dropped) before %v, after %v", before, after)
	}
	for _, addr := range all {
		// FRR counts uptime in whole seconds (bgpTimerUpMsec is seconds
		// times 1000), so a session up since before the change may show
		// up to a second less than the time since the change; only an
		// uptime shorter by more than that proves a new session.
		if n, err := e.frr.Neighbor(t.Context(), addr); err != nil || n.State != "Established" || n.Uptime+time.Second <= time.Since(changed) {
			t.Errorf("session with %s after the change: %+v, %v", addr, n, err)
		}
	}
	e.waitPaths(agg, attrs(e.nodeAddrs(false), nil, nil, 100))
	e.waitBGPStatuses("a", []string{"r6"}, nodes...)
	e.waitBGPStatuses("b", []string{"r4"}, nodes...)
}

func maps2Equal(a, b map[netip.Addr][2]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestBGPSelectorsAndIPv6 runs two peers per node: r4 over IPv4, carrying
// both families (dualStackAddressFamily) and selected for node1 and node2
// only, and r6 over IPv6 for every node. A BGPAdvertisement names its
// peers and nodes; the router sees the prefixes from exactly those
// sessions, and the far client reaches the IPv6 address.
func TestBGPSelectorsAndIPv6(t *testing.T) {
	e := newBGPEnv(t, router{ipv6: true})
	nodes := allNodes(e.env)
	n1, n2, n3 := e.lab.Nodes[0], e.lab.Nodes[1], e.lab.Nodes[2]
	e.pool("dual", e.lab.BGPPool4.String(), e.lab.BGPPool6.String())
	e.peer("r4", e.lab.Router.IPv4, func(s *v1beta2.BGPPeerSpec) {
		s.DualStackAddressFamily = true
		s.NodeSelectors = onNodes("node1", "node2")
	})
	e.peer("r6", e.lab.Router.IPv6, nil)
	adv := e.advertise("via-r4", func(s *v1beta1.BGPAdvertisementSpec) { s.Peers = []string{"r4"} })
	ips := e.createService("dual", nodes, func(s *corev1.Service) {
		s.Spec.IPFamilyPolicy = new(corev1.IPFamilyPolicyRequireDualStack)
		s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}
	})
	ip4, ip6 := v4(ips), v6(ips)
	if !e.lab.BGPPool6.Contains(ip6) || !e.lab.BGPPool4.Contains(ip4) {
		t.Fatalf("dual-stack Service got %v", ips)
	}

	// r4 exists on node1 and node2 only; r6 everywhere.
	e.waitEstablished(n1.IPv4, n2.IPv4, n1.IPv6, n2.IPv6, n3.IPv6)
	if err := e.frr.Established(t.Context(), n3.IPv4); !errors.Is(err, lab.ErrNotEstablished) {
		t.Errorf("node3 is not selected by BGPPeer r4, yet: %v", err)
	}
	e.waitSessions(append(sessionKeys("r4", "node1", "node2"), sessionKeys("r6", nodes...)...),
		func(k [2]string, s v1beta1.BGPSessionStateStatus) error {
			addr := e.lab.Router.IPv4
			if k[1] == "r6" {
				addr = e.lab.Router.IPv6
			}
			return established(addr, "N/A")(k, s)
		})

	// Both families go to r4 only: from node1 and node2, the IPv6 prefix
	// over their IPv4 sessions with their IPv6 address as next hop.
	e.waitPaths(hostPrefix(ip4), pathsFrom(n1.IPv4, n2.IPv4))
	e.waitPaths(hostPrefix(ip6), func(paths []lab.Path) error {
		if err := pathsFrom(n1.IPv4, n2.IPv4)(paths); err != nil {
			return err
		}
		for _, p := range paths {
			if want := e.lab.Node(e.nodeOfHop(p.Peer)).IPv6; len(p.NextHops) == 0 || p.NextHops[0] != want {
				return fmt.Errorf("path from %s has next hops %v, want %s first", p.Peer, p.NextHops, want)
			}
		}
		return nil
	})
	e.waitHops(hostPrefix(ip4), "node1", "node2")
	e.waitHops(hostPrefix(ip6), "node1", "node2")
	e.waitBGPStatuses("dual", []string{"r4"}, "node1", "node2")

	// Now to r6, from node2 and node3: the IPv6 prefix over the IPv6
	// sessions, and the IPv4 prefix nowhere (r6 carries only IPv6).
	update(e.env, adv, func(a *v1beta1.BGPAdvertisement) {
		a.Spec.Peers = []string{"r6"}
		a.Spec.NodeSelectors = onNodes("node2", "node3")
	})
	e.waitPaths(hostPrefix(ip6), pathsFrom(n2.IPv6, n3.IPv6))
	e.waitHops(hostPrefix(ip6), "node2", "node3")
	e.waitHops(hostPrefix(ip4))
	e.waitBGPStatuses("dual", []string{"r6"}, "node2", "node3")
	seen := e.spread(ip6, 30)
	t.Logf("30 connections from the far client to %s: %v", ip6, seen)
	if seen["node1"] != 0 || len(seen) == 0 {
		t.Errorf("far client's connections to %s reached %v, want only node2 and node3", ip6, seen)
	}
}

// TestBGPPasswordAndUnsupportedFields: with a wrong TCP-MD5 password the
// sessions stay down and BGPSessionState and an Event say why; fixing the
// Secret brings them up. Fields the speaker cannot honour (a VRF, BFD echo
// mode) come back as Warning Events and in ConfigurationState.
func TestBGPPasswordAndUnsupportedFields(t *testing.T) {
	e := newBGPEnv(t, router{password: "s3cret-pw"})
	nodes := allNodes(e.env)
	e.pool("bgp", e.lab.BGPPool4.String())
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "bgp-auth"}, Type: corev1.SecretTypeBasicAuth,
		StringData: map[string]string{"password": "wrong-pw"}}
	e.create(secret)
	e.peer("router", e.lab.Router.IPv4, func(s *v1beta2.BGPPeerSpec) {
		s.PasswordSecret = corev1.SecretReference{Name: "bgp-auth", Namespace: installNS}
	})
	// Two peers the speaker reports instead of using as asked. Their
	// addresses are unused lab addresses.
	spare := func(n int) netip.Addr {
		b := e.lab.Subnet4.Addr().As4()
		b[3] = byte(n)
		return netip.AddrFrom4(b)
	}
	echo := uint32(50)
	e.create(&v1beta1.BFDProfile{ObjectMeta: metav1.ObjectMeta{Name: "echo"}, Spec: v1beta1.BFDProfileSpec{
		EchoMode: new(true), EchoInterval: &echo}})
	e.peer("in-vrf", spare(2), func(s *v1beta2.BGPPeerSpec) { s.VRF = "red" })
	e.peer("with-echo", spare(3), func(s *v1beta2.BGPPeerSpec) { s.BFDProfile = "echo" })
	e.advertise("all", func(s *v1beta1.BGPAdvertisementSpec) { s.Peers = []string{"router"} })
	ip := v4(e.createService("web", nodes, nil))

	e.waitSessions(append(sessionKeys("router", nodes...), sessionKeys("with-echo", nodes...)...),
		func(k [2]string, s v1beta1.BGPSessionStateStatus) error {
			if k[1] != "router" {
				return nil
			}
			if s.BGPStatus == "Established" || s.Reason != "PasswordMismatch" || s.Message == "" {
				return errors.New("want a session that is down with reason PasswordMismatch and a message")
			}
			return nil
		})
	for _, a := range e.nodeAddrs(false) {
		if err := e.frr.Established(t.Context(), a); !errors.Is(err, lab.ErrNotEstablished) {
			t.Errorf("wrong password, yet FRR's session with %s: %v", a, err)
		}
	}
	msg := e.waitEvent("BGPPeer", "router", corev1.EventTypeWarning, "PasswordMismatch", e.lab.Router.IPv4.String())
	t.Logf("Event on BGPPeer router: %s", msg)
	if hops, err := e.hopNodes(hostPrefix(ip)); err != nil || len(hops) != 0 {
		t.Errorf("route for %s without a session: %v, %v", ip, hops, err)
	}

	// What the speaker does not honour.
	msg = e.waitEvent("BGPPeer", "in-vrf", corev1.EventTypeWarning, "UnsupportedField", "spec.vrf")
	t.Logf("Event on BGPPeer in-vrf: %s", msg)
	msg = e.waitEvent("BFDProfile", "echo", corev1.EventTypeWarning, "UnsupportedField", "spec.echoMode")
	t.Logf("Event on BFDProfile echo: %s", msg)
	eventually(t, 20*time.Second, func() error {
		var cs v1beta1.ConfigurationState
		if err := e.c.Get(t.Context(), client.ObjectKey{Namespace: installNS, Name: "speaker-node1"}, &cs); err != nil {
			return err
		}
		c := meta.FindStatusCondition(cs.Status.Conditions, "Honoured")
		if c == nil || c.Status != metav1.ConditionFalse || c.Reason != "UnsupportedField" ||
			!strings.Contains(c.Message, "spec.vrf") || !strings.Contains(c.Message, "spec.echoMode") {
			return fmt.Errorf("ConfigurationState speaker-node1: %+v", cs.Status)
		}
		return nil
	})
	if _, ok := mustSessions(e.env)[[2]string{"node1", "in-vrf"}]; ok {
		t.Error("the speaker opened a session for a BGPPeer with a VRF")
	}

	// The right password: sessions up, route in.
	update(e.env, secret, func(s *corev1.Secret) { s.Data = map[string][]byte{"password": []byte("s3cret-pw")} })
	fixed := time.Now()
	e.waitEstablished(e.nodeAddrs(false)...)
	t.Logf("sessions established %v after the Secret got the right password", time.Since(fixed).Round(time.Millisecond))
	e.waitHops(hostPrefix(ip), nodes...)
	e.waitSessions(append(sessionKeys("router", nodes...), sessionKeys("with-echo", nodes...)...),
		func(k [2]string, s v1beta1.BGPSessionStateStatus) error {
			if k[1] != "router" {
				return nil
			}
			return established(e.lab.Router.IPv4, "N/A")(k, s)
		})
	e.waitEvent("BGPPeer", "router", corev1.EventTypeNormal, "SessionEstablished", e.lab.Router.IPv4.String())
}

func mustSessions(e *env) map[[2]string]v1beta1.BGPSessionStateStatus {
	e.t.Helper()
	s, err := e.sessions()
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

// TestBGPBFDFailover cuts a node off the network: BFD (300 ms x 3) takes
// its next hop out of the router's route within about a second, while the
// hold time is 90 s; the far client keeps reaching the Service through the
// other nodes, and the node's next hop returns when it heals.
func TestBGPBFDFailover(t *testing.T) {
	e := newBGPEnv(t, router{bfd: true})
	nodes := allNodes(e.env)
	e.pool("bgp", e.lab.BGPPool4.String())
	e.create(&v1beta1.BFDProfile{ObjectMeta: metav1.ObjectMeta{Name: "fast"}, Spec: v1beta1.BFDProfileSpec{
		ReceiveInterval: new(uint32(300)), TransmitInterval: new(uint32(300)), DetectMultiplier: new(uint32(3))}})
	e.peer("router", e.lab.Router.IPv4, func(s *v1beta2.BGPPeerSpec) { s.BFDProfile = "fast" })
	e.advertise("all", nil)
	ip := v4(e.createService("web", nodes, nil))
	e.waitHops(hostPrefix(ip), nodes...)
	e.waitRouterBFDUp()
	e.waitSessions(sessionKeys("router", nodes...), established(e.lab.Router.IPv4, "Up"))
	before := e.neighborCounts(e.nodeAddrs(false)...)

	victim := e.lab.Node("node2")
	if err := e.lab.Cut(victim); err != nil {
		t.Fatal(err)
	}
	took := e.waitHops(hostPrefix(ip), "node1", "node3")
	t.Logf("node2 cut off: its next hop left the router's kernel route after %v (BFD 300ms x 3, hold time 90s)", took.Round(time.Millisecond))
	// node2 cannot say it; node1, the smallest live advertiser, does.
	msg := e.waitEventIn(appNS, "Service", "web", corev1.EventTypeNormal, "nodeWithdrawn",
		`node "node2" no longer advertises it with protocol "bgp" (reported by node "node1"; reason peer_dead`)
	t.Logf("Event on web: %s", msg)
	n, err := e.frr.Neighbor(t.Context(), victim.IPv4)
	if err != nil {
		t.Fatal(err)
	}
	if n.State == "Established" || !strings.Contains(n.LastReset+" "+n.LastNotification, "BFD") {
		t.Errorf("FRR's session with the cut node: %+v, want down because of BFD", n)
	}
	if got := e.spread(ip, 20); got["node2"] != 0 {
		t.Errorf("far client reached the cut node: %v", got)
	}

	if err := e.lab.Heal(victim); err != nil {
		t.Fatal(err)
	}
	took = e.waitHops(hostPrefix(ip), nodes...)
	t.Logf("node2 healed: back in the route after %v", took.Round(time.Millisecond))
	after := e.neighborCounts(e.nodeAddrs(false)...)
	for _, a := range []netip.Addr{e.lab.Nodes[0].IPv4, e.lab.Nodes[2].IPv4} {
		if before[a] != after[a] {
			t.Errorf("the session with %s, a node that was not cut, changed: %v -> %v", a, before[a], after[a])
		}
	}
	e.waitSessions(sessionKeys("router", nodes...), established(e.lab.Router.IPv4, "Up"))
}

// TestBGPGracefulRestart kills the speaker of the only node with the
// endpoint: with graceful restart the router keeps its route (stale), the
// far client keeps reaching the Service throughout, and the restarted
// speaker refreshes the route.
func TestBGPGracefulRestart(t *testing.T) {
	e := newBGPEnv(t, router{gracefulRestart: true})
	e.pool("bgp", e.lab.BGPPool4.String())
	e.peer("router", e.lab.Router.IPv4, func(s *v1beta2.BGPPeerSpec) { s.EnableGracefulRestart = true })
	e.advertise("all", nil)
	ip := v4(e.createService("web", []string{"node1"}, func(s *corev1.Service) {
		s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	}))
	n1 := e.lab.Node("node1")
	e.waitHops(hostPrefix(ip), "node1")
	e.waitEstablished(n1.IPv4)

	// The far client asks every 50 ms, and the route is read as often,
	// until the restart is over.
	var (
		mu               sync.Mutex
		asked, failed    int
		routeLost        []string
		stop             = make(chan struct{})
		done             = make(chan struct{})
		firstErr         error
		answeredByOthers int
	)
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			node, err := e.farCurl(ip)
			hops, herr := e.hopNodes(hostPrefix(ip))
			mu.Lock()
			asked++
			if err != nil {
				failed++
				if firstErr == nil {
					firstErr = err
				}
			} else if node != "node1" {
				answeredByOthers++
			}
			if herr == nil && !slices.Equal(hops, []string{"node1"}) {
				routeLost = append(routeLost, fmt.Sprint(hops))
			}
			mu.Unlock()
		}
	}()
	stopProbe := sync.OnceFunc(func() { close(stop); <-done })
	t.Cleanup(stopProbe)

	if err := e.speakers["node1"].Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-e.speakers["node1"].Done()
	killed := time.Now()
	e.waitPaths(hostPrefix(ip), func(paths []lab.Path) error {
		if len(paths) != 1 || !paths[0].Stale {
			return errors.New("want one stale path")
		}
		return nil
	})
	t.Logf("speaker killed: the router marked its path stale after %v", time.Since(killed).Round(time.Millisecond))
	if err := e.frr.Established(t.Context(), n1.IPv4); err == nil {
		t.Error("the killed speaker's session is still Established at the router")
	}

	e.startSpeaker("node1")
	e.waitPaths(hostPrefix(ip), func(paths []lab.Path) error {
		if len(paths) != 1 || paths[0].Stale || paths[0].Peer != n1.IPv4 {
			return errors.New("want one fresh path from node1")
		}
		return e.frr.Established(t.Context(), n1.IPv4)
	})
	t.Logf("restarted speaker refreshed the route %v after the kill", time.Since(killed).Round(time.Millisecond))
	stopProbe()
	mu.Lock()
	defer mu.Unlock()
	t.Logf("far client during the restart: %d requests, %d failed, %d answered by another node", asked, failed, answeredByOthers)
	if failed > 0 || answeredByOthers > 0 {
		t.Errorf("far client lost the Service during the restart: %d of %d requests failed (first: %v), %d answered elsewhere", failed, asked, firstErr, answeredByOthers)
	}
	if len(routeLost) > 0 {
		t.Errorf("the router's kernel route changed during the restart: %v", routeLost)
	}
	if asked < 10 {
		t.Errorf("only %d requests during the restart; the check saw too little", asked)
	}
}
