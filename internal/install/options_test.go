package install_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"github.com/keeperlb/keeperlb/internal/install"
)

// The optional objects of this file: the Grafana dashboard ConfigMap, the
// PodMonitors and the NetworkPolicies, each rendered off and on, by the
// chart and by config/'s components.

const (
	dashboardFile      = chartDir + "/files/dashboards/keeperlb.json"
	dashboardConfigMap = "keeperlb-grafana-dashboard"
	scraperAccount     = "keeperlb-metrics-scraper"
	scraperToken       = "keeperlb-metrics-scraper-token"
)

// decodeStrict converts u into out, refusing fields out's type lacks.
func decodeStrict(t *testing.T, u *unstructured.Unstructured, out any) {
	t.Helper()
	raw, err := yaml.Marshal(u.Object)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict(raw, out); err != nil {
		t.Fatalf("%s %s does not decode strictly: %v", u.GetKind(), u.GetName(), err)
	}
}

func ofKind(objs []*unstructured.Unstructured, kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == kind {
			out = append(out, o)
		}
	}
	return out
}

// renderErr renders the chart and returns the error.
func renderErr(t *testing.T, values map[string]any) error {
	t.Helper()
	ch, err := install.LoadChart(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = install.RenderChart(ch, install.Release{Name: "keeperlb", Namespace: "metallb-system", Values: values})
	return err
}

// allOptions turns every option of this file on.
func allOptions() map[string]any {
	return map[string]any{
		"grafanaDashboard": map[string]any{"enabled": true},
		"podMonitor":       map[string]any{"enabled": true},
		"networkPolicy":    map[string]any{"enabled": true},
	}
}

func dashboardData(t *testing.T, objs []*unstructured.Unstructured) (*corev1.ConfigMap, []byte) {
	t.Helper()
	u := install.Find(objs, "ConfigMap", dashboardConfigMap)
	if u == nil {
		t.Fatalf("no ConfigMap %s", dashboardConfigMap)
	}
	var cm corev1.ConfigMap
	decodeStrict(t, u, &cm)
	data, ok := cm.Data["keeperlb.json"]
	if !ok || len(cm.Data) != 1 || len(cm.BinaryData) != 0 {
		t.Fatalf("ConfigMap %s must hold exactly keeperlb.json, has %d data keys", cm.Name, len(cm.Data)+len(cm.BinaryData))
	}
	var d struct {
		UID    string `json:"uid"`
		Panels []any  `json:"panels"`
	}
	if err := json.Unmarshal([]byte(data), &d); err != nil || d.UID != "keeperlb" || len(d.Panels) == 0 {
		t.Fatalf("ConfigMap %s does not carry the dashboard (uid %q, %d panels): %v", cm.Name, d.UID, len(d.Panels), err)
	}
	return &cm, []byte(data)
}

func TestHelmGrafanaDashboard(t *testing.T) {
	if cm := install.Find(renderChart(t, "metallb-system", nil), "ConfigMap", dashboardConfigMap); cm != nil {
		t.Fatal("the dashboard ConfigMap is rendered by default; it must be opt-in")
	}
	want, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}

	objs := renderChart(t, "lb", map[string]any{"grafanaDashboard": map[string]any{"enabled": true}})
	cm, data := dashboardData(t, objs)
	if !bytes.Equal(data, want) {
		t.Errorf("the ConfigMap's keeperlb.json differs from %s", dashboardFile)
	}
	if cm.Namespace != "lb" || cm.Labels["grafana_dashboard"] != "1" || cm.Labels["app.kubernetes.io/name"] != "keeperlb" {
		t.Errorf("ConfigMap %s/%s labels %v: want the release namespace and grafana_dashboard=1", cm.Namespace, cm.Name, cm.Labels)
	}
	w := defaultWant(t, "lb")
	if err := install.Check(objs, w); err != nil {
		t.Errorf("with the dashboard the chart breaks the install policy:\n%v", err)
	}

	// Grafana's namespace, its folder annotation, another sidecar label and
	// the default one dropped.
	objs = renderChart(t, "metallb-system", map[string]any{"grafanaDashboard": map[string]any{
		"enabled":     true,
		"namespace":   "monitoring",
		"labels":      map[string]any{"grafana_dashboard": nil, "dashboards": "keeperlb"},
		"annotations": map[string]any{"grafana_folder": "KeeperLB"},
	}})
	cm, _ = dashboardData(t, objs)
	if cm.Namespace != "monitoring" {
		t.Errorf("grafanaDashboard.namespace: the ConfigMap is in %q, want monitoring", cm.Namespace)
	}
	if _, ok := cm.Labels["grafana_dashboard"]; ok || cm.Labels["dashboards"] != "keeperlb" {
		t.Errorf("grafanaDashboard.labels: got %v, want dashboards=keeperlb and no grafana_dashboard", cm.Labels)
	}
	if !reflect.DeepEqual(cm.Annotations, map[string]string{"grafana_folder": "KeeperLB"}) {
		t.Errorf("grafanaDashboard.annotations: got %v", cm.Annotations)
	}
}

