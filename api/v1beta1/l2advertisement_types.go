package v1beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// L2AdvertisementSpec says which pools are announced over layer 2, from which
// nodes and on which interfaces. An empty list selects everything.
type L2AdvertisementSpec struct {
	// IPAddressPools names the pools to announce.
	// +optional
	IPAddressPools []string `json:"ipAddressPools,omitempty"`
	// IPAddressPoolSelectors selects pools to announce by label.
	// +optional
	IPAddressPoolSelectors []metav1.LabelSelector `json:"ipAddressPoolSelectors,omitempty"`
	// NodeSelectors limits the nodes that may announce.
	// +optional
	NodeSelectors []metav1.LabelSelector `json:"nodeSelectors,omitempty"`
	// Interfaces limits the interfaces that answer ARP and NDP.
	// +optional
	Interfaces []string `json:"interfaces,omitempty"`
	// ServiceSelectors limits the Services announced.
	// +optional
	ServiceSelectors []metav1.LabelSelector `json:"serviceSelectors,omitempty"`
}

// L2AdvertisementStatus is empty; it exists so that the kind has a status
// subresource, as MetalLB's does.
type L2AdvertisementStatus struct{}

// L2Advertisement makes the addresses of some pools reachable by answering
// ARP and NDP from one elected node.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="IPAddressPools",type=string,JSONPath=`.spec.ipAddressPools`
// +kubebuilder:printcolumn:name="IPAddressPool Selectors",type=string,JSONPath=`.spec.ipAddressPoolSelectors`
// +kubebuilder:printcolumn:name="Interfaces",type=string,JSONPath=`.spec.interfaces`
// +kubebuilder:printcolumn:name="Node Selectors",type=string,JSONPath=`.spec.nodeSelectors`,priority=10
type L2Advertisement struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   L2AdvertisementSpec   `json:"spec,omitempty"`
	Status L2AdvertisementStatus `json:"status,omitempty"`
}

// L2AdvertisementList is a list of L2Advertisement.
//
// +kubebuilder:object:root=true
type L2AdvertisementList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []L2Advertisement `json:"items"`
}

func init() {
	register(&L2Advertisement{}, &L2AdvertisementList{})
}
