package speaker

import (
	"cmp"
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"

	"github.com/keeperlb/keeperlb/internal/election"
	"github.com/keeperlb/keeperlb/internal/membership"
	"github.com/keeperlb/keeperlb/internal/request"
)

// The functions in this file turn Kubernetes objects into election's inputs.
// They are pure so that the rules (which endpoint serves, which node is
// unavailable, which Service is ours) are table-tested without a cluster.

// electionNodes converts Nodes, sorted by name.
func electionNodes(nodes []corev1.Node) []election.Node {
	out := make([]election.Node, 0, len(nodes))
	for i := range nodes {
		n := &nodes[i]
		en := election.Node{Name: n.Name, Labels: n.Labels}
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeNetworkUnavailable && c.Status == corev1.ConditionTrue {
				en.NetworkUnavailable = true
			}
		}
		out = append(out, en)
	}
	slices.SortFunc(out, func(a, b election.Node) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// memberPeers gives each Node's heartbeat address: its first IPv4
// InternalIP, else its first InternalIP. IPv4 first because a dual-stack
// cluster always has it and every speaker must pick the same family.
func memberPeers(nodes []corev1.Node) []membership.Peer {
	var out []membership.Peer
	for i := range nodes {
		if a := nodeAddress(&nodes[i]); a.IsValid() {
			out = append(out, membership.Peer{Name: nodes[i].Name, Addr: a})
		}
	}
	return out
}

func nodeAddress(n *corev1.Node) netip.Addr {
	var first netip.Addr
	for _, a := range n.Status.Addresses {
		if a.Type != corev1.NodeInternalIP {
			continue
		}
		ip, err := netip.ParseAddr(a.Address)
		if err != nil {
			continue
		}
		ip = ip.Unmap()
		if ip.Is4() {
			return ip
		}
		if !first.IsValid() {
			first = ip
		}
	}
	return first
}

// endpointState is what the slices of one Service say.
type endpointState struct {
	serving bool
	nodes   []string // nodes with a serving endpoint, sorted
}

// servingEndpoints groups EndpointSlices by Service key and keeps, for each,
// whether any endpoint serves and on which nodes. An endpoint serves when its
// ready condition is unset or true, or its serving condition is true (a
// terminating Pod that still serves keeps its node announcing until it
// stops).
func servingEndpoints(slices_ []discoveryv1.EndpointSlice) map[string]endpointState {
	out := map[string]endpointState{}
	for i := range slices_ {
		s := &slices_[i]
		name := s.Labels[discoveryv1.LabelServiceName]
		if name == "" {
			continue
		}
		key := s.Namespace + "/" + name
		st := out[key]
		for _, ep := range s.Endpoints {
			if !serving(ep.Conditions) {
				continue
			}
			st.serving = true
			if ep.NodeName != nil && *ep.NodeName != "" {
				st.nodes = append(st.nodes, *ep.NodeName)
			}
		}
		out[key] = st
	}
	for k, st := range out {
		slices.Sort(st.nodes)
		st.nodes = slices.Compact(st.nodes)
		out[k] = st
	}
	return out
}

func serving(c discoveryv1.EndpointConditions) bool {
	if c.Serving != nil && *c.Serving {
		return true
	}
	return c.Ready == nil || *c.Ready
}

// electionServices keeps the LoadBalancer Services handled by lbClass that
// have IPs, with their endpoints, sorted by key.
func electionServices(svcs []corev1.Service, eps map[string]endpointState, lbClass string) []election.Service {
	var out []election.Service
	for i := range svcs {
		s := &svcs[i]
		if !request.Managed(s, lbClass) {
			continue
		}
		ips := ingressIPs(s)
		if len(ips) == 0 {
			continue
		}
		key := s.Namespace + "/" + s.Name
		st := eps[key]
		out = append(out, election.Service{
			Key:                key,
			IPs:                ips,
			Labels:             s.Labels,
			LocalTrafficPolicy: s.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal,
			Serving:            st.serving,
			ServingNodes:       st.nodes,
		})
	}
	slices.SortFunc(out, func(a, b election.Service) int { return cmp.Compare(a.Key, b.Key) })
	return out
}

// ingressIPs parses status.loadBalancer.ingress, skipping hostnames and
// anything unparsable (which the controller never writes).
func ingressIPs(s *corev1.Service) []netip.Addr {
	var out []netip.Addr
	for _, in := range s.Status.LoadBalancer.Ingress {
		if ip, err := netip.ParseAddr(in.IP); err == nil {
			out = append(out, ip.Unmap())
		}
	}
	return out
}
