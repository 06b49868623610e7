package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/keeperlb/keeperlb/api/v1beta1"
	"github.com/keeperlb/keeperlb/api/v1beta2"
	"github.com/keeperlb/keeperlb/internal/controller"
	"github.com/keeperlb/keeperlb/internal/request"
)

func TestLBCreateWritesThePoolAndItsAdvertisements(t *testing.T) {
	e := newCLIEnv(t)
	out, errOut, err := e.run("-n", e.ns, "lb", "create", "web",
		"--addresses", "198.18.0.0/28,2001:db8::/124", "--advertise-mode", "both",
		"--bgp-peers", "tor-a", "--service-selector", "app=web", "--auto-assign=false", "--avoid-buggy-ips")
	if err != nil {
		t.Fatalf("lb create: %v\n%s%s", err, out, errOut)
	}
	for _, want := range []string{"ipaddresspool/web created", "l2advertisement/web created", "bgpadvertisement/web created"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(errOut, `BGPPeer "tor-a" does not exist`) {
		t.Errorf("no warning about the missing peer:\n%s", errOut)
	}

	key := client.ObjectKey{Namespace: e.ns, Name: "web"}
	pool := &v1beta1.IPAddressPool{}
	if err := e.c.Get(e.ctx, key, pool); err != nil {
		t.Fatal(err)
	}
	no := false
	wantPool := v1beta1.IPAddressPoolSpec{Addresses: []string{"198.18.0.0/28", "2001:db8::/124"}, AutoAssign: &no, AvoidBuggyIPs: true}
	if !reflect.DeepEqual(pool.Spec, wantPool) {
		t.Errorf("pool spec %+v, want %+v", pool.Spec, wantPool)
	}
	sel := []metav1.LabelSelector{{MatchLabels: map[string]string{"app": "web"}}}
	l2 := &v1beta1.L2Advertisement{}
	if err := e.c.Get(e.ctx, key, l2); err != nil {
		t.Fatal(err)
	}
	if want := (v1beta1.L2AdvertisementSpec{IPAddressPools: []string{"web"}, ServiceSelectors: sel}); !reflect.DeepEqual(l2.Spec, want) {
		t.Errorf("L2Advertisement spec %+v, want %+v", l2.Spec, want)
	}
	bgp := &v1beta1.BGPAdvertisement{}
	if err := e.c.Get(e.ctx, key, bgp); err != nil {
		t.Fatal(err)
	}
	// The CRD schema fills in the default aggregation lengths.
	agg, agg6 := int32(32), int32(128)
	if want := (v1beta1.BGPAdvertisementSpec{AggregationLength: &agg, AggregationLengthV6: &agg6, IPAddressPools: []string{"web"}, Peers: []string{"tor-a"}, ServiceSelectors: sel}); !reflect.DeepEqual(bgp.Spec, want) {
		t.Errorf("BGPAdvertisement spec %+v, want %+v", bgp.Spec, want)
	}

	// An arp-only load balancer gets no BGPAdvertisement.
	e.mustRun("-n", e.ns, "lb", "create", "lan", "--addresses", "198.18.1.0/24", "--advertise-mode", "arp")
	if err := e.c.Get(e.ctx, client.ObjectKey{Namespace: e.ns, Name: "lan"}, &v1beta1.BGPAdvertisement{}); !apierrors.IsNotFound(err) {
		t.Errorf("arp mode created a BGPAdvertisement (err %v)", err)
	}

	// --dry-run validates and prints, and writes nothing.
	out = e.mustRun("-n", e.ns, "lb", "create", "dry", "--addresses", "198.18.2.0/24", "--advertise-mode", "bgp", "--dry-run")
	if !strings.Contains(out, "kind: IPAddressPool") || !strings.Contains(out, "kind: BGPAdvertisement") || strings.Contains(out, "status:") {
		t.Errorf("dry run output:\n%s", out)
	}
	if err := e.c.Get(e.ctx, client.ObjectKey{Namespace: e.ns, Name: "dry"}, &v1beta1.IPAddressPool{}); !apierrors.IsNotFound(err) {
		t.Errorf("--dry-run wrote the pool (err %v)", err)
	}
}

func TestLBCreateRefusesAnOverlapAndWritesNothing(t *testing.T) {
	e := newCLIEnv(t)
	e.mustRun("-n", e.ns, "lb", "create", "first", "--addresses", "198.18.4.0/24", "--advertise-mode", "arp")
	out, _, err := e.run("-n", e.ns, "lb", "create", "second", "--addresses", "198.18.5.0/24,198.18.4.128/25", "--advertise-mode", "both")
	if err == nil {
		t.Fatalf("an overlapping pool was accepted:\n%s", out)
	}
	for _, want := range []string{
		"nothing was written",
		"IPAddressPool " + e.ns + "/second: spec.addresses[1]",
		"overlaps",
		"first",
		"(change --addresses)",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	for _, obj := range []client.Object{&v1beta1.IPAddressPool{}, &v1beta1.L2Advertisement{}, &v1beta1.BGPAdvertisement{}} {
		if err := e.c.Get(e.ctx, client.ObjectKey{Namespace: e.ns, Name: "second"}, obj); !apierrors.IsNotFound(err) {
			t.Errorf("%T second exists after a refused create (err %v)", obj, err)
		}
	}

	// The same name twice is refused before validation, with what to do.
	if _, _, err := e.run("-n", e.ns, "lb", "create", "first", "--addresses", "198.18.6.0/24", "--advertise-mode", "arp"); err == nil ||
		!strings.Contains(err.Error(), `IPAddressPool and L2Advertisement "first" already exists`) || !strings.Contains(err.Error(), "keeperlb lb delete first") {
		t.Errorf("duplicate name: %v", err)
	}
	// Flags that make no sense are refused without a cluster round trip.
	if _, _, err := e.run("-n", e.ns, "lb", "create", "x", "--addresses", "198.18.7.0/24", "--advertise-mode", "arp", "--bgp-peers", "p"); err == nil ||
		!strings.Contains(err.Error(), "--bgp-peers needs --advertise-mode bgp or both") {
		t.Errorf("--bgp-peers with arp: %v", err)
	}
	if _, _, err := e.run("-n", e.ns, "lb", "create", "x", "--addresses", "198.18.7.0/24", "--advertise-mode", "ospf"); err == nil ||
		!strings.Contains(err.Error(), `--advertise-mode "ospf": want arp, bgp or both`) {
		t.Errorf("bad mode: %v", err)
	}
}

// TestOperateWithARealController runs the read commands against the real
// controller allocating real Services: lb list/show, status and explain,
// for an allocated and a pending Service, in tables and JSON.
func TestOperateWithARealController(t *testing.T) {
	e := newCLIEnv(t)
	e.startController()
	e.mustRun("-n", e.ns, "lb", "create", "web", "--addresses", "198.18.8.0/30", "--advertise-mode", "arp")
	e.mustRun("-n", e.ns, "lb", "create", "quiet", "--addresses", "198.18.9.0/30", "--advertise-mode", "arp", "--auto-assign=false")
	e.createSvc("shop")
	e.createSvc("typo", func(s *corev1.Service) {
		s.Annotations = map[string]string{request.AnnotationAddressPool: "prod"}
	})
	e.createSvc("lonely")

	// The speaker's report for shop, as a speaker on node-a writes it.
	l2 := &v1beta1.ServiceL2Status{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "l2-shop-node-a"}}
	if err := e.c.Create(e.ctx, l2); err != nil {
		t.Fatal(err)
	}
	l2.Status = v1beta1.ServiceL2StatusStatus{Node: "node-a", ServiceName: "shop", ServiceNamespace: e.app, Interfaces: []v1beta1.InterfaceInfo{{Name: "eth0"}}}
	if err := e.c.Status().Update(e.ctx, l2); err != nil {
		t.Fatal(err)
	}
	// shop has one ready endpoint on node-a.
	ready := true
	eps := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: e.app, Name: "shop-1", Labels: map[string]string{discoveryv1.LabelServiceName: "shop"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"10.0.0.5"}, NodeName: new("node-a"), Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
	}
	if err := e.c.Create(e.ctx, eps); err != nil {
		t.Fatal(err)
	}

	settled := func() bool {
		n := 0
		for _, name := range []string{"shop", "typo", "lonely"} {
			s := &corev1.Service{}
			if e.c.Get(e.ctx, client.ObjectKey{Namespace: e.app, Name: name}, s) != nil {
				return false
			}
			if meta.FindStatusCondition(s.Status.Conditions, controller.ConditionIPAllocated) != nil {
				n++
			}
		}
		return n == 3
	}
	e.eventually("the controller to decide every Service", settled)
	e.eventually("the pool status to count two addresses", func() bool {
		p := &v1beta1.IPAddressPool{}
		return e.c.Get(e.ctx, client.ObjectKey{Namespace: e.ns, Name: "web"}, p) == nil && p.Status.AssignedIPv4 == 2
	})

	// lb list: usage and the number of Services per pool.
	out := e.mustRun("-n", e.ns, "lb", "list")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "NAME") {
		t.Fatalf("lb list:\n%s", out)
	}
	if f := strings.Fields(lines[1]); f[0] != "quiet" || f[3] != "false" || f[4] != "0/4" || f[len(f)-1] != "0" {
		t.Errorf("quiet row: %q", lines[1])
	}
	if f := strings.Fields(lines[2]); f[0] != "web" || f[2] != "arp" || f[4] != "2/2" || f[len(f)-1] != "2" {
		t.Errorf("web row: %q", lines[2])
	}
	var pools []poolView
	if err := json.Unmarshal([]byte(e.mustRun("-n", e.ns, "lb", "list", "-o", "json")), &pools); err != nil {
		t.Fatalf("lb list -o json: %v", err)
	}
	if len(pools) != 2 || pools[1].Name != "web" || pools[1].Usage == nil || pools[1].Usage.IPv4.Assigned != 2 || len(pools[1].Services) != 2 {
		t.Errorf("lb list -o json: %+v", pools)
	}

	// lb show: the Services with their addresses.
	out = e.mustRun("-n", e.ns, "lb", "show", "web")
	squashed := strings.Join(strings.Fields(out), " ")
	for _, want := range []string{"Advertise mode: arp", "L2Advertisements: web", "IPv4 used/free: 2/2", "Services (2):", e.app + " lonely 198.18.8.", e.app + " shop 198.18.8."} {
		if !strings.Contains(squashed, want) {
			t.Errorf("lb show lacks %q:\n%s", want, out)
		}
	}
	var shown poolView
	if err := json.Unmarshal([]byte(e.mustRun("-n", e.ns, "lb", "show", "web", "-o", "json")), &shown); err != nil || shown.Name != "web" || len(shown.Services) != 2 {
		t.Errorf("lb show -o json: %v %+v", err, shown)
	}
	if _, _, err := e.run("-n", e.ns, "lb", "show", "nope"); err == nil || !strings.Contains(err.Error(), "existing: quiet, web") {
		t.Errorf("lb show of a missing pool: %v", err)
	}

	// status: configuration, usage, every Service with its announcers,
	// the pending one with its reason.
	out = e.mustRun("-n", e.ns, "status")
	for _, want := range []string{"controller", "Valid", "Services: ", "waiting for an address", "l2:node-a", "UnknownPool", `"prod"`, "keeperlb explain"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	var st statusView
	if err := json.Unmarshal([]byte(e.mustRun("-n", e.ns, "status", "-o", "json")), &st); err != nil {
		t.Fatalf("status -o json: %v", err)
	}
	mine := map[string]serviceStatus{}
	for _, s := range st.Services {
		if s.Namespace == e.app {
			mine[s.Name] = s
		}
	}
	if s := mine["shop"]; s.State != "Allocated" || s.Pool != "web" || len(s.IPs) != 1 || s.Announced == nil || s.Announced.L2[0].Node != "node-a" {
		t.Errorf("status of shop: %+v", s)
	}
	if s := mine["typo"]; s.State != "Pending" || s.Reason != "UnknownPool" {
		t.Errorf("status of typo: %+v", s)
	}
	if len(st.Configuration) == 0 || st.Configuration[0].Result != "Valid" || st.Pending < 1 {
		t.Errorf("status: %+v", st)
	}

	// explain, allocated and announced.
	out = e.mustRun("explain", "svc/shop", "-n", e.app, "--install-namespace", e.ns)
	for _, want := range []string{
		"It has 198.18.8.", "from pool web",
		"node node-a answers ARP/NDP for it (layer 2) on eth0",
		"Why node-a: it was elected among the live speakers", "1 serving endpoint (on node-a)",
		"IPAllocated",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("explain shop lacks %q:\n%s", want, out)
		}
	}
	// explain, pending: the reason, what to do, and which pools could serve.
	out = e.mustRun("explain", "service/typo", "-n", e.app, "--install-namespace", e.ns)
	for _, want := range []string{
		"It waits for an address: UnknownPool", "Fix the metallb.io/address-pool annotation",
		`the Service names pool "prod"`, "Warning", "Nobody announces it: it has no address.",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("explain typo lacks %q:\n%s", want, out)
		}
	}
	// explain, allocated but no speaker reports it.
	out = e.mustRun("explain", "lonely", "-n", e.app, "--install-namespace", e.ns)
	for _, want := range []string{"No speaker announces it yet", "no serving endpoints"} {
		if !strings.Contains(out, want) {
			t.Errorf("explain lonely lacks %q:\n%s", want, out)
		}
	}
	var ex explainView
	if err := json.Unmarshal([]byte(e.mustRun("explain", "svc/typo", "-n", e.app, "--install-namespace", e.ns, "-o", "json")), &ex); err != nil {
		t.Fatalf("explain -o json: %v", err)
	}
	if ex.Address.Reason != "UnknownPool" || len(ex.Pools) != 2 || ex.Pools[0].Eligible || len(ex.Events) == 0 {
		t.Errorf("explain -o json: %+v", ex)
	}
	if _, _, err := e.run("explain", "svc/absent", "-n", e.app); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("explain of a missing Service: %v", err)
	}

	// lb delete refuses while Services hold addresses, then deletes the
	// pool and its advertisement with --force.
	if _, _, err := e.run("-n", e.ns, "lb", "delete", "web"); err == nil || !strings.Contains(err.Error(), e.app+"/shop") || !strings.Contains(err.Error(), "--force") {
		t.Errorf("lb delete of a used pool: %v", err)
	}
	if err := e.c.Get(e.ctx, client.ObjectKey{Namespace: e.ns, Name: "web"}, &v1beta1.IPAddressPool{}); err != nil {
		t.Errorf("refused delete removed the pool: %v", err)
	}
	out, errOut, err := e.run("-n", e.ns, "lb", "delete", "web", "--force")
	if err != nil || !strings.Contains(out, "ipaddresspool/web deleted") || !strings.Contains(out, "l2advertisement/web deleted") || !strings.Contains(errOut, "lose their addresses") {
		t.Errorf("lb delete --force: %v\n%s%s", err, out, errOut)
	}
	for _, obj := range []client.Object{&v1beta1.IPAddressPool{}, &v1beta1.L2Advertisement{}} {
		if err := e.c.Get(e.ctx, client.ObjectKey{Namespace: e.ns, Name: "web"}, obj); !apierrors.IsNotFound(err) {
			t.Errorf("%T web survived lb delete (err %v)", obj, err)
		}
	}
}

