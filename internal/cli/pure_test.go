package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/keeperlb/keeperlb/api/v1beta1"
	"github.com/keeperlb/keeperlb/internal/config"
	"github.com/keeperlb/keeperlb/internal/controller"
	"github.com/keeperlb/keeperlb/internal/request"
)

// testConfig parses pools for the explain tests.
func testConfig(t *testing.T, pools ...v1beta1.IPAddressPool) *config.Config {
	t.Helper()
	cfg, err := config.Parse(config.Resources{Pools: pools, L2Advs: []v1beta1.L2Advertisement{
		{ObjectMeta: metav1.ObjectMeta{Name: "l2"}, Spec: v1beta1.L2AdvertisementSpec{
			IPAddressPools: []string{"open"}, NodeSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"zone": "a"}}},
		}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func pool(name string, addrs []string, mutate ...func(*v1beta1.IPAddressPool)) v1beta1.IPAddressPool {
	p := v1beta1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1beta1.IPAddressPoolSpec{Addresses: addrs}}
	for _, m := range mutate {
		m(&p)
	}
	return p
}

func lbService(mutate ...func(*corev1.Service)) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web", Labels: map[string]string{"tier": "front"}},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, IPFamilies: []corev1.IPFamily{corev1.IPv4Protocol}},
	}
	for _, m := range mutate {
		m(s)
	}
	return s
}

func TestCandidatePools(t *testing.T) {
	no := false
	cfg := testConfig(t,
		pool("open", []string{"198.18.0.0/24"}),
		pool("v6only", []string{"2001:db8::/120"}),
		pool("manual", []string{"198.18.1.0/24"}, func(p *v1beta1.IPAddressPool) { p.Spec.AutoAssign = &no }),
		pool("teams", []string{"198.18.2.0/24", "2001:db8:2::/120"}, func(p *v1beta1.IPAddressPool) {
			p.Spec.ServiceAllocation = &v1beta1.ServiceAllocation{Priority: 5, Namespaces: []string{"shop"}}
		}),
		pool("other-ns", []string{"198.18.3.0/24"}, func(p *v1beta1.IPAddressPool) {
			p.Spec.ServiceAllocation = &v1beta1.ServiceAllocation{Namespaces: []string{"bank"}}
		}),
		pool("buggy", []string{"198.18.4.0/24"}, func(p *v1beta1.IPAddressPool) { p.Spec.AvoidBuggyIPs = true }),
	)
	type want struct {
		eligible bool
		rank     int
		why      string
	}
	for _, tc := range []struct {
		name string
		svc  *corev1.Service
		want map[string]want
	}{
		{
			name: "automatic IPv4",
			svc:  lbService(),
			want: map[string]want{
				"teams":    {true, 1, "priority 5"},
				"buggy":    {true, 2, "open to every Service"},
				"open":     {true, 3, "open to every Service"},
				"v6only":   {false, 0, "no IPv4 addresses"},
				"manual":   {false, 0, "autoAssign is false"},
				"other-ns": {false, 0, "does not admit"},
			},
		},
		{
			name: "require dual-stack",
			svc: lbService(func(s *corev1.Service) {
				p := corev1.IPFamilyPolicyRequireDualStack
				s.Spec.IPFamilyPolicy = &p
				s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol, corev1.IPv4Protocol}
			}),
			want: map[string]want{
				"teams":  {true, 1, "priority 5"},
				"open":   {false, 0, "no IPv6 addresses"},
				"v6only": {false, 0, "no IPv4 addresses"},
			},
		},
		{
			name: "pool named by annotation, autoAssign ignored",
			svc: lbService(func(s *corev1.Service) {
				s.Annotations = map[string]string{request.AnnotationAddressPool: "manual"}
			}),
			want: map[string]want{
				"manual": {true, 0, "named by the Service"},
				"open":   {false, 0, `names pool "manual"`},
			},
		},
		{
			name: "requested address",
			svc: lbService(func(s *corev1.Service) {
				s.Annotations = map[string]string{request.AnnotationLoadBalancerIPs: "198.18.1.7"}
			}),
			want: map[string]want{
				"manual": {true, 0, "holds the requested 198.18.1.7"},
				"open":   {false, 0, "does not hold the requested 198.18.1.7"},
			},
		},
		{
			name: "requested .0 in an avoidBuggyIPs pool",
			svc:  lbService(func(s *corev1.Service) { s.Spec.LoadBalancerIP = "198.18.4.0" }),
			want: map[string]want{"buggy": {false, 0, "avoidBuggyIPs"}},
		},
		{
			name: "requested address in a pool that does not admit the namespace",
			svc:  lbService(func(s *corev1.Service) { s.Spec.LoadBalancerIP = "198.18.3.9" }),
			want: map[string]want{"other-ns": {false, 0, "does not admit this Service"}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := request.FromService(tc.svc, nil)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]poolCandidate{}
			for _, c := range candidatePools(cfg, req, true) {
				got[c.Name] = c
			}
			if len(got) != len(cfg.Pools) {
				t.Errorf("got %d pools, want every one of %d", len(got), len(cfg.Pools))
			}
			for name, w := range tc.want {
				c := got[name]
				if c.Eligible != w.eligible || c.Rank != w.rank || !strings.Contains(c.Why, w.why) {
					t.Errorf("%s: got %+v, want eligible=%v rank=%d why~%q", name, c, w.eligible, w.rank, w.why)
				}
			}
		})
	}
}

