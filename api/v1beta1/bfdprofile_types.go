package v1beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// BFDProfileSpec holds the BFD session parameters shared by the BGPPeers that
// name the profile. Intervals are in milliseconds.
type BFDProfileSpec struct {
	// ReceiveInterval is the minimum interval at which this system can
	// receive control packets.
	// +optional
	// +kubebuilder:default:=300
	// +kubebuilder:validation:Minimum=10
	// +kubebuilder:validation:Maximum=60000
	ReceiveInterval *uint32 `json:"receiveInterval,omitempty"`

	// TransmitInterval is the minimum interval at which this system sends
	// control packets.
	// +optional
	// +kubebuilder:default:=300
	// +kubebuilder:validation:Minimum=10
	// +kubebuilder:validation:Maximum=60000
	TransmitInterval *uint32 `json:"transmitInterval,omitempty"`

	// DetectMultiplier is the number of missed packets after which the
	// session is declared down.
	// +optional
	// +kubebuilder:default:=3
	// +kubebuilder:validation:Minimum=2
	// +kubebuilder:validation:Maximum=255
	DetectMultiplier *uint32 `json:"detectMultiplier,omitempty"`

	// EchoInterval is the minimum interval between echo packets.
	// +optional
	// +kubebuilder:default:=50
	// +kubebuilder:validation:Minimum=10
	// +kubebuilder:validation:Maximum=60000
	EchoInterval *uint32 `json:"echoInterval,omitempty"`

	// EchoMode enables echo packets, which the peer loops back.
	// +optional
	EchoMode *bool `json:"echoMode,omitempty"`

	// PassiveMode waits for the peer to start the session.
	// +optional
	PassiveMode *bool `json:"passiveMode,omitempty"`

	// MinimumTTL is the lowest TTL accepted on incoming packets (multi-hop).
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=254
	MinimumTTL *uint32 `json:"minimumTtl,omitempty"`
}

// BFDProfileStatus is empty; it exists so that the kind has a status
// subresource, as MetalLB's does.
type BFDProfileStatus struct{}

// BFDProfile is a named set of BFD parameters for BGP sessions.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Passive Mode",type=boolean,JSONPath=`.spec.passiveMode`
// +kubebuilder:printcolumn:name="Transmit Interval",type=integer,JSONPath=`.spec.transmitInterval`
// +kubebuilder:printcolumn:name="Receive Interval",type=integer,JSONPath=`.spec.receiveInterval`
// +kubebuilder:printcolumn:name="Multiplier",type=integer,JSONPath=`.spec.detectMultiplier`
type BFDProfile struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   BFDProfileSpec   `json:"spec,omitempty"`
	Status BFDProfileStatus `json:"status,omitempty"`
}

// BFDProfileList is a list of BFDProfile.
//
// +kubebuilder:object:root=true
type BFDProfileList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BFDProfile `json:"items"`
}

func init() {
	register(&BFDProfile{}, &BFDProfileList{})
}
