package install_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/keeperlb/keeperlb/internal/install"
)

// TestOptionalObjectsInstall applies the optional objects to a real API
// server with strict field validation: config/default with the prometheus,
// grafana and networkpolicy components (ServiceMonitors, the dashboard
// ConfigMap, NetworkPolicies), stored and read back; then the chart with
// the dashboard, PodMonitors (and their scraper account) and
// NetworkPolicies as a server-side dry run, which the API server validates
// as it would a real apply.
func TestOptionalObjectsInstall(t *testing.T) {
	cp := startControlPlane(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, crd := range []string{"testdata/servicemonitors-crd.yaml", "testdata/podmonitors-crd.yaml"} {
		if _, err := install.Apply(ctx, cp.Config, readFile(t, crd), install.ApplyOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	// kubectl apply --server-side -k with a kustomization of
	//   resources: [../default]
	//   components: [../prometheus, ../grafana, ../networkpolicy]
	fsys, err := install.ConfigFS(configDir)
	if err != nil {
		t.Fatal(err)
	}
	k := "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- ../default\ncomponents:\n- ../prometheus\n- ../grafana\n- ../networkpolicy\n"
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
	kinds := map[string]int{}
	for _, o := range objs {
		kinds[o.GetKind()]++
	}
	if kinds["NetworkPolicy"] != 2 || kinds["ConfigMap"] != 1 || kinds["ServiceMonitor"] != 2 {
		t.Fatalf("the overlay built %d NetworkPolicies, %d ConfigMaps, %d ServiceMonitors; want 2, 1, 2", kinds["NetworkPolicy"], kinds["ConfigMap"], kinds["ServiceMonitor"])
	}
	applied, err := install.Apply(ctx, cp.Config, objs, install.ApplyOptions{FieldManager: "kubectl"})
	if err != nil {
		t.Fatalf("server-side apply refused config/ with its components: %v", err)
	}
	if len(applied.Warnings) > 0 {
		t.Errorf("the API server warned about config/ with its components:\n%s", strings.Join(applied.Warnings, "\n"))
	}
	w := wantFor(t)
	w.ServiceMonitors = true
	if err := install.Check(fetch(t, ctx, cp.Config, objs), w); err != nil {
		t.Errorf("the stored install with the components breaks the install policy:\n%v", err)
	}

	// The chart's versions, every option on, values that reach each
	// branch of the templates.
	ch, err := install.LoadChart(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	values := map[string]any{
		"grafanaDashboard": map[string]any{"enabled": true, "annotations": map[string]any{"grafana_folder": "KeeperLB"}},
		"podMonitor":       map[string]any{"enabled": true, "labels": map[string]any{"release": "prometheus"}},
		"networkPolicy": map[string]any{"enabled": true,
			"apiServerCIDRs": []any{"198.18.0.10/32"},
			"nodeCIDRs":      []any{"198.18.0.0/24", "2001:db8::/64"},
			"bfdPeerCIDRs":   []any{"198.18.1.1/32"},
		},
	}
	hobjs, _, err := install.RenderChart(ch, install.Release{Name: "keeperlb", Namespace: namespace, Values: values})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []struct{ kind, name string }{
		{"PodMonitor", "keeperlb-controller"}, {"PodMonitor", "keeperlb-speaker"},
		{"ServiceAccount", "keeperlb-metrics-scraper"}, {"Secret", "keeperlb-metrics-scraper-token"},
		{"ClusterRoleBinding", "keeperlb-metrics-scraper"},
		{"NetworkPolicy", "keeperlb-controller"}, {"NetworkPolicy", "keeperlb-speaker"},
		{"ConfigMap", "keeperlb-grafana-dashboard"},
	} {
		if install.Find(hobjs, want.kind, want.name) == nil {
			t.Errorf("the chart did not render %s %s", want.kind, want.name)
		}
	}
	strictDryRun(t, ctx, cp.Config, hobjs)
}
