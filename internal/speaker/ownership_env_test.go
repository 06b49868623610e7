package speaker

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/keeperlb/keeperlb/api/v1beta1"
	"github.com/keeperlb/keeperlb/internal/layer2"
	"github.com/keeperlb/keeperlb/internal/membership"
)

// recordingAnnouncer is the layer 2 data plane as the reconciler sees it,
// remembering what it was told.
type recordingAnnouncer struct {
	mu    sync.Mutex
	owned []netip.Addr
}

func (a *recordingAnnouncer) Set(owned []layer2.Announcement) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.owned = a.owned[:0]
	for _, o := range owned {
		a.owned = append(a.owned, o.IP)
	}
	return nil
}
func (a *recordingAnnouncer) Reannounce() error      { return nil }
func (a *recordingAnnouncer) SetIsolated(bool) error { return nil }

// ownershipEnv is two speakers' worth of cluster on a real API server: Nodes
// own-N-1 and own-N-2 on 127.0.0.1 and 127.0.0.2, a pool, an
// L2Advertisement and Services with addresses and serving endpoints. Only
// node 1 runs reconcile passes; node 2 is its liveness detector, which is
// all node 1 can see of it.
type ownershipEnv struct {
	t          *testing.T
	ctx        context.Context
	c          client.Client
	ns, app    string
	n1, n2     string
	port       int
	peers      []membership.Peer
	reg        *prometheus.Registry
	r          *reconciler
	pass       reconcile.Reconciler
	d1         *membership.Detector
	l2         *recordingAnnouncer
	stopPeer   func(goodbye bool)
	lbClass    string
	serviceIPs []netip.Addr
}

func newOwnershipEnv(t *testing.T) *ownershipEnv {
	cfg := controlPlane(t)
	scheme, err := NewScheme()
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	id := time.Now().UnixNano()
	e := &ownershipEnv{t: t, ctx: ctx, c: c,
		ns: fmt.Sprintf("own-system-%d", id), app: fmt.Sprintf("own-app-%d", id),
		n1: fmt.Sprintf("own-%d-1", id), n2: fmt.Sprintf("own-%d-2", id),
		lbClass: fmt.Sprintf("keeperlb.io/own-%d", id), reg: prometheus.NewRegistry(), l2: &recordingAnnouncer{}}
	for _, ns := range []string{e.ns, e.app} {
		e.create(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	}
	for i, n := range []string{e.n1, e.n2} {
		node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n}}
		e.create(node)
		addr := fmt.Sprintf("127.0.0.%d", i+1)
		node.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: addr}}
		if err := c.Status().Update(ctx, node); err != nil {
			t.Fatal(err)
		}
		e.peers = append(e.peers, membership.Peer{Name: n, Addr: netip.MustParseAddr(addr)})
		t.Cleanup(func() { _ = c.Delete(context.Background(), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n}}) })
	}
	e.create(&v1beta1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "p"}, Spec: v1beta1.IPAddressPoolSpec{Addresses: []string{"198.18.60.0/28"}}})
	e.create(&v1beta1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "l2"}})
	for i := range 8 {
		e.service(fmt.Sprintf("s%d", i), netip.AddrFrom4([4]byte{198, 18, 60, byte(i)}))
	}

	e.port = freeUDPPortOn(t, "127.0.0.1", "127.0.0.2")
	m, err := newMetrics(e.reg)
	if err != nil {
		t.Fatal(err)
	}
	e.d1 = e.detector(e.n1, 1)
	e.r = &reconciler{
		client: c, namespace: e.ns, node: e.n1, lbClass: e.lbClass, live: e.d1, settle: 400 * time.Millisecond,
		l2: e.l2, metrics: m, log: slog.New(slog.DiscardHandler),
		interfaces: func() ([]layer2.Interface, error) {
			return []layer2.Interface{{Name: "eth0", Up: true, MAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}}}, nil
		},
		status: newStatusWriter(c, e.ns, e.n1, slog.New(slog.DiscardHandler)),
	}
	e.pass = m.client.Counting(e.r)
	return e
}

func (e *ownershipEnv) create(obj client.Object) {
	e.t.Helper()
	if err := e.c.Create(e.ctx, obj); err != nil {
		e.t.Fatalf("creating %T %s: %v", obj, obj.GetName(), err)
	}
}

