package webhook

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/keeperlb/keeperlb/api/v1beta1"
	"github.com/keeperlb/keeperlb/api/v1beta2"
)

// PeerFieldsAnnotation carries, on a BGPPeer read as v1beta1, what the
// v1beta2 object holds and v1beta1 cannot express (dynamicASN, vrf,
// connectTime, an explicit zero holdTime, ...), so that an object read and
// written back through v1beta1 keeps them. Converting to v1beta2 consumes
// the annotation; v1beta2 objects never carry it.
const PeerFieldsAnnotation = "keeperlb.io/bgppeer-v1beta2-fields"

// peerExtra is the content of PeerFieldsAnnotation: the v1beta2-only
// fields, under their v1beta2 JSON names, and a digest of the v1beta1 spec
// they were split from.
type peerExtra struct {
	// Spec holds only the fields v1beta1 lacks.
	Spec peerExtraSpec `json:"spec"`
	// V1beta1Digest identifies the v1beta1 spec written alongside. When
	// the spec comes back unchanged, every field is restored as it was;
	// when a v1beta1 client edited it, a restored field that would now
	// contradict the edit (dynamicASN after a new peerASN, say) is dropped,
	// the edit being the newer intent.
	V1beta1Digest string `json:"v1beta1Digest"`
}

// peerExtraSpec lists the v1beta2 fields missing from v1beta1. HoldTime and
// KeepaliveTime appear only when explicitly zero: v1beta1 cannot tell an
// explicit "0s" from an absent value, v1beta2 can.
type peerExtraSpec struct {
	DynamicASN             v1beta2.DynamicASNMode  `json:"dynamicASN,omitempty"`
	LocalASN               uint32                  `json:"localASN,omitempty"`
	Interface              string                  `json:"interface,omitempty"`
	HoldTime               *metav1.Duration        `json:"holdTime,omitempty"`
	KeepaliveTime          *metav1.Duration        `json:"keepaliveTime,omitempty"`
	ConnectTime            *metav1.Duration        `json:"connectTime,omitempty"`
	PasswordSecret         *corev1.SecretReference `json:"passwordSecret,omitempty"`
	EnableGracefulRestart  bool                    `json:"enableGracefulRestart,omitempty"`
	VRF                    string                  `json:"vrf,omitempty"`
	DisableMP              bool                    `json:"disableMP,omitempty"`
	DualStackAddressFamily bool                    `json:"dualStackAddressFamily,omitempty"`
}

// PeerToV1beta2 converts a v1beta1 BGPPeer to v1beta2, restoring the
// v1beta2-only fields kept in PeerFieldsAnnotation. A v1beta1 zero holdTime
// or keepaliveTime means "not set", as v1beta1 cannot say otherwise. An
// annotation that does not parse is dropped: a conversion error would make
// the object unreadable, which is worse than losing fields v1beta1 clients
// never saw.
func PeerToV1beta2(in *v1beta1.BGPPeer) *v1beta2.BGPPeer {
	out := &v1beta2.BGPPeer{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1beta2.GroupVersion.String(), Kind: "BGPPeer"},
		ObjectMeta: *in.ObjectMeta.DeepCopy(),
	}
	s := in.Spec
	out.Spec = v1beta2.BGPPeerSpec{
		MyASN:         s.MyASN,
		PeerASN:       s.PeerASN,
		PeerAddress:   s.PeerAddress,
		SourceAddress: s.SourceAddress,
		PeerPort:      s.PeerPort,
		HoldTime:      durationPtr(s.HoldTime),
		KeepaliveTime: durationPtr(s.KeepaliveTime),
		RouterID:      s.RouterID,
		NodeSelectors: toLabelSelectors(s.NodeSelectors),
		Password:      s.Password,
		BFDProfile:    s.BFDProfile,
		EBGPMultiHop:  s.EBGPMultiHop,
	}

	raw, ok := out.Annotations[PeerFieldsAnnotation]
	if !ok {
		return out
	}
	delete(out.Annotations, PeerFieldsAnnotation)
	if len(out.Annotations) == 0 {
		out.Annotations = nil
	}
	var extra peerExtra
	if err := json.Unmarshal([]byte(raw), &extra); err != nil {
		return out
	}
	restorePeerExtra(&out.Spec, extra.Spec, extra.V1beta1Digest == specDigest(s))
	return out
}

