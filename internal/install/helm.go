package install

import (
	"fmt"
	"strings"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
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
	cfg := &action.Configuration{Log: func(string, ...any) {}}
	inst := action.NewInstall(cfg)
	inst.DryRun = true
	inst.ClientOnly = true
	inst.Replace = true
	inst.IncludeCRDs = true
	inst.ReleaseName = rel.Name
	inst.Namespace = rel.Namespace
	kv := rel.KubeVersion
	if kv == "" {
		kv = DefaultKubeVersion
	}
	parsed, err := chartutil.ParseKubeVersion(kv)
	if err != nil {
		return nil, "", fmt.Errorf("kubernetes version %q: %w", kv, err)
	}
	inst.KubeVersion = parsed
	r, err := inst.Run(ch, copyValues(rel.Values))
	if err != nil {
		return nil, "", fmt.Errorf("rendering chart %s (release %s/%s): %w", ch.Name(), rel.Namespace, rel.Name, err)
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
	linter := lint.All(dir, copyValues(values), namespace, true)
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
