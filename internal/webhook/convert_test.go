package webhook

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/keeperlb/keeperlb/api/v1beta1"
	"github.com/keeperlb/keeperlb/api/v1beta2"
)

func v1Peer(spec v1beta1.BGPPeerSpec, annotations map[string]string) *v1beta1.BGPPeer {
	return &v1beta1.BGPPeer{
		TypeMeta:   metav1.TypeMeta{APIVersion: "metallb.io/v1beta1", Kind: "BGPPeer"},
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "p", Labels: map[string]string{"a": "b"}, Annotations: annotations, ResourceVersion: "7", UID: "u-1"},
		Spec:       spec,
	}
}

func v2Peer(spec v1beta2.BGPPeerSpec, annotations map[string]string) *v1beta2.BGPPeer {
	return &v1beta2.BGPPeer{
		TypeMeta:   metav1.TypeMeta{APIVersion: "metallb.io/v1beta2", Kind: "BGPPeer"},
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "p", Labels: map[string]string{"a": "b"}, Annotations: annotations, ResourceVersion: "7", UID: "u-1"},
		Spec:       spec,
	}
}

// fullV1 sets every v1beta1 field.
var fullV1 = v1beta1.BGPPeerSpec{
	MyASN: 64500, PeerASN: 4200000000, PeerAddress: "198.18.0.1", SourceAddress: "198.18.0.2", PeerPort: 1179,
	HoldTime: metav1.Duration{Duration: 90 * time.Second}, KeepaliveTime: metav1.Duration{Duration: 30 * time.Second},
	RouterID: "10.0.0.1", Password: "secret", BFDProfile: "fast", EBGPMultiHop: true,
	NodeSelectors: []v1beta1.NodeSelector{
		{MatchLabels: map[string]string{"rack": "r1"}},
		{MatchExpressions: []v1beta1.MatchExpression{{Key: "zone", Operator: "In", Values: []string{"z1", "z2"}}, {Key: "gpu", Operator: "DoesNotExist"}}},
		{},
	},
}

// fullV2 sets every v1beta2 field, those v1beta1 lacks included.
var fullV2 = v1beta2.BGPPeerSpec{
	MyASN: 64500, DynamicASN: v1beta2.ExternalASNMode, LocalASN: 64999, Interface: "eth1", SourceAddress: "198.18.0.2", PeerPort: 1179,
	HoldTime: &metav1.Duration{}, KeepaliveTime: &metav1.Duration{}, ConnectTime: &metav1.Duration{Duration: 5 * time.Second},
	RouterID: "10.0.0.1", PasswordSecret: corev1.SecretReference{Name: "pw", Namespace: ns}, BFDProfile: "fast",
	EnableGracefulRestart: true, EBGPMultiHop: true, VRF: "red", DisableMP: true, DualStackAddressFamily: true,
	NodeSelectors: []metav1.LabelSelector{{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "zone", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"z3"}}}}},
}

func TestPeerToV1beta2(t *testing.T) {
	tests := []struct {
		name string
		in   *v1beta1.BGPPeer
		want *v1beta2.BGPPeer
	}{
		{
			name: "every v1beta1 field",
			in:   v1Peer(fullV1, nil),
			want: v2Peer(v1beta2.BGPPeerSpec{
				MyASN: 64500, PeerASN: 4200000000, PeerAddress: "198.18.0.1", SourceAddress: "198.18.0.2", PeerPort: 1179,
				HoldTime: &metav1.Duration{Duration: 90 * time.Second}, KeepaliveTime: &metav1.Duration{Duration: 30 * time.Second},
				RouterID: "10.0.0.1", Password: "secret", BFDProfile: "fast", EBGPMultiHop: true,
				NodeSelectors: []metav1.LabelSelector{
					{MatchLabels: map[string]string{"rack": "r1"}},
					{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "zone", Operator: metav1.LabelSelectorOpIn, Values: []string{"z1", "z2"}}, {Key: "gpu", Operator: metav1.LabelSelectorOpDoesNotExist}}},
					{},
				},
			}, nil),
		},
		{
			name: "v1beta1's zero durations mean unset",
			in:   v1Peer(v1beta1.BGPPeerSpec{MyASN: 1, PeerASN: 2, PeerAddress: "198.18.0.1"}, nil),
			want: v2Peer(v1beta2.BGPPeerSpec{MyASN: 1, PeerASN: 2, PeerAddress: "198.18.0.1"}, nil),
		},
		{
			name: "a malformed annotation is dropped, other annotations stay",
			in:   v1Peer(v1beta1.BGPPeerSpec{MyASN: 1, PeerASN: 2, PeerAddress: "198.18.0.1"}, map[string]string{PeerFieldsAnnotation: "{not json", "keep": "me"}),
			want: v2Peer(v1beta2.BGPPeerSpec{MyASN: 1, PeerASN: 2, PeerAddress: "198.18.0.1"}, map[string]string{"keep": "me"}),
		},
		{
			name: "an annotation written for another spec restores only what cannot conflict",
			// A v1beta1 client replaced dynamicASN by peerASN 65001 and set
			// a peerAddress and a password: the stale dynamicASN,
			// interface and passwordSecret would contradict them.
			in: v1Peer(v1beta1.BGPPeerSpec{MyASN: 64500, PeerASN: 65001, PeerAddress: "198.18.0.9", Password: "pw", HoldTime: metav1.Duration{Duration: 60 * time.Second}},
				map[string]string{PeerFieldsAnnotation: `{"spec":{"dynamicASN":"external","interface":"eth1","holdTime":"0s","passwordSecret":{"name":"pw"},"vrf":"red","connectTime":"5s"},"v1beta1Digest":"stale"}`}),
			want: v2Peer(v1beta2.BGPPeerSpec{MyASN: 64500, PeerASN: 65001, PeerAddress: "198.18.0.9", Password: "pw",
				HoldTime: &metav1.Duration{Duration: 60 * time.Second}, VRF: "red", ConnectTime: &metav1.Duration{Duration: 5 * time.Second}}, nil),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := PeerToV1beta2(tc.in)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got\n%s\nwant\n%s", mustJSON(t, got), mustJSON(t, tc.want))
			}
		})
	}
}