// componentsFS is config/ with a kustomization that adds components to
// config/default, as docs/install.md tells users to write.
func componentsFS(t *testing.T, components ...string) []*unstructured.Unstructured {
	t.Helper()
	fsys, err := install.ConfigFS(configDir)
	if err != nil {
		t.Fatal(err)
	}
	k := "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- ../default\ncomponents:\n"
	for _, c := range components {
		k += "- ../" + c + "\n"
	}
	if err := fsys.MkdirAll("/config/test-overlay"); err != nil {
		t.Fatal(err)
	}
	if err := fsys.WriteFile("/config/test-overlay/kustomization.yaml", []byte(k)); err != nil {
		t.Fatal(err)
	}
	objs, _, err := install.Kustomize(fsys, "/config/test-overlay")
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

func TestKustomizeComponents(t *testing.T) {
	objs := componentsFS(t, "grafana", "networkpolicy")
	if err := install.Check(objs, defaultWant(t, "metallb-system")); err != nil {
		t.Fatalf("config/default with the grafana and networkpolicy components breaks the install policy:\n%v", err)
	}
	cm, data := dashboardData(t, objs)
	want, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(data, want) {
		t.Errorf("config/grafana's dashboard differs from the chart's %s: run make generate", dashboardFile)
	}
	if cm.Namespace != "metallb-system" || cm.Labels["grafana_dashboard"] != "1" {
		t.Errorf("config/grafana ConfigMap %s/%s labels %v: want metallb-system and grafana_dashboard=1", cm.Namespace, cm.Name, cm.Labels)
	}
	// The chart and config/ give the same policies and the same dashboard.
	h := renderChart(t, "metallb-system", allOptions())
	_, hdata := dashboardData(t, h)
	if !bytes.Equal(hdata, data) {
		t.Error("the chart's and config/grafana's dashboards differ")
	}
	for _, name := range []string{install.ControllerName, install.SpeakerName} {
		k, hp := install.Find(objs, "NetworkPolicy", name), install.Find(h, "NetworkPolicy", name)
		if k == nil || hp == nil {
			t.Fatalf("NetworkPolicy %s: kustomize %v, helm %v", name, k != nil, hp != nil)
		}
		if !reflect.DeepEqual(k.Object["spec"], hp.Object["spec"]) {
			kb, _ := yaml.Marshal(k.Object["spec"])
			hb, _ := yaml.Marshal(hp.Object["spec"])
			t.Errorf("NetworkPolicy %s differs:\n--- config/networkpolicy\n%s--- chart\n%s", name, kb, hb)
		}
	}
	// Without the components there is neither.
	def := kustomize(t, "default")
	if len(ofKind(def, "NetworkPolicy"))+len(ofKind(def, "ConfigMap")) != 0 {
		t.Error("config/default carries a NetworkPolicy or the dashboard; both must be opt-in components")
	}
}

// podLabels returns the pod template labels and the container of the
// component's workload.
func podOf(t *testing.T, objs []*unstructured.Unstructured, component string) (map[string]string, *corev1.Container) {
	t.Helper()
	var tmpl corev1.PodTemplateSpec
	switch component {
	case "controller":
		var d appsv1.Deployment
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(install.Find(objs, "Deployment", install.ControllerName).Object, &d); err != nil {
			t.Fatal(err)
		}
		tmpl = d.Spec.Template
	default:
		var ds appsv1.DaemonSet
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(install.Find(objs, "DaemonSet", install.SpeakerName).Object, &ds); err != nil {
			t.Fatal(err)
		}
		tmpl = ds.Spec.Template
	}
	return tmpl.Labels, &tmpl.Spec.Containers[0]
}

func selects(t *testing.T, sel *metav1.LabelSelector, podLabels map[string]string) bool {
	t.Helper()
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		t.Fatal(err)
	}
	return !s.Empty() && s.Matches(labels.Set(podLabels))
}

