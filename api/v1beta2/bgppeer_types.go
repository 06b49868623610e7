package v1beta2

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// DynamicASNMode says how the peer's AS number is learnt when it is not
// given.
// +kubebuilder:validation:Enum=internal;external
type DynamicASNMode string

const (
	// InternalASNMode accepts a peer in the speaker's own AS (iBGP).
	InternalASNMode DynamicASNMode = "internal"
	// ExternalASNMode accepts a peer in any other AS (eBGP).
	ExternalASNMode DynamicASNMode = "external"
)

// BGPPeerSpec describes one BGP session opened by the speakers of the
// selected nodes.
//
// Graceful restart is negotiated when the session opens, so changing it would
// need a reset; it is therefore fixed at creation.
//
// +kubebuilder:validation:XValidation:rule="(has(self.enableGracefulRestart) && self.enableGracefulRestart) == (has(oldSelf.enableGracefulRestart) && oldSelf.enableGracefulRestart)",message="enableGracefulRestart cannot be changed after creation",fieldPath=".enableGracefulRestart"
type BGPPeerSpec struct {
	// MyASN is the AS number the speaker uses for this session.
	// +kubebuilder:validation:Maximum=4294967295
	// +kubebuilder:validation:Format=int64
	MyASN uint32 `json:"myASN"`

	// PeerASN is the peer's AS number. Exactly one of peerASN and
	// dynamicASN is set.
	// +optional
	// +kubebuilder:validation:Maximum=4294967295
	// +kubebuilder:validation:Format=int64
	PeerASN uint32 `json:"peerASN,omitempty"`

	// DynamicASN accepts whatever AS number the peer presents, limited to
	// iBGP ("internal") or eBGP ("external").
	// +optional
	DynamicASN DynamicASNMode `json:"dynamicASN,omitempty"`

	// LocalASN is the AS number presented to this peer in place of myASN
	// (local-as), for migrations between AS numbers.
	// +optional
	// +kubebuilder:validation:Maximum=4294967295
	// +kubebuilder:validation:Format=int64
	LocalASN uint32 `json:"localASN,omitempty"`

	// PeerAddress is the peer's IP address. Exactly one of peerAddress and
	// interface is set.
	// +optional
	PeerAddress string `json:"peerAddress,omitempty"`

	// Interface peers over an unnumbered interface, using the IPv6
	// link-local address of the router on it.
	// +optional
	Interface string `json:"interface,omitempty"`

	// SourceAddress is the local address the session is opened from.
	// +optional
	SourceAddress string `json:"sourceAddress,omitempty"`

	// PeerPort is the peer's TCP port.
	// +optional
	// +kubebuilder:default:=179
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	PeerPort uint16 `json:"peerPort,omitempty"`

	// HoldTime is the BGP hold time proposed to the peer: 0, or at least 3s.
	// +optional
	HoldTime *metav1.Duration `json:"holdTime,omitempty"`

	// KeepaliveTime is the interval between keepalives; it may not exceed
	// holdTime.
	// +optional
	KeepaliveTime *metav1.Duration `json:"keepaliveTime,omitempty"`

	// ConnectTime is the wait between connection attempts.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s') && duration(self) <= duration('65535s')",message="connectTime must be between 1s and 65535s"
	ConnectTime *metav1.Duration `json:"connectTime,omitempty"`

	// RouterID overrides the BGP router ID.
	// +optional
	RouterID string `json:"routerID,omitempty"`

	// NodeSelectors limits the nodes that open this session.
	// +optional
	NodeSelectors []metav1.LabelSelector `json:"nodeSelectors,omitempty"`

	// Password is the TCP-MD5 password of the session.
	// +optional
	Password string `json:"password,omitempty"`

	// PasswordSecret names a kubernetes.io/basic-auth Secret, in the
	// install namespace, whose "password" key is the TCP-MD5 password.
	// +optional
	PasswordSecret corev1.SecretReference `json:"passwordSecret,omitempty"`

	// BFDProfile names the BFDProfile used for this session.
	// +optional
	BFDProfile string `json:"bfdProfile,omitempty"`

	// EnableGracefulRestart negotiates BGP graceful restart (RFC 4724), so
	// that routes survive a speaker restart. Fixed at creation.
	// +optional
	EnableGracefulRestart bool `json:"enableGracefulRestart,omitempty"`

	// EBGPMultiHop allows an eBGP peer that is not directly connected.
	// +optional
	EBGPMultiHop bool `json:"ebgpMultiHop,omitempty"`

	// VRF is the VRF the session lives in.
	// +optional
	VRF string `json:"vrf,omitempty"`

	// DisableMP (deprecated) keeps IPv4 and IPv6 routes in separate sessions.
	// +optional
	DisableMP bool `json:"disableMP,omitempty"`

	// DualStackAddressFamily carries both IPv4 and IPv6 routes on this
	// session.
	// +optional
	DualStackAddressFamily bool `json:"dualStackAddressFamily,omitempty"`
}

// BGPPeerStatus is empty; it exists so that the kind has a status
// subresource, as MetalLB's does.
type BGPPeerStatus struct{}

// BGPPeer is a BGP session opened by the speakers of the selected nodes.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:storageversion
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
