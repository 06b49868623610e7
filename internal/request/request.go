// Package request turns a LoadBalancer Service into an allocation request
// for the allocator: it reads MetalLB's annotations (both spellings), the
// requested addresses, the families and the ports, and reports what it
// cannot understand with the field to fix. It is pure, so that it can be
// table-tested and fuzzed without a cluster.
package request

import (
	"fmt"
	"net/netip"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/keeperlb/keeperlb/internal/ipam"
)

// Service annotations read and written by the controller. MetalLB's older
// "metallb.universe.tf/" spellings of the first three are read too.
const (
	// AnnotationLoadBalancerIPs requests specific addresses, comma-separated;
	// it is the only way to request one address per family.
	AnnotationLoadBalancerIPs = "metallb.io/loadBalancerIPs"
	// AnnotationAddressPool names the pool to allocate from.
	AnnotationAddressPool = "metallb.io/address-pool"
	// AnnotationAllowSharedIP is the sharing key: Services with the same key
	// and compatible ports may share an address.
	AnnotationAllowSharedIP = "metallb.io/allow-shared-ip"
	// AnnotationAllocatedFromPool is written by the controller: the pool the
	// Service's addresses came from.
	AnnotationAllocatedFromPool = "metallb.io/ip-allocated-from-pool"

	legacyPrefix  = "metallb.universe.tf/"
	currentPrefix = "metallb.io/"
)

// Error says which field of a Service could not be understood.
type Error struct {
	// Field is the path of the offending field, e.g.
	// metadata.annotations[metallb.io/loadBalancerIPs].
	Field string
	// Message says what is wrong and how to fix it.
	Message string
}

func (e *Error) Error() string { return e.Field + ": " + e.Message }

// Managed reports whether the controller owns s: a LoadBalancer Service of
// the configured class (with no class configured, only Services without a
// class are ours, so that another load balancer can run beside KeeperLB).
func Managed(s *corev1.Service, lbClass string) bool {
	return ManagedBy(s.Spec.Type, s.Spec.LoadBalancerClass, lbClass)
}

// ManagedBy is Managed on the two fields that decide it.
func ManagedBy(t corev1.ServiceType, class *string, lbClass string) bool {
	if t != corev1.ServiceTypeLoadBalancer {
		return false
	}
	if class == nil {
		return lbClass == ""
	}
	return *class == lbClass
}

// annotation returns the value of a metallb.io annotation, falling back to
// its legacy spelling. Both spellings set to different values is an error:
// guessing which one the user meant could move a live address.
func annotation(s *corev1.Service, name string) (string, *Error) {
	v, ok := s.Annotations[name]
	legacyName := legacyPrefix + strings.TrimPrefix(name, currentPrefix)
	lv, lok := s.Annotations[legacyName]
	switch {
	case ok && lok && strings.TrimSpace(v) != strings.TrimSpace(lv):
		return "", &Error{
			Field:   annotationField(name),
			Message: fmt.Sprintf("conflicts with %s (%q vs %q); remove one of them", legacyName, v, lv),
		}
	case ok:
		return strings.TrimSpace(v), nil
	case lok:
		return strings.TrimSpace(lv), nil
	}
	return "", nil
}

func annotationField(name string) string { return "metadata.annotations[" + name + "]" }

// FromService translates a Service into an allocation request. The caller
// supplies the labels of the Service's namespace. The error is an *Error.
func FromService(s *corev1.Service, namespaceLabels map[string]string) (*ipam.Service, error) {
	req := &ipam.Service{
		Key:             s.Namespace + "/" + s.Name,
		Namespace:       s.Namespace,
		NamespaceLabels: namespaceLabels,
		Labels:          s.Labels,
	}

	fams, err := families(s)
	if err != nil {
		return nil, err
	}
	req.Families = fams
	req.Policy = ipam.SingleStack
	if p := s.Spec.IPFamilyPolicy; p != nil {
		switch *p {
		case corev1.IPFamilyPolicySingleStack:
		case corev1.IPFamilyPolicyPreferDualStack:
			req.Policy = ipam.PreferDualStack
		case corev1.IPFamilyPolicyRequireDualStack:
			req.Policy = ipam.RequireDualStack
		default:
			return nil, &Error{Field: "spec.ipFamilyPolicy", Message: fmt.Sprintf("unknown policy %q", *p)}
		}
	}

	if req.RequestedIPs, err = requestedIPs(s); err != nil {
		return nil, err
	}
	pool, perr := annotation(s, AnnotationAddressPool)
	if perr != nil {
		return nil, perr
	}
	req.Pool = pool
	key, perr := annotation(s, AnnotationAllowSharedIP)
	if perr != nil {
		return nil, perr
	}
	req.SharingKey = key
	if s.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal {
		// Traffic only reaches local endpoints, so Services sharing an
		// address must select the same pods, or one of them would be
		// announced from a node without its endpoints.
		req.BackendKey = labels.Set(s.Spec.Selector).String()
	}
	for _, p := range s.Spec.Ports {
		proto := p.Protocol
		if proto == "" {
			proto = corev1.ProtocolTCP
		}
		req.Ports = append(req.Ports, ipam.Port{Protocol: string(proto), Port: p.Port})
	}
	req.Current = currentIPs(s)
	return req, nil
}