// restorePeerExtra puts the v1beta2-only fields back into spec. When
// unchanged is false, the v1beta1 spec was edited since the split, and a
// field is restored only if it cannot contradict the edited spec.
func restorePeerExtra(spec *v1beta2.BGPPeerSpec, e peerExtraSpec, unchanged bool) {
	if unchanged || spec.PeerASN == 0 {
		spec.DynamicASN = e.DynamicASN
	}
	if unchanged || spec.PeerAddress == "" {
		spec.Interface = e.Interface
	}
	if e.PasswordSecret != nil && (unchanged || spec.Password == "") {
		spec.PasswordSecret = *e.PasswordSecret
	}
	// An explicit zero survives only while v1beta1 still says zero.
	if e.HoldTime != nil && e.HoldTime.Duration == 0 && spec.HoldTime == nil {
		spec.HoldTime = &metav1.Duration{}
	}
	if e.KeepaliveTime != nil && e.KeepaliveTime.Duration == 0 && spec.KeepaliveTime == nil {
		spec.KeepaliveTime = &metav1.Duration{}
	}
	spec.LocalASN = e.LocalASN
	spec.ConnectTime = e.ConnectTime
	spec.EnableGracefulRestart = e.EnableGracefulRestart
	spec.VRF = e.VRF
	spec.DisableMP = e.DisableMP
	spec.DualStackAddressFamily = e.DualStackAddressFamily
}

// PeerToV1beta1 converts a v1beta2 BGPPeer to v1beta1. The fields v1beta1
// lacks go into PeerFieldsAnnotation, which is absent when there are none;
// an unset holdTime or keepaliveTime becomes v1beta1's zero.
func PeerToV1beta1(in *v1beta2.BGPPeer) (*v1beta1.BGPPeer, error) {
	out := &v1beta1.BGPPeer{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1beta1.GroupVersion.String(), Kind: "BGPPeer"},
		ObjectMeta: *in.ObjectMeta.DeepCopy(),
	}
	s := in.Spec
	out.Spec = v1beta1.BGPPeerSpec{
		MyASN:         s.MyASN,
		PeerASN:       s.PeerASN,
		PeerAddress:   s.PeerAddress,
		SourceAddress: s.SourceAddress,
		PeerPort:      s.PeerPort,
		HoldTime:      durationValue(s.HoldTime),
		KeepaliveTime: durationValue(s.KeepaliveTime),
		RouterID:      s.RouterID,
		NodeSelectors: toNodeSelectors(s.NodeSelectors),
		Password:      s.Password,
		BFDProfile:    s.BFDProfile,
		EBGPMultiHop:  s.EBGPMultiHop,
	}

	// A stale copy (a v1beta1 manifest pasted into v1beta2) must not
	// survive next to the fresh one.
	if _, ok := out.Annotations[PeerFieldsAnnotation]; ok {
		delete(out.Annotations, PeerFieldsAnnotation)
		if len(out.Annotations) == 0 {
			out.Annotations = nil
		}
	}
	extra := peerExtraSpec{
		DynamicASN:             s.DynamicASN,
		LocalASN:               s.LocalASN,
		Interface:              s.Interface,
		ConnectTime:            s.ConnectTime.DeepCopy(),
		EnableGracefulRestart:  s.EnableGracefulRestart,
		VRF:                    s.VRF,
		DisableMP:              s.DisableMP,
		DualStackAddressFamily: s.DualStackAddressFamily,
	}
	if s.PasswordSecret != (corev1.SecretReference{}) {
		ref := s.PasswordSecret
		extra.PasswordSecret = &ref
	}
	if s.HoldTime != nil && s.HoldTime.Duration == 0 {
		extra.HoldTime = &metav1.Duration{}
	}
	if s.KeepaliveTime != nil && s.KeepaliveTime.Duration == 0 {
		extra.KeepaliveTime = &metav1.Duration{}
	}
	if isZeroExtra(extra) {
		return out, nil
	}
	raw, err := json.Marshal(peerExtra{Spec: extra, V1beta1Digest: specDigest(out.Spec)})
	if err != nil {
		return nil, fmt.Errorf("encoding %s of BGPPeer %s/%s: %w", PeerFieldsAnnotation, in.Namespace, in.Name, err)
	}
	if out.Annotations == nil {
		out.Annotations = map[string]string{}
	}
	out.Annotations[PeerFieldsAnnotation] = string(raw)
	return out, nil
}

