package metricsdoc

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func writeDoc(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "metrics.md")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestParse(t *testing.T) {
	p := writeDoc(t, "# Metrics\n\n| not | a section |\n|---|---|\n| `x` | y |\n\n"+
		"## One\n<!-- metrics:one -->\n\nProse is skipped.\n\n"+
		"| Metric | Type | Labels | Meaning |\n|---|---|---|---|\n"+
		"| `a_total` | counter | — | A. |\n"+
		"| `b` | gauge | `pool`, `ip` | B, with | a pipe in prose. |\n"+
		"| `c_seconds` | histogram |  | C. |\n\n"+
		"| `after` | gauge | — | a second table is not the section's |\n\n"+
		"<!-- metrics:two -->\n| Metric | Type | Labels |\n|---|---|---|\n| `d` | gauge | `x` |\n")
	doc, err := Parse(p)
	if err != nil {
		t.Fatal(err)
	}
	want := Document{
		"one": {{"a_total", "counter", nil}, {"b", "gauge", []string{"ip", "pool"}}, {"c_seconds", "histogram", nil}},
		"two": {{"d", "gauge", []string{"x"}}},
	}
	if !maps.EqualFunc(doc, want, func(a, b []Family) bool {
		return slices.EqualFunc(a, b, func(x, y Family) bool { return x.String() == y.String() })
	}) {
		t.Errorf("Parse = %v, want %v", doc, want)
	}

	for name, bad := range map[string]string{
		"unnamed cell":   "<!-- metrics:s -->\n| M | T | L |\n|---|---|---|\n| a | gauge | — |\n",
		"bare label":     "<!-- metrics:s -->\n| M | T | L |\n|---|---|---|\n| `a` | gauge | pool |\n",
		"short row":      "<!-- metrics:s -->\n| M | T | L |\n|---|---|---|\n| `a` |\n",
		"twice":          "<!-- metrics:s -->\n<!-- metrics:s -->\n",
		"empty marker":   "<!-- metrics: -->\n",
		"unclosed label": "<!-- metrics:s\n",
	} {
		if _, err := Parse(writeDoc(t, bad)); err == nil {
			t.Errorf("%s: Parse accepted it", name)
		}
	}
}

func TestDiff(t *testing.T) {
	a := Family{"a", "counter", nil}
	b := Family{"b", "gauge", []string{"pool"}}
	cases := []struct {
		name                 string
		documented, register []Family
		want                 []string // substrings, one per difference
	}{
		{"same", []Family{a, b}, []Family{b, a}, nil},
		{"undocumented", []Family{a}, []Family{a, b}, []string{"registered but not documented: b"}},
		{"unregistered", []Family{a, b}, []Family{a}, []string{"documented but not registered: b"}},
		{"type", []Family{a}, []Family{{"a", "gauge", nil}}, []string{"documented as a counter"}},
		{"labels", []Family{b}, []Family{{"b", "gauge", []string{"ip", "pool"}}}, []string{"registered as b gauge {ip,pool}"}},
	}
	for _, c := range cases {
		got := Diff(c.documented, c.register)
		if len(got) != len(c.want) {
			t.Errorf("%s: %v, want %d differences", c.name, got, len(c.want))
			continue
		}
		for i, w := range c.want {
			if !strings.Contains(got[i], w) {
				t.Errorf("%s: %q does not say %q", c.name, got[i], w)
			}
		}
	}
}

func TestGather(t *testing.T) {
	reg := prometheus.NewRegistry()
	v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "x_total", Help: "x"}, []string{"b", "a"})
	v.WithLabelValues("1", "2").Inc()
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "h_seconds", Help: "h"})
	h.Observe(1)
	reg.MustRegister(v, h)
	got, err := Gather(reg)
	if err != nil {
		t.Fatal(err)
	}
	want := []Family{{"h_seconds", "histogram", nil}, {"x_total", "counter", []string{"a", "b"}}}
	if !slices.EqualFunc(got, want, func(x, y Family) bool { return x.String() == y.String() }) {
		t.Errorf("Gather = %v, want %v", got, want)
	}
}

// TestSectionsAreChecked makes sure every section of docs/metrics.md is
// one that a package's TestMetricsDocumented checks: a new table needs a
// test that registers its metrics.
func TestSectionsAreChecked(t *testing.T) {
	doc, err := Parse("../../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	checked := []string{
		"k8s-client", // internal/k8smetrics, internal/controller, internal/speaker
		"controller", // internal/controller
		"speaker",    // internal/speaker
		"layer2",     // internal/layer2
		"bgp",        // internal/bgp
	}
	got := slices.Sorted(maps.Keys(doc))
	slices.Sort(checked)
	if !slices.Equal(got, checked) {
		t.Errorf("docs/metrics.md has sections %v; the packages' tests check %v", got, checked)
	}
	for s, fams := range doc {
		if len(fams) == 0 {
			t.Errorf("section %s has no metrics", s)
		}
	}
}
