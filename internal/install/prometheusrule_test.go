package install_test

import (
	"os"
	"reflect"
	"slices"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/keeperlb/keeperlb/internal/install"
)

// rulesFile is the canonical alerting rules file, which promtool and the
// lab test check.
const rulesFile = chartDir + "/files/prometheus-rules.yaml"

// canonicalRules decodes rulesFile, refusing unknown fields.
func canonicalRules(t *testing.T) monitoringv1.PrometheusRuleSpec {
	t.Helper()
	raw, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var spec monitoringv1.PrometheusRuleSpec
	if err := yaml.UnmarshalStrict(raw, &spec); err != nil {
		t.Fatalf("%s: %v", rulesFile, err)
	}
	if len(spec.Groups) == 0 {
		t.Fatalf("%s has no groups", rulesFile)
	}
	return spec
}

// prometheusRules decodes every PrometheusRule of an install into the
// Prometheus Operator's own type, refusing unknown fields.
func prometheusRules(t *testing.T, objs []*unstructured.Unstructured) []monitoringv1.PrometheusRule {
	t.Helper()
	var out []monitoringv1.PrometheusRule
	for _, o := range objs {
		if o.GetKind() != "PrometheusRule" {
			continue
		}
		raw, err := yaml.Marshal(o.Object)
		if err != nil {
			t.Fatal(err)
		}
		var pr monitoringv1.PrometheusRule
		if err := yaml.UnmarshalStrict(raw, &pr); err != nil {
			t.Fatalf("PrometheusRule %s is not a valid monitoring.coreos.com/v1 PrometheusRule: %v", o.GetName(), err)
		}
		out = append(out, pr)
	}
	return out
}

func findRule(spec monitoringv1.PrometheusRuleSpec, alert string) *monitoringv1.Rule {
	for gi := range spec.Groups {
		for ri := range spec.Groups[gi].Rules {
			if r := &spec.Groups[gi].Rules[ri]; r.Alert == alert {
				return r
			}
		}
	}
	return nil
}

// TestPrometheusRuleChart: off by default; on, the chart's PrometheusRule
// is the canonical file, and its values drop alerts, set the pending
// Service delay and add labels.
func TestPrometheusRuleChart(t *testing.T) {
	want := canonicalRules(t)
	if prs := prometheusRules(t, renderChart(t, "metallb-system", nil)); len(prs) != 0 {
		t.Fatalf("the chart renders %d PrometheusRules by default, want none (prometheusRule.enabled is off)", len(prs))
	}

	objs := renderChart(t, "lb", map[string]any{"prometheusRule": map[string]any{"enabled": true, "labels": map[string]any{"release": "prometheus"}}})
	w := defaultWant(t, "lb")
	if err := install.Check(objs, w); err != nil {
		t.Fatalf("chart with prometheusRule.enabled breaks the install policy:\n%v", err)
	}
	prs := prometheusRules(t, objs)
	if len(prs) != 1 {
		t.Fatalf("%d PrometheusRules, want 1", len(prs))
	}
	pr := prs[0]
	if pr.Namespace != "lb" || pr.Labels["release"] != "prometheus" {
		t.Errorf("PrometheusRule %s/%s labels %v: want the release namespace and prometheusRule.labels", pr.Namespace, pr.Name, pr.Labels)
	}
	if !reflect.DeepEqual(pr.Spec, want) {
		t.Errorf("with default values the PrometheusRule differs from %s:\ngot  %+v\nwant %+v", rulesFile, pr.Spec, want)
	}

	prs = prometheusRules(t, renderChart(t, "metallb-system", map[string]any{"prometheusRule": map[string]any{
		"enabled":           true,
		"servicePendingFor": "20m",
		"disabled":          []any{"MetalLBAddressPoolUsage75Percent", "MetalLBAddressPoolUsage85Percent"},
		"alertLabels":       map[string]any{"team": "network", "severity": "info"},
	}}))
	if len(prs) != 1 {
		t.Fatalf("%d PrometheusRules, want 1", len(prs))
	}
	got := prs[0].Spec
	if r := findRule(got, "KeeperLBServicePending"); r == nil || r.For == nil || *r.For != "20m" {
		t.Errorf("KeeperLBServicePending: %+v, want for: 20m from prometheusRule.servicePendingFor", r)
	}
	n := 0
	for _, g := range want.Groups {
		for _, r := range g.Rules {
			gotRule := findRule(got, r.Alert)
			if r.Alert == "MetalLBAddressPoolUsage75Percent" || r.Alert == "MetalLBAddressPoolUsage85Percent" {
				if gotRule != nil {
					t.Errorf("%s rendered though prometheusRule.disabled names it", r.Alert)
				}
				continue
			}
			n++
			if gotRule == nil {
				t.Errorf("%s missing", r.Alert)
				continue
			}
			if gotRule.Labels["team"] != "network" || gotRule.Labels["severity"] != r.Labels["severity"] {
				t.Errorf("%s labels %v: want team=network added and its own severity %q kept", r.Alert, gotRule.Labels, r.Labels["severity"])
			}
			if gotRule.Expr != r.Expr {
				t.Errorf("%s expr %q, want %q", r.Alert, gotRule.Expr.String(), r.Expr.String())
			}
		}
	}
	if n == 0 {
		t.Fatal("no alert checked")
	}
}

