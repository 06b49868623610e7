package request

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/keeperlb/keeperlb/internal/ipam"
)

func svc(mutate ...func(*corev1.Service)) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web", Labels: map[string]string{"tier": "gold"}},
		Spec: corev1.ServiceSpec{
			Type:       corev1.ServiceTypeLoadBalancer,
			IPFamilies: []corev1.IPFamily{corev1.IPv4Protocol},
			Selector:   map[string]string{"app": "web", "b": "2"},
			Ports: []corev1.ServicePort{
				{Port: 80, Protocol: corev1.ProtocolTCP},
				{Port: 53}, // protocol defaults to TCP
				{Port: 53, Protocol: corev1.ProtocolUDP},
			},
		},
	}
	for _, m := range mutate {
		m(s)
	}
	return s
}

func ann(kv ...string) func(*corev1.Service) {
	return func(s *corev1.Service) {
		s.Annotations = map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			s.Annotations[kv[i]] = kv[i+1]
		}
	}
}

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

func TestFromService(t *testing.T) {
	policy := func(p corev1.IPFamilyPolicy, fams ...corev1.IPFamily) func(*corev1.Service) {
		return func(s *corev1.Service) { s.Spec.IPFamilyPolicy = &p; s.Spec.IPFamilies = fams }
	}
	cases := []struct {
		name    string
		svc     *corev1.Service
		check   func(*testing.T, *ipam.Service)
		wantErr string // substring; the field must be named
	}{
		{
			name: "defaults",
			svc:  svc(),
			check: func(t *testing.T, r *ipam.Service) {
				if r.Key != "ns/web" || r.Namespace != "ns" || r.Labels["tier"] != "gold" {
					t.Errorf("identity: %+v", r)
				}
				if !slices.Equal(r.Families, []ipam.Family{ipam.IPv4}) || r.Policy != ipam.SingleStack {
					t.Errorf("families %v policy %v", r.Families, r.Policy)
				}
				want := []ipam.Port{{Protocol: "TCP", Port: 80}, {Protocol: "TCP", Port: 53}, {Protocol: "UDP", Port: 53}}
				if !slices.Equal(r.Ports, want) {
					t.Errorf("ports %v, want %v", r.Ports, want)
				}
				if r.BackendKey != "" || r.SharingKey != "" || r.Pool != "" || r.RequestedIPs != nil {
					t.Errorf("unexpected request fields: %+v", r)
				}
			},
		},
		{
			name: "annotation with two families and spaces",
			svc:  svc(ann(AnnotationLoadBalancerIPs, " 198.18.0.1 , 2001:db8::1 ")),
			check: func(t *testing.T, r *ipam.Service) {
				if !slices.Equal(r.RequestedIPs, addrs("198.18.0.1", "2001:db8::1")) {
					t.Errorf("requested %v", r.RequestedIPs)
				}
			},
		},
		{
			name: "legacy annotation spellings",
			svc: svc(ann("metallb.universe.tf/loadBalancerIPs", "198.18.0.2", "metallb.universe.tf/address-pool", "p",
				"metallb.universe.tf/allow-shared-ip", "k")),
			check: func(t *testing.T, r *ipam.Service) {
				if !slices.Equal(r.RequestedIPs, addrs("198.18.0.2")) || r.Pool != "p" || r.SharingKey != "k" {
					t.Errorf("got %+v", r)
				}
			},
		},
		{
			name: "both spellings agreeing",
			svc:  svc(ann(AnnotationAddressPool, "p", "metallb.universe.tf/address-pool", "p")),
			check: func(t *testing.T, r *ipam.Service) {
				if r.Pool != "p" {
					t.Errorf("pool %q", r.Pool)
				}
			},
		},
		{
			name:    "both spellings disagreeing",
			svc:     svc(ann(AnnotationAddressPool, "p", "metallb.universe.tf/address-pool", "q")),
			wantErr: "metadata.annotations[metallb.io/address-pool]: conflicts with metallb.universe.tf/address-pool",
		},
		{
			name: "spec.loadBalancerIP",
			svc:  svc(func(s *corev1.Service) { s.Spec.LoadBalancerIP = "198.18.0.3" }),
			check: func(t *testing.T, r *ipam.Service) {
				if !slices.Equal(r.RequestedIPs, addrs("198.18.0.3")) {
					t.Errorf("requested %v", r.RequestedIPs)
				}
			},
		},
		{
			name:    "annotation and spec.loadBalancerIP both",
			svc:     svc(ann(AnnotationLoadBalancerIPs, "198.18.0.1"), func(s *corev1.Service) { s.Spec.LoadBalancerIP = "198.18.0.1" }),
			wantErr: "spec.loadBalancerIP: set together with",
		},
		{name: "bad address in annotation", svc: svc(ann(AnnotationLoadBalancerIPs, "198.18.0.1,nope")), wantErr: `metadata.annotations[metallb.io/loadBalancerIPs]: entry 1: "nope" is not an IP address`},
		{name: "empty entry in annotation", svc: svc(ann(AnnotationLoadBalancerIPs, "198.18.0.1,")), wantErr: "entry 1"},
		{name: "zone in annotation", svc: svc(ann(AnnotationLoadBalancerIPs, "fe80::1%eth0")), wantErr: "not a plain"},
		{name: "mapped address", svc: svc(func(s *corev1.Service) { s.Spec.LoadBalancerIP = "::ffff:198.18.0.1" }), wantErr: "spec.loadBalancerIP"},
		{name: "bad spec.loadBalancerIP", svc: svc(func(s *corev1.Service) { s.Spec.LoadBalancerIP = "198.18.0.256" }), wantErr: "spec.loadBalancerIP"},
		{
			name: "ETP Local backend key is the sorted selector",
			svc:  svc(func(s *corev1.Service) { s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal }),
			check: func(t *testing.T, r *ipam.Service) {
				if r.BackendKey != "app=web,b=2" {
					t.Errorf("backend key %q", r.BackendKey)
				}
			},
		},
		{
			name: "RequireDualStack IPv6 first",
			svc:  svc(policy(corev1.IPFamilyPolicyRequireDualStack, corev1.IPv6Protocol, corev1.IPv4Protocol)),
			check: func(t *testing.T, r *ipam.Service) {
				if r.Policy != ipam.RequireDualStack || !slices.Equal(r.Families, []ipam.Family{ipam.IPv6, ipam.IPv4}) {
					t.Errorf("policy %v families %v", r.Policy, r.Families)
				}
			},
		},
		{
			name: "PreferDualStack",
			svc:  svc(policy(corev1.IPFamilyPolicyPreferDualStack, corev1.IPv4Protocol)),
			check: func(t *testing.T, r *ipam.Service) {
				if r.Policy != ipam.PreferDualStack {
					t.Errorf("policy %v", r.Policy)
				}
			},
		},
		{name: "unknown policy", svc: svc(policy("Sometimes", corev1.IPv4Protocol)), wantErr: "spec.ipFamilyPolicy"},
		{name: "unknown family", svc: svc(policy(corev1.IPFamilyPolicySingleStack, "IPv5")), wantErr: "spec.ipFamilies[0]"},
		{
			name: "no families means IPv4",
			svc:  svc(func(s *corev1.Service) { s.Spec.IPFamilies = nil }),
			check: func(t *testing.T, r *ipam.Service) {
				if !slices.Equal(r.Families, []ipam.Family{ipam.IPv4}) {
					t.Errorf("families %v", r.Families)
				}
			},
		},
		{
			name: "current addresses from status, hostnames ignored",
			svc: svc(func(s *corev1.Service) {
				s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "198.18.0.9"}, {Hostname: "lb.example"}, {IP: "2001:db8::9"}}
			}),
			check: func(t *testing.T, r *ipam.Service) {
				if !slices.Equal(r.Current, addrs("198.18.0.9", "2001:db8::9")) {
					t.Errorf("current %v", r.Current)
				}
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := FromService(tc.svc, map[string]string{"env": "prod"})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if r.NamespaceLabels["env"] != "prod" {
				t.Errorf("namespace labels not passed through: %v", r.NamespaceLabels)
			}
			tc.check(t, r)
		})
	}
}

