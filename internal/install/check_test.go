package install_test

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/keeperlb/keeperlb/internal/install"
)

// TestCheckCatchesViolations breaks a good install one way at a time and
// expects Check to name what broke: the policy's assertions can fail.
func TestCheckCatchesViolations(t *testing.T) {
	good := kustomize(t, "default", map[string][]byte{"speaker/memberlist.key": memberlistKey(t)})
	want := defaultWant(t, "metallb-system")
	if err := install.Check(good, want); err != nil {
		t.Fatalf("the unbroken install must pass: %v", err)
	}
	container := func(objs []*unstructured.Unstructured, kind, name string) map[string]any {
		cs, _, _ := unstructured.NestedSlice(install.Find(objs, kind, name).Object, "spec", "template", "spec", "containers")
		return cs[0].(map[string]any)
	}
	setContainer := func(objs []*unstructured.Unstructured, kind, name string, c map[string]any) {
		o := install.Find(objs, kind, name)
		cs, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
		cs[0] = c
		if err := unstructured.SetNestedSlice(o.Object, cs, "spec", "template", "spec", "containers"); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name   string
		mutate func([]*unstructured.Unstructured)
		want   string
	}{
		{"speaker adds SYS_ADMIN", func(objs []*unstructured.Unstructured) {
			c := container(objs, "DaemonSet", install.SpeakerName)
			_ = unstructured.SetNestedStringSlice(c, []string{"NET_RAW", "SYS_ADMIN"}, "securityContext", "capabilities", "add")
			setContainer(objs, "DaemonSet", install.SpeakerName, c)
		}, "want exactly [NET_RAW]"},
		{"speaker privileged", func(objs []*unstructured.Unstructured) {
			c := container(objs, "DaemonSet", install.SpeakerName)
			_ = unstructured.SetNestedField(c, true, "securityContext", "privileged")
			setContainer(objs, "DaemonSet", install.SpeakerName, c)
		}, "is privileged"},
		{"speaker off the host network", func(objs []*unstructured.Unstructured) {
			unstructured.RemoveNestedField(install.Find(objs, "DaemonSet", install.SpeakerName).Object, "spec", "template", "spec", "hostNetwork")
		}, "must use the host network"},
		{"speaker without tolerations", func(objs []*unstructured.Unstructured) {
			unstructured.RemoveNestedField(install.Find(objs, "DaemonSet", install.SpeakerName).Object, "spec", "template", "spec", "tolerations")
		}, "does not tolerate"},
		{"speaker key optional", func(objs []*unstructured.Unstructured) {
			c := container(objs, "DaemonSet", install.SpeakerName)
			env := c["env"].([]any)
			for _, e := range env {
				if e.(map[string]any)["name"] == "METALLB_ML_SECRET_KEY" {
					_ = unstructured.SetNestedField(e.(map[string]any), true, "valueFrom", "secretKeyRef", "optional")
				}
			}
			setContainer(objs, "DaemonSet", install.SpeakerName, c)
		}, "METALLB_ML_SECRET_KEY"},
		{"memberlist secret missing", func(objs []*unstructured.Unstructured) {
			install.Find(objs, "Secret", install.MemberlistSecretName).SetName("other")
		}, "Secret keeperlb-memberlist: missing"},
		{"speaker metrics over plain HTTP", func(objs []*unstructured.Unstructured) {
			c := container(objs, "DaemonSet", install.SpeakerName)
			args, _, _ := unstructured.NestedStringSlice(c, "args")
			_ = unstructured.SetNestedStringSlice(c, append(args, "--metrics-secure=false"), "args")
			setContainer(objs, "DaemonSet", install.SpeakerName, c)
		}, "plain HTTP (--metrics-secure=false)"},
		{"metrics reader grants more", func(objs []*unstructured.Unstructured) {
			r := install.Find(objs, "ClusterRole", install.MetricsReaderRole)
			_ = unstructured.SetNestedSlice(r.Object, []any{map[string]any{"nonResourceURLs": []any{"*"}, "verbs": []any{"get"}}}, "rules")
		}, "want only get on /metrics"},
		{"metrics reader missing", func(objs []*unstructured.Unstructured) {
			install.Find(objs, "ClusterRole", install.MetricsReaderRole).SetName("other")
		}, "ClusterRole keeperlb-metrics-reader: missing"},
		{"controller writable root", func(objs []*unstructured.Unstructured) {
			c := container(objs, "Deployment", install.ControllerName)
			_ = unstructured.SetNestedField(c, false, "securityContext", "readOnlyRootFilesystem")
			setContainer(objs, "Deployment", install.ControllerName, c)
		}, "readOnlyRootFilesystem: true"},
		{"controller as root", func(objs []*unstructured.Unstructured) {
			o := install.Find(objs, "Deployment", install.ControllerName)
			_ = unstructured.SetNestedField(o.Object, false, "spec", "template", "spec", "securityContext", "runAsNonRoot")
		}, "runAsNonRoot: true"},
		{"controller adds a capability", func(objs []*unstructured.Unstructured) {
			c := container(objs, "Deployment", install.ControllerName)
			_ = unstructured.SetNestedStringSlice(c, []string{"NET_ADMIN"}, "securityContext", "capabilities", "add")
			setContainer(objs, "Deployment", install.ControllerName, c)
		}, "it needs none"},
		{"one replica", func(objs []*unstructured.Unstructured) {
			_ = unstructured.SetNestedField(install.Find(objs, "Deployment", install.ControllerName).Object, int64(1), "spec", "replicas")
		}, "spec.replicas is 1, want 2"},
		{"no leader election", func(objs []*unstructured.Unstructured) {
			c := container(objs, "Deployment", install.ControllerName)
			args, _, _ := unstructured.NestedStringSlice(c, "args")
			for i := range args {
				if args[i] == "--leader-elect=true" {
					args[i] = "--leader-elect=false"
				}
			}
			_ = unstructured.SetNestedStringSlice(c, args, "args")
			setContainer(objs, "Deployment", install.ControllerName, c)
		}, "leader election"},
		{"probe on the wrong path", func(objs []*unstructured.Unstructured) {
			c := container(objs, "Deployment", install.ControllerName)
			_ = unstructured.SetNestedField(c, "/", "readinessProbe", "httpGet", "path")
			setContainer(objs, "Deployment", install.ControllerName, c)
		}, "readinessProbe path is /, want /readyz"},
		{"a misspelt field", func(objs []*unstructured.Unstructured) {
			c := container(objs, "Deployment", install.ControllerName)
			_ = unstructured.SetNestedField(c, true, "securityContext", "readOnlyRootFilesytem")
			setContainer(objs, "Deployment", install.ControllerName, c)
		}, "does not decode"},
		{"webhook path typo", func(objs []*unstructured.Unstructured) {
			o := install.Find(objs, "ValidatingWebhookConfiguration", install.WebhookConfigName)
			whs, _, _ := unstructured.NestedSlice(o.Object, "webhooks")
			_ = unstructured.SetNestedField(whs[0].(map[string]any), "/validate-ipaddresspool", "clientConfig", "service", "path")
			_ = unstructured.SetNestedSlice(o.Object, whs, "webhooks")
		}, "differ from internal/webhook.ValidatingWebhooks"},
		{"webhook service on the wrong port", func(objs []*unstructured.Unstructured) {
			o := install.Find(objs, "Service", install.WebhookServiceName)
			ports, _, _ := unstructured.NestedSlice(o.Object, "spec", "ports")
			ports[0].(map[string]any)["targetPort"] = "metrics"
			_ = unstructured.SetNestedSlice(o.Object, ports, "spec", "ports")
		}, "does not reach the pods' webhook port"},
		{"conversion in the wrong namespace", func(objs []*unstructured.Unstructured) {
			o := install.Find(objs, "CustomResourceDefinition", install.BGPPeerCRDName)
			_ = unstructured.SetNestedField(o.Object, "default", "spec", "conversion", "webhook", "clientConfig", "service", "namespace")
		}, "conversion webhook is default/"},
		{"a wider ClusterRole", func(objs []*unstructured.Unstructured) {
			o := install.Find(objs, "ClusterRole", install.SpeakerName)
			rules, _, _ := unstructured.NestedSlice(o.Object, "rules")
			rules = append(rules, map[string]any{"apiGroups": []any{"*"}, "resources": []any{"*"}, "verbs": []any{"*"}})
			_ = unstructured.SetNestedSlice(o.Object, rules, "rules")
		}, "rules differ from the generated config/rbac"},
		{"binding to another account", func(objs []*unstructured.Unstructured) {
			o := install.Find(objs, "ClusterRoleBinding", install.ControllerName)
			subj, _, _ := unstructured.NestedSlice(o.Object, "subjects")
			subj[0].(map[string]any)["name"] = "default"
			_ = unstructured.SetNestedSlice(o.Object, subj, "subjects")
		}, "want only ServiceAccount"},
		{"a CRD schema edited by hand", func(objs []*unstructured.Unstructured) {
			o := install.Find(objs, "CustomResourceDefinition", "ipaddresspools.metallb.io")
			vs, _, _ := unstructured.NestedSlice(o.Object, "spec", "versions")
			vs[0].(map[string]any)["served"] = false
			_ = unstructured.SetNestedSlice(o.Object, vs, "spec", "versions")
		}, "differs from the generated config/crd/bases"},
		{"object in another namespace", func(objs []*unstructured.Unstructured) {
			install.Find(objs, "Service", install.ControllerName+"-metrics").SetNamespace("default")
		}, "want the install namespace"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs := make([]*unstructured.Unstructured, len(good))
			for i, o := range good {
				objs[i] = o.DeepCopy()
			}
			tc.mutate(objs)
			err := install.Check(objs, want)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want an error containing %q, got: %v", tc.want, err)
			}
		})
	}
}