func TestPeerToV1beta1(t *testing.T) {
	got, err := PeerToV1beta1(v2Peer(fullV2, map[string]string{PeerFieldsAnnotation: "stale", "keep": "me"}))
	if err != nil {
		t.Fatal(err)
	}
	wantSpec := v1beta1.BGPPeerSpec{
		MyASN: 64500, SourceAddress: "198.18.0.2", PeerPort: 1179, RouterID: "10.0.0.1", BFDProfile: "fast", EBGPMultiHop: true,
		NodeSelectors: []v1beta1.NodeSelector{{MatchExpressions: []v1beta1.MatchExpression{{Key: "zone", Operator: "NotIn", Values: []string{"z3"}}}}},
	}
	if !reflect.DeepEqual(got.Spec, wantSpec) {
		t.Errorf("spec\n%s\nwant\n%s", mustJSON(t, got.Spec), mustJSON(t, wantSpec))
	}
	if got.APIVersion != "metallb.io/v1beta1" || got.Kind != "BGPPeer" || got.Name != "p" || got.ResourceVersion != "7" || got.Labels["a"] != "b" || got.Annotations["keep"] != "me" {
		t.Errorf("type or metadata not carried over: %s", mustJSON(t, got))
	}
	var extra peerExtra
	if err := json.Unmarshal([]byte(got.Annotations[PeerFieldsAnnotation]), &extra); err != nil {
		t.Fatalf("annotation %q: %v", got.Annotations[PeerFieldsAnnotation], err)
	}
	wantExtra := peerExtraSpec{
		DynamicASN: "external", LocalASN: 64999, Interface: "eth1", HoldTime: &metav1.Duration{}, KeepaliveTime: &metav1.Duration{},
		ConnectTime: &metav1.Duration{Duration: 5 * time.Second}, PasswordSecret: &corev1.SecretReference{Name: "pw", Namespace: ns},
		EnableGracefulRestart: true, VRF: "red", DisableMP: true, DualStackAddressFamily: true,
	}
	if !reflect.DeepEqual(extra.Spec, wantExtra) || extra.V1beta1Digest != specDigest(wantSpec) {
		t.Errorf("annotation %s, want spec %s and the digest of the v1beta1 spec", got.Annotations[PeerFieldsAnnotation], mustJSON(t, wantExtra))
	}

	// Nothing lost: no annotation at all.
	plain, err := PeerToV1beta1(v2Peer(v1beta2.BGPPeerSpec{MyASN: 1, PeerASN: 2, PeerAddress: "198.18.0.1", HoldTime: &metav1.Duration{Duration: 9 * time.Second}}, nil))
	if err != nil {
		t.Fatal(err)
	}
	if plain.Annotations != nil || plain.Spec.HoldTime.Duration != 9*time.Second {
		t.Errorf("plain peer: annotations %v, holdTime %v", plain.Annotations, plain.Spec.HoldTime)
	}
}