// isZeroExtra reports whether v1beta1 loses nothing.
func isZeroExtra(e peerExtraSpec) bool {
	return e.DynamicASN == "" && e.LocalASN == 0 && e.Interface == "" && e.HoldTime == nil &&
		e.KeepaliveTime == nil && e.ConnectTime == nil && e.PasswordSecret == nil &&
		!e.EnableGracefulRestart && e.VRF == "" && !e.DisableMP && !e.DualStackAddressFamily
}

// specDigest is a short digest of a v1beta1 spec. encoding/json writes
// struct fields in declaration order and map keys sorted, so equal specs
// give equal digests.
func specDigest(s v1beta1.BGPPeerSpec) string {
	raw, err := json.Marshal(s)
	if err != nil {
		// Cannot happen for this type; an empty digest matches no spec,
		// which only makes the restore cautious.
		return ""
	}
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:12])
}

// durationPtr maps v1beta1's zero ("not set") to nil.
func durationPtr(d metav1.Duration) *metav1.Duration {
	if d.Duration == 0 {
		return nil
	}
	return &metav1.Duration{Duration: d.Duration}
}

// durationValue maps nil to v1beta1's zero.
func durationValue(d *metav1.Duration) metav1.Duration {
	if d == nil {
		return metav1.Duration{}
	}
	return *d
}

// toLabelSelectors converts v1beta1 node selectors, which have
// metav1.LabelSelector's JSON shape, keeping nil and empty apart.
func toLabelSelectors(in []v1beta1.NodeSelector) []metav1.LabelSelector {
	if in == nil {
		return nil
	}
	out := make([]metav1.LabelSelector, len(in))
	for i, ns := range in {
		out[i].MatchLabels = maps.Clone(ns.MatchLabels)
		if ns.MatchExpressions != nil {
			out[i].MatchExpressions = make([]metav1.LabelSelectorRequirement, len(ns.MatchExpressions))
			for j, e := range ns.MatchExpressions {
				out[i].MatchExpressions[j] = metav1.LabelSelectorRequirement{
					Key:      e.Key,
					Operator: metav1.LabelSelectorOperator(e.Operator),
					Values:   slices.Clone(e.Values),
				}
			}
		}
	}
	return out
}

// toNodeSelectors is the inverse of toLabelSelectors.
func toNodeSelectors(in []metav1.LabelSelector) []v1beta1.NodeSelector {
	if in == nil {
		return nil
	}
	out := make([]v1beta1.NodeSelector, len(in))
	for i, ls := range in {
		out[i].MatchLabels = maps.Clone(ls.MatchLabels)
		if ls.MatchExpressions != nil {
			out[i].MatchExpressions = make([]v1beta1.MatchExpression, len(ls.MatchExpressions))
			for j, e := range ls.MatchExpressions {
				out[i].MatchExpressions[j] = v1beta1.MatchExpression{
					Key:      e.Key,
					Operator: string(e.Operator),
					Values:   slices.Clone(e.Values),
				}
			}
		}
	}
	return out
}