func TestLBDeleteKeepsSharedAdvertisements(t *testing.T) {
	e := newCLIEnv(t)
	e.mustRun("-n", e.ns, "lb", "create", "a", "--addresses", "198.18.10.0/24", "--advertise-mode", "arp")
	shared := &v1beta1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "shared"}, Spec: v1beta1.L2AdvertisementSpec{IPAddressPools: []string{"a", "b"}}}
	if err := e.c.Create(e.ctx, shared); err != nil {
		t.Fatal(err)
	}
	out := e.mustRun("-n", e.ns, "lb", "delete", "a")
	if !strings.Contains(out, "l2advertisement/a deleted") || !strings.Contains(out, "L2Advertisement shared kept") {
		t.Errorf("lb delete:\n%s", out)
	}
	if err := e.c.Get(e.ctx, client.ObjectKey{Namespace: e.ns, Name: "shared"}, &v1beta1.L2Advertisement{}); err != nil {
		t.Errorf("the shared advertisement was deleted: %v", err)
	}
	if _, _, err := e.run("-n", e.ns, "lb", "delete", "a"); err == nil || !strings.Contains(err.Error(), `no load balancer (IPAddressPool) "a"`) {
		t.Errorf("deleting twice: %v", err)
	}
}

func TestPeerAndBFDProfileLifecycle(t *testing.T) {
	e := newCLIEnv(t)
	e.mustRun("-n", e.ns, "bfd-profile", "create", "fast", "--receive-interval", "100", "--transmit-interval", "150", "--echo-mode")
	p := &v1beta1.BFDProfile{}
	if err := e.c.Get(e.ctx, client.ObjectKey{Namespace: e.ns, Name: "fast"}, p); err != nil {
		t.Fatal(err)
	}
	if p.Spec.ReceiveInterval == nil || *p.Spec.ReceiveInterval != 100 || *p.Spec.TransmitInterval != 150 || p.Spec.EchoMode == nil || !*p.Spec.EchoMode || p.Spec.PassiveMode != nil {
		t.Errorf("BFD profile spec %+v", p.Spec)
	}
	if _, _, err := e.run("-n", e.ns, "bfd-profile", "create", "slow", "--receive-interval", "5"); err == nil || !strings.Contains(err.Error(), "(change --receive-interval)") {
		t.Errorf("out-of-range interval: %v", err)
	}

	e.mustRun("-n", e.ns, "peer", "create", "tor-a", "--my-asn", "64500", "--peer-asn", "64501", "--peer-address", "198.18.0.1",
		"--bfd-profile", "fast", "--hold-time", "9s", "--keepalive-time", "3s", "--node-selector", "rack=r1",
		"--ebgp-multihop", "--source-address", "198.18.0.10", "--router-id", "198.18.0.10", "--peer-port", "1179", "--graceful-restart", "--password", "pw")
	peer := &v1beta2.BGPPeer{}
	if err := e.c.Get(e.ctx, client.ObjectKey{Namespace: e.ns, Name: "tor-a"}, peer); err != nil {
		t.Fatal(err)
	}
	s := peer.Spec
	if s.MyASN != 64500 || s.PeerASN != 64501 || s.PeerAddress != "198.18.0.1" || s.BFDProfile != "fast" || s.HoldTime == nil || s.HoldTime.Seconds() != 9 ||
		s.KeepaliveTime.Seconds() != 3 || s.NodeSelectors[0].MatchLabels["rack"] != "r1" || !s.EBGPMultiHop || s.SourceAddress != "198.18.0.10" ||
		s.RouterID != "198.18.0.10" || s.PeerPort != 1179 || !s.EnableGracefulRestart || s.Password != "pw" {
		t.Errorf("peer spec %+v", s)
	}
	e.mustRun("-n", e.ns, "peer", "create", "tor-b", "--my-asn", "64500", "--dynamic-asn", "internal", "--peer-address", "2001:db8::1")

	// A password Secret must exist, and be basic-auth, before a peer may
	// name it: the validation reads it as the controller would.
	if _, _, err := e.run("-n", e.ns, "peer", "create", "tor-c", "--my-asn", "64500", "--peer-asn", "64502", "--peer-address", "198.18.0.5", "--password-secret", "md5"); err == nil ||
		!strings.Contains(err.Error(), "(change --password-secret)") {
		t.Errorf("peer with a missing Secret: %v", err)
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "md5"}, Type: corev1.SecretTypeBasicAuth, StringData: map[string]string{"password": "pw"}}
	if err := e.c.Create(e.ctx, secret); err != nil {
		t.Fatal(err)
	}
	e.mustRun("-n", e.ns, "peer", "create", "tor-c", "--my-asn", "64500", "--peer-asn", "64502", "--peer-address", "198.18.0.5", "--password-secret", "md5")
	e.mustRun("-n", e.ns, "peer", "delete", "tor-c")

	// Invalid peers are refused with the flag to change.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--my-asn", "64500", "--peer-asn", "64501", "--peer-address", "198.18.0.2", "--hold-time", "1s"}, "(change --hold-time)"},
		{[]string{"--my-asn", "64500", "--peer-asn", "64501", "--peer-address", "198.18.0.3", "--bfd-profile", "nope"}, "(change --bfd-profile)"},
		{[]string{"--my-asn", "64500", "--peer-asn", "64501", "--peer-address", "not-an-ip"}, "(change --peer-address)"},
		{[]string{"--my-asn", "64500", "--peer-address", "198.18.0.4"}, "give --peer-asn, or --dynamic-asn"},
	} {
		_, _, err := e.run(append([]string{"-n", e.ns, "peer", "create", "bad"}, tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("peer create %v: %v, want %q", tc.args, err, tc.want)
		}
	}
	if err := e.c.Get(e.ctx, client.ObjectKey{Namespace: e.ns, Name: "bad"}, &v1beta2.BGPPeer{}); !apierrors.IsNotFound(err) {
		t.Errorf("a refused peer was written (err %v)", err)
	}

	out := e.mustRun("-n", e.ns, "peer", "list")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 {
		t.Fatalf("peer list:\n%s", out)
	}
	for _, want := range []string{"tor-a", "198.18.0.1 port 1179", "64501", "fast", "rack=r1"} {
		if !strings.Contains(lines[1], want) {
			t.Errorf("tor-a row lacks %q: %q", want, lines[1])
		}
	}
	if f := strings.Fields(lines[2]); f[0] != "tor-b" || f[3] != "dynamic:internal" || f[len(f)-2] != "-" || f[len(f)-1] != "-" {
		t.Errorf("tor-b row (no session state reported): %q", lines[2])
	}
	var peers []peerView
	if err := json.Unmarshal([]byte(e.mustRun("-n", e.ns, "peer", "list", "-o", "json")), &peers); err != nil || len(peers) != 2 || peers[0].BFDProfile != "fast" {
		t.Errorf("peer list -o json: %v %+v", err, peers)
	}

	// Once speakers report sessions (BGPSessionState, matched to the peer
	// by address) and advertised Services (ServiceBGPStatus), peer list
	// shows them.
	for node, st := range map[string]v1beta1.BGPSessionStateStatus{
		"node-a": {Node: "node-a", Peer: "198.18.0.1", BGPStatus: "Established", BFDStatus: "Up"},
		"node-b": {Node: "node-b", Peer: "198.18.0.1", BGPStatus: "Active", Reason: "ConnectionRefused"},
	} {
		ss := &v1beta1.BGPSessionState{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "tor-a-" + node}}
		if err := e.c.Create(e.ctx, ss); err != nil {
			t.Fatal(err)
		}
		ss.Status = st
		if err := e.c.Status().Update(e.ctx, ss); err != nil {
			t.Fatal(err)
		}
	}
	bs := &v1beta1.ServiceBGPStatus{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "web-node-a"}}
	if err := e.c.Create(e.ctx, bs); err != nil {
		t.Fatal(err)
	}
	bs.Status = v1beta1.ServiceBGPStatusStatus{Node: "node-a", ServiceName: "web", ServiceNamespace: e.app, Peers: []string{"tor-a"}}
	if err := e.c.Status().Update(e.ctx, bs); err != nil {
		t.Fatal(err)
	}
	out = e.mustRun("-n", e.ns, "peer", "list")
	lines = strings.Split(strings.TrimSpace(out), "\n")
	if !strings.Contains(lines[1], "Established 1/2 (node-b=Active/ConnectionRefused)") || !strings.HasSuffix(lines[1], " 1") {
		t.Errorf("tor-a row with sessions: %q", lines[1])
	}
	if f := strings.Fields(lines[2]); f[len(f)-2] != "-" || f[len(f)-1] != "0" {
		t.Errorf("tor-b row (no sessions, no Services): %q", lines[2])
	}
	e.createSvc("web")
	out = e.mustRun("-n", e.ns, "status")
	if !strings.Contains(out, "bgp:node-a>tor-a") {
		t.Errorf("status lacks the BGP announcer:\n%s", out)
	}

	out = e.mustRun("-n", e.ns, "bfd-profile", "list")
	if f := strings.Fields(strings.Split(strings.TrimSpace(out), "\n")[1]); strings.Join(f, " ") != "fast 100 150 3 true 50 false - tor-a" {
		t.Errorf("bfd-profile list row %q (defaults should be filled in)", f)
	}
	var profiles []bfdView
	if err := json.Unmarshal([]byte(e.mustRun("-n", e.ns, "bfd-profile", "list", "-o", "yaml", "-o", "json")), &profiles); err != nil || len(profiles) != 1 || profiles[0].UsedBy[0] != "tor-a" {
		t.Errorf("bfd-profile list -o json: %v %+v", err, profiles)
	}

	// A profile in use cannot go.
	if _, _, err := e.run("-n", e.ns, "bfd-profile", "delete", "fast"); err == nil || !strings.Contains(err.Error(), "used by BGPPeer tor-a") {
		t.Errorf("deleting a used profile: %v", err)
	}
	e.mustRun("-n", e.ns, "peer", "delete", "tor-a")
	if err := e.c.Get(e.ctx, client.ObjectKey{Namespace: e.ns, Name: "tor-a"}, &v1beta2.BGPPeer{}); !apierrors.IsNotFound(err) {
		t.Errorf("peer delete left the peer (err %v)", err)
	}
	e.mustRun("-n", e.ns, "bfd-profile", "delete", "fast")
	if err := e.c.Get(e.ctx, client.ObjectKey{Namespace: e.ns, Name: "fast"}, &v1beta1.BFDProfile{}); !apierrors.IsNotFound(err) {
		t.Errorf("bfd-profile delete left the profile (err %v)", err)
	}
	if _, _, err := e.run("-n", e.ns, "peer", "delete", "tor-a"); err == nil || !strings.Contains(err.Error(), "existing: tor-b") {
		t.Errorf("deleting a missing peer: %v", err)
	}
}