// Round trips are lossless both ways, the v1beta2-only fields riding in
// the annotation.
func TestPeerRoundTrip(t *testing.T) {
	v1s := []*v1beta1.BGPPeer{
		v1Peer(fullV1, nil),
		v1Peer(v1beta1.BGPPeerSpec{MyASN: 1, PeerASN: 2, PeerAddress: "198.18.0.1"}, map[string]string{"x": "y"}),
		v1Peer(v1beta1.BGPPeerSpec{NodeSelectors: []v1beta1.NodeSelector{}}, nil),
	}
	for _, in := range v1s {
		back, err := PeerToV1beta1(PeerToV1beta2(in))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(back, in) {
			t.Errorf("v1beta1 -> v1beta2 -> v1beta1:\n%s\nwant\n%s", mustJSON(t, back), mustJSON(t, in))
		}
	}
	v2s := []*v1beta2.BGPPeer{
		v2Peer(fullV2, nil),
		v2Peer(fullV2, map[string]string{"x": "y"}),
		v2Peer(v1beta2.BGPPeerSpec{MyASN: 1, PeerASN: 2, PeerAddress: "198.18.0.1", HoldTime: &metav1.Duration{Duration: 90 * time.Second}}, nil),
		// Invalid for Parse, yet a plain round trip must not repair it.
		v2Peer(v1beta2.BGPPeerSpec{MyASN: 1, PeerASN: 2, DynamicASN: "internal", PeerAddress: "198.18.0.1", Interface: "eth0", Password: "a", PasswordSecret: corev1.SecretReference{Name: "b"}}, nil),
	}
	for _, in := range v2s {
		v1, err := PeerToV1beta1(in)
		if err != nil {
			t.Fatal(err)
		}
		if back := PeerToV1beta2(v1); !reflect.DeepEqual(back, in) {
			t.Errorf("v1beta2 -> v1beta1 -> v1beta2:\n%s\nwant\n%s", mustJSON(t, back), mustJSON(t, in))
		}
	}
}

func TestConvertReview(t *testing.T) {
	v2 := v2Peer(fullV2, nil)
	v2raw := mustJSON(t, v2)
	v1, err := PeerToV1beta1(v2)
	if err != nil {
		t.Fatal(err)
	}
	v1raw := mustJSON(t, v1)

	resp := Convert(&apiextensionsv1.ConversionRequest{UID: "r1", DesiredAPIVersion: "metallb.io/v1beta1", Objects: []runtime.RawExtension{{Raw: []byte(v2raw)}, {Raw: []byte(v1raw)}}})
	if resp.UID != "r1" || resp.Result.Status != metav1.StatusSuccess || len(resp.ConvertedObjects) != 2 {
		t.Fatalf("response %+v", resp)
	}
	var got v1beta1.BGPPeer
	if err := json.Unmarshal(resp.ConvertedObjects[0].Raw, &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&got, v1) {
		t.Errorf("converted\n%s\nwant\n%s", mustJSON(t, &got), v1raw)
	}
	// Zero v1beta1 durations are left out rather than written as "0s".
	if s := string(resp.ConvertedObjects[0].Raw); strings.Contains(s, `"holdTime"`) || strings.Contains(s, `"keepaliveTime"`) {
		t.Errorf("zero durations written: %s", s)
	}
	if string(resp.ConvertedObjects[1].Raw) != v1raw {
		t.Errorf("an object already in the desired version changed: %s", resp.ConvertedObjects[1].Raw)
	}

	back := Convert(&apiextensionsv1.ConversionRequest{UID: "r2", DesiredAPIVersion: "metallb.io/v1beta2", Objects: resp.ConvertedObjects[:1]})
	var gotV2 v1beta2.BGPPeer
	if back.Result.Status != metav1.StatusSuccess || json.Unmarshal(back.ConvertedObjects[0].Raw, &gotV2) != nil || !reflect.DeepEqual(&gotV2, v2) {
		t.Errorf("back to v1beta2: %+v\n%s\nwant\n%s", back.Result, back.ConvertedObjects[0].Raw, v2raw)
	}

	for _, tc := range []struct {
		name, version, raw, want string
	}{
		{"another kind", "metallb.io/v1beta1", `{"apiVersion":"metallb.io/v1beta1","kind":"IPAddressPool"}`, "object 1: cannot convert metallb.io/v1beta1 IPAddressPool: only metallb.io/v1beta1 and v1beta2 BGPPeers"},
		{"an unknown target version", "metallb.io/v9", v2raw, `object 0: cannot convert BGPPeer to "metallb.io/v9"`},
		{"not JSON", "metallb.io/v1beta1", `{`, "object 1: decoding"},
		{"a wrongly typed field", "metallb.io/v1beta1", `{"apiVersion":"metallb.io/v1beta2","kind":"BGPPeer","spec":{"myASN":"many"}}`, "object 1: decoding v1beta2 BGPPeer"},
	} {
		r := Convert(&apiextensionsv1.ConversionRequest{UID: "x", DesiredAPIVersion: tc.version, Objects: []runtime.RawExtension{{Raw: []byte(v1raw)}, {Raw: []byte(tc.raw)}}})
		if r.Result.Status != metav1.StatusFailure || !strings.Contains(r.Result.Message, tc.want) || r.ConvertedObjects != nil {
			t.Errorf("%s: result %+v, %d objects; want a failure mentioning %q", tc.name, r.Result, len(r.ConvertedObjects), tc.want)
		}
	}
}

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