// service creates a LoadBalancer Service of the test's class holding ip,
// with one serving endpoint.
func (e *ownershipEnv) service(name string, ip netip.Addr) {
	e.t.Helper()
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: e.app, Name: name},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, LoadBalancerClass: &e.lbClass,
			AllocateLoadBalancerNodePorts: new(false), Ports: []corev1.ServicePort{{Port: 80}}},
	}
	e.create(svc)
	svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: ip.String()}}
	if err := e.c.Status().Update(e.ctx, svc); err != nil {
		e.t.Fatal(err)
	}
	ready := true
	e.create(&discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: e.app, Name: name, Labels: map[string]string{discoveryv1.LabelServiceName: name}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"10.0.0.1"}, Conditions: discoveryv1.EndpointConditions{Ready: &ready, Serving: &ready}}},
	})
	e.serviceIPs = append(e.serviceIPs, ip)
}

// detector starts the liveness detector of node n (127.0.0.i) and, for
// node 2, plays its reconciler's part: it knows the peers and is eligible.
func (e *ownershipEnv) detector(n string, i int) *membership.Detector {
	e.t.Helper()
	o := membership.DefaultOptions(n)
	o.Listen, o.Port, o.Key = netip.MustParseAddr(fmt.Sprintf("127.0.0.%d", i)), e.port, []byte("ownership-test-key")
	d, err := membership.New(slog.New(slog.DiscardHandler), o)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan struct{})
	go func() { _ = d.Run(ctx); close(done) }()
	stop := func(goodbye bool) {
		if !goodbye {
			d.Close() // no socket: no goodbye on the way out
		}
		cancel()
		<-done
	}
	e.t.Cleanup(func() { stop(true) })
	if i == 2 {
		d.SetEligible(true)
		d.SetPeers(e.peers)
		e.stopPeer = stop
	}
	return d
}

// run makes passes of node 1 until its liveness view is want and it
// announces what the election gives it, and returns the IPs it announces.
func (e *ownershipEnv) run(want ...string) []netip.Addr {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := e.pass.Reconcile(e.ctx, reconcile.Request{}); err != nil {
			e.t.Fatalf("pass: %v", err)
		}
		// ownersLive is the view the pass elected with.
		if e.d1.Ready() && slices.Equal(e.r.ownersLive, want) && len(e.r.owners) == len(e.serviceIPs) {
			e.l2.mu.Lock()
			owned := slices.Clone(e.l2.owned)
			e.l2.mu.Unlock()
			return owned
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("node 1 never saw live %v: live %v, ready %v, owners %v", want, e.d1.Live(), e.d1.Ready(), e.r.owners)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// changes reads keeperlb_layer2_ownership_changes_total by reason.
func (e *ownershipEnv) changes() map[string]float64 {
	e.t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "keeperlb_layer2_ownership_changes_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			out[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
		}
	}
	return out
}

func (e *ownershipEnv) expectChanges(step string, want map[string]float64) {
	e.t.Helper()
	got := e.changes()
	for _, r := range ownershipReasons {
		if got[r] != want[r] {
			e.t.Errorf("%s: ownership changes %v, want %v", step, got, want)
			return
		}
	}
}