func TestHelmPodMonitor(t *testing.T) {
	if n := len(ofKind(renderChart(t, "metallb-system", nil), "PodMonitor")); n != 0 {
		t.Fatalf("%d PodMonitors by default; they need the Prometheus Operator and must be opt-in", n)
	}
	// The job label must be the ServiceMonitors', so that alerts written
	// for one work with the other.
	sms := ofKind(renderChart(t, "metallb-system", map[string]any{"serviceMonitor": map[string]any{"enabled": true}}), "ServiceMonitor")
	if len(sms) != 2 {
		t.Fatalf("%d ServiceMonitors, want 2", len(sms))
	}
	smJob, _, _ := unstructured.NestedString(sms[0].Object, "spec", "jobLabel")

	for _, tc := range []struct {
		name        string
		values      map[string]any
		secure      bool
		tokenSecret string // "" with secure: the chart's own scraper account
	}{
		{name: "HTTPS, the chart's scraper account", values: map[string]any{"podMonitor": map[string]any{"enabled": true, "labels": map[string]any{"release": "prometheus"}}}, secure: true},
		{name: "HTTPS, a given token Secret", values: map[string]any{"podMonitor": map[string]any{"enabled": true,
			"bearerTokenSecret": map[string]any{"name": "prom-token", "key": "jwt"}}}, secure: true, tokenSecret: "prom-token"},
		{name: "plain HTTP", values: map[string]any{"podMonitor": map[string]any{"enabled": true}, "metrics": map[string]any{"secure": false}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs := renderChart(t, "metallb-system", tc.values)
			w := defaultWant(t, "metallb-system")
			w.PlainHTTPMetrics = !tc.secure
			if err := install.Check(objs, w); err != nil {
				t.Fatalf("with PodMonitors the chart breaks the install policy:\n%v", err)
			}
			pms := ofKind(objs, "PodMonitor")
			if len(pms) != 2 || len(ofKind(objs, "ServiceMonitor")) != 0 {
				t.Fatalf("%d PodMonitors and %d ServiceMonitors, want 2 and 0", len(pms), len(ofKind(objs, "ServiceMonitor")))
			}
			for _, component := range []string{"controller", "speaker"} {
				u := install.Find(objs, "PodMonitor", "keeperlb-"+component)
				if u == nil {
					t.Fatalf("no PodMonitor keeperlb-%s", component)
				}
				var pm monitoringv1.PodMonitor
				decodeStrict(t, u, &pm)
				podLabels, ct := podOf(t, objs, component)
				if pm.Namespace != "metallb-system" || !slices.Equal(pm.Spec.NamespaceSelector.MatchNames, []string{"metallb-system"}) {
					t.Errorf("%s: namespace %s, namespaceSelector %v: want the release namespace", pm.Name, pm.Namespace, pm.Spec.NamespaceSelector)
				}
				if !selects(t, &pm.Spec.Selector, podLabels) {
					t.Errorf("%s: selector %v does not select the %s pods %v", pm.Name, pm.Spec.Selector, component, podLabels)
				}
				if pm.Spec.JobLabel != smJob || podLabels[pm.Spec.JobLabel] != component {
					t.Errorf("%s: jobLabel %q (job=%q), want the ServiceMonitors' %q giving job=%s", pm.Name, pm.Spec.JobLabel, podLabels[pm.Spec.JobLabel], smJob, component)
				}
				if _, ok := tc.values["podMonitor"].(map[string]any)["labels"]; ok && pm.Labels["release"] != "prometheus" {
					t.Errorf("%s: podMonitor.labels not applied: %v", pm.Name, pm.Labels)
				}
				if len(pm.Spec.PodMetricsEndpoints) != 1 {
					t.Fatalf("%s: %d endpoints, want 1", pm.Name, len(pm.Spec.PodMetricsEndpoints))
				}
				ep := pm.Spec.PodMetricsEndpoints[0]
				if ep.Port == nil || *ep.Port != "metrics" || ep.Path != "/metrics" || slices.IndexFunc(ct.Ports, func(p corev1.ContainerPort) bool { return p.Name == "metrics" }) < 0 {
					t.Errorf("%s: must scrape the container port named metrics at /metrics: %+v", pm.Name, ep)
				}
				scheme := ""
				if ep.Scheme != nil {
					scheme = strings.ToLower(string(*ep.Scheme))
				}
				if !tc.secure {
					if scheme == "https" || ep.Authorization != nil {
						t.Errorf("%s: plain HTTP metrics, but the endpoint scrapes with %q and authorization %v", pm.Name, scheme, ep.Authorization)
					}
					continue
				}
				if scheme != "https" || ep.TLSConfig == nil || ep.TLSConfig.InsecureSkipVerify == nil || !*ep.TLSConfig.InsecureSkipVerify {
					t.Errorf("%s: want https with the default tlsConfig (insecureSkipVerify): scheme %q, tls %+v", pm.Name, scheme, ep.TLSConfig)
				}
				a := ep.Authorization
				wantName, wantKey := scraperToken, "token"
				if tc.tokenSecret != "" {
					wantName, wantKey = tc.tokenSecret, "jwt"
				}
				if a == nil || a.Type != "Bearer" || a.Credentials == nil || a.Credentials.Name != wantName || a.Credentials.Key != wantKey {
					t.Errorf("%s: authorization %+v, want a Bearer token from Secret %s key %s", pm.Name, a, wantName, wantKey)
				}
			}
			checkScraperAccount(t, objs, tc.secure && tc.tokenSecret == "")
		})
	}

	err := renderErr(t, map[string]any{"podMonitor": map[string]any{"enabled": true}, "serviceMonitor": map[string]any{"enabled": true}})
	if err == nil || !strings.Contains(err.Error(), "podMonitor.enabled and serviceMonitor.enabled are both true") {
		t.Errorf("both monitors: want the render to fail naming both values, got %v", err)
	}
}

