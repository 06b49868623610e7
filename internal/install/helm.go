package install

import (
	"fmt"
	"log/slog"
	"strings"

	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/chart/common"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/lint"
	"helm.sh/helm/v4/pkg/chart/v2/lint/support"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	helmrelease "helm.sh/helm/v4/pkg/release"
	release "helm.sh/helm/v4/pkg/release/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Release names a Helm release and its values.
type Release struct {
	// Name is the release name.
	Name string
	// Namespace is the release (install) namespace.
	Namespace string
	// Values override the chart's values.yaml, as with `helm --set`.
	Values map[string]any
	// KubeVersion is the Kubernetes version templates see when rendering
	// without a cluster; empty means DefaultKubeVersion.
	KubeVersion string
}

// DefaultKubeVersion is the version of the local control plane
// (hack/k8s-tools), which is what the tests install into.
const DefaultKubeVersion = "v1.37.2"

// LoadChart loads the chart in dir, following its symbolic links (the
// CRDs and RBAC rules are links into config/).
func LoadChart(dir string) (*chart.Chart, error) {
	ch, err := loader.LoadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("loading chart %s: %w", dir, err)
	}
	return ch, nil
}

// RenderChart renders the chart as `helm template` does: no cluster, so
// `lookup` finds nothing. It returns the objects and the manifest text.
func RenderChart(ch *chart.Chart, rel Release) ([]*unstructured.Unstructured, string, error) {
	cfg := action.NewConfiguration(action.ConfigurationSetLogger(slog.DiscardHandler))
	inst := action.NewInstall(cfg)
	// helm template: a client-side dry run, which renders without a cluster.
	inst.DryRunStrategy = action.DryRunClient
	inst.Replace = true
	inst.IncludeCRDs = true
	inst.ReleaseName = rel.Name
	inst.Namespace = rel.Namespace
	kv := rel.KubeVersion
	if kv == "" {
		kv = DefaultKubeVersion
	}
	parsed, err := common.ParseKubeVersion(kv)
	if err != nil {
		return nil, "", fmt.Errorf("kubernetes version %q: %w", kv, err)
	}
	inst.KubeVersion = parsed
	ri, err := inst.Run(ch, copyValues(rel.Values))
	if err != nil {
		return nil, "", fmt.Errorf("rendering chart %s (release %s/%s): %w", ch.Name(), rel.Namespace, rel.Name, err)
	}
	r, err := AsRelease(ri)
	if err != nil {
		return nil, "", fmt.Errorf("rendering chart %s: %w", ch.Name(), err)
	}
	objs, err := Decode([]byte(r.Manifest))
	if err != nil {
		return nil, "", fmt.Errorf("decoding chart %s output: %w", ch.Name(), err)
	}
	return objs, r.Manifest, nil
}

// LintChart runs `helm lint --strict` on the chart in dir with the given
// values and returns every finding at warning level or above as one
// error, or nil.
func LintChart(dir, namespace string, values map[string]any) error {
	linter := lint.RunAll(dir, copyValues(values), namespace)
	var msgs []string
	for _, m := range linter.Messages {
		// --strict: warnings fail as errors do; INFO (such as "icon is
		// recommended") does not.
		if m.Severity >= support.WarningSev {
			msgs = append(msgs, m.Error())
		}
	}
	if len(msgs) > 0 {
		return fmt.Errorf("helm lint %s: %s", dir, strings.Join(msgs, "; "))
	}
	return nil
}

// AsRelease returns the Helm v1 release record behind what an action
// returned: Helm v4's actions return an interface so that later release
// formats can be added, and the charts KeeperLB ships (apiVersion v2)
// always produce a v1 record.
func AsRelease(r helmrelease.Releaser) (*release.Release, error) {
	switch t := r.(type) {
	case *release.Release:
		return t, nil
	case release.Release:
		return &t, nil
	default:
		return nil, fmt.Errorf("unexpected Helm release type %T", r)
	}
}

// copyValues returns a deep copy of v, since Helm coalesces values into
// the map it is given and callers reuse theirs.
func copyValues(v map[string]any) map[string]any {
	out := make(map[string]any, len(v))
	for k, x := range v {
		out[k] = copyValue(x)
	}
	return out
}

func copyValue(x any) any {
	switch t := x.(type) {
	case map[string]any:
		return copyValues(t)
	case []any:
		out := make([]any, len(t))
		for i := range t {
			out[i] = copyValue(t[i])
		}
		return out
	default:
		return x
	}
}