func families(s *corev1.Service) ([]ipam.Family, error) {
	var out []ipam.Family
	for i, f := range s.Spec.IPFamilies {
		switch f {
		case corev1.IPv4Protocol:
			out = append(out, ipam.IPv4)
		case corev1.IPv6Protocol:
			out = append(out, ipam.IPv6)
		default:
			return nil, &Error{Field: fmt.Sprintf("spec.ipFamilies[%d]", i), Message: fmt.Sprintf("unknown IP family %q", f)}
		}
	}
	if len(out) == 0 {
		// The API server always fills ipFamilies; an empty list means a
		// headless selector-less Service or an old object: assume IPv4,
		// the API server's own default.
		out = []ipam.Family{ipam.IPv4}
	}
	return out, nil
}

// requestedIPs reads the requested addresses from the annotation (either
// spelling) or spec.loadBalancerIP; setting both is an error because they
// could disagree.
func requestedIPs(s *corev1.Service) ([]netip.Addr, error) {
	ann, perr := annotation(s, AnnotationLoadBalancerIPs)
	if perr != nil {
		return nil, perr
	}
	spec := strings.TrimSpace(s.Spec.LoadBalancerIP)
	switch {
	case ann != "" && spec != "":
		return nil, &Error{
			Field:   "spec.loadBalancerIP",
			Message: fmt.Sprintf("set together with the %s annotation; use only the annotation", AnnotationLoadBalancerIPs),
		}
	case spec != "":
		ip, err := parseIP(spec)
		if err != nil {
			return nil, &Error{Field: "spec.loadBalancerIP", Message: err.Error()}
		}
		return []netip.Addr{ip}, nil
	case ann == "":
		return nil, nil
	}
	var out []netip.Addr
	for i, part := range strings.Split(ann, ",") {
		ip, err := parseIP(strings.TrimSpace(part))
		if err != nil {
			return nil, &Error{
				Field:   annotationField(AnnotationLoadBalancerIPs),
				Message: fmt.Sprintf("entry %d: %v", i, err),
			}
		}
		out = append(out, ip)
	}
	return out, nil
}

func parseIP(s string) (netip.Addr, error) {
	ip, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%q is not an IP address", s)
	}
	if ip.Zone() != "" || ip.Is4In6() {
		return netip.Addr{}, fmt.Errorf("%q is not a plain IPv4 or IPv6 address", s)
	}
	return ip, nil
}

// currentIPs returns the parsable addresses in the Service's status, so that
// a restarted controller can keep them.
func currentIPs(s *corev1.Service) []netip.Addr {
	var out []netip.Addr
	for _, ing := range s.Status.LoadBalancer.Ingress {
		if ip, err := netip.ParseAddr(ing.IP); err == nil {
			out = append(out, ip)
		}
	}
	return out
}

// Fallback builds a request for a Service whose annotations or
// loadBalancerIP could not be parsed, without them, so that the addresses it
// already holds can be kept while the user fixes the Service. It returns nil
// when even that fails.
func Fallback(s *corev1.Service, namespaceLabels map[string]string) *ipam.Service {
	c := s.DeepCopy()
	c.Spec.LoadBalancerIP = ""
	for _, name := range []string{AnnotationLoadBalancerIPs, AnnotationAddressPool, AnnotationAllowSharedIP} {
		if _, err := annotation(c, name); err != nil {
			delete(c.Annotations, name)
			delete(c.Annotations, legacyPrefix+strings.TrimPrefix(name, currentPrefix))
		}
	}
	delete(c.Annotations, AnnotationLoadBalancerIPs)
	delete(c.Annotations, legacyPrefix+strings.TrimPrefix(AnnotationLoadBalancerIPs, currentPrefix))
	req, err := FromService(c, namespaceLabels)
	if err != nil {
		return nil
	}
	return req
}
