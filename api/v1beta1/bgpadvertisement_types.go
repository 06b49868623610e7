package v1beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// BGPAdvertisementSpec says how the addresses of some pools are advertised
// to BGP peers. An empty list selects everything.
//
// Aggregation shortens the advertised prefixes; Services cannot then be
// selected one by one, so serviceSelectors require the default lengths.
//
// +kubebuilder:validation:XValidation:rule="!has(self.serviceSelectors) || size(self.serviceSelectors) == 0 || ((!has(self.aggregationLength) || self.aggregationLength == 32) && (!has(self.aggregationLengthV6) || self.aggregationLengthV6 == 128))",message="serviceSelectors can only be used with the default aggregationLength (32) and aggregationLengthV6 (128)",fieldPath=".serviceSelectors"
type BGPAdvertisementSpec struct {
	// AggregationLength is the prefix length advertised for IPv4 addresses.
	// +optional
	// +kubebuilder:default:=32
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=32
	AggregationLength *int32 `json:"aggregationLength,omitempty"`

	// AggregationLengthV6 is the prefix length advertised for IPv6 addresses.
	// +optional
	// +kubebuilder:default:=128
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=128
	AggregationLengthV6 *int32 `json:"aggregationLengthV6,omitempty"`

	// LocalPref is the BGP LOCAL_PREF attribute sent to iBGP peers.
	// +optional
	LocalPref uint32 `json:"localPref,omitempty"`

	// Communities attaches BGP communities: "a:b" with 16-bit parts,
	// "large:a:b:c" with 32-bit parts, or the name of an alias defined in a
	// Community object.
	// +optional
	Communities []string `json:"communities,omitempty"`

	// IPAddressPools names the pools to advertise.
	// +optional
	IPAddressPools []string `json:"ipAddressPools,omitempty"`

	// IPAddressPoolSelectors selects pools to advertise by label.
	// +optional
	IPAddressPoolSelectors []metav1.LabelSelector `json:"ipAddressPoolSelectors,omitempty"`

	// NodeSelectors limits the nodes that advertise.
	// +optional
	NodeSelectors []metav1.LabelSelector `json:"nodeSelectors,omitempty"`

	// Peers names the BGPPeers to advertise to; empty means all of them.
	// +optional
	Peers []string `json:"peers,omitempty"`

	// ServiceSelectors limits the Services advertised.
	// +optional
	ServiceSelectors []metav1.LabelSelector `json:"serviceSelectors,omitempty"`
}

// BGPAdvertisementStatus is empty; it exists so that the kind has a status
// subresource, as MetalLB's does.
type BGPAdvertisementStatus struct{}

// BGPAdvertisement makes the addresses of some pools reachable by advertising
// them to BGP peers.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="IPAddressPools",type=string,JSONPath=`.spec.ipAddressPools`
// +kubebuilder:printcolumn:name="IPAddressPool Selectors",type=string,JSONPath=`.spec.ipAddressPoolSelectors`
// +kubebuilder:printcolumn:name="Peers",type=string,JSONPath=`.spec.peers`
// +kubebuilder:printcolumn:name="Node Selectors",type=string,JSONPath=`.spec.nodeSelectors`,priority=10
type BGPAdvertisement struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   BGPAdvertisementSpec   `json:"spec,omitempty"`
	Status BGPAdvertisementStatus `json:"status,omitempty"`
}

// BGPAdvertisementList is a list of BGPAdvertisement.
//
// +kubebuilder:object:root=true
type BGPAdvertisementList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BGPAdvertisement `json:"items"`
}

func init() {
	register(&BGPAdvertisement{}, &BGPAdvertisementList{})
}
