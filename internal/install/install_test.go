package install_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"io"
	"log"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/keeperlb/keeperlb/internal/install"
)

const (
	root      = "../.."
	chartDir  = root + "/charts/keeperlb"
	configDir = root + "/config"
)

func TestMain(m *testing.M) {
	// Helm's loader logs each symbolic link it follows; the chart's links
	// into config/ are intended.
	log.SetOutput(io.Discard)
	os.Exit(m.Run())
}

// memberlistKey returns a fresh random key like the one docs/install.md
// tells users to create.
func memberlistKey(t *testing.T) []byte {
	t.Helper()
	b := make([]byte, 48)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return []byte(base64.StdEncoding.EncodeToString(b))
}

func kustomize(t *testing.T, dir string, extra map[string][]byte) []*unstructured.Unstructured {
	t.Helper()
	fsys, err := install.ConfigFS(configDir, extra)
	if err != nil {
		t.Fatal(err)
	}
	objs, _, err := install.Kustomize(fsys, "/config/"+dir)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

func generated(t *testing.T) install.Want {
	t.Helper()
	w, err := install.Generated(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(w.CRDs) < 9 || len(w.RBAC) != 4 {
		t.Fatalf("generated inputs look wrong: %d CRDs, %d RBAC objects (want 9+ and 4)", len(w.CRDs), len(w.RBAC))
	}
	return w
}

func defaultWant(t *testing.T, ns string) install.Want {
	w := generated(t)
	w.Namespace = ns
	w.ControllerReplicas = 2
	w.Webhook = true
	return w
}

func TestKustomize(t *testing.T) {
	key := memberlistKey(t)
	for _, tc := range []struct {
		dir             string
		serviceMonitors bool
	}{
		{"default", false},
		{"monitoring", true},
	} {
		t.Run(tc.dir, func(t *testing.T) {
			objs := kustomize(t, tc.dir, map[string][]byte{"speaker/memberlist.key": key})
			w := defaultWant(t, "metallb-system")
			w.ServiceMonitors = tc.serviceMonitors
			if err := install.Check(objs, w); err != nil {
				t.Fatalf("config/%s breaks the install policy:\n%v", tc.dir, err)
			}
			ns := install.Find(objs, "Namespace", "metallb-system")
			if ns == nil || ns.GetLabels()["pod-security.kubernetes.io/enforce"] != "privileged" {
				t.Errorf("config/%s: the namespace must exist and allow the speaker (pod-security privileged): %v", tc.dir, ns)
			}
			secret := install.Find(objs, "Secret", install.MemberlistSecretName)
			enc, _, _ := unstructured.NestedString(secret.Object, "data", install.MemberlistSecretKey)
			// kustomize folds long values over lines; base64 decoding
			// skips the newlines, as the API server's does.
			got, err := base64.StdEncoding.DecodeString(enc)
			if err != nil || !bytes.Equal(got, key) {
				t.Errorf("config/%s: the memberlist Secret does not hold config/speaker/memberlist.key", tc.dir)
			}
			strictServiceMonitors(t, objs, tc.serviceMonitors)
		})
	}
}

// strictServiceMonitors decodes every ServiceMonitor into the Prometheus
// Operator's own Go type, refusing unknown fields: the API server in the
// tests serves a permissive stand-in for that CRD, so this is where field
// names are checked.
func strictServiceMonitors(t *testing.T, objs []*unstructured.Unstructured, want bool) {
	t.Helper()
	n := 0
	for _, o := range objs {
		if o.GetKind() != "ServiceMonitor" {
			continue
		}
		n++
		raw, err := yaml.Marshal(o.Object)
		if err != nil {
			t.Fatal(err)
		}
		var sm monitoringv1.ServiceMonitor
		if err := yaml.UnmarshalStrict(raw, &sm); err != nil {
			t.Errorf("ServiceMonitor %s is not a valid monitoring.coreos.com/v1 ServiceMonitor: %v", o.GetName(), err)
			continue
		}
		if len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Port != "metrics" || sm.Spec.Endpoints[0].Path != "/metrics" {
			t.Errorf("ServiceMonitor %s must scrape port metrics at /metrics: %+v", o.GetName(), sm.Spec.Endpoints)
		}
	}
	if want && n != 2 || !want && n != 0 {
		t.Errorf("%d ServiceMonitors, want %d", n, map[bool]int{true: 2}[want])
	}
}

func TestKustomizeNeedsMemberlistKey(t *testing.T) {
	fsys, err := install.ConfigFS(configDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	// A key file left in the working tree by someone following
	// docs/install.md must not hide the failure being tested.
	_ = fsys.RemoveAll("/config/speaker/memberlist.key")
	_, _, err = install.Kustomize(fsys, "/config/default")
	if err == nil || !strings.Contains(err.Error(), "memberlist.key") {
		t.Fatalf("building without the key must fail naming memberlist.key, got %v", err)
	}
}

// TestImageTagsMatchChart keeps the kustomize image tags and the chart's
// appVersion (the default tag) in step.
func TestImageTagsMatchChart(t *testing.T) {
	ch, err := install.LoadChart(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	objs := kustomize(t, "default", map[string][]byte{"speaker/memberlist.key": memberlistKey(t)})
	for kind, name := range map[string]string{"Deployment": install.ControllerName, "DaemonSet": install.SpeakerName} {
		o := install.Find(objs, kind, name)
		cs, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
		image := cs[0].(map[string]any)["image"].(string)
		want := "ghcr.io/keeperlb/" + name + ":" + ch.Metadata.AppVersion
		if image != want {
			t.Errorf("%s %s image is %s, want %s (chart appVersion)", kind, name, image, want)
		}
	}
}

func renderChart(t *testing.T, ns string, values map[string]any) []*unstructured.Unstructured {
	t.Helper()
	ch, err := install.LoadChart(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	objs, _, err := install.RenderChart(ch, install.Release{Name: "keeperlb", Namespace: ns, Values: values})
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

func TestHelmRender(t *testing.T) {
	for _, tc := range []struct {
		name   string
		ns     string
		values map[string]any
		want   func(*install.Want)
	}{
		{name: "defaults", ns: "metallb-system"},
		{name: "another namespace", ns: "lb"},
		{name: "three replicas", ns: "metallb-system",
			values: map[string]any{"controller": map[string]any{"replicas": 3}},
			want:   func(w *install.Want) { w.ControllerReplicas = 3 }},
		{name: "webhooks off", ns: "metallb-system",
			values: map[string]any{"webhook": map[string]any{"enabled": false}},
			want:   func(w *install.Want) { w.Webhook = false }},
		{name: "service monitors", ns: "metallb-system",
			values: map[string]any{"serviceMonitor": map[string]any{"enabled": true, "labels": map[string]any{"release": "prometheus"}}},
			want:   func(w *install.Want) { w.ServiceMonitors = true }},
		{name: "metrics services off but monitors on", ns: "metallb-system",
			values: map[string]any{"metrics": map[string]any{"services": false}, "serviceMonitor": map[string]any{"enabled": true}},
			want:   func(w *install.Want) { w.ServiceMonitors = true }},
		{name: "existing memberlist secret", ns: "metallb-system",
			values: map[string]any{"speaker": map[string]any{"memberlist": map[string]any{"existingSecret": "my-key"}}},
			want: func(w *install.Want) {
				w.MemberlistSecret = "my-key"
				w.ExternalMemberlistSecret = true
			}},
		{name: "plain HTTP metrics", ns: "metallb-system",
			values: map[string]any{"metrics": map[string]any{"secure": false}, "serviceMonitor": map[string]any{"enabled": true}},
			want: func(w *install.Want) {
				w.PlainHTTPMetrics = true
				w.ServiceMonitors = true
			}},
		{name: "metrics certificate and readers", ns: "metallb-system",
			values: map[string]any{"metrics": map[string]any{"certSecret": "metrics-tls",
				"readers": []any{map[string]any{"name": "prometheus-k8s", "namespace": "monitoring"}}}},
		},
		{name: "CRDs managed elsewhere", ns: "metallb-system",
			values: map[string]any{"crds": map[string]any{"enabled": false}},
			want:   func(w *install.Want) { w.CRDs = nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs := renderChart(t, tc.ns, tc.values)
			w := defaultWant(t, tc.ns)
			if tc.want != nil {
				tc.want(&w)
			}
			if err := install.Check(objs, w); err != nil {
				t.Fatalf("chart breaks the install policy:\n%v", err)
			}
			crds := 0
			for _, o := range objs {
				if o.GetKind() == "CustomResourceDefinition" {
					crds++
					if w.CRDs != nil && o.GetAnnotations()["helm.sh/resource-policy"] != "keep" {
						t.Errorf("CRD %s lacks helm.sh/resource-policy: keep; uninstalling would delete every pool", o.GetName())
					}
				}
			}
			if crds != len(w.CRDs) {
				t.Errorf("%d CRDs rendered, want %d", crds, len(w.CRDs))
			}
			strictServiceMonitors(t, objs, w.ServiceMonitors)
		})
	}
}

func TestHelmMemberlistKey(t *testing.T) {
	key := func(objs []*unstructured.Unstructured) []byte {
		s := install.Find(objs, "Secret", install.MemberlistSecretName)
		if s == nil {
			t.Fatal("no memberlist Secret")
		}
		v, _, _ := unstructured.NestedString(s.Object, "data", install.MemberlistSecretKey)
		b, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	a, b := key(renderChart(t, "metallb-system", nil)), key(renderChart(t, "metallb-system", nil))
	if len(a) < 32 || bytes.Equal(a, b) {
		t.Errorf("without a cluster each render must generate a new random key of 32+ bytes: %q, %q", a, b)
	}
	given := key(renderChart(t, "metallb-system", map[string]any{"speaker": map[string]any{"memberlist": map[string]any{"secretKey": "a-key-the-operator-chose-0123456789"}}}))
	if string(given) != "a-key-the-operator-chose-0123456789" {
		t.Errorf("speaker.memberlist.secretKey not used: got %q", given)
	}
}

// TestHelmMetricsAccess: a named certificate reaches both containers, and
// metrics.readers binds exactly the accounts listed to the reader role.
func TestHelmMetricsAccess(t *testing.T) {
	objs := renderChart(t, "metallb-system", map[string]any{"metrics": map[string]any{"certSecret": "metrics-tls",
		"readers": []any{map[string]any{"name": "prometheus-k8s", "namespace": "monitoring"}}}})
	for kind, name := range map[string]string{"Deployment": install.ControllerName, "DaemonSet": install.SpeakerName} {
		o := install.Find(objs, kind, name)
		cs, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
		c := cs[0].(map[string]any)
		args, _, _ := unstructured.NestedStringSlice(c, "args")
		if !slices.Contains(args, "--metrics-cert-dir=/tmp/k8s-metrics-server/metrics-certs") {
			t.Errorf("%s %s: args %v lack the metrics certificate folder", kind, name, args)
		}
		mounts, _, _ := unstructured.NestedSlice(c, "volumeMounts")
		vols, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "volumes")
		mounted := slices.ContainsFunc(mounts, func(m any) bool {
			return m.(map[string]any)["mountPath"] == "/tmp/k8s-metrics-server/metrics-certs"
		})
		fromSecret := slices.ContainsFunc(vols, func(v any) bool {
			name, _, _ := unstructured.NestedString(v.(map[string]any), "secret", "secretName")
			return name == "metrics-tls"
		})
		if !mounted || !fromSecret {
			t.Errorf("%s %s: Secret metrics-tls not mounted at the certificate folder (mounts %v, volumes %v)", kind, name, mounts, vols)
		}
	}
	b := install.Find(objs, "ClusterRoleBinding", install.MetricsReaderRole)
	if b == nil {
		t.Fatal("no ClusterRoleBinding for metrics.readers")
	}
	subjects, _, _ := unstructured.NestedSlice(b.Object, "subjects")
	want := []any{map[string]any{"kind": "ServiceAccount", "name": "prometheus-k8s", "namespace": "monitoring"}}
	if !reflect.DeepEqual(subjects, want) {
		t.Errorf("reader binding subjects %v, want %v", subjects, want)
	}
	if install.Find(renderChart(t, "metallb-system", nil), "ClusterRoleBinding", install.MetricsReaderRole) != nil {
		t.Error("without metrics.readers the chart must bind nobody to the reader role")
	}
}

// TestHelmAndKustomizeAgree: both ways of installing run the same pods.
func TestHelmAndKustomizeAgree(t *testing.T) {
	k := kustomize(t, "default", map[string][]byte{"speaker/memberlist.key": memberlistKey(t)})
	h := renderChart(t, "metallb-system", nil)
	names := func(objs []*unstructured.Unstructured) []string {
		var out []string
		for _, o := range objs {
			if o.GetKind() != "Namespace" { // Helm leaves the namespace to --create-namespace
				out = append(out, o.GetKind()+"/"+o.GetName())
			}
		}
		slices.Sort(out)
		return out
	}
	if kn, hn := names(k), names(h); !slices.Equal(kn, hn) {
		t.Errorf("different objects:\nkustomize: %v\nhelm:      %v", kn, hn)
	}
	for kind, name := range map[string]string{"Deployment": install.ControllerName, "DaemonSet": install.SpeakerName} {
		kp, _, _ := unstructured.NestedMap(install.Find(k, kind, name).Object, "spec", "template", "spec")
		hp, _, _ := unstructured.NestedMap(install.Find(h, kind, name).Object, "spec", "template", "spec")
		if !reflect.DeepEqual(kp, hp) {
			kb, _ := yaml.Marshal(kp)
			hb, _ := yaml.Marshal(hp)
			t.Errorf("%s %s pod specs differ:\n--- kustomize\n%s\n--- helm\n%s", kind, name, kb, hb)
		}
	}
}

func TestHelmLint(t *testing.T) {
	for _, values := range []map[string]any{
		nil,
		{"serviceMonitor": map[string]any{"enabled": true}, "webhook": map[string]any{"enabled": false}, "loadBalancerClass": "example.com/lb"},
	} {
		if err := install.LintChart(chartDir, "metallb-system", values); err != nil {
			t.Errorf("values %v: %v", values, err)
		}
	}
	// The linter must be able to fail: a chart whose template does not
	// parse.
	bad := t.TempDir()
	if err := os.WriteFile(filepath.Join(bad, "Chart.yaml"), []byte("apiVersion: v2\nname: bad\nversion: 0.1.0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(bad, "templates"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bad, "templates", "x.yaml"), []byte("kind: {{ .Values.missing.field }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := install.LintChart(bad, "default", nil); err == nil {
		t.Error("lint passed a chart with a broken template")
	}
}

// TestChartCarriesGeneratedFiles: the chart's files/ links resolve to the
// generated CRDs and roles, so the chart cannot drift from `make generate`.
func TestChartCarriesGeneratedFiles(t *testing.T) {
	ch, err := install.LoadChart(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, f := range ch.Files {
		files[f.Name] = f.Data
	}
	bases, err := filepath.Glob(filepath.Join(configDir, "crd", "bases", "*.yaml"))
	if err != nil || len(bases) == 0 {
		t.Fatalf("no generated CRDs: %v", err)
	}
	want := map[string]string{
		"files/rbac/controller-role.yaml": filepath.Join(configDir, "rbac", "controller", "role.yaml"),
		"files/rbac/speaker-role.yaml":    filepath.Join(configDir, "rbac", "speaker", "role.yaml"),
	}
	for _, b := range bases {
		want["files/crds/"+filepath.Base(b)] = b
	}
	for name, src := range want {
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(files[name], data) {
			t.Errorf("chart file %s does not carry %s", name, src)
		}
	}
}
