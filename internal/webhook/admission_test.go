package webhook

import (
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/keeperlb/keeperlb/api/v1beta2"
	"github.com/keeperlb/keeperlb/internal/config"
)

func request(op admissionv1.Operation, group, version, kind, name, raw string) admission.Request {
	return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		Operation: op,
		Kind:      metav1.GroupVersionKind{Group: group, Version: version, Kind: kind},
		Namespace: ns,
		Name:      name,
		Object:    runtime.RawExtension{Raw: []byte(raw)},
	}}
}

func TestDecodeChange(t *testing.T) {
	// A v1beta1 peer is reviewed as the v1beta2 object it will be stored
	// as, v1beta2-only fields from the annotation included.
	ch, skip, err := decodeChange(request(admissionv1.Create, "metallb.io", "v1beta1", "BGPPeer", "p",
		`{"metadata":{"name":"p","namespace":"metallb-system","annotations":{"keeperlb.io/bgppeer-v1beta2-fields":"{\"spec\":{\"vrf\":\"red\"},\"v1beta1Digest\":\"x\"}"}},"spec":{"myASN":1,"peerASN":2,"peerAddress":"198.18.0.1","holdTime":"2s"}}`))
	if err != nil || skip != "" {
		t.Fatalf("decoding a v1beta1 peer: skip %q, err %v", skip, err)
	}
	p, ok := ch.Object.(*v1beta2.BGPPeer)
	if !ok || p.Spec.VRF != "red" || p.Spec.HoldTime == nil || p.Spec.HoldTime.Duration.String() != "2s" || ch.Kind != config.KindBGPPeer || ch.Operation != Create {
		t.Errorf("decoded %+v as %#v", ch, ch.Object)
	}

	// An object on its way out may lose its finalizers unreviewed, but a
	// change of what it configures (spec or labels) is reviewed.
	deleting := func(old, new string) admission.Request {
		r := request(admissionv1.Update, "metallb.io", "v1beta1", "IPAddressPool", "a", new)
		r.OldObject = runtime.RawExtension{Raw: []byte(old)}
		return r
	}
	const before = `{"metadata":{"name":"a","namespace":"metallb-system","labels":{"x":"1"},"finalizers":["example.com/hold"],"deletionTimestamp":"2026-01-01T00:00:00Z"},"spec":{"addresses":["198.18.0.0/24"]}}`
	if _, skip, err := decodeChange(deleting(before,
		`{"metadata":{"name":"a","namespace":"metallb-system","labels":{"x":"1"},"deletionTimestamp":"2026-01-01T00:00:00Z"},"spec":{"addresses":["198.18.0.0/24"]}}`)); err != nil || skip == "" {
		t.Errorf("removing the finalizer of an object being deleted was reviewed (skip %q, err %v)", skip, err)
	}
	for _, after := range []string{
		`{"metadata":{"name":"a","namespace":"metallb-system","labels":{"x":"1"},"finalizers":["example.com/hold"],"deletionTimestamp":"2026-01-01T00:00:00Z"},"spec":{"addresses":["bad"]}}`,
		`{"metadata":{"name":"a","namespace":"metallb-system","labels":{"x":"2"},"finalizers":["example.com/hold"],"deletionTimestamp":"2026-01-01T00:00:00Z"},"spec":{"addresses":["198.18.0.0/24"]}}`,
	} {
		if _, skip, err := decodeChange(deleting(before, after)); err != nil || skip != "" {
			t.Errorf("a change of an object being deleted was not reviewed (skip %q, err %v): %s", skip, err, after)
		}
	}
	// Deletions carry no object.
	if ch, skip, err := decodeChange(request(admissionv1.Delete, "metallb.io", "v1beta1", "BFDProfile", "fast", "")); err != nil || skip != "" || ch.Object != nil || ch.Name != "fast" {
		t.Errorf("delete: %+v, skip %q, err %v", ch, skip, err)
	}
	for _, tc := range []struct{ group, version, kind, raw, want string }{
		{"metallb.io", "v1beta1", "ServiceL2Status", `{}`, "not reviewed here"},
		{"metallb.io", "v1beta2", "IPAddressPool", `{}`, "not reviewed here"},
		{"example.com", "v1beta1", "IPAddressPool", `{}`, "not reviewed here"},
		{"metallb.io", "v1beta1", "IPAddressPool", `{"spec":{"addresses":"notalist"}}`, "decoding metallb.io/v1beta1 IPAddressPool"},
		{"metallb.io", "v1beta1", "BGPPeer", `[`, "decoding metallb.io/v1beta1 BGPPeer"},
		{"metallb.io", "v1beta1", "Community", ``, "has no object"},
	} {
		if _, _, err := decodeChange(request(admissionv1.Create, tc.group, tc.version, tc.kind, "x", tc.raw)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s/%s %s %q: err %v, want %q", tc.group, tc.version, tc.kind, tc.raw, err, tc.want)
		}
	}
}

func TestRespond(t *testing.T) {
	r := respond(Decision{Allowed: true, Warnings: []string{"w"}})
	if !r.Allowed || len(r.Warnings) != 1 {
		t.Errorf("allowed response %+v", r)
	}
	errs := config.Errors{
		{Kind: "IPAddressPool", Namespace: ns, Name: "b", Field: "spec.addresses[0]", Reason: "overlaps"},
		{Kind: "IPAddressPool", Namespace: ns, Name: "a", Field: "spec.addresses[1]", Reason: "overlaps"},
	}
	r = respond(Decision{Errors: errs, Message: "m"})
	st := r.Result
	if r.Allowed || st == nil || st.Code != 422 || st.Reason != metav1.StatusReasonInvalid || st.Message != "m" || st.Details == nil ||
		st.Details.Name != "b" || st.Details.Kind != "IPAddressPool" || len(st.Details.Causes) != 2 ||
		st.Details.Causes[0].Field != "spec.addresses[0]" || st.Details.Causes[0].Message != "overlaps" ||
		st.Details.Causes[1].Field != "IPAddressPool "+ns+"/a spec.addresses[1]" {
		t.Errorf("refusal %+v", r)
	}
}
