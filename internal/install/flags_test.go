package install_test

import (
	"flag"
	"io"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/keeperlb/keeperlb/internal/controller"
	"github.com/keeperlb/keeperlb/internal/install"
	"github.com/keeperlb/keeperlb/internal/speaker"
)

// containerArgs returns the first container's args with the downward-API
// variable the kubelet would expand.
func containerArgs(t *testing.T, objs []*unstructured.Unstructured, kind, name, ns string) []string {
	t.Helper()
	o := install.Find(objs, kind, name)
	if o == nil {
		t.Fatalf("%s %s missing", kind, name)
	}
	cs, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
	args, _, _ := unstructured.NestedStringSlice(cs[0].(map[string]any), "args")
	for i := range args {
		args[i] = strings.ReplaceAll(args[i], "$(POD_NAMESPACE)", ns)
	}
	return args
}

// TestManifestFlagsParse feeds the manifests' args to the binaries' own
// flag definitions (controller and speaker BindFlags), so a renamed or
// removed flag fails here instead of crash-looping in a cluster.
func TestManifestFlagsParse(t *testing.T) {
	for _, r := range []struct {
		name string
		objs []*unstructured.Unstructured
		// memberlist is the Secret the controller must create.
		memberlist string
	}{
		{"kustomize", kustomize(t, "default"), install.MemberlistSecretName},
		{"helm", renderChart(t, "metallb-system", nil), install.MemberlistSecretName},
		{"helm, class, no webhooks", renderChart(t, "metallb-system", map[string]any{"loadBalancerClass": "example.com/lb", "webhook": map[string]any{"enabled": false}}), install.MemberlistSecretName},
		{"helm, other speaker ports", renderChart(t, "metallb-system", map[string]any{"speaker": map[string]any{"metricsPort": 9472, "healthPort": 9473, "livenessPort": 9946}}), install.MemberlistSecretName},
		{"helm, key given", renderChart(t, "metallb-system", memberlistValues("secretKey", "a-key-the-operator-chose-0123456789")), ""},
		{"helm, existing Secret", renderChart(t, "metallb-system", memberlistValues("existingSecret", "my-key")), ""},
	} {
		objs := r.objs
		t.Run(r.name, func(t *testing.T) {
			fs := flag.NewFlagSet("keeperlb-controller", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			c := controller.DefaultOptions()
			c.BindFlags(fs)
			if err := fs.Parse(containerArgs(t, objs, "Deployment", install.ControllerName, "metallb-system")); err != nil {
				t.Fatalf("controller args: %v", err)
			}
			if c.Namespace != "metallb-system" || !c.LeaderElect || c.MetricsAddr != ":7472" || c.HealthAddr != ":7473" {
				t.Errorf("controller options %+v", c)
			}
			if c.MemberlistSecret != r.memberlist {
				t.Errorf("the controller creates memberlist Secret %q, want %q", c.MemberlistSecret, r.memberlist)
			}

			fs = flag.NewFlagSet("keeperlb-speaker", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			s := speaker.DefaultOptions()
			s.BindFlags(fs)
			if err := fs.Parse(containerArgs(t, objs, "DaemonSet", install.SpeakerName, "metallb-system")); err != nil {
				t.Fatalf("speaker args: %v", err)
			}
			if s.Namespace != "metallb-system" || s.LBClass != c.LBClass {
				t.Errorf("speaker namespace %q class %q, controller class %q", s.Namespace, s.LBClass, c.LBClass)
			}
		})
	}
}