// TestOwnershipChangesThroughThePass moves a cluster's layer 2 IPs between
// two speakers every way there is and follows
// keeperlb_layer2_ownership_changes_total on node 1: node 2 joins (its IPs
// leave node 1), stops with a goodbye (node 1 takes them: peer_left), comes
// back (peer_joined), is drawn every IP by a node selector (config), and
// dies without a goodbye (peer_dead).
func TestOwnershipChangesThroughThePass(t *testing.T) {
	e := newOwnershipEnv(t)
	e.detector(e.n2, 2)
	both := []string{e.n1, e.n2}
	mine := e.run(both...)
	k1 := len(mine)
	k2 := len(e.serviceIPs) - k1
	if k1 == 0 || k2 == 0 {
		t.Fatalf("the election gave node 1 %d of %d IPs; the test needs both nodes to own some", k1, len(e.serviceIPs))
	}
	e.expectChanges("both started", map[string]float64{})
	if n := e.announced(); n != k1 {
		t.Errorf("metallb_speaker_announced has %d series, want %d (node 1's IPs)", n, k1)
	}

	e.stopPeer(true)
	if got := e.run(e.n1); len(got) != len(e.serviceIPs) {
		t.Fatalf("node 1 announces %d IPs after node 2 left, want all %d", len(got), len(e.serviceIPs))
	}
	e.expectChanges("node 2 left", map[string]float64{reasonPeerLeft: float64(k2)})

	e.detector(e.n2, 2)
	if got := e.run(both...); len(got) != k1 {
		t.Fatalf("node 1 announces %d IPs after node 2 came back, want %d", len(got), k1)
	}
	e.expectChanges("node 2 joined", map[string]float64{reasonPeerLeft: float64(k2), reasonPeerJoined: float64(k2)})

	// Only node 2 may announce: node 1 hands it its IPs.
	e.label(e.n2, "own", "yes")
	e.selectNodes(map[string]string{"own": "yes"})
	if got := e.run(both...); len(got) != 0 {
		t.Fatalf("node 1 still announces %v after the selector excluded it", got)
	}
	e.expectChanges("selector", map[string]float64{reasonPeerLeft: float64(k2), reasonPeerJoined: float64(k2), reasonConfig: float64(k1)})
	// Back: node 2 gives them back, and counts it (node 1 does not).
	e.selectNodes(nil)
	if got := e.run(both...); len(got) != k1 {
		t.Fatalf("node 1 announces %d IPs after the selector went, want %d", len(got), k1)
	}
	e.expectChanges("selector removed", map[string]float64{reasonPeerLeft: float64(k2), reasonPeerJoined: float64(k2), reasonConfig: float64(k1)})

	e.stopPeer(false)
	if got := e.run(e.n1); len(got) != len(e.serviceIPs) {
		t.Fatalf("node 1 announces %d IPs after node 2 died, want all %d", len(got), len(e.serviceIPs))
	}
	e.expectChanges("node 2 died", map[string]float64{reasonPeerLeft: float64(k2), reasonPeerJoined: float64(k2), reasonConfig: float64(k1), reasonPeerDead: float64(k2)})
	if n := e.announced(); n != len(e.serviceIPs) {
		t.Errorf("metallb_speaker_announced has %d series, want %d", n, len(e.serviceIPs))
	}
}

// announced counts this node's metallb_speaker_announced series.
func (e *ownershipEnv) announced() int {
	e.t.Helper()
	mfs, err := e.reg.Gather()
	if err != nil {
		e.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "metallb_speaker_announced" {
			return len(mf.GetMetric())
		}
	}
	return 0
}

func (e *ownershipEnv) label(node, k, v string) {
	e.t.Helper()
	n := &corev1.Node{}
	if err := e.c.Get(e.ctx, client.ObjectKey{Name: node}, n); err != nil {
		e.t.Fatal(err)
	}
	n.Labels = map[string]string{k: v}
	if err := e.c.Update(e.ctx, n); err != nil {
		e.t.Fatal(err)
	}
}

func (e *ownershipEnv) selectNodes(labels map[string]string) {
	e.t.Helper()
	adv := &v1beta1.L2Advertisement{}
	if err := e.c.Get(e.ctx, client.ObjectKey{Namespace: e.ns, Name: "l2"}, adv); err != nil {
		e.t.Fatal(err)
	}
	adv.Spec.NodeSelectors = nil
	if labels != nil {
		adv.Spec.NodeSelectors = []metav1.LabelSelector{{MatchLabels: labels}}
	}
	if err := e.c.Update(e.ctx, adv); err != nil {
		e.t.Fatal(err)
	}
}

// freeUDPPortOn returns a UDP port free on every one of addrs right now.
func freeUDPPortOn(t *testing.T, addrs ...string) int {
	t.Helper()
	for range 20 {
		port := freeUDPPort(t)
		ok := true
		for _, a := range addrs[1:] {
			c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP(a), Port: port})
			if err != nil {
				ok = false
				break
			}
			c.Close()
		}
		if ok {
			return port
		}
	}
	t.Fatal("no UDP port free on every address")
	return 0
}
