package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/keeperlb/keeperlb/api/v1beta1"
	"github.com/keeperlb/keeperlb/internal/controller"
	"github.com/keeperlb/keeperlb/internal/controlplane"
	"github.com/keeperlb/keeperlb/internal/request"
)

// TestExplainForATenant runs `keeperlb explain` as a tenant: a
// ServiceAccount whose only rights come from a Role in its own namespace
// (get and list Services, EndpointSlices and Events), first without any
// read of the metallb.io objects, then with a cluster-wide read of
// IPAddressPools and L2Advertisements. A Service of another namespace
// holds the address the tenant's Service asks for, under a sharing key.
// explain must explain the tenant's Services as far as the tenant may
// read, say which reads were refused and what that hides, and never print
// the other namespace, its Service or its key; run by the admin on the
// tenant's Service, it names them no more.
func TestExplainForATenant(t *testing.T) {
	e := newCLIEnv(t)
	e.startController()
	e.mustRun("-n", e.ns, "lb", "create", "web", "--addresses", "198.18.40.0/29", "--advertise-mode", "arp")
	// A pool for teams, chosen by namespace label: a tenant who may not
	// read its Namespace cannot tell whether it is admitted.
	no := false
	teams := &v1beta1.IPAddressPool{
		ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "teams"},
		Spec: v1beta1.IPAddressPoolSpec{Addresses: []string{"198.18.41.0/30"}, AutoAssign: &no, ServiceAllocation: &v1beta1.ServiceAllocation{
			NamespaceSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"tier": "gold"}}},
		}},
	}
	if err := e.c.Create(e.ctx, teams); err != nil {
		t.Fatal(err)
	}

	// The other tenant: its namespace, Service and key must never show.
	other := "payroll-" + strings.TrimPrefix(e.app, "app-")
	const (
		otherSvc = "salaries-db"
		otherKey = "payroll-sharing-secret"
		held     = "198.18.40.3"
	)
	otherNS := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: other}}
	if err := e.c.Create(e.ctx, otherNS); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.c.Delete(e.ctx, otherNS) })
	// A pool reserved for the other namespace, named after it.
	reserved := &v1beta1.IPAddressPool{
		ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: other},
		Spec: v1beta1.IPAddressPoolSpec{Addresses: []string{"198.18.42.0/30"}, ServiceAllocation: &v1beta1.ServiceAllocation{
			Namespaces: []string{other},
		}},
	}
	if err := e.c.Create(e.ctx, reserved); err != nil {
		t.Fatal(err)
	}
	lb := func(ns, name, key, ip string, port int32) *corev1.Service {
		s := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"app": name}, Annotations: map[string]string{}},
			Spec: corev1.ServiceSpec{
				Type: corev1.ServiceTypeLoadBalancer, LoadBalancerClass: &e.class, AllocateLoadBalancerNodePorts: new(false),
				Selector: map[string]string{"app": name},
				Ports:    []corev1.ServicePort{{Protocol: corev1.ProtocolTCP, Port: port, TargetPort: intstr.FromInt32(8080)}},
			},
		}
		if key != "" {
			s.Annotations[request.AnnotationAllowSharedIP] = key
		}
		if ip != "" {
			s.Annotations[request.AnnotationLoadBalancerIPs] = ip
		}
		if err := e.c.Create(e.ctx, s); err != nil {
			t.Fatalf("creating Service %s/%s: %v", ns, name, err)
		}
		return s
	}
	lb(other, otherSvc, otherKey, held, 80)
	e.eventually("the other namespace's Service to hold "+held, func() bool { return e.ipOf(other, otherSvc) == held })
	// The tenant asks for the same address with another key: refused.
	lb(e.app, "probe", "mine", held, 443)
	// And has a Service that gets an address, with a ready endpoint.
	web := lb(e.app, "shop", "", "", 80)
	e.eventually("the controller to decide the tenant's Services", func() bool {
		return e.condition(e.app, "probe") != nil && e.ipOf(e.app, "shop") != ""
	})
	if c := e.condition(e.app, "probe"); c.Status != metav1.ConditionFalse || c.Reason != "IPInUse" {
		t.Fatalf("probe's condition %+v, want IPInUse", c)
	}
	ready := true
	eps := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: e.app, Name: "shop-1", Labels: map[string]string{discoveryv1.LabelServiceName: "shop"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"10.0.0.5"}, NodeName: new("node-a"), Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
	}
	if err := e.c.Create(e.ctx, eps); err != nil {
		t.Fatal(err)
	}
	// What a speaker on node-a writes for the announced Services: a
	// ServiceL2Status each in the install namespace (naming every
	// Service, the other namespace's too) and a nodeAssigned Event on the
	// Service.
	for _, s := range []struct{ ns, name string }{{e.app, "shop"}, {other, otherSvc}} {
		l2 := &v1beta1.ServiceL2Status{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "l2-" + s.name + "-node-a",
			Labels: map[string]string{"metallb.io/node": "node-a", "metallb.io/service-name": s.name, "metallb.io/service-namespace": s.ns}}}
		if err := e.c.Create(e.ctx, l2); err != nil {
			t.Fatal(err)
		}
		l2.Status = v1beta1.ServiceL2StatusStatus{Node: "node-a", ServiceName: s.name, ServiceNamespace: s.ns, Interfaces: []v1beta1.InterfaceInfo{{Name: "eth0"}}}
		if err := e.c.Status().Update(e.ctx, l2); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.c.Get(e.ctx, client.ObjectKeyFromObject(web), web); err != nil {
		t.Fatal(err)
	}
	now := metav1.NewTime(time.Now())
	ev := &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Namespace: e.app, Name: "shop.node-assigned"},
		InvolvedObject: corev1.ObjectReference{Kind: "Service", APIVersion: "v1", Namespace: e.app, Name: "shop", UID: web.UID},
		Type:           corev1.EventTypeNormal, Reason: "nodeAssigned", Message: `announcing from node "node-a" with protocol "layer2"`,
		Source: corev1.EventSource{Component: "keeperlb-speaker"}, FirstTimestamp: now, LastTimestamp: now, Count: 1,
	}
	if err := e.c.Create(e.ctx, ev); err != nil {
		t.Fatal(err)
	}

	tn := e.tenant("tenant")
	tenant := tn.kubeconfig
	leaks := []string{other, otherSvc, otherKey}
	noLeak := func(what, out string) {
		t.Helper()
		for _, s := range leaks {
			if strings.Contains(out, s) {
				t.Errorf("%s shows %q, from another namespace:\n%s", what, s, out)
			}
		}
	}
	contains := func(what, out string, wants ...string) {
		t.Helper()
		for _, w := range wants {
			if !strings.Contains(out, w) {
				t.Errorf("%s lacks %q:\n%s", what, w, out)
			}
		}
	}
	lacks := func(what, out string, nots ...string) {
		t.Helper()
		for _, w := range nots {
			if strings.Contains(out, w) {
				t.Errorf("%s has %q:\n%s", what, w, out)
			}
		}
	}
	explainAs := func(kc, name string) (string, explainView) {
		t.Helper()
		args := []string{"explain", "svc/" + name, "-n", e.app, "--install-namespace", e.ns}
		out, errOut, err := e.runAs(kc, args...)
		if err != nil {
			t.Fatalf("explain svc/%s: %v\nstdout:\n%s\nstderr:\n%s", name, err, out, errOut)
		}
		noLeak("explain svc/"+name, out+errOut)
		raw, errOut, err := e.runAs(kc, append(args, "-o", "json")...)
		if err != nil {
			t.Fatalf("explain svc/%s -o json: %v\n%s", name, err, errOut)
		}
		noLeak("explain svc/"+name+" -o json", raw+errOut)
		var v explainView
		if err := json.Unmarshal([]byte(raw), &v); err != nil {
			t.Fatalf("explain -o json: %v\n%s", err, raw)
		}
		return out, v
	}
	refused := func(v explainView) string {
		var reads []string
		for _, d := range v.Unreadable {
			reads = append(reads, d.Read)
		}
		return strings.Join(reads, " | ")
	}

	// A tenant who may read nothing of metallb.io.
	out, v := explainAs(tenant, "probe")
	contains("tenant explain probe", out,
		"It waits for an address: IPInUse", "held by a Service in another namespace", "allow-shared-ip",
		"Not readable with your permissions",
		"list IPAddressPools in namespace "+e.ns, "which pools the Service may use",
		"list ServiceL2Status", "Nobody announces it: it has no address.")
	lacks("tenant explain probe", out, "does not validate", "No L2Advertisement")
	contains("tenant explain probe -o json", refused(v), "list IPAddressPools in namespace "+e.ns, "list L2Advertisements in namespace "+e.ns)
	if v.Address.Reason != "IPInUse" || len(v.Events) == 0 || len(v.Pools) != 0 {
		t.Errorf("tenant explain probe -o json: %+v", v)
	}
	out, v = explainAs(tenant, "shop")
	contains("tenant explain shop", out,
		"It has 198.18.40.", "from pool web", "not readable to check",
		`announcing from node "node-a" with protocol "layer2"`, "nodeAssigned",
		"1 serving endpoint (on node-a)")
	lacks("tenant explain shop", out, "No speaker announces it yet", "No L2Advertisement", "no serving endpoints")
	if v.Announcement.Verdict == "" || !strings.Contains(v.Announcement.Verdict, "Unknown") {
		t.Errorf("tenant explain shop: announcement %+v", v.Announcement)
	}
	// The other namespace's Service cannot be explained, and the refusal
	// says which read it was.
	if _, _, err := e.runAs(tenant, "explain", "svc/"+otherSvc, "-n", other, "--install-namespace", e.ns); err == nil ||
		!strings.Contains(err.Error(), "may not get Services in namespace "+other) {
		t.Errorf("tenant explain of another namespace's Service: %v", err)
	}

	// The same tenant, allowed to read pools and L2Advertisements
	// everywhere: the pools are weighed, the rest is still reported.
	e.grantClusterRead(tn, "ipaddresspools", "l2advertisements")
	out, v = explainAs(tenant, "probe")
	contains("tenant+pools explain probe", out,
		"It waits for an address: IPInUse", "holds the requested "+held,
		"list BGPAdvertisements in namespace "+e.ns)
	lacks("tenant+pools explain probe", out, "list IPAddressPools", "list L2Advertisements")
	contains("tenant+pools explain probe -o json", refused(v), "get Namespace "+e.app)
	if len(v.Pools) != 2 || v.Pools[1].Name != "web" || !v.Pools[1].Eligible {
		t.Errorf("tenant+pools explain probe: pools %+v", v.Pools)
	}
	out, _ = explainAs(tenant, "shop")
	contains("tenant+pools explain shop", out, "from pool web", "nodeAssigned", "list ServiceL2Status",
		"get Namespace "+e.app+": hides the namespace's labels, which the serviceAllocation of pool(s) teams selects by")
	lacks("tenant+pools explain shop", out, "not readable to check", "No L2Advertisement", "serviceSelectors")

	// The admin sees everything, and explain still names nothing of the
	// other namespace, so its output can be pasted to the tenant.
	out, v = explainAs(e.cp.Kubeconfig, "probe")
	contains("admin explain probe", out, "It waits for an address: IPInUse", "keeperlb lb show",
		"(and 2 pools reserved for other namespaces by their serviceAllocation, not shown)")
	lacks("admin explain probe", out, "Not readable")
	if len(v.Unreadable) != 0 {
		t.Errorf("admin explain: unreadable %+v", v.Unreadable)
	}
	out, _ = explainAs(e.cp.Kubeconfig, "shop")
	contains("admin explain shop", out, "node node-a answers ARP/NDP for it (layer 2) on eth0")
}

