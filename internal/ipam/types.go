package ipam

import (
	"net/netip"
	"strconv"
)

// Family is an IP address family.
type Family int

const (
	// IPv4 is the IPv4 address family.
	IPv4 Family = iota
	// IPv6 is the IPv6 address family.
	IPv6
)

// String returns the spelling Kubernetes uses in spec.ipFamilies.
func (f Family) String() string {
	switch f {
	case IPv4:
		return "IPv4"
	case IPv6:
		return "IPv6"
	}
	return "Family(" + strconv.Itoa(int(f)) + ")"
}

func (f Family) valid() bool { return f == IPv4 || f == IPv6 }

// familyOf classifies an address; an IPv4-mapped IPv6 address stays IPv6
// because that is how Kubernetes would treat it in ipFamilies.
func familyOf(a netip.Addr) Family {
	if a.Is4() {
		return IPv4
	}
	return IPv6
}

// FamilyPolicy mirrors a Service's spec.ipFamilyPolicy.
type FamilyPolicy int

const (
	// SingleStack gives the Service an address of its primary family only.
	SingleStack FamilyPolicy = iota
	// PreferDualStack gives both families when one pool can, otherwise the
	// primary family alone.
	PreferDualStack
	// RequireDualStack gives both families from one pool or nothing.
	RequireDualStack
)

// String returns the spelling Kubernetes uses in spec.ipFamilyPolicy.
func (p FamilyPolicy) String() string {
	switch p {
	case SingleStack:
		return "SingleStack"
	case PreferDualStack:
		return "PreferDualStack"
	case RequireDualStack:
		return "RequireDualStack"
	}
	return "FamilyPolicy(" + strconv.Itoa(int(p)) + ")"
}

// Port is one (protocol, port) pair a Service exposes; two Services can
// share an address only if none of their pairs coincide.
type Port struct {
	// Protocol is the Kubernetes protocol name, compared exactly ("TCP").
	Protocol string
	// Port is the service port number.
	Port int32
}

// String returns "TCP/80", the form used in error messages.
func (p Port) String() string { return p.Protocol + "/" + strconv.Itoa(int(p.Port)) }

// Service is everything the allocator needs to know about one Service.
// Ensure copies what it keeps, so the caller may reuse the value.
type Service struct {
	// Key is "namespace/name" and identifies the Service.
	Key string
	// Namespace is matched against serviceAllocation.namespaces.
	Namespace string
	// NamespaceLabels are the namespace's labels, matched against
	// serviceAllocation.namespaceSelectors.
	NamespaceLabels map[string]string
	// Labels are the Service's labels, matched against
	// serviceAllocation.serviceSelectors.
	Labels map[string]string
	// Families is spec.ipFamilies, primary first; one or two entries.
	Families []Family
	// Policy is spec.ipFamilyPolicy.
	Policy FamilyPolicy
	// RequestedIPs are the addresses asked for by annotation or
	// spec.loadBalancerIP, already parsed; empty when none.
	RequestedIPs []netip.Addr
	// Pool is the pool named by the address-pool annotation, "" if none.
	Pool string
	// SharingKey is the allow-shared-ip annotation, "" if none.
	SharingKey string
	// BackendKey is "" for externalTrafficPolicy Cluster and the pod
	// selector for Local, so that the two never share an address.
	BackendKey string
	// Ports are the Service's (protocol, port) pairs.
	Ports []Port
	// Current are the addresses in the Service's status; they let a
	// restarted controller keep every address it handed out before.
	Current []netip.Addr
}

// Assignment is what a Service holds.
type Assignment struct {
	// Pool is the name of the pool all IPs come from.
	Pool string
	// IPs are ordered as the Service's Families.
	IPs []netip.Addr
}

// Usage counts distinct addresses of one pool. Counts saturate at
// math.MaxUint64, which an IPv6 /64 already reaches.
type Usage struct {
	// AssignedV4 is the number of IPv4 addresses held by some Service.
	AssignedV4 uint64
	// AvailableV4 is the number of IPv4 addresses that can still be handed
	// out (avoidBuggyIPs exclusions are not counted).
	AvailableV4 uint64
	// AssignedV6 is the number of IPv6 addresses held by some Service.
	AssignedV6 uint64
	// AvailableV6 is the number of IPv6 addresses that can still be handed
	// out.
	AvailableV6 uint64
	// Services is the number of Services holding addresses of the pool
	// (Services sharing an address count once each).
	Services uint64
}

// TotalV4 is the number of assignable IPv4 addresses, saturating.
func (u Usage) TotalV4() uint64 { return satAdd(u.AssignedV4, u.AvailableV4) }

// TotalV6 is the number of assignable IPv6 addresses, saturating.
func (u Usage) TotalV6() uint64 { return satAdd(u.AssignedV6, u.AvailableV6) }

// Assigned is the number of addresses in use in both families, saturating.
func (u Usage) Assigned() uint64 { return satAdd(u.AssignedV4, u.AssignedV6) }

// Total is the number of assignable addresses in both families,
// saturating.
func (u Usage) Total() uint64 { return satAdd(u.TotalV4(), u.TotalV6()) }

func satAdd(a, b uint64) uint64 {
	if s := a + b; s >= a {
		return s
	}
	return ^uint64(0)
}
