// Package metricsdoc keeps docs/metrics.md honest. The document lists the
// metrics in Markdown tables, each table after a marker naming the package
// that registers its metrics (<!-- metrics:NAME -->); each such package has
// a test that registers and fills its metrics and calls Check, which fails
// when the table and the registry differ in a name, a type or a label.
package metricsdoc

import (
	"bufio"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Family is one metric family as a scraper sees it.
type Family struct {
	// Name is the metric name.
	Name string
	// Type is counter, gauge or histogram.
	Type string
	// Labels are the label names, sorted, without a histogram's le.
	Labels []string
}

// String writes the family as "name type {labels}".
func (f Family) String() string {
	return fmt.Sprintf("%s %s {%s}", f.Name, f.Type, strings.Join(f.Labels, ","))
}

// Gather returns the families g exports, sorted by name. A family's labels
// are the union over its series, so every labelled family must have at
// least one series when it is gathered.
func Gather(g prometheus.Gatherer) ([]Family, error) {
	mfs, err := g.Gather()
	if err != nil {
		return nil, fmt.Errorf("gathering metrics: %w", err)
	}
	out := make([]Family, 0, len(mfs))
	for _, mf := range mfs {
		f := Family{Name: mf.GetName(), Type: typeName(mf.GetType())}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if !slices.Contains(f.Labels, l.GetName()) {
					f.Labels = append(f.Labels, l.GetName())
				}
			}
		}
		slices.Sort(f.Labels)
		out = append(out, f)
	}
	slices.SortFunc(out, func(a, b Family) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func typeName(t dto.MetricType) string {
	switch t {
	case dto.MetricType_COUNTER:
		return "counter"
	case dto.MetricType_GAUGE:
		return "gauge"
	case dto.MetricType_HISTOGRAM:
		return "histogram"
	case dto.MetricType_SUMMARY:
		return "summary"
	}
	return strings.ToLower(t.String())
}

// marker opens a section: the first table after it is the section's.
const marker = "<!-- metrics:"

// Document is the parsed metrics tables of docs/metrics.md, by section.
type Document map[string][]Family

// Parse reads the Markdown file at path. A table row of a section is
//
//	| `name` | type | `label`, `label` | ... |
//
// with "—" or nothing in the labels column for none.
func Parse(path string) (Document, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading the metrics document: %w", err)
	}
	defer f.Close()
	doc := Document{}
	section, inTable, rows := "", false, 0
	sc := bufio.NewScanner(f)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if rest, ok := strings.CutPrefix(text, marker); ok {
			name, ok := strings.CutSuffix(rest, "-->")
			name = strings.TrimSpace(name)
			if !ok || name == "" {
				return nil, fmt.Errorf("%s:%d: malformed marker %q", path, line, text)
			}
			if _, dup := doc[name]; dup {
				return nil, fmt.Errorf("%s:%d: section %q opened twice", path, line, name)
			}
			doc[name] = nil
			section, inTable, rows = name, false, 0
			continue
		}
		if section == "" {
			continue
		}
		if !strings.HasPrefix(text, "|") {
			if inTable {
				section, inTable = "", false // the section's table ended
			}
			continue
		}
		inTable = true
		rows++
		if rows <= 2 {
			continue // header and separator
		}
		fam, err := parseRow(text)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		doc[section] = append(doc[section], fam)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading the metrics document: %w", err)
	}
	return doc, nil
}

func parseRow(row string) (Family, error) {
	cells := strings.Split(strings.Trim(row, "|"), "|")
	if len(cells) < 3 {
		return Family{}, fmt.Errorf("table row %q has fewer than 3 cells", row)
	}
	name := strings.TrimSpace(cells[0])
	if len(name) < 3 || name[0] != '`' || name[len(name)-1] != '`' {
		return Family{}, fmt.Errorf("first cell %q is not a `metric_name`", name)
	}
	f := Family{Name: strings.Trim(name, "`"), Type: strings.TrimSpace(cells[1])}
	for l := range strings.SplitSeq(cells[2], ",") {
		l = strings.TrimSpace(l)
		if l == "" || l == "—" {
			continue
		}
		if len(l) < 3 || l[0] != '`' || l[len(l)-1] != '`' {
			return Family{}, fmt.Errorf("label %q of %s is not a `label_name`", l, f.Name)
		}
		f.Labels = append(f.Labels, strings.Trim(l, "`"))
	}
	slices.Sort(f.Labels)
	return f, nil
}

// Diff lists how the registered families differ from the documented ones;
// it is empty when they are the same.
func Diff(documented, registered []Family) []string {
	var out []string
	doc := map[string]Family{}
	for _, f := range documented {
		doc[f.Name] = f
	}
	reg := map[string]Family{}
	for _, f := range registered {
		reg[f.Name] = f
		d, ok := doc[f.Name]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("registered but not documented: %s", f))
		case d.Type != f.Type || !slices.Equal(d.Labels, f.Labels):
			out = append(out, fmt.Sprintf("documented as %s, registered as %s", d, f))
		}
	}
	for _, d := range documented {
		if _, ok := reg[d.Name]; !ok {
			out = append(out, fmt.Sprintf("documented but not registered: %s", d))
		}
	}
	return out
}

// Check fails tb unless the families g exports are exactly those of the
// given sections of the Markdown file at path.
func Check(tb testing.TB, g prometheus.Gatherer, path string, sections ...string) {
	tb.Helper()
	doc, err := Parse(path)
	if err != nil {
		tb.Fatal(err)
	}
	var documented []Family
	for _, s := range sections {
		fams, ok := doc[s]
		if !ok {
			tb.Fatalf("%s has no section <!-- metrics:%s -->", path, s)
		}
		documented = append(documented, fams...)
	}
	registered, err := Gather(g)
	if err != nil {
		tb.Fatal(err)
	}
	for _, d := range Diff(documented, registered) {
		tb.Errorf("%s, sections %s: %s", path, strings.Join(sections, "+"), d)
	}
}