// ipOf returns a Service's first load-balancer address, or "".
func (e *cliEnv) ipOf(ns, name string) string {
	s := &corev1.Service{}
	if e.c.Get(e.ctx, client.ObjectKey{Namespace: ns, Name: name}, s) != nil || len(s.Status.LoadBalancer.Ingress) == 0 {
		return ""
	}
	return s.Status.LoadBalancer.Ingress[0].IP
}

// condition returns a Service's keeperlb.io/IPAllocated condition, or nil.
func (e *cliEnv) condition(ns, name string) *metav1.Condition {
	s := &corev1.Service{}
	if e.c.Get(e.ctx, client.ObjectKey{Namespace: ns, Name: name}, s) != nil {
		return nil
	}
	return meta.FindStatusCondition(s.Status.Conditions, controller.ConditionIPAllocated)
}

// tenantID is a user with the rights of a ServiceAccount.
type tenantID struct {
	kubeconfig string
	subject    rbacv1.Subject
	c          client.Client
}

// tenant makes a ServiceAccount in the test's app namespace whose only
// rights are a Role there to get and list Services, EndpointSlices and
// Events, with a kubeconfig that authenticates as it with a token from the
// TokenRequest API.
func (e *cliEnv) tenant(name string) tenantID {
	e.t.Helper()
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Namespace: e.app, Name: name},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"services", "events"}, Verbs: []string{"get", "list", "watch"}},
			{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: []string{"get", "list", "watch"}},
			{APIGroups: []string{"events.k8s.io"}, Resources: []string{"events"}, Verbs: []string{"get", "list", "watch"}},
		},
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: e.app, Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: e.app, Name: name}},
	}
	for _, o := range []client.Object{role, binding} {
		if err := e.c.Create(e.ctx, o); err != nil {
			e.t.Fatal(err)
		}
	}
	cfg, err := e.cp.ServiceAccountConfig(e.ctx, e.app, name)
	if err != nil {
		e.t.Fatal(err)
	}
	path := filepath.Join(e.t.TempDir(), name+".kubeconfig")
	if err := controlplane.WriteKubeconfig(cfg, path); err != nil {
		e.t.Fatal(err)
	}
	tc, err := newClient(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	// RBAC reaches the authorizer through an informer: wait for it.
	e.eventually("the tenant's Role to take effect", func() bool {
		return tc.Get(e.ctx, client.ObjectKey{Namespace: e.app, Name: "shop"}, &corev1.Service{}) == nil
	})
	return tenantID{kubeconfig: path, subject: rbacv1.Subject{Kind: rbacv1.ServiceAccountKind, Namespace: e.app, Name: name}, c: tc}
}

