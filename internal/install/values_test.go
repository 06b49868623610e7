package install_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	yaml "go.yaml.in/yaml/v3"
)

// documentedValues walks values.yaml: a key with a comment is documented
// as a whole (its sub-keys, such as resources.requests, are its default);
// a key without one must be a section whose keys are all documented.
func documentedValues(t *testing.T, node *yaml.Node, prefix string, out map[string]string) {
	t.Helper()
	for i := 0; i+1 < len(node.Content); i += 2 {
		k, v := node.Content[i], node.Content[i+1]
		path := prefix + k.Value
		switch {
		case strings.TrimSpace(k.HeadComment) != "":
			out[path] = k.HeadComment
		case v.Kind == yaml.MappingNode && len(v.Content) > 0:
			documentedValues(t, v, path+".", out)
		default:
			t.Errorf("values.yaml: %s has no comment", path)
		}
	}
}

func TestValuesDocumented(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	values := map[string]string{}
	documentedValues(t, doc.Content[0], "", values)
	if len(values) < 30 {
		t.Fatalf("found only %d documented values; the walk is broken", len(values))
	}
	readme, err := os.ReadFile(filepath.Join(chartDir, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for path := range values {
		if !strings.Contains(string(readme), "| `"+path+"` |") {
			t.Errorf("charts/keeperlb/README.md has no row for `%s`", path)
		}
	}
}
