package v1beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// CommunitySpec defines names for BGP community values.
type CommunitySpec struct {
	// Communities lists the aliases.
	// +optional
	Communities []CommunityAlias `json:"communities,omitempty"`
}

// CommunityAlias gives a BGP community value a name that BGPAdvertisements
// can use instead of the value.
type CommunityAlias struct {
	// Name is the alias.
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name,omitempty"`
	// Value is "a:b" with 16-bit parts or "large:a:b:c" with 32-bit parts.
	// +kubebuilder:validation:MinLength=1
	Value string `json:"value,omitempty"`
}

// CommunityStatus is empty; it exists so that the kind has a status
// subresource, as MetalLB's does.
type CommunityStatus struct{}

// Community is a set of BGP community aliases.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
type Community struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   CommunitySpec   `json:"spec,omitempty"`
	Status CommunityStatus `json:"status,omitempty"`
}

// CommunityList is a list of Community.
//
// +kubebuilder:object:root=true
type CommunityList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Community `json:"items"`
}

func init() {
	register(&Community{}, &CommunityList{})
}
