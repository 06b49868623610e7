package v1beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// IPAddressPoolSpec says which addresses a pool holds and which Services may
// take them.
type IPAddressPoolSpec struct {
	// Addresses lists the pool's addresses, each a CIDR ("198.18.0.0/24",
	// "2001:db8::/64") or an inclusive range ("198.18.0.10-198.18.0.20").
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:items:MinLength=1
	Addresses []string `json:"addresses"`

	// AutoAssign lets the controller hand out this pool's addresses to
	// Services that do not ask for the pool by name.
	// +optional
	// +kubebuilder:default:=true
	AutoAssign *bool `json:"autoAssign,omitempty"`

	// AvoidBuggyIPs keeps IPv4 addresses ending in .0 and .255 out of
	// allocation, for clients whose stacks mistake them for broadcast.
	// +optional
	// +kubebuilder:default:=false
	AvoidBuggyIPs bool `json:"avoidBuggyIPs,omitempty"`

	// ServiceAllocation restricts the pool to some namespaces and Services and
	// orders it among the pools a Service may use.
	// +optional
	ServiceAllocation *ServiceAllocation `json:"serviceAllocation,omitempty"`
}

// ServiceAllocation limits which Services a pool serves and ranks the pool
// among those that match.
type ServiceAllocation struct {
	// Priority orders matching pools: lower numbers are tried first, and 0
	// (unset) comes after every positive priority.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Priority int `json:"priority,omitempty"`

	// Namespaces lists namespaces whose Services may use the pool.
	// +optional
	Namespaces []string `json:"namespaces,omitempty"`

	// NamespaceSelectors selects, by label, namespaces whose Services may use
	// the pool.
	// +optional
	NamespaceSelectors []metav1.LabelSelector `json:"namespaceSelectors,omitempty"`

	// ServiceSelectors selects, by label, Services that may use the pool.
	// +optional
	ServiceSelectors []metav1.LabelSelector `json:"serviceSelectors,omitempty"`
}

// IPAddressPoolStatus counts the pool's addresses per family. Counts larger
// than an int64 (an IPv6 /64 or wider) saturate at the int64 maximum.
type IPAddressPoolStatus struct {
	// AssignedIPv4 is the number of IPv4 addresses held by Services.
	AssignedIPv4 int64 `json:"assignedIPv4"`
	// AssignedIPv6 is the number of IPv6 addresses held by Services.
	AssignedIPv6 int64 `json:"assignedIPv6"`
	// AvailableIPv4 is the number of IPv4 addresses still free.
	AvailableIPv4 int64 `json:"availableIPv4"`
	// AvailableIPv6 is the number of IPv6 addresses still free.
	AvailableIPv6 int64 `json:"availableIPv6"`
}

// IPAddressPool is a set of addresses that the controller hands out to
// LoadBalancer Services.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Auto Assign",type=boolean,JSONPath=`.spec.autoAssign`
// +kubebuilder:printcolumn:name="Avoid Buggy IPs",type=boolean,JSONPath=`.spec.avoidBuggyIPs`
// +kubebuilder:printcolumn:name="Addresses",type=string,JSONPath=`.spec.addresses`
// +kubebuilder:printcolumn:name="Assigned v4",type=integer,JSONPath=`.status.assignedIPv4`,priority=1
// +kubebuilder:printcolumn:name="Available v4",type=integer,JSONPath=`.status.availableIPv4`,priority=1
// +kubebuilder:printcolumn:name="Assigned v6",type=integer,JSONPath=`.status.assignedIPv6`,priority=1
// +kubebuilder:printcolumn:name="Available v6",type=integer,JSONPath=`.status.availableIPv6`,priority=1
type IPAddressPool struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   IPAddressPoolSpec   `json:"spec"`
	Status IPAddressPoolStatus `json:"status,omitempty"`
}

// IPAddressPoolList is a list of IPAddressPool.
//
// +kubebuilder:object:root=true
type IPAddressPoolList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []IPAddressPool `json:"items"`
}

func init() {
	register(&IPAddressPool{}, &IPAddressPoolList{})
}