// checkScraperAccount: the PodMonitors' own identity exists exactly when
// wanted: a ServiceAccount, a token Secret for it, and a binding to the
// reader role (get /metrics, nothing else), all in the release namespace.
func checkScraperAccount(t *testing.T, objs []*unstructured.Unstructured, want bool) {
	t.Helper()
	sa := install.Find(objs, "ServiceAccount", scraperAccount)
	sec := install.Find(objs, "Secret", scraperToken)
	crb := install.Find(objs, "ClusterRoleBinding", scraperAccount)
	if !want {
		if sa != nil || sec != nil || crb != nil {
			t.Errorf("scraper account rendered though not needed: ServiceAccount %v, Secret %v, binding %v", sa != nil, sec != nil, crb != nil)
		}
		return
	}
	if sa == nil || sec == nil || crb == nil {
		t.Fatalf("scraper account incomplete: ServiceAccount %v, Secret %v, binding %v", sa != nil, sec != nil, crb != nil)
	}
	var s corev1.Secret
	decodeStrict(t, sec, &s)
	if s.Type != corev1.SecretTypeServiceAccountToken || s.Annotations[corev1.ServiceAccountNameKey] != scraperAccount || len(s.Data)+len(s.StringData) != 0 {
		t.Errorf("Secret %s: type %s, annotations %v: want an empty service-account-token Secret for %s (the cluster fills it)", s.Name, s.Type, s.Annotations, scraperAccount)
	}
	var b rbacv1.ClusterRoleBinding
	decodeStrict(t, crb, &b)
	wantSubjects := []rbacv1.Subject{{Kind: "ServiceAccount", Name: scraperAccount, Namespace: "metallb-system"}}
	if b.RoleRef.Kind != "ClusterRole" || b.RoleRef.Name != install.MetricsReaderRole || !reflect.DeepEqual(b.Subjects, wantSubjects) {
		t.Errorf("ClusterRoleBinding %s binds %v to %s %s, want %v to ClusterRole %s", b.Name, b.Subjects, b.RoleRef.Kind, b.RoleRef.Name, wantSubjects, install.MetricsReaderRole)
	}
}

