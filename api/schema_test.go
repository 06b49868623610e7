// Package api_test checks the generated CRDs on a real API server: that
// MetalLB's manifests apply unchanged, that defaults are filled in, that the
// static rules in the schema reject what they should, and that a v1beta1
// BGPPeer is served as v1beta2.
package api_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/keeperlb/keeperlb/api/v1beta1"
	"github.com/keeperlb/keeperlb/api/v1beta2"
	"github.com/keeperlb/keeperlb/internal/controller"
	"github.com/keeperlb/keeperlb/internal/controlplane"
)

const ns = "metallb-system"

func setup(t *testing.T) (context.Context, client.Client) {
	t.Helper()
	if os.Getenv("KEEPERLB_SKIP_LAB") == "1" {
		t.Skip("KEEPERLB_SKIP_LAB=1: skipping a test that needs a real kube-apiserver and etcd")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	cp, err := controlplane.Start(ctx, controlplane.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatalf("this test needs a real control plane: %v (set KEEPERLB_SKIP_LAB=1 to skip explicitly)", err)
	}
	t.Cleanup(cp.Stop)
	if err := controlplane.InstallCRDs(ctx, cp.Config); err != nil {
		t.Fatal(err)
	}
	scheme, err := controller.NewScheme()
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cp.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	return ctx, c
}

// A MetalLB configuration, as users have it: every kind, BGPPeer in the
// deprecated v1beta1, optional fields left out.
const metallbManifests = `
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: pool, namespace: metallb-system}
spec:
  addresses: [198.18.0.0/24, "2001:db8::/64"]
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: l2, namespace: metallb-system}
spec:
  ipAddressPools: [pool]
  interfaces: [eth0]
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: bgp, namespace: metallb-system}
spec:
  ipAddressPools: [pool]
  communities: ["64500:100", lp]
---
apiVersion: metallb.io/v1beta1
kind: Community
metadata: {name: communities, namespace: metallb-system}
spec:
  communities:
  - {name: lp, value: "large:64500:1:2"}
---
apiVersion: metallb.io/v1beta1
kind: BFDProfile
metadata: {name: fast, namespace: metallb-system}
spec:
  receiveInterval: 100
---
apiVersion: metallb.io/v1beta1
kind: BGPPeer
metadata: {name: old-peer, namespace: metallb-system}
spec:
  myASN: 64512
  peerASN: 64500
  peerAddress: 198.18.0.1
  holdTime: 9s
  bfdProfile: fast
  nodeSelectors:
  - matchLabels: {rack: a}
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: new-peer, namespace: metallb-system}
spec:
  myASN: 4200000001
  dynamicASN: external
  peerAddress: 198.18.0.2
  enableGracefulRestart: true
`

func TestMetalLBManifestsApplyWithDefaults(t *testing.T) {
	ctx, c := setup(t)
	dec := yaml.NewYAMLOrJSONDecoder(strings.NewReader(metallbManifests), 4096)
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			break
		}
		if err := c.Create(ctx, u); err != nil {
			t.Fatalf("creating %s %s: %v", u.GetKind(), u.GetName(), err)
		}
	}

	pool := &v1beta1.IPAddressPool{}
	get(t, ctx, c, "pool", pool)
	if pool.Spec.AutoAssign == nil || !*pool.Spec.AutoAssign {
		t.Errorf("autoAssign default: got %v, want true", pool.Spec.AutoAssign)
	}
	adv := &v1beta1.BGPAdvertisement{}
	get(t, ctx, c, "bgp", adv)
	if adv.Spec.AggregationLength == nil || *adv.Spec.AggregationLength != 32 || adv.Spec.AggregationLengthV6 == nil || *adv.Spec.AggregationLengthV6 != 128 {
		t.Errorf("aggregation defaults: got %v/%v, want 32/128", adv.Spec.AggregationLength, adv.Spec.AggregationLengthV6)
	}
	bfd := &v1beta1.BFDProfile{}
	get(t, ctx, c, "fast", bfd)
	if *bfd.Spec.ReceiveInterval != 100 || *bfd.Spec.TransmitInterval != 300 || *bfd.Spec.DetectMultiplier != 3 || *bfd.Spec.EchoInterval != 50 {
		t.Errorf("BFD defaults: got %+v", bfd.Spec)
	}

	// The v1beta1 peer is stored as v1beta2 and reads back there, selector
	// and all.
	peer := &v1beta2.BGPPeer{}
	get(t, ctx, c, "old-peer", peer)
	if peer.Spec.PeerASN != 64500 || peer.Spec.PeerPort != 179 || peer.Spec.HoldTime == nil || peer.Spec.HoldTime.Duration != 9*time.Second {
		t.Errorf("v1beta1 peer read as v1beta2: %+v", peer.Spec)
	}
	if len(peer.Spec.NodeSelectors) != 1 || peer.Spec.NodeSelectors[0].MatchLabels["rack"] != "a" {
		t.Errorf("node selectors lost in conversion: %+v", peer.Spec.NodeSelectors)
	}
	old := &v1beta1.BGPPeer{}
	get(t, ctx, c, "new-peer", old)
	// A 32-bit private ASN above 2^31 is valid (the schema once rejected it).
	if old.Spec.MyASN != 4200000001 || old.Spec.PeerAddress != "198.18.0.2" {
		t.Errorf("v1beta2 peer read as v1beta1: %+v", old.Spec)
	}
}

