package speaker

import (
	"net/netip"
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/keeperlb/keeperlb/internal/config"
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
		{Key: "ns/api", IPs: []netip.Addr{netip.MustParseAddr("198.18.0.10"), netip.MustParseAddr("2001:db8::10")}},
		{Key: "ns/web", IPs: []netip.Addr{netip.MustParseAddr("198.18.0.10"), netip.MustParseAddr("2001:db8::10")},
			LocalTrafficPolicy: true, Serving: true, ServingNodes: []string{"n1"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("electionServices =\n%+v\nwant\n%+v", got, want)
	}
}

// TestPoolComesFromTheAddress checks a tenant's attempt to steer its
// announcement: a Service whose pool annotation (which its owner may edit)
// names another pool is still announced by the advertisement of the pool
// that holds its address, from that advertisement's nodes, over layer 2
// and BGP alike.
func TestPoolComesFromTheAddress(t *testing.T) {
	rng := func(a, b string) config.Range {
		return config.Range{First: netip.MustParseAddr(a), Last: netip.MustParseAddr(b)}
	}
	onNode := func(n string) []labels.Selector {
		return []labels.Selector{labels.SelectorFromSet(labels.Set{"kubernetes.io/hostname": n})}
	}
	cfg := &config.Config{
		Pools: []*config.Pool{
			{Name: "p", Ranges: []config.Range{rng("198.18.0.0", "198.18.0.255")}},
			{Name: "q", Ranges: []config.Range{rng("198.19.0.0", "198.19.0.255")}},
		},
		L2Advertisements: []*config.L2Advertisement{
			{Name: "ap", Pools: []string{"p"}, NodeSelectors: onNode("n1")},
			{Name: "aq", Pools: []string{"q"}, NodeSelectors: onNode("n2")},
		},
	}
	svc := corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "tenant", Name: "web",
			Annotations: map[string]string{"metallb.io/ip-allocated-from-pool": "q"}},
		Spec:   corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer},
		Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: "198.18.0.10"}}}},
	}
	var nodes []election.Node
	for _, n := range []string{"n1", "n2"} {
		nodes = append(nodes, election.Node{Name: n, Labels: map[string]string{"kubernetes.io/hostname": n}})
	}
	services := electionServices([]corev1.Service{svc}, map[string]endpointState{"tenant/web": {serving: true}}, "")
	res := election.L2(election.L2Input{Config: cfg, Nodes: nodes, Live: []string{"n1", "n2"}, Services: services})
	if len(res.Announcements) != 1 || res.Announcements[0].Node != "n1" {
		t.Errorf("announcements %+v, want 198.18.0.10 on n1 (pool p's advertisement), whatever the annotation says", res.Announcements)
	}
	if got := cfg.PoolOf(netip.MustParseAddr("198.18.0.10")); got == nil || got.Name != "p" {
		t.Errorf("PoolOf(198.18.0.10) = %v, want p", got)
	}
}