// ingressPort is one port a NetworkPolicy lets in, and from whom.
type ingressPort struct {
	port     string // "7472/TCP"
	from     string // "any" or the peers as YAML
	resolved bool   // the port is a container port of the selected pods
}

// policyPorts reads the NetworkPolicy of component, checks its shape and
// returns the ports it lets in, sorted.
func policyPorts(t *testing.T, objs []*unstructured.Unstructured, component string) []ingressPort {
	t.Helper()
	u := install.Find(objs, "NetworkPolicy", "keeperlb-"+component)
	if u == nil {
		t.Fatalf("no NetworkPolicy keeperlb-%s", component)
	}
	var np networkingv1.NetworkPolicy
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, &np, true); err != nil {
		t.Fatalf("NetworkPolicy %s does not decode strictly: %v", u.GetName(), err)
	}
	podLabels, ct := podOf(t, objs, component)
	if np.Namespace != "metallb-system" || !selects(t, &np.Spec.PodSelector, podLabels) {
		t.Errorf("%s: namespace %s, podSelector %v: must select the %s pods %v of the release namespace", np.Name, np.Namespace, np.Spec.PodSelector, component, podLabels)
	}
	if !slices.Equal(np.Spec.PolicyTypes, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}) || len(np.Spec.Egress) != 0 {
		t.Errorf("%s: policyTypes %v: want Ingress only (egress to the API server and routers is not restricted)", np.Name, np.Spec.PolicyTypes)
	}
	var out []ingressPort
	for _, r := range np.Spec.Ingress {
		if len(r.Ports) == 0 {
			t.Errorf("%s: a rule without ports lets everything in", np.Name)
		}
		from := "any"
		if len(r.From) > 0 {
			b, _ := json.Marshal(r.From)
			from = string(b)
		}
		for _, p := range r.Ports {
			proto := corev1.ProtocolTCP
			if p.Protocol != nil {
				proto = *p.Protocol
			}
			ip := ingressPort{port: fmt.Sprintf("%s/%s", p.Port.String(), proto), from: from}
			for _, cp := range ct.Ports {
				if cp.Protocol == proto && (p.Port.IntValue() == int(cp.ContainerPort) || p.Port.String() == cp.Name) {
					ip.resolved = true
				}
			}
			out = append(out, ip)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].port < out[j].port })
	return out
}

