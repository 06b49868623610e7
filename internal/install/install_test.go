package install_test

import (
	"bytes"
	"encoding/base64"
	"fmt"
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

func kustomize(t *testing.T, dir string) []*unstructured.Unstructured {
	t.Helper()
	fsys, err := install.ConfigFS(configDir)
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
	for _, tc := range []struct {
		dir             string
		serviceMonitors bool
	}{
		{"default", false},
		{"monitoring", true},
	} {
		t.Run(tc.dir, func(t *testing.T) {
			objs := kustomize(t, tc.dir)
			w := defaultWant(t, "metallb-system")
			w.ServiceMonitors = tc.serviceMonitors
			if err := install.Check(objs, w); err != nil {
				t.Fatalf("config/%s breaks the install policy:\n%v", tc.dir, err)
			}
			ns := install.Find(objs, "Namespace", "metallb-system")
			if ns == nil || ns.GetLabels()["pod-security.kubernetes.io/enforce"] != "privileged" {
				t.Errorf("config/%s: the namespace must exist and allow the speaker (pod-security privileged): %v", tc.dir, ns)
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

// TestKustomizeNeedsNoKeyFile: `kubectl apply -k config/default` needs no
// step before it. config/default and config/monitoring build without any
// key file and carry no Secret at all; the controller they run creates the
// one the speakers read.
func TestKustomizeNeedsNoKeyFile(t *testing.T) {
	fsys, err := install.ConfigFS(configDir)
	if err != nil {
		t.Fatal(err)
	}
	// A key file left in the working tree from an older install must not
	// be what makes the build succeed.
	if err := fsys.RemoveAll("/config/speaker/memberlist.key"); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{"default", "monitoring"} {
		objs, _, err := install.Kustomize(fsys, "/config/"+dir)
		if err != nil {
			t.Fatalf("config/%s must build with no key file: %v", dir, err)
		}
		for _, o := range objs {
			if o.GetKind() == "Secret" {
				t.Errorf("config/%s carries Secret %s; the controller creates the heartbeat key", dir, o.GetName())
			}
		}
		args := containerArgs(t, objs, "Deployment", install.ControllerName, "metallb-system")
		if !slices.Contains(args, "--memberlist-secret-name="+install.MemberlistSecretName) {
			t.Errorf("config/%s: the controller's args %v do not name the Secret it creates (--memberlist-secret-name=%s)", dir, args, install.MemberlistSecretName)
		}
	}
}

// TestImageTagsMatchChart keeps the kustomize image tags and the chart's
// appVersion (the default tag) in step.
func TestImageTagsMatchChart(t *testing.T) {
	ch, err := install.LoadChart(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	objs := kustomize(t, "default")
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
	objs, _ := renderManifest(t, ns, values)
	return objs
}

// renderManifest renders the chart as `helm template` does, returning the
// objects and the manifest text.
func renderManifest(t *testing.T, ns string, values map[string]any) ([]*unstructured.Unstructured, string) {
	t.Helper()
	ch, err := install.LoadChart(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	objs, manifest, err := install.RenderChart(ch, install.Release{Name: "keeperlb", Namespace: ns, Values: values})
	if err != nil {
		t.Fatal(err)
	}
	return objs, manifest
}

// memberlistValues are chart values setting speaker.memberlist.
func memberlistValues(kv ...string) map[string]any {
	m := map[string]any{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return map[string]any{"speaker": map[string]any{"memberlist": m}}
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
			values: memberlistValues("existingSecret", "my-key"),
			want: func(w *install.Want) {
				w.MemberlistSecret = "my-key"
				w.MemberlistKey = install.KeyExternal
			}},
		{name: "memberlist key given", ns: "metallb-system",
			values: memberlistValues("secretKey", "a-key-the-operator-chose-0123456789"),
			want:   func(w *install.Want) { w.MemberlistKey = install.KeyFromInstall }},
		{name: "memberlist key rotating", ns: "lb",
			values: memberlistValues("secretKey", "a-key-the-operator-chose-0123456789", "secondaryKey", "the-next-key-0123456789"),
			want:   func(w *install.Want) { w.MemberlistKey = install.KeyFromInstall }},
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

// TestHelmTemplateIsStable: two `helm template` renders with the same
// values are byte-identical, so a GitOps tool applying each render changes
// nothing and rolls no speaker. With the default values that means no
// random heartbeat key anywhere (the controller makes it).
func TestHelmTemplateIsStable(t *testing.T) {
	render := func(values map[string]any) string {
		_, m := renderManifest(t, "metallb-system", values)
		return m
	}
	for _, values := range []map[string]any{
		nil,
		memberlistValues("secretKey", "a-key-the-operator-chose-0123456789"),
		memberlistValues("existingSecret", "my-key"),
	} {
		if a, b := render(values), render(values); a != b {
			t.Errorf("values %v: two renders differ:\n%s", values, firstDifference(a, b))
		}
	}
}

// firstDifference shows the first differing line of two texts.
func firstDifference(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := range min(len(al), len(bl)) {
		if al[i] != bl[i] {
			return fmt.Sprintf("line %d:\n- %s\n+ %s", i+1, al[i], bl[i])
		}
	}
	return fmt.Sprintf("one render has %d lines, the other %d", len(al), len(bl))
}

// TestHelmMemberlistKey: who provides the speakers' heartbeat key under
// each way of configuring it, and what the speakers are told.
func TestHelmMemberlistKey(t *testing.T) {
	const key, next = "a-key-the-operator-chose-0123456789", "the-next-key-0123456789"
	secretData := func(objs []*unstructured.Unstructured, field string) (string, bool) {
		s := install.Find(objs, "Secret", install.MemberlistSecretName)
		if s == nil {
			t.Fatal("no memberlist Secret")
		}
		v, ok, _ := unstructured.NestedString(s.Object, "data", field)
		b, err := base64.StdEncoding.DecodeString(v)
		if err != nil {
			t.Fatal(err)
		}
		return string(b), ok
	}
	checksum := func(objs []*unstructured.Unstructured) string {
		v, _, _ := unstructured.NestedString(install.Find(objs, "DaemonSet", install.SpeakerName).Object, "spec", "template", "metadata", "annotations", "checksum/memberlist")
		return v
	}
	controllerCreates := func(objs []*unstructured.Unstructured) string {
		for _, a := range containerArgs(t, objs, "Deployment", install.ControllerName, "metallb-system") {
			if v, ok := strings.CutPrefix(a, "--memberlist-secret-name="); ok {
				return v
			}
		}
		t.Fatal("the chart does not pass the controller --memberlist-secret-name")
		return ""
	}
	secrets := func(objs []*unstructured.Unstructured) (n int) {
		for _, o := range objs {
			if o.GetKind() == "Secret" {
				n++
			}
		}
		return n
	}

	// Default: the controller creates the key; the chart renders no
	// Secret and no checksum of a key it does not know.
	def := renderChart(t, "metallb-system", nil)
	if n := secrets(def); n != 0 {
		t.Errorf("default values render %d Secrets, want none", n)
	}
	if got := controllerCreates(def); got != install.MemberlistSecretName {
		t.Errorf("default values: the controller creates %q, want %s", got, install.MemberlistSecretName)
	}
	if sum := checksum(def); sum != "" {
		t.Errorf("default values: the speakers carry checksum/memberlist %q of a key the chart does not know", sum)
	}

	// secretKey: the chart renders it; the controller must create none.
	given := renderChart(t, "metallb-system", memberlistValues("secretKey", key))
	if got, _ := secretData(given, install.MemberlistSecretKey); got != key {
		t.Errorf("speaker.memberlist.secretKey not used: got %q", got)
	}
	if _, ok := secretData(given, install.MemberlistSecondaryKey); ok {
		t.Error("a secondarykey rendered without speaker.memberlist.secondaryKey")
	}
	if got := controllerCreates(given); got != "" {
		t.Errorf("with secretKey the controller creates %q, want nothing (--memberlist-secret-name=)", got)
	}
	// Each step of a rotation through the values must roll the speakers.
	rotating := renderChart(t, "metallb-system", memberlistValues("secretKey", key, "secondaryKey", next))
	if got, _ := secretData(rotating, install.MemberlistSecondaryKey); got != next {
		t.Errorf("speaker.memberlist.secondaryKey not used: got %q", got)
	}
	swapped := renderChart(t, "metallb-system", memberlistValues("secretKey", next, "secondaryKey", key))
	sums := []string{checksum(given), checksum(rotating), checksum(swapped)}
	if sums[0] == "" || sums[0] == sums[1] || sums[1] == sums[2] || sums[0] == sums[2] {
		t.Errorf("checksum/memberlist over the rotation steps %q: want three different values", sums)
	}

	// existingSecret: the user's; nobody else creates it.
	ext := renderChart(t, "metallb-system", memberlistValues("existingSecret", "my-key"))
	if n := secrets(ext); n != 0 {
		t.Errorf("with existingSecret the chart renders %d Secrets, want none", n)
	}
	if got := controllerCreates(ext); got != "" {
		t.Errorf("with existingSecret the controller creates %q, want nothing", got)
	}
}

// TestHelmRefusesBadMemberlistValues: values that would leave the speakers
// without a usable key fail the render, naming the value.
func TestHelmRefusesBadMemberlistValues(t *testing.T) {
	ch, err := install.LoadChart(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		values map[string]any
		want   string
	}{
		{memberlistValues("secretKey", "short"), "speaker.memberlist.secretKey has 5 bytes; a speaker refuses a key shorter than 16"},
		{memberlistValues("secretKey", "a-key-the-operator-chose-0123456789", "secondaryKey", "short"), "speaker.memberlist.secondaryKey has 5 bytes"},
		{memberlistValues("secondaryKey", "the-next-key-0123456789"), "speaker.memberlist.secondaryKey is set without speaker.memberlist.secretKey"},
		{memberlistValues("secretKey", "a-key-the-operator-chose-0123456789", "existingSecret", "my-key"), "speaker.memberlist.secretKey and speaker.memberlist.existingSecret are both set"},
	} {
		_, _, err := install.RenderChart(ch, install.Release{Name: "keeperlb", Namespace: "metallb-system", Values: tc.values})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("values %v: want an error containing %q, got %v", tc.values, tc.want, err)
		}
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
	k := kustomize(t, "default")
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
		memberlistValues("secretKey", "a-key-the-operator-chose-0123456789", "secondaryKey", "the-next-key-0123456789"),
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