func TestManaged(t *testing.T) {
	class := "example.com/lb"
	cases := []struct {
		name    string
		svc     *corev1.Service
		lbClass string
		want    bool
	}{
		{"LoadBalancer without class, no flag", svc(), "", true},
		{"ClusterIP", svc(func(s *corev1.Service) { s.Spec.Type = corev1.ServiceTypeClusterIP }), "", false},
		{"class set, no flag", svc(func(s *corev1.Service) { s.Spec.LoadBalancerClass = &class }), "", false},
		{"class matches flag", svc(func(s *corev1.Service) { s.Spec.LoadBalancerClass = &class }), class, true},
		{"no class, flag set", svc(), class, false},
		{"other class, flag set", svc(func(s *corev1.Service) { s.Spec.LoadBalancerClass = new("x/y") }), class, false},
	}
	for _, tc := range cases {
		if got := Managed(tc.svc, tc.lbClass); got != tc.want {
			t.Errorf("%s: Managed = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestFallbackDropsOnlyTheBrokenRequest(t *testing.T) {
	s := svc(ann(AnnotationLoadBalancerIPs, "garbage", AnnotationAllowSharedIP, "k"), func(s *corev1.Service) {
		s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "198.18.0.4"}}
	})
	if _, err := FromService(s, nil); err == nil {
		t.Fatal("the broken Service parsed")
	}
	r := Fallback(s, nil)
	if r == nil {
		t.Fatal("no fallback request")
	}
	if r.RequestedIPs != nil || r.SharingKey != "k" || !slices.Equal(r.Current, addrs("198.18.0.4")) {
		t.Errorf("fallback %+v: want no request, the sharing key kept and the current address", r)
	}
	if s.Annotations[AnnotationLoadBalancerIPs] != "garbage" {
		t.Error("Fallback modified the Service")
	}
}

// FuzzFromService feeds arbitrary annotations and spec strings through Request:
// it must never panic, and every error must name a field.
func FuzzFromService(f *testing.F) {
	f.Add("198.18.0.1,2001:db8::1", "", "pool", "key", "metallb.universe.tf/address-pool", "x")
	f.Add("", "198.18.0.1", "", "", "", "")
	f.Add("nope,,", "2001:db8::1%eth0", "", "", "metallb.universe.tf/loadBalancerIPs", "1.2.3.4")
	f.Fuzz(func(t *testing.T, lbIPs, specIP, pool, key, extraName, extraValue string) {
		s := svc(ann(AnnotationLoadBalancerIPs, lbIPs, AnnotationAddressPool, pool, AnnotationAllowSharedIP, key, extraName, extraValue),
			func(s *corev1.Service) { s.Spec.LoadBalancerIP = specIP })
		r, err := FromService(s, nil)
		if err != nil {
			var re *Error
			if !errors.As(err, &re) || re.Field == "" || re.Message == "" {
				t.Fatalf("error without field: %#v", err)
			}
			_ = Fallback(s, nil)
			return
		}
		for _, ip := range r.RequestedIPs {
			if !ip.IsValid() || ip.Zone() != "" || ip.Is4In6() {
				t.Fatalf("accepted a bad address %v from %q / %q", ip, lbIPs, specIP)
			}
		}
	})
}