func TestHelmNetworkPolicy(t *testing.T) {
	if n := len(ofKind(renderChart(t, "metallb-system", nil), "NetworkPolicy")); n != 0 {
		t.Fatalf("%d NetworkPolicies by default; they must be opt-in", n)
	}
	const prometheus = `[{"podSelector":{"matchLabels":{"app.kubernetes.io/name":"prometheus"}},"namespaceSelector":{}}]`
	speakerPeer := `{"podSelector":{"matchLabels":{"app.kubernetes.io/component":"speaker","app.kubernetes.io/name":"keeperlb"}}}`
	for _, tc := range []struct {
		name       string
		values     map[string]any
		webhook    bool
		controller []ingressPort
		speaker    []ingressPort
	}{
		{name: "defaults", webhook: true,
			values:     map[string]any{"networkPolicy": map[string]any{"enabled": true}},
			controller: []ingressPort{{"7472/TCP", prometheus, true}, {"9443/TCP", "any", true}},
			speaker:    []ingressPort{{"7472/TCP", prometheus, true}, {"7946/UDP", "any", true}}},
		{name: "ranges given", webhook: true,
			values: map[string]any{"networkPolicy": map[string]any{"enabled": true,
				"apiServerCIDRs": []any{"198.18.0.10/32"},
				"nodeCIDRs":      []any{"198.18.0.0/24", "2001:db8::/64"},
				"bfdPeerCIDRs":   []any{"198.18.1.1/32"},
				"prometheus":     map[string]any{"namespaceSelector": map[string]any{"matchLabels": map[string]any{"kubernetes.io/metadata.name": "monitoring"}}, "podSelector": nil},
			}},
			controller: []ingressPort{
				{"7472/TCP", `[{"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"monitoring"}}}]`, true},
				{"9443/TCP", `[{"ipBlock":{"cidr":"198.18.0.10/32"}}]`, true}},
			speaker: []ingressPort{
				// BFD is GoBGP's socket, not a container port.
				{"3784/UDP", `[{"ipBlock":{"cidr":"198.18.1.1/32"}}]`, false},
				{"7472/TCP", `[{"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"monitoring"}}}]`, true},
				{"7946/UDP", `[{"ipBlock":{"cidr":"198.18.0.0/24"}},{"ipBlock":{"cidr":"2001:db8::/64"}},` + speakerPeer + `]`, true}}},
		{name: "webhooks off, other speaker ports",
			values: map[string]any{"networkPolicy": map[string]any{"enabled": true},
				"webhook": map[string]any{"enabled": false},
				"speaker": map[string]any{"metricsPort": 9472, "livenessPort": 8946, "healthPort": 9473}},
			controller: []ingressPort{{"7472/TCP", prometheus, true}},
			speaker:    []ingressPort{{"8946/UDP", "any", true}, {"9472/TCP", prometheus, true}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs := renderChart(t, "metallb-system", tc.values)
			w := defaultWant(t, "metallb-system")
			w.Webhook = tc.webhook
			if err := install.Check(objs, w); err != nil {
				t.Fatalf("with NetworkPolicies the chart breaks the install policy:\n%v", err)
			}
			if n := len(ofKind(objs, "NetworkPolicy")); n != 2 {
				t.Fatalf("%d NetworkPolicies, want 2", n)
			}
			for component, want := range map[string][]ingressPort{"controller": tc.controller, "speaker": tc.speaker} {
				got := policyPorts(t, objs, component)
				if !reflect.DeepEqual(got, want) {
					t.Errorf("%s lets in\n %v\nwant\n %v", component, got, want)
				}
			}
		})
	}

	err := renderErr(t, map[string]any{"networkPolicy": map[string]any{"enabled": true,
		"prometheus": map[string]any{"namespaceSelector": nil, "podSelector": nil}}})
	if err == nil || !strings.Contains(err.Error(), "networkPolicy.prometheus needs a namespaceSelector or a podSelector") {
		t.Errorf("no Prometheus selector: want the render to fail naming the value, got %v", err)
	}
}

// TestHelmOptionsStableAndLinted: with every option on, two renders are
// byte-identical (GitOps tools re-apply each render) and helm lint
// --strict passes.
func TestHelmOptionsStableAndLinted(t *testing.T) {
	_, a := renderManifest(t, "metallb-system", allOptions())
	_, b := renderManifest(t, "metallb-system", allOptions())
	if a != b {
		t.Errorf("two renders with every option on differ:\n%s", firstDifference(a, b))
	}
	if err := install.LintChart(chartDir, "metallb-system", allOptions()); err != nil {
		t.Error(err)
	}
	if _, err := os.Stat(filepath.Join(configDir, "grafana", "keeperlb.json")); err != nil {
		t.Errorf("config/grafana has no dashboard copy: %v", err)
	}
}