func TestSchemaRejectsStaticViolations(t *testing.T) {
	ctx, c := setup(t)
	meta := func(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Namespace: ns, Name: name} }
	i32 := func(v int32) *int32 { return &v }
	u32 := func(v uint32) *uint32 { return &v }
	cases := []struct {
		name string
		obj  client.Object
		want string // a fragment of the API server's message
	}{
		{"pool without addresses", &v1beta1.IPAddressPool{ObjectMeta: meta("p1")}, "addresses"},
		{"aggregation length above 32", &v1beta1.BGPAdvertisement{ObjectMeta: meta("a1"), Spec: v1beta1.BGPAdvertisementSpec{AggregationLength: i32(33)}}, "aggregationLength"},
		{"aggregation length v6 above 128", &v1beta1.BGPAdvertisement{ObjectMeta: meta("a2"), Spec: v1beta1.BGPAdvertisementSpec{AggregationLengthV6: i32(129)}}, "aggregationLengthV6"},
		{"service selectors with aggregation", &v1beta1.BGPAdvertisement{ObjectMeta: meta("a3"), Spec: v1beta1.BGPAdvertisementSpec{
			AggregationLength: i32(24), ServiceSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"a": "b"}}}}}, "serviceSelectors can only be used with the default"},
		{"BFD interval below 10", &v1beta1.BFDProfile{ObjectMeta: meta("b1"), Spec: v1beta1.BFDProfileSpec{ReceiveInterval: u32(5)}}, "receiveInterval"},
		{"BFD multiplier above 255", &v1beta1.BFDProfile{ObjectMeta: meta("b2"), Spec: v1beta1.BFDProfileSpec{DetectMultiplier: u32(256)}}, "detectMultiplier"},
		{"BFD minimum TTL 0", &v1beta1.BFDProfile{ObjectMeta: meta("b3"), Spec: v1beta1.BFDProfileSpec{MinimumTTL: u32(0)}}, "minimumTtl"},
		{"dynamicASN not an enum value", &v1beta2.BGPPeer{ObjectMeta: meta("p2"), Spec: v1beta2.BGPPeerSpec{MyASN: 1, DynamicASN: "sometimes", PeerAddress: "198.18.0.9"}}, "dynamicASN"},
		{"connectTime above 65535s", &v1beta2.BGPPeer{ObjectMeta: meta("p3"), Spec: v1beta2.BGPPeerSpec{MyASN: 1, PeerASN: 2, PeerAddress: "198.18.0.9",
			ConnectTime: &metav1.Duration{Duration: 70000 * time.Second}}}, "connectTime"},
	}
	for _, tc := range cases {
		err := c.Create(ctx, tc.obj)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want a rejection mentioning %q", tc.name, err, tc.want)
		}
	}

	// enableGracefulRestart is fixed at creation, in both directions.
	peer := &v1beta2.BGPPeer{ObjectMeta: meta("gr"), Spec: v1beta2.BGPPeerSpec{MyASN: 1, PeerASN: 2, PeerAddress: "198.18.0.10"}}
	if err := c.Create(ctx, peer); err != nil {
		t.Fatal(err)
	}
	peer.Spec.EnableGracefulRestart = true
	if err := c.Update(ctx, peer); err == nil || !strings.Contains(err.Error(), "enableGracefulRestart cannot be changed") {
		t.Errorf("turning graceful restart on: got %v", err)
	}
	// Other fields stay editable.
	get(t, ctx, c, "gr", peer)
	peer.Spec.PeerASN = 3
	if err := c.Update(ctx, peer); err != nil {
		t.Errorf("editing another field of the peer: %v", err)
	}
}

func get(t *testing.T, ctx context.Context, c client.Client, name string, obj client.Object) {
	t.Helper()
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, obj); err != nil {
		t.Fatalf("getting %s: %v", name, err)
	}
}