// grantClusterRead lets the tenant get and list the given
// metallb.io resources in every namespace, as a cluster operator might.
func (e *cliEnv) grantClusterRead(tn tenantID, resources ...string) {
	e.t.Helper()
	name := fmt.Sprintf("keeperlb-test-read-%d-%s", os.Getpid(), e.app)
	cr := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{"metallb.io"}, Resources: resources, Verbs: []string{"get", "list", "watch"}}},
	}
	crb := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name},
		Subjects:   []rbacv1.Subject{tn.subject},
	}
	for _, o := range []client.Object{cr, crb} {
		if err := e.c.Create(e.ctx, o); err != nil {
			e.t.Fatal(err)
		}
		e.t.Cleanup(func() { _ = e.c.Delete(e.ctx, o) })
	}
	e.eventually("the ClusterRole to take effect", func() bool {
		return tn.c.List(e.ctx, &v1beta1.IPAddressPoolList{}, client.InNamespace(e.ns)) == nil
	})
}

// runAs runs the keeperlb command with another kubeconfig.
func (e *cliEnv) runAs(kubeconfig string, args ...string) (string, string, error) {
	e.t.Helper()
	var out, errOut bytes.Buffer
	root := NewRoot(&out)
	root.SetErr(&errOut)
	root.SetArgs(append([]string{"--kubeconfig", kubeconfig}, args...))
	err := root.ExecuteContext(e.ctx)
	return out.String(), errOut.String(), err
}
