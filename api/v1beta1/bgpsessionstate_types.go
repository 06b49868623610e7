package v1beta1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// BGPSessionStateSpec is empty: the object carries only status.
type BGPSessionStateSpec struct{}

// BGPSessionStateStatus is one BGP session as seen from one node.
type BGPSessionStateStatus struct {
	// Node is the node whose speaker holds the session.
	// +optional
	Node string `json:"node,omitempty"`
	// Peer is the peer's address.
	// +optional
	Peer string `json:"peer,omitempty"`
	// VRF is the session's VRF; empty for the default.
	// +optional
	VRF string `json:"vrf,omitempty"`
	// BGPStatus is the BGP finite-state-machine state, such as Established
	// or Active.
	// +optional
	BGPStatus string `json:"bgpStatus,omitempty"`
	// BFDStatus is the BFD session state (Up, Down, Init, AdminDown), or
	// N/A without BFD.
	// +optional
	BFDStatus string `json:"bfdStatus,omitempty"`
	// Reason is why the session is not Established: ConnectionRefused,
	// AuthenticationFailed, ASNMismatch, HoldTimerExpired and so on. It is
	// a KeeperLB addition.
	// +optional
	Reason string `json:"reason,omitempty"`
	// Message explains Reason in words.
	// +optional
	Message string `json:"message,omitempty"`
}

// BGPSessionState is written by each speaker for each BGP session it holds,
// so that `kubectl get bgpsessionstates` shows every node's sessions.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Node",type=string,JSONPath=`.status.node`
// +kubebuilder:printcolumn:name="Peer",type=string,JSONPath=`.status.peer`
// +kubebuilder:printcolumn:name="VRF",type=string,JSONPath=`.status.vrf`
// +kubebuilder:printcolumn:name="BGP",type=string,JSONPath=`.status.bgpStatus`
// +kubebuilder:printcolumn:name="BFD",type=string,JSONPath=`.status.bfdStatus`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.reason`
type BGPSessionState struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   BGPSessionStateSpec   `json:"spec,omitempty"`
	Status BGPSessionStateStatus `json:"status,omitempty"`
}

// BGPSessionStateList is a list of BGPSessionState.
//
// +kubebuilder:object:root=true
type BGPSessionStateList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BGPSessionState `json:"items"`
}

func init() {
	register(&BGPSessionState{}, &BGPSessionStateList{})
}