// TestPrometheusRuleKustomize: config/prometheus-rules, added as a
// Component beside config/prometheus, carries the canonical rules.
func TestPrometheusRuleKustomize(t *testing.T) {
	fsys, err := install.ConfigFS(configDir)
	if err != nil {
		t.Fatal(err)
	}
	// A user's kustomization, as docs/install.md shows it.
	if err := fsys.MkdirAll("/config/test-alerts"); err != nil {
		t.Fatal(err)
	}
	if err := fsys.WriteFile("/config/test-alerts/kustomization.yaml", []byte(
		"apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- ../default\ncomponents:\n- ../prometheus\n- ../prometheus-rules\n")); err != nil {
		t.Fatal(err)
	}
	objs, _, err := install.Kustomize(fsys, "/config/test-alerts")
	if err != nil {
		t.Fatal(err)
	}
	w := defaultWant(t, "metallb-system")
	w.ServiceMonitors = true
	if err := install.Check(objs, w); err != nil {
		t.Fatalf("config/default with both components breaks the install policy:\n%v", err)
	}
	prs := prometheusRules(t, objs)
	if len(prs) != 1 {
		t.Fatalf("%d PrometheusRules, want 1", len(prs))
	}
	if !reflect.DeepEqual(prs[0].Spec, canonicalRules(t)) {
		t.Errorf("config/prometheus-rules differs from %s: run make generate", rulesFile)
	}
	if prs := prometheusRules(t, kustomize(t, "monitoring")); len(prs) != 0 {
		t.Errorf("config/monitoring has %d PrometheusRules; the alerts are opt-in", len(prs))
	}
}

// TestMonitorsJob: every way of installing the ServiceMonitors, and the
// chart's PodMonitors, set the job label to metallb-<component>, which
// MetalLB's alerts select (job=~"metallb.*"), and honor the series'
// labels, as MetalLB's monitors do.
func TestMonitorsJob(t *testing.T) {
	type endpoint struct {
		relabelings []monitoringv1.RelabelConfig
		honorLabels bool
	}
	for _, tc := range []struct {
		name string
		kind string
		objs []*unstructured.Unstructured
	}{
		{"chart", "ServiceMonitor", renderChart(t, "metallb-system", map[string]any{"serviceMonitor": map[string]any{"enabled": true}})},
		{"config/monitoring", "ServiceMonitor", kustomize(t, "monitoring")},
		{"chart", "PodMonitor", renderChart(t, "metallb-system", map[string]any{"podMonitor": map[string]any{"enabled": true}})},
	} {
		n := 0
		for _, o := range tc.objs {
			if o.GetKind() != tc.kind {
				continue
			}
			n++
			raw, err := yaml.Marshal(o.Object)
			if err != nil {
				t.Fatal(err)
			}
			var eps []endpoint
			if tc.kind == "ServiceMonitor" {
				var sm monitoringv1.ServiceMonitor
				if err := yaml.UnmarshalStrict(raw, &sm); err != nil {
					t.Fatal(err)
				}
				for _, ep := range sm.Spec.Endpoints {
					eps = append(eps, endpoint{ep.RelabelConfigs, ep.HonorLabels})
				}
			} else {
				var pm monitoringv1.PodMonitor
				if err := yaml.UnmarshalStrict(raw, &pm); err != nil {
					t.Fatal(err)
				}
				for _, ep := range pm.Spec.PodMetricsEndpoints {
					eps = append(eps, endpoint{ep.RelabelConfigs, ep.HonorLabels})
				}
			}
			component := o.GetLabels()["app.kubernetes.io/component"]
			want := "metallb-" + component
			if len(eps) != 1 || component == "" {
				t.Fatalf("%s: %s %s: %d endpoints, component %q", tc.name, tc.kind, o.GetName(), len(eps), component)
			}
			ok := slices.ContainsFunc(eps[0].relabelings, func(r monitoringv1.RelabelConfig) bool {
				return r.TargetLabel == "job" && len(r.SourceLabels) == 0 && r.Replacement != nil && *r.Replacement == want &&
					(r.Action == "" || r.Action == "replace")
			})
			if !ok {
				t.Errorf("%s: %s %s relabelings %+v: want job set to %q", tc.name, tc.kind, o.GetName(), eps[0].relabelings, want)
			}
			if !eps[0].honorLabels {
				t.Errorf("%s: %s %s must honor the series' labels: metallb_speaker_announced's service label is the Service, not the metrics Service", tc.name, tc.kind, o.GetName())
			}
		}
		if n != 2 {
			t.Errorf("%s: %d %ss, want 2", tc.name, n, tc.kind)
		}
	}
}
