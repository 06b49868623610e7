package v1beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// BGPPeerSpec is the deprecated v1beta1 shape of a BGP peer. The API server
// stores BGPPeers as v1beta2; every v1beta1 field exists there with the same
// name and JSON shape, and the controller's conversion webhook keeps the
// v1beta2-only fields when a v1beta1 client edits a peer.
type BGPPeerSpec struct {
	// MyASN is the AS number the speaker uses for this session.
	// +kubebuilder:validation:Maximum=4294967295
	// +kubebuilder:validation:Format=int64
	MyASN uint32 `json:"myASN"`

	// PeerASN is the peer's AS number.
	// +kubebuilder:validation:Maximum=4294967295
	// +kubebuilder:validation:Format=int64
	PeerASN uint32 `json:"peerASN"`

	// PeerAddress is the peer's IP address.
	PeerAddress string `json:"peerAddress"`

	// SourceAddress is the local address the session is opened from.
	// +optional
	SourceAddress string `json:"sourceAddress,omitempty"`

	// PeerPort is the peer's TCP port.
	// +optional
	// +kubebuilder:default:=179
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	PeerPort uint16 `json:"peerPort,omitempty"`

	// HoldTime is the BGP hold time proposed to the peer.
	// +optional
	HoldTime metav1.Duration `json:"holdTime,omitempty"`

	// KeepaliveTime is the interval between keepalives.
	// +optional
	KeepaliveTime metav1.Duration `json:"keepaliveTime,omitempty"`

	// RouterID overrides the BGP router ID.
	// +optional
	RouterID string `json:"routerID,omitempty"`

	// NodeSelectors limits the nodes that open this session.
	// +optional
	NodeSelectors []NodeSelector `json:"nodeSelectors,omitempty"`

	// Password is the TCP-MD5 password of the session.
	// +optional
	Password string `json:"password,omitempty"`

	// BFDProfile names the BFDProfile used for this session.
	// +optional
	BFDProfile string `json:"bfdProfile,omitempty"`

	// EBGPMultiHop allows an eBGP peer that is not directly connected.
	// +optional
	EBGPMultiHop bool `json:"ebgpMultiHop,omitempty"`
}

// NodeSelector is v1beta1's label selector; its JSON shape is that of
// metav1.LabelSelector.
type NodeSelector struct {
	// MatchLabels selects nodes carrying all these labels.
	// +optional
	MatchLabels map[string]string `json:"matchLabels,omitempty"`
	// MatchExpressions selects nodes matching all these expressions.
	// +optional
	MatchExpressions []MatchExpression `json:"matchExpressions,omitempty"`
}

// MatchExpression is one label requirement of a NodeSelector.
type MatchExpression struct {
	// Key is the label key.
	Key string `json:"key"`
	// Operator relates the key to the values.
	// +kubebuilder:validation:Enum=In;NotIn;Exists;DoesNotExist
	Operator string `json:"operator"`
	// Values are the values for In and NotIn.
	// +optional
	Values []string `json:"values,omitempty"`
}

// BGPPeerStatus is empty; it exists so that the kind has a status
// subresource, as MetalLB's does.
type BGPPeerStatus struct{}

// BGPPeer is a BGP session opened by the speakers (deprecated version: use
// metallb.io/v1beta2).
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:deprecatedversion:warning="metallb.io v1beta1 BGPPeer is deprecated, use v1beta2"
// +kubebuilder:printcolumn:name="Address",type=string,JSONPath=`.spec.peerAddress`
// +kubebuilder:printcolumn:name="ASN",type=integer,JSONPath=`.spec.peerASN`
// +kubebuilder:printcolumn:name="BFD Profile",type=string,JSONPath=`.spec.bfdProfile`
// +kubebuilder:printcolumn:name="Multi Hops",type=boolean,JSONPath=`.spec.ebgpMultiHop`
type BGPPeer struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   BGPPeerSpec   `json:"spec,omitempty"`
	Status BGPPeerStatus `json:"status,omitempty"`
}

// BGPPeerList is a list of BGPPeer.
//
// +kubebuilder:object:root=true
type BGPPeerList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BGPPeer `json:"items"`
}

func init() {
	register(&BGPPeer{}, &BGPPeerList{})
}