func TestExplainVerdicts(t *testing.T) {
	cfg := testConfig(t, pool("open", []string{"198.18.0.0/24"}), pool("dark", []string{"198.18.9.0/24"}))
	allocated := func(s *corev1.Service) {
		s.Annotations = map[string]string{request.AnnotationAllocatedFromPool: "open"}
		s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "198.18.0.1"}}
		s.Status.Conditions = []metav1.Condition{{Type: controller.ConditionIPAllocated, Status: metav1.ConditionTrue, Reason: controller.ReasonAllocated}}
	}
	ready, notReady := true, false
	slice := func(nodes ...string) []discoveryv1.EndpointSlice {
		s := discoveryv1.EndpointSlice{}
		for _, n := range nodes {
			s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{NodeName: &n, Conditions: discoveryv1.EndpointConditions{Ready: &ready}})
		}
		s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{NodeName: new("node-z"), Conditions: discoveryv1.EndpointConditions{Ready: &notReady}})
		return []discoveryv1.EndpointSlice{s}
	}
	for _, tc := range []struct {
		name     string
		in       explainInput
		address  []string
		announce []string
	}{
		{
			name:    "not a LoadBalancer",
			in:      explainInput{svc: lbService(func(s *corev1.Service) { s.Spec.Type = corev1.ServiceTypeNodePort }), cfg: cfg, speakerKinds: true},
			address: []string{"its type is NodePort"},
		},
		{
			name:    "another class",
			in:      explainInput{svc: lbService(func(s *corev1.Service) { s.Spec.LoadBalancerClass = new("other.io/lb") }), cfg: cfg, speakerKinds: true},
			address: []string{`spec.loadBalancerClass "other.io/lb"`, "--lb-class"},
		},
		{
			name:     "no controller yet",
			in:       explainInput{svc: lbService(), cfg: cfg, speakerKinds: true},
			address:  []string{"No controller has handled it yet"},
			announce: []string{"Nobody announces it: it has no address."},
		},
		{
			name: "pending with a reason",
			in: explainInput{svc: lbService(func(s *corev1.Service) {
				s.Status.Conditions = []metav1.Condition{{Type: controller.ConditionIPAllocated, Status: metav1.ConditionFalse, Reason: "PoolExhausted", Message: "pool open is full"}}
			}), cfg: cfg, speakerKinds: true},
			address: []string{"It waits for an address: PoolExhausted: pool open is full", "Add addresses"},
		},
		{
			name:    "unreadable annotation",
			in:      explainInput{svc: lbService(func(s *corev1.Service) { s.Annotations = map[string]string{request.AnnotationLoadBalancerIPs: "nope"} }), cfg: cfg, speakerKinds: true},
			address: []string{"cannot be read", "metallb.io/loadBalancerIPs"},
		},
		{
			name: "announced in layer 2, ETP Local",
			in: explainInput{svc: lbService(allocated, func(s *corev1.Service) {
				s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
			}), cfg: cfg, speakerKinds: true, ann: &announcement{L2: []l2Announcer{{Node: "node-b"}}}, endpoints: slice("node-b", "node-c")},
			address:  []string{"It has 198.18.0.1 from pool open"},
			announce: []string{"node node-b answers ARP/NDP", "Why node-b", "(nodes matching zone=a)", "externalTrafficPolicy is Local", "2 serving endpoints (on node-b, node-c)"},
		},
		{
			name: "announced over BGP",
			in: explainInput{svc: lbService(allocated), cfg: cfg, speakerKinds: true,
				ann: &announcement{BGP: []bgpAnnouncer{{Node: "node-a", Peers: []string{"tor"}}, {Node: "node-b"}}}, endpoints: slice("node-a")},
			announce: []string{"node node-a advertises it over BGP to tor", "node node-b advertises it over BGP to no peer", "selected by both the BGPAdvertisement and the BGPPeer"},
		},
		{
			name:     "allocated, nobody announces, no endpoints",
			in:       explainInput{svc: lbService(allocated), cfg: cfg, speakerKinds: true},
			announce: []string{"No speaker announces it yet", "no serving endpoints"},
		},
		{
			name: "allocated from a pool no advertisement selects",
			in: explainInput{svc: lbService(allocated, func(s *corev1.Service) {
				s.Annotations[request.AnnotationAllocatedFromPool] = "dark"
				s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "198.18.9.1"}}
			}), cfg: cfg, speakerKinds: true, endpoints: slice("node-a")},
			announce: []string{"No L2Advertisement or BGPAdvertisement selects pool dark", "Check that the speakers run"},
		},
		{
			// The annotation is the tenant's to edit; the speakers go by
			// the pool that holds the address, and so does explain.
			name: "the pool comes from the address, not the annotation",
			in: explainInput{svc: lbService(allocated, func(s *corev1.Service) {
				s.Annotations[request.AnnotationAllocatedFromPool] = "dark"
			}), cfg: cfg, speakerKinds: true, endpoints: slice("node-a")},
			address: []string{"from pool open"},
		},
		{
			name:     "cluster without the speaker status kinds",
			in:       explainInput{svc: lbService(allocated), cfg: cfg},
			announce: []string{"Unknown: this cluster has no ServiceL2Status"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := explain(tc.in)
			for _, w := range tc.address {
				if !strings.Contains(v.Address.Verdict, w) {
					t.Errorf("address verdict lacks %q: %s", w, v.Address.Verdict)
				}
			}
			all := v.Announcement.Verdict + " | " + strings.Join(v.Announcement.Why, " | ")
			for _, w := range tc.announce {
				if !strings.Contains(all, w) {
					t.Errorf("announcement lacks %q: %s", w, all)
				}
			}
			var buf bytes.Buffer
			if err := printExplain(&buf, v); err != nil {
				t.Fatal(err)
			}
			if _, err := json.Marshal(v); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestLBObjectsRefusesBadFlags(t *testing.T) {
	for _, tc := range []struct {
		o    lbCreateOptions
		want string
	}{
		{lbCreateOptions{addresses: []string{"198.18.0.0/24"}, mode: "vrrp"}, "want arp, bgp or both"},
		{lbCreateOptions{addresses: []string{" "}, mode: "arp"}, "--addresses is empty"},
		{lbCreateOptions{addresses: []string{"198.18.0.0/24"}, mode: "arp", peers: []string{"p"}}, "--bgp-peers needs"},
		{lbCreateOptions{addresses: []string{"198.18.0.0/24"}, mode: "bgp", selector: "a in (b"}, "--service-selector"},
	} {
		if _, _, _, err := lbObjects("x", "ns", tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: got %v, want %q", tc.o, err, tc.want)
		}
	}
	pool, l2, bgp, err := lbObjects("x", "ns", lbCreateOptions{addresses: []string{"198.18.0.0/24"}, mode: "BGP", autoAssign: true})
	if err != nil || l2 != nil || bgp == nil || pool.Spec.AutoAssign != nil {
		t.Errorf("bgp mode: %v %+v %+v %+v", err, pool, l2, bgp)
	}
}

func TestPeerObjectNeedsAnAddressAndAnASN(t *testing.T) {
	if _, err := peerObject("p", "ns", peerOptions{myASN: 1, peerASN: 2}); err == nil || !strings.Contains(err.Error(), "--peer-address") {
		t.Errorf("no address: %v", err)
	}
	if _, err := peerObject("p", "ns", peerOptions{myASN: 1, address: "198.18.0.1"}); err == nil || !strings.Contains(err.Error(), "--dynamic-asn") {
		t.Errorf("no peer ASN: %v", err)
	}
	p, err := peerObject("p", "ns", peerOptions{myASN: 1, dynamicASN: "external", iface: "eth1", passwordSecret: "s"})
	if err != nil || p.Spec.Interface != "eth1" || p.Spec.PasswordSecret.Name != "s" || p.Spec.PasswordSecret.Namespace != "ns" || p.Spec.HoldTime != nil {
		t.Errorf("unnumbered peer: %v %+v", err, p)
	}
}

func TestServiceArg(t *testing.T) {
	for in, want := range map[string]string{"svc/web": "web", "service/web": "web", "Services/web": "web", "web": "web"} {
		if got, err := serviceArg(in); err != nil || got != want {
			t.Errorf("serviceArg(%q) = %q, %v", in, got, err)
		}
	}
	for _, in := range []string{"pod/web", "svc/", "svc/ns/web"} {
		if _, err := serviceArg(in); err == nil {
			t.Errorf("serviceArg(%q) accepted", in)
		}
	}
}

func TestFlagFor(t *testing.T) {
	for field, want := range map[string]string{
		"spec.addresses[1]":                    "--addresses",
		"spec.addresses":                       "--addresses",
		"spec.serviceSelectors[0].matchLabels": "--service-selector",
		"spec.addressesExtra":                  "",
		"spec.nodeSelectors[0]":                "",
	} {
		if got := flagFor(field, lbFlags); got != want {
			t.Errorf("flagFor(%q) = %q, want %q", field, got, want)
		}
	}
}

func TestMissingKubeconfigSaysWhatToDo(t *testing.T) {
	t.Setenv("KUBECONFIG", "")
	t.Setenv("HOME", t.TempDir())
	_, err := run(t, "lb", "list")
	if err == nil || !strings.Contains(err.Error(), "no kubeconfig: pass --kubeconfig or set KUBECONFIG") {
		t.Errorf("no kubeconfig: %v", err)
	}
	_, err = run(t, "--kubeconfig", filepath.Join(t.TempDir(), "missing"), "status")
	if err == nil || !strings.Contains(err.Error(), "check the file given to --kubeconfig") {
		t.Errorf("missing kubeconfig file: %v", err)
	}
	_, err = run(t, "lb", "list", "-o", "xml")
	if err == nil || !strings.Contains(err.Error(), `unknown output format "xml": use -o yaml or -o json`) {
		t.Errorf("bad -o: %v", err)
	}
}

func TestImportPrintsManifestsAndNotes(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "cm.yaml")
	if err := os.WriteFile(p, []byte(`kind: ConfigMap
apiVersion: v1
metadata: {name: config}
data:
  config: |
    address-pools:
    - {name: lan, protocol: layer2, addresses: [198.18.0.0/24]}
    - {name: lan2, protocol: layer2, addresses: [198.18.0.128/25]}
    - {name: nope, addresses: [198.18.9.0/24], frobnicate: true}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	root := NewRoot(&out)
	root.SetErr(&errOut)
	root.SetArgs([]string{"-n", "lb", "import", "-f", p})
	if err := root.Execute(); err != nil {
		t.Fatalf("import: %v\n%s", err, errOut.String())
	}
	got := out.String()
	for _, want := range []string{
		"# Not converted (2); redo these by hand:",
		"#   address-pools[2].frobnicate: unknown key",
		"# The controller would reject this configuration (",
		"overlaps",
		"kind: IPAddressPool",
		"namespace: lb",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "status:") || strings.Contains(got, "creationTimestamp") {
		t.Errorf("output carries empty status or timestamps:\n%s", got)
	}
	// The YAML stream decodes into the objects again.
	objs, err := decodeAll(strings.NewReader(got))
	if err != nil || len(objs) != 4 {
		t.Errorf("decoding the output: %v, %d objects", err, len(objs))
	}
	if !strings.Contains(errOut.String(), "converted 4 objects; 2 notes") {
		t.Errorf("stderr summary:\n%s", errOut.String())
	}

	// -o json is a v1 List.
	out.Reset()
	root = NewRoot(&out)
	root.SetErr(&errOut)
	root.SetArgs([]string{"import", "-f", p, "-o", "json"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	var list struct {
		Kind  string           `json:"kind"`
		Items []map[string]any `json:"items"`
	}
	if err := json.Unmarshal(out.Bytes(), &list); err != nil || list.Kind != "List" || len(list.Items) != 4 {
		t.Errorf("-o json: %v %+v", err, list)
	}
}

func TestPluginRootReadsAsKubectlKeeperlb(t *testing.T) {
	var out bytes.Buffer
	root := NewPluginRoot(&out)
	root.SetArgs([]string{"lb", "create", "--help"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "kubectl keeperlb lb create NAME") {
		t.Errorf("plugin help does not read as kubectl keeperlb:\n%s", out.String())
	}
}

// TestExplainWithRefusedReads covers explain for a user who may not read
// everything: each refused read is named with what it hides, and nothing
// that the refusal makes unknowable is asserted (no "no advertisement
// selects the pool" without the advertisements, no "no serving endpoints"
// without the EndpointSlices).
func TestExplainWithRefusedReads(t *testing.T) {
	byLabel := pool("gold", []string{"198.18.7.0/24"}, func(p *v1beta1.IPAddressPool) {
		p.Spec.ServiceAllocation = &v1beta1.ServiceAllocation{NamespaceSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"tier": "gold"}}}}
	})
	cfg := testConfig(t, pool("open", []string{"198.18.0.0/24"}), pool("dark", []string{"198.18.9.0/24"}))
	cfgByLabel := testConfig(t, pool("open", []string{"198.18.0.0/24"}), byLabel)
	allocated := func(s *corev1.Service) {
		s.UID = "uid-web"
		s.Annotations = map[string]string{request.AnnotationAllocatedFromPool: "open"}
		s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "198.18.0.1"}}
		s.Status.Conditions = []metav1.Condition{{Type: controller.ConditionIPAllocated, Status: metav1.ConditionTrue, Reason: controller.ReasonAllocated}}
	}
	inDark := func(s *corev1.Service) {
		s.Annotations[request.AnnotationAllocatedFromPool] = "dark"
		s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "198.18.9.1"}}
	}
	ready := true
	endpoints := []discoveryv1.EndpointSlice{{Endpoints: []discoveryv1.Endpoint{{NodeName: new("node-a"), Conditions: discoveryv1.EndpointConditions{Ready: &ready}}}}}
	assigned := []eventView{
		{Type: "Normal", Reason: "nodeAssigned", Message: `announcing from node "node-b" with protocol "layer2"`, Last: "2026-01-01T00:00:00Z"},
		{Type: "Normal", Reason: "nodeAssigned", Message: `announcing from node "node-a" with protocol "layer2"`, Last: "2026-01-02T00:00:00Z"},
	}
	const ins = "metallb-system"
	for _, tc := range []struct {
		name string
		in   explainInput
		// reads are what Unreadable must list, in order.
		reads                   []string
		address, announce, pool []string
		notAnnounce             []string
		printed                 []string
	}{
		{
			name:     "everything readable",
			in:       explainInput{svc: lbService(allocated), installNS: ins, cfg: cfg, speakerKinds: true, endpoints: endpoints},
			announce: []string{"No speaker announces it yet"},
		},
		{
			name: "no metallb.io read at all",
			in: explainInput{svc: lbService(allocated), installNS: ins, speakerKinds: true, endpoints: endpoints,
				hidden: hidden{pools: true, l2Advs: true, bgpAdvs: true, namespace: true}},
			reads: []string{
				"list IPAddressPools in namespace metallb-system", "list L2Advertisements in namespace metallb-system",
				"list BGPAdvertisements in namespace metallb-system",
			},
			address:     []string{"It has 198.18.0.1 from pool open (as its metallb.io/ip-allocated-from-pool annotation says: the pools are not readable to check it)"},
			announce:    []string{"No speaker announces it yet"},
			notAnnounce: []string{"No L2Advertisement"},
			printed:     []string{"Not readable with your permissions", "hides which pools the Service may use", "Pools:\n  not readable with your permissions (see above)"},
		},
		{
			name: "BGPAdvertisements refused: no advertisement in sight proves nothing",
			in: explainInput{svc: lbService(allocated, inDark), installNS: ins, cfg: cfg, speakerKinds: true, endpoints: endpoints,
				hidden: hidden{bgpAdvs: true}},
			reads:       []string{"list BGPAdvertisements in namespace metallb-system"},
			announce:    []string{"No speaker announces it yet", "Check that the speakers run"},
			notAnnounce: []string{"No L2Advertisement or BGPAdvertisement selects pool dark"},
		},
		{
			name: "speakers' status refused: the latest nodeAssigned Event instead",
			in: explainInput{svc: lbService(allocated), installNS: ins, cfg: cfg, speakerKinds: true, endpoints: endpoints, events: assigned,
				hidden: hidden{l2Status: true, bgpStatus: true}},
			reads: []string{"list ServiceL2Status in namespace metallb-system", "list ServiceBGPStatus in namespace metallb-system"},
			announce: []string{
				"Unknown: your permissions do not allow reading the speakers' ServiceL2Status and ServiceBGPStatus objects",
				`Its latest nodeAssigned Event (2026-01-02T00:00:00Z) says: announcing from node "node-a"`, "1 serving endpoint (on node-a)",
			},
			notAnnounce: []string{"No speaker announces it yet", `"node-b"`},
		},
		{
			name: "only ServiceBGPStatus refused, no Event",
			in: explainInput{svc: lbService(allocated), installNS: ins, cfg: cfg, speakerKinds: true, endpoints: endpoints,
				hidden: hidden{bgpStatus: true}},
			reads:    []string{"list ServiceBGPStatus in namespace metallb-system"},
			announce: []string{"speakers' ServiceBGPStatus objects, which", "It has no nodeAssigned Event"},
		},
		{
			name: "speakers' status and Events refused",
			in: explainInput{svc: lbService(allocated), installNS: ins, cfg: cfg, speakerKinds: true, endpoints: endpoints,
				hidden: hidden{l2Status: true, bgpStatus: true, events: true}},
			reads: []string{
				"list Events in namespace shop", "list ServiceL2Status in namespace metallb-system", "list ServiceBGPStatus in namespace metallb-system",
			},
			announce:    []string{"Unknown: your permissions"},
			notAnnounce: []string{"nodeAssigned"},
			printed:     []string{"Events:\n  not readable with your permissions (see above)"},
		},
		{
			name: "EndpointSlices refused: no claim about endpoints",
			in: explainInput{svc: lbService(allocated), installNS: ins, cfg: cfg, speakerKinds: true,
				hidden: hidden{endpoints: true}},
			reads:       []string{"list EndpointSlices in namespace shop"},
			announce:    []string{"No speaker announces it yet", "Check that the speakers run"},
			notAnnounce: []string{"serving endpoint"},
		},
		{
			name: "Namespace refused, a pool selects namespaces by label",
			in: explainInput{svc: lbService(), installNS: ins, cfg: cfgByLabel, speakerKinds: true,
				hidden: hidden{namespace: true}},
			reads: []string{"get Namespace shop"},
			pool:  []string{"gold: unknown whether its serviceAllocation admits this Service", "open: autoAssign pool open to every Service"},
			printed: []string{
				"get Namespace shop: hides the namespace's labels, which the serviceAllocation of pool(s) gold selects by",
			},
		},
		{
			name: "Namespace refused, no pool selects namespaces by label: nothing hidden",
			in:   explainInput{svc: lbService(), installNS: ins, cfg: cfg, speakerKinds: true, hidden: hidden{namespace: true}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := explain(tc.in)
			var reads []string
			for _, d := range v.Unreadable {
				reads = append(reads, d.Read)
				if d.Hides == "" {
					t.Errorf("%s: says nothing of what it hides", d.Read)
				}
			}
			if strings.Join(reads, "|") != strings.Join(tc.reads, "|") {
				t.Errorf("unreadable %q, want %q", reads, tc.reads)
			}
			for _, w := range tc.address {
				if !strings.Contains(v.Address.Verdict, w) {
					t.Errorf("address verdict lacks %q: %s", w, v.Address.Verdict)
				}
			}
			all := v.Announcement.Verdict + " | " + strings.Join(v.Announcement.Why, " | ")
			for _, w := range tc.announce {
				if !strings.Contains(all, w) {
					t.Errorf("announcement lacks %q: %s", w, all)
				}
			}
			for _, w := range tc.notAnnounce {
				if strings.Contains(all, w) {
					t.Errorf("announcement says %q, which it cannot know: %s", w, all)
				}
			}
			var pools []string
			for _, p := range v.Pools {
				pools = append(pools, p.Name+": "+p.Why)
			}
			for _, w := range tc.pool {
				if !strings.Contains(strings.Join(pools, "\n"), w) {
					t.Errorf("pools lack %q:\n%s", w, strings.Join(pools, "\n"))
				}
			}
			var buf bytes.Buffer
			if err := printExplain(&buf, v); err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.printed {
				if !strings.Contains(buf.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, buf.String())
				}
			}
			if len(tc.reads) == 0 && strings.Contains(buf.String(), "Not readable") {
				t.Errorf("nothing was refused, yet:\n%s", buf.String())
			}
		})
	}
}

// TestExplainLeavesOutPoolsReservedForOthers: a pool whose
// serviceAllocation admits only other namespaces cannot serve the Service
// and is often named after its tenants, so explain counts it and does not
// name it, whoever runs explain; a pool that the unreadable labels of the
// namespace might admit is shown, as unknown.
func TestExplainLeavesOutPoolsReservedForOthers(t *testing.T) {
	cfg := testConfig(t,
		pool("open", []string{"198.18.0.0/24"}),
		pool("bank-vault", []string{"198.18.5.0/24"}, func(p *v1beta1.IPAddressPool) {
			p.Spec.ServiceAllocation = &v1beta1.ServiceAllocation{Namespaces: []string{"bank"}}
		}),
		pool("gold", []string{"198.18.7.0/24"}, func(p *v1beta1.IPAddressPool) {
			p.Spec.ServiceAllocation = &v1beta1.ServiceAllocation{NamespaceSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"tier": "gold"}}}}
		}),
	)
	inNS := func(ns string) func(*corev1.Service) { return func(s *corev1.Service) { s.Namespace = ns } }
	for _, tc := range []struct {
		name     string
		in       explainInput
		pools    []string
		reserved int
	}{
		{"labels known", explainInput{svc: lbService(), cfg: cfg, nsLabels: map[string]string{"tier": "bronze"}}, []string{"open"}, 2},
		{"labels unreadable", explainInput{svc: lbService(), cfg: cfg, hidden: hidden{namespace: true}}, []string{"gold", "open"}, 1},
		{"the namespace the pool is for", explainInput{svc: lbService(inNS("bank")), cfg: cfg}, []string{"bank-vault", "open"}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := explain(tc.in)
			var names []string
			for _, p := range v.Pools {
				names = append(names, p.Name)
			}
			if strings.Join(names, ",") != strings.Join(tc.pools, ",") || v.ReservedPools != tc.reserved {
				t.Errorf("pools %v, %d reserved; want %v, %d", names, v.ReservedPools, tc.pools, tc.reserved)
			}
			var buf bytes.Buffer
			if err := printExplain(&buf, v); err != nil {
				t.Fatal(err)
			}
			if want := "reserved for other namespaces by their serviceAllocation, not shown"; !strings.Contains(buf.String(), want) {
				t.Errorf("output lacks %q:\n%s", want, buf.String())
			}
			if tc.in.svc.Namespace != "bank" && strings.Contains(buf.String(), "bank") {
				t.Errorf("output names the pool reserved for bank:\n%s", buf.String())
			}
		})
	}
}
