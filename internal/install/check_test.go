package install_test

import (
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/keeperlb/keeperlb/internal/install"
)

// TestCheckCatchesViolations breaks a good install one way at a time and
// expects Check to name what broke: the policy's assertions can fail.
func TestCheckCatchesViolations(t *testing.T) {
	good := kustomize(t, "default")
	want := defaultWant(t, "metallb-system")
	if err := install.Check(good, want); err != nil {
		t.Fatalf("the unbroken install must pass: %v", err)
	}
	// The two other ways of providing the heartbeat key, unbroken.
	withKey := renderChart(t, "metallb-system", map[string]any{"speaker": map[string]any{"memberlist": map[string]any{"secretKey": "a-key-the-operator-chose-0123456789"}}})
	keyFromInstall := func(w *install.Want) { w.MemberlistKey = install.KeyFromInstall }
	external := renderChart(t, "metallb-system", map[string]any{"speaker": map[string]any{"memberlist": map[string]any{"existingSecret": "my-key"}}})
	keyExternal := func(w *install.Want) { w.MemberlistSecret, w.MemberlistKey = "my-key", install.KeyExternal }
	for _, b := range []struct {
		name string
		objs []*unstructured.Unstructured
		want func(*install.Want)
	}{{"secretKey", withKey, keyFromInstall}, {"existingSecret", external, keyExternal}} {
		w := want
		b.want(&w)
		if err := install.Check(b.objs, w); err != nil {
			t.Fatalf("the unbroken install with %s must pass: %v", b.name, err)
		}
	}
	secretFrom := func(objs []*unstructured.Unstructured, name string) *unstructured.Unstructured {
		s := install.Find(objs, "Secret", install.MemberlistSecretName).DeepCopy()
		s.SetName(name)
		return s
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
	setControllerArg := func(objs []*unstructured.Unstructured, arg string) {
		c := container(objs, "Deployment", install.ControllerName)
		args, _, _ := unstructured.NestedStringSlice(c, "args")
		args = slices.DeleteFunc(args, func(a string) bool { return strings.HasPrefix(a, "--memberlist-secret-name=") })
		if arg != "" {
			args = append(args, arg)
		}
		_ = unstructured.SetNestedStringSlice(c, args, "args")
		setContainer(objs, "Deployment", install.ControllerName, c)
	}
	for _, tc := range []struct {
		name   string
		mutate func([]*unstructured.Unstructured)
		want   string
		// base is the install broken, good when nil; wantFn adjusts want
		// to it.
		base   []*unstructured.Unstructured
		wantFn func(*install.Want)
	}{
		{name: "speaker adds SYS_ADMIN", mutate: func(objs []*unstructured.Unstructured) {
			c := container(objs, "DaemonSet", install.SpeakerName)
			_ = unstructured.SetNestedStringSlice(c, []string{"NET_RAW", "SYS_ADMIN"}, "securityContext", "capabilities", "add")
			setContainer(objs, "DaemonSet", install.SpeakerName, c)
		}, want: "want exactly [NET_RAW]"},
		{name: "speaker privileged", mutate: func(objs []*unstructured.Unstructured) {
			c := container(objs, "DaemonSet", install.SpeakerName)
			_ = unstructured.SetNestedField(c, true, "securityContext", "privileged")
			setContainer(objs, "DaemonSet", install.SpeakerName, c)
		}, want: "is privileged"},
		{name: "speaker off the host network", mutate: func(objs []*unstructured.Unstructured) {
			unstructured.RemoveNestedField(install.Find(objs, "DaemonSet", install.SpeakerName).Object, "spec", "template", "spec", "hostNetwork")
		}, want: "must use the host network"},
		{name: "speaker without tolerations", mutate: func(objs []*unstructured.Unstructured) {
			unstructured.RemoveNestedField(install.Find(objs, "DaemonSet", install.SpeakerName).Object, "spec", "template", "spec", "tolerations")
		}, want: "does not tolerate"},
		{name: "speaker key optional", mutate: func(objs []*unstructured.Unstructured) {
			c := container(objs, "DaemonSet", install.SpeakerName)
			env := c["env"].([]any)
			for _, e := range env {
				if e.(map[string]any)["name"] == "METALLB_ML_SECRET_KEY" {
					_ = unstructured.SetNestedField(e.(map[string]any), true, "valueFrom", "secretKeyRef", "optional")
				}
			}
			setContainer(objs, "DaemonSet", install.SpeakerName, c)
		}, want: "METALLB_ML_SECRET_KEY"},
		{name: "chart renders a random key", base: append(slices.Clone(good), secretFrom(withKey, install.MemberlistSecretName)),
			mutate: func([]*unstructured.Unstructured) {},
			want:   "Secret keeperlb-memberlist: is in the manifests, but the controller provides the heartbeat key"},
		{name: "nothing creates the key", mutate: func(objs []*unstructured.Unstructured) {
			setControllerArg(objs, "--memberlist-secret-name=")
		}, want: "Deployment keeperlb-controller: args: --memberlist-secret-name is empty, so nothing creates Secret keeperlb-memberlist"},
		{name: "controller creates a key the speakers do not read", mutate: func(objs []*unstructured.Unstructured) {
			setControllerArg(objs, "--memberlist-secret-name=other")
		}, want: `Deployment keeperlb-controller: args: --memberlist-secret-name is "other", but the speakers read Secret keeperlb-memberlist`},
		{name: "speakers read another Secret than the controller creates", mutate: func(objs []*unstructured.Unstructured) {
			c := container(objs, "DaemonSet", install.SpeakerName)
			for _, e := range c["env"].([]any) {
				if e.(map[string]any)["name"] == "METALLB_ML_SECRET_KEY" {
					_ = unstructured.SetNestedField(e.(map[string]any), "other", "valueFrom", "secretKeyRef", "name")
				}
			}
			setContainer(objs, "DaemonSet", install.SpeakerName, c)
		}, want: `Deployment keeperlb-controller: args: --memberlist-secret-name is "keeperlb-memberlist", but the speakers' METALLB_ML_SECRET_KEY reads Secret other`},
		{name: "controller args do not parse", mutate: func(objs []*unstructured.Unstructured) {
			setControllerArg(objs, "--no-such-flag=1")
		}, want: "Deployment keeperlb-controller: args [--namespace=$(POD_NAMESPACE)"},
		{name: "controller would create a second key", base: withKey, wantFn: keyFromInstall, mutate: func(objs []*unstructured.Unstructured) {
			setControllerArg(objs, "--memberlist-secret-name=keeperlb-memberlist")
		}, want: "Deployment keeperlb-controller: args: --memberlist-secret-name=keeperlb-memberlist: the controller would create a second key"},
		{name: "controller relies on its default beside the install's key", base: withKey, wantFn: keyFromInstall, mutate: func(objs []*unstructured.Unstructured) {
			setControllerArg(objs, "")
		}, want: "the controller would create a second key"},
		{name: "install key too short", base: withKey, wantFn: keyFromInstall, mutate: func(objs []*unstructured.Unstructured) {
			_ = unstructured.SetNestedField(install.Find(objs, "Secret", install.MemberlistSecretName).Object, "c2hvcnQ=", "data", "secretkey")
		}, want: "Secret keeperlb-memberlist: data.secretkey holds 5 bytes; a speaker refuses a key shorter than 16"},
		{name: "install secondary key too short", base: withKey, wantFn: keyFromInstall, mutate: func(objs []*unstructured.Unstructured) {
			_ = unstructured.SetNestedField(install.Find(objs, "Secret", install.MemberlistSecretName).Object, "c2hvcnQ=", "data", "secondarykey")
		}, want: "Secret keeperlb-memberlist: data.secondarykey holds 5 bytes; want none or at least 16"},
		{name: "install key missing", base: withKey, wantFn: keyFromInstall, mutate: func(objs []*unstructured.Unstructured) {
			install.Find(objs, "Secret", install.MemberlistSecretName).SetName("other")
		}, want: "Secret keeperlb-memberlist: missing"},
		{name: "install creates the external Secret", base: append(slices.Clone(external), secretFrom(withKey, "my-key")), wantFn: keyExternal,
			mutate: func([]*unstructured.Unstructured) {},
			want:   "Secret my-key: is external (the user's) but the install creates it"},
		{name: "controller creates the external Secret", base: external, wantFn: keyExternal, mutate: func(objs []*unstructured.Unstructured) {
			setControllerArg(objs, "--memberlist-secret-name=my-key")
		}, want: "Deployment keeperlb-controller: args: --memberlist-secret-name=my-key: the controller would create a key, but the user provides Secret my-key"},
		{name: "speaker metrics over plain HTTP", mutate: func(objs []*unstructured.Unstructured) {
			c := container(objs, "DaemonSet", install.SpeakerName)
			args, _, _ := unstructured.NestedStringSlice(c, "args")
			_ = unstructured.SetNestedStringSlice(c, append(args, "--metrics-secure=false"), "args")
			setContainer(objs, "DaemonSet", install.SpeakerName, c)
		}, want: "plain HTTP (--metrics-secure=false)"},
		{name: "metrics reader grants more", mutate: func(objs []*unstructured.Unstructured) {
			r := install.Find(objs, "ClusterRole", install.MetricsReaderRole)
			_ = unstructured.SetNestedSlice(r.Object, []any{map[string]any{"nonResourceURLs": []any{"*"}, "verbs": []any{"get"}}}, "rules")
		}, want: "want only get on /metrics"},
		{name: "metrics reader missing", mutate: func(objs []*unstructured.Unstructured) {
			install.Find(objs, "ClusterRole", install.MetricsReaderRole).SetName("other")
		}, want: "ClusterRole keeperlb-metrics-reader: missing"},
		{name: "controller writable root", mutate: func(objs []*unstructured.Unstructured) {
			c := container(objs, "Deployment", install.ControllerName)
			_ = unstructured.SetNestedField(c, false, "securityContext", "readOnlyRootFilesystem")
			setContainer(objs, "Deployment", install.ControllerName, c)
		}, want: "readOnlyRootFilesystem: true"},
		{name: "controller as root", mutate: func(objs []*unstructured.Unstructured) {
			o := install.Find(objs, "Deployment", install.ControllerName)
			_ = unstructured.SetNestedField(o.Object, false, "spec", "template", "spec", "securityContext", "runAsNonRoot")
		}, want: "runAsNonRoot: true"},
		{name: "controller adds a capability", mutate: func(objs []*unstructured.Unstructured) {
			c := container(objs, "Deployment", install.ControllerName)
			_ = unstructured.SetNestedStringSlice(c, []string{"NET_ADMIN"}, "securityContext", "capabilities", "add")
			setContainer(objs, "Deployment", install.ControllerName, c)
		}, want: "it needs none"},
		{name: "one replica", mutate: func(objs []*unstructured.Unstructured) {
			_ = unstructured.SetNestedField(install.Find(objs, "Deployment", install.ControllerName).Object, int64(1), "spec", "replicas")
		}, want: "spec.replicas is 1, want 2"},
		{name: "no leader election", mutate: func(objs []*unstructured.Unstructured) {
			c := container(objs, "Deployment", install.ControllerName)
			args, _, _ := unstructured.NestedStringSlice(c, "args")
			for i := range args {
				if args[i] == "--leader-elect=true" {
					args[i] = "--leader-elect=false"
				}
			}
			_ = unstructured.SetNestedStringSlice(c, args, "args")
			setContainer(objs, "Deployment", install.ControllerName, c)
		}, want: "leader election"},
		{name: "probe on the wrong path", mutate: func(objs []*unstructured.Unstructured) {
			c := container(objs, "Deployment", install.ControllerName)
			_ = unstructured.SetNestedField(c, "/", "readinessProbe", "httpGet", "path")
			setContainer(objs, "Deployment", install.ControllerName, c)
		}, want: "readinessProbe path is /, want /readyz"},
		{name: "a misspelt field", mutate: func(objs []*unstructured.Unstructured) {
			c := container(objs, "Deployment", install.ControllerName)
			_ = unstructured.SetNestedField(c, true, "securityContext", "readOnlyRootFilesytem")
			setContainer(objs, "Deployment", install.ControllerName, c)
		}, want: "does not decode"},
		{name: "webhook path typo", mutate: func(objs []*unstructured.Unstructured) {
			o := install.Find(objs, "ValidatingWebhookConfiguration", install.WebhookConfigName)
			whs, _, _ := unstructured.NestedSlice(o.Object, "webhooks")
			_ = unstructured.SetNestedField(whs[0].(map[string]any), "/validate-ipaddresspool", "clientConfig", "service", "path")
			_ = unstructured.SetNestedSlice(o.Object, whs, "webhooks")
		}, want: "differ from internal/webhook.ValidatingWebhooks"},
		{name: "webhook service on the wrong port", mutate: func(objs []*unstructured.Unstructured) {
			o := install.Find(objs, "Service", install.WebhookServiceName)
			ports, _, _ := unstructured.NestedSlice(o.Object, "spec", "ports")
			ports[0].(map[string]any)["targetPort"] = "metrics"
			_ = unstructured.SetNestedSlice(o.Object, ports, "spec", "ports")
		}, want: "does not reach the pods' webhook port"},
		{name: "conversion in the wrong namespace", mutate: func(objs []*unstructured.Unstructured) {
			o := install.Find(objs, "CustomResourceDefinition", install.BGPPeerCRDName)
			_ = unstructured.SetNestedField(o.Object, "default", "spec", "conversion", "webhook", "clientConfig", "service", "namespace")
		}, want: "conversion webhook is default/"},
		{name: "a wider ClusterRole", mutate: func(objs []*unstructured.Unstructured) {
			o := install.Find(objs, "ClusterRole", install.SpeakerName)
			rules, _, _ := unstructured.NestedSlice(o.Object, "rules")
			rules = append(rules, map[string]any{"apiGroups": []any{"*"}, "resources": []any{"*"}, "verbs": []any{"*"}})
			_ = unstructured.SetNestedSlice(o.Object, rules, "rules")
		}, want: "rules differ from the generated config/rbac"},
		{name: "binding to another account", mutate: func(objs []*unstructured.Unstructured) {
			o := install.Find(objs, "ClusterRoleBinding", install.ControllerName)
			subj, _, _ := unstructured.NestedSlice(o.Object, "subjects")
			subj[0].(map[string]any)["name"] = "default"
			_ = unstructured.SetNestedSlice(o.Object, subj, "subjects")
		}, want: "want only ServiceAccount"},
		{name: "a CRD schema edited by hand", mutate: func(objs []*unstructured.Unstructured) {
			o := install.Find(objs, "CustomResourceDefinition", "ipaddresspools.metallb.io")
			vs, _, _ := unstructured.NestedSlice(o.Object, "spec", "versions")
			vs[0].(map[string]any)["served"] = false
			_ = unstructured.SetNestedSlice(o.Object, vs, "spec", "versions")
		}, want: "differs from the generated config/crd/bases"},
		{name: "object in another namespace", mutate: func(objs []*unstructured.Unstructured) {
			install.Find(objs, "Service", install.ControllerName+"-metrics").SetNamespace("default")
		}, want: "want the install namespace"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base, w := good, want
			if tc.base != nil {
				base = tc.base
			}
			if tc.wantFn != nil {
				tc.wantFn(&w)
			}
			objs := make([]*unstructured.Unstructured, len(base))
			for i, o := range base {
				objs[i] = o.DeepCopy()
			}
			tc.mutate(objs)
			err := install.Check(objs, w)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want an error containing %q, got: %v", tc.want, err)
			}
		})
	}
}
