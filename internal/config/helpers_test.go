package config

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/keeperlb/keeperlb/api/v1beta1"
	"github.com/keeperlb/keeperlb/api/v1beta2"
)

// ns is the install namespace the tests use.
const ns = "metallb-system"

func ptr[T any](v T) *T { return &v }

// with returns v after applying f to it, to tweak one field of a fixture
// inside a table.
func with[T any](v T, f func(*T)) T {
	f(&v)
	return v
}

func meta(name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: ns}
}

func pool(name string, addrs ...string) v1beta1.IPAddressPool {
	return v1beta1.IPAddressPool{ObjectMeta: meta(name), Spec: v1beta1.IPAddressPoolSpec{Addresses: addrs}}
}

func labeledPool(name string, labels map[string]string, addrs ...string) v1beta1.IPAddressPool {
	p := pool(name, addrs...)
	p.Labels = labels
	return p
}

func poolWithAlloc(name string, a v1beta1.ServiceAllocation, addrs ...string) v1beta1.IPAddressPool {
	p := pool(name, addrs...)
	p.Spec.ServiceAllocation = &a
	return p
}

func l2(name string, spec v1beta1.L2AdvertisementSpec) v1beta1.L2Advertisement {
	return v1beta1.L2Advertisement{ObjectMeta: meta(name), Spec: spec}
}

func bgpAdv(name string, spec v1beta1.BGPAdvertisementSpec) v1beta1.BGPAdvertisement {
	return v1beta1.BGPAdvertisement{ObjectMeta: meta(name), Spec: spec}
}

// peer returns a valid eBGP peer at addr, changed by f when f is not nil.
func peer(name, addr string, f func(*v1beta2.BGPPeerSpec)) v1beta2.BGPPeer {
	p := v1beta2.BGPPeer{ObjectMeta: meta(name), Spec: v1beta2.BGPPeerSpec{
		MyASN:       64500,
		PeerASN:     64501,
		PeerAddress: addr,
	}}
	if f != nil {
		f(&p.Spec)
	}
	return p
}

func bfdProfile(name string, spec v1beta1.BFDProfileSpec) v1beta1.BFDProfile {
	return v1beta1.BFDProfile{ObjectMeta: meta(name), Spec: spec}
}

// communityObj builds a Community from name, value pairs.
func communityObj(name string, nameValues ...string) v1beta1.Community {
	c := v1beta1.Community{ObjectMeta: meta(name)}
	for i := 0; i+1 < len(nameValues); i += 2 {
		c.Spec.Communities = append(c.Spec.Communities, v1beta1.CommunityAlias{Name: nameValues[i], Value: nameValues[i+1]})
	}
	return c
}

func secret(name string, typ corev1.SecretType, data map[string]string) corev1.Secret {
	s := corev1.Secret{ObjectMeta: meta(name), Type: typ, Data: map[string][]byte{}}
	for k, v := range data {
		s.Data[k] = []byte(v)
	}
	return s
}

// sel builds a matchLabels selector from key, value pairs.
func sel(kv ...string) metav1.LabelSelector {
	s := metav1.LabelSelector{MatchLabels: map[string]string{}}
	for i := 0; i+1 < len(kv); i += 2 {
		s.MatchLabels[kv[i]] = kv[i+1]
	}
	return s
}

// badSel is a selector that does not convert.
func badSel() metav1.LabelSelector {
	return metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "zone", Operator: "Near"}}}
}

func node(name string, kv ...string) corev1.Node {
	n := corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{}}}
	for i := 0; i+1 < len(kv); i += 2 {
		n.Labels[kv[i]] = kv[i+1]
	}
	return n
}

func dur(s string) *metav1.Duration {
	d, err := time.ParseDuration(s)
	if err != nil {
		panic(err)
	}
	return &metav1.Duration{Duration: d}
}

// wantErr describes an expected FieldError; reason is a substring.
// namespace defaults to ns.
type wantErr struct {
	kind, namespace, name, field, reason string
}

func (w wantErr) matches(e *FieldError) bool {
	nsWant := w.namespace
	if nsWant == "" {
		nsWant = ns
	}
	return e.Kind == w.kind && e.Namespace == nsWant && e.Name == w.name && e.Field == w.field && strings.Contains(e.Reason, w.reason)
}

func poolErr(name, field, reason string) wantErr {
	return wantErr{kind: KindIPAddressPool, name: name, field: field, reason: reason}
}
func l2Err(name, field, reason string) wantErr {
	return wantErr{kind: KindL2Advertisement, name: name, field: field, reason: reason}
}
func bgpErr(name, field, reason string) wantErr {
	return wantErr{kind: KindBGPAdvertisement, name: name, field: field, reason: reason}
}
func peerErr(name, field, reason string) wantErr {
	return wantErr{kind: KindBGPPeer, name: name, field: field, reason: reason}
}
func bfdErr(name, field, reason string) wantErr {
	return wantErr{kind: KindBFDProfile, name: name, field: field, reason: reason}
}
func commErr(name, field, reason string) wantErr {
	return wantErr{kind: KindCommunity, name: name, field: field, reason: reason}
}

// checkErrors fails unless every want matches some error and every error
// matches some want, so a case pins the complete error list.
func checkErrors(t *testing.T, err error, wants []wantErr) {
	t.Helper()
	if err == nil {
		t.Fatalf("Parse succeeded, want errors %+v", wants)
	}
	errs, ok := err.(Errors)
	if !ok {
		t.Fatalf("Parse error has type %T, want Errors", err)
	}
	for _, w := range wants {
		found := false
		for _, e := range errs {
			if w.matches(e) {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("missing error %+v", w)
		}
	}
	for _, e := range errs {
		found := false
		for _, w := range wants {
			if w.matches(e) {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("unexpected error: %v", e)
		}
	}
	if t.Failed() {
		t.Logf("all errors: %v", err)
	}
}
