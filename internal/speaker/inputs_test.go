package speaker

import (
	"net/netip"
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/keeperlb/keeperlb/internal/election"
	"github.com/keeperlb/keeperlb/internal/membership"
)

func ptr[T any](v T) *T { return &v }

func TestServingEndpoints(t *testing.T) {
	slice := func(svc string, eps ...discoveryv1.Endpoint) discoveryv1.EndpointSlice {
		return discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: svc + "-x", Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
			Endpoints:  eps,
		}
	}
	ep := func(node string, ready, serving *bool) discoveryv1.Endpoint {
		e := discoveryv1.Endpoint{Conditions: discoveryv1.EndpointConditions{Ready: ready, Serving: serving}}
		if node != "" {
			e.NodeName = ptr(node)
		}
		return e
	}
	got := servingEndpoints([]discoveryv1.EndpointSlice{
		slice("ready-unset", ep("n2", nil, nil), ep("n1", nil, nil)),
		slice("not-ready", ep("n1", ptr(false), nil), ep("n2", ptr(false), ptr(false))),
		slice("terminating-serving", ep("n3", ptr(false), ptr(true))),
		slice("no-node", ep("", ptr(true), nil)),
		slice("split", ep("n1", ptr(false), nil)),
		slice("split", ep("n2", ptr(true), nil), ep("n2", ptr(true), nil)),
		{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "orphan"}, Endpoints: []discoveryv1.Endpoint{ep("n1", nil, nil)}},
	})
	want := map[string]endpointState{
		"ns/ready-unset":         {serving: true, nodes: []string{"n1", "n2"}},
		"ns/not-ready":           {},
		"ns/terminating-serving": {serving: true, nodes: []string{"n3"}},
		"ns/no-node":             {serving: true},
		"ns/split":               {serving: true, nodes: []string{"n2"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("servingEndpoints =\n%+v\nwant\n%+v", got, want)
	}
}

func TestElectionNodesAndPeers(t *testing.T) {
	nodes := []corev1.Node{
		{ObjectMeta: metav1.ObjectMeta{Name: "n2", Labels: map[string]string{"a": "b"}}, Status: corev1.NodeStatus{
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeNetworkUnavailable, Status: corev1.ConditionTrue}},
			Addresses: []corev1.NodeAddress{
				{Type: corev1.NodeInternalIP, Address: "2001:db8::2"},
				{Type: corev1.NodeExternalIP, Address: "198.18.9.9"},
				{Type: corev1.NodeInternalIP, Address: "198.18.0.2"},
			}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "n1"}, Status: corev1.NodeStatus{
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeNetworkUnavailable, Status: corev1.ConditionFalse}},
			Addresses:  []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "2001:db8::1"}}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "n3"}, Status: corev1.NodeStatus{
			Addresses: []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "not-an-ip"}}}},
	}
	wantNodes := []election.Node{{Name: "n1"}, {Name: "n2", Labels: map[string]string{"a": "b"}, NetworkUnavailable: true}, {Name: "n3"}}
	if got := electionNodes(nodes); !reflect.DeepEqual(got, wantNodes) {
		t.Errorf("electionNodes = %+v, want %+v", got, wantNodes)
	}
	wantPeers := []membership.Peer{
		{Name: "n2", Addr: netip.MustParseAddr("198.18.0.2")},
		{Name: "n1", Addr: netip.MustParseAddr("2001:db8::1")},
	}
	if got := memberPeers(nodes); !reflect.DeepEqual(got, wantPeers) {
		t.Errorf("memberPeers = %+v, want %+v (IPv4 InternalIP first, bad addresses skipped)", got, wantPeers)
	}
}

func TestElectionServices(t *testing.T) {
	lb := func(name string, mods ...func(*corev1.Service)) corev1.Service {
		s := corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, Annotations: map[string]string{"metallb.io/ip-allocated-from-pool": "p"}},
			Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer},
			Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{
				{IP: "198.18.0.10"}, {Hostname: "lb.example"}, {IP: "2001:db8::10"},
			}}},
		}
		for _, m := range mods {
			m(&s)
		}
		return s
	}
	svcs := []corev1.Service{
		lb("web", func(s *corev1.Service) { s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal }),
		lb("cluster-ip", func(s *corev1.Service) { s.Spec.Type = corev1.ServiceTypeClusterIP }),
		lb("other-class", func(s *corev1.Service) { s.Spec.LoadBalancerClass = ptr("example.com/other") }),
		lb("pending", func(s *corev1.Service) { s.Status.LoadBalancer.Ingress = nil }),
		lb("api"),
	}
	eps := map[string]endpointState{"ns/web": {serving: true, nodes: []string{"n1"}}}
	got := electionServices(svcs, eps, "")
	want := []election.Service{
		{Key: "ns/api", IPs: []netip.Addr{netip.MustParseAddr("198.18.0.10"), netip.MustParseAddr("2001:db8::10")}, Pool: "p"},
		{Key: "ns/web", IPs: []netip.Addr{netip.MustParseAddr("198.18.0.10"), netip.MustParseAddr("2001:db8::10")}, Pool: "p",
			LocalTrafficPolicy: true, Serving: true, ServingNodes: []string{"n1"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("electionServices =\n%+v\nwant\n%+v", got, want)
	}
}