func TestImportApply(t *testing.T) {
	e := newCLIEnv(t)
	dir := t.TempDir()
	cm := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cm, []byte(`apiVersion: v1
kind: ConfigMap
metadata: {name: config, namespace: metallb-system}
data:
  config: |
    peers:
    - {peer-address: 198.18.0.1, peer-asn: 64501, my-asn: 64500, bfd-profile: fast}
    bfd-profiles:
    - {name: fast, receive-interval: 200}
    address-pools:
    - {name: lan, protocol: layer2, addresses: [198.18.20.0/24]}
    - {name: wan, protocol: bgp, addresses: [198.18.21.0/24], bgp-advertisements: [{aggregation-length: 24}]}
    - {name: odd, protocol: layer2, addresses: [198.18.22.0/24], vlan: 7}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, err := e.run("-n", e.ns, "import", "-f", cm, "--apply")
	if err != nil {
		t.Fatalf("import --apply: %v\n%s%s", err, out, errOut)
	}
	if !strings.Contains(errOut, "not converted: address-pools[2].vlan: unknown key") || !strings.Contains(out, "2 notes above") {
		t.Errorf("import did not report the unconvertible pool:\nstdout:\n%s\nstderr:\n%s", out, errOut)
	}
	for _, obj := range []client.Object{&v1beta1.IPAddressPool{}, &v1beta1.L2Advertisement{}} {
		if err := e.c.Get(e.ctx, client.ObjectKey{Namespace: e.ns, Name: "lan"}, obj); err != nil {
			t.Errorf("%T lan: %v", obj, err)
		}
	}
	adv := &v1beta1.BGPAdvertisement{}
	if err := e.c.Get(e.ctx, client.ObjectKey{Namespace: e.ns, Name: "wan"}, adv); err != nil || *adv.Spec.AggregationLength != 24 {
		t.Errorf("BGPAdvertisement wan: %v %+v", err, adv.Spec)
	}
	peer := &v1beta2.BGPPeer{}
	if err := e.c.Get(e.ctx, client.ObjectKey{Namespace: e.ns, Name: "peer-198.18.0.1"}, peer); err != nil || peer.Spec.BFDProfile != "fast" {
		t.Errorf("BGPPeer: %v %+v", err, peer.Spec)
	}
	if err := e.c.Get(e.ctx, client.ObjectKey{Namespace: e.ns, Name: "odd"}, &v1beta1.IPAddressPool{}); !apierrors.IsNotFound(err) {
		t.Errorf("the unconvertible pool was applied (err %v)", err)
	}

	// Importing a configuration that overlaps what the cluster holds is
	// refused before anything is written.
	clash := filepath.Join(dir, "clash.yaml")
	if err := os.WriteFile(clash, []byte("address-pools:\n- {name: other, protocol: layer2, addresses: [198.18.20.128/25]}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.run("-n", e.ns, "import", "-f", clash, "--apply"); err == nil || !strings.Contains(err.Error(), "overlaps") {
		t.Errorf("overlapping import: %v", err)
	}
	if err := e.c.Get(e.ctx, client.ObjectKey{Namespace: e.ns, Name: "other"}, &v1beta1.IPAddressPool{}); !apierrors.IsNotFound(err) {
		t.Errorf("a refused import wrote a pool (err %v)", err)
	}
}
