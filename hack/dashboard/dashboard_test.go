package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

const (
	root = "../.."
	// chartCopy is the canonical output; the real-Prometheus lab test
	// reads exactly this file.
	chartCopy     = root + "/charts/keeperlb/files/dashboards/keeperlb.json"
	kustomizeCopy = root + "/config/grafana/keeperlb.json"
	metricsDoc    = root + "/docs/metrics.md"
)

// TestCommittedCopiesAreCurrent: both committed copies are what the
// generator writes now (`make generate` rewrites them; `make
// verify-generate` fails on a difference too).
func TestCommittedCopiesAreCurrent(t *testing.T) {
	want, err := Render()
	if err != nil {
		t.Fatal(err)
	}
	again, err := Render()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(want, again) {
		t.Fatal("two renders differ: the output must not depend on map order or time")
	}
	for _, path := range []string{chartCopy, kustomizeCopy} {
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is not the generator's output: run make generate", path)
		}
	}
}

// family is one row of docs/metrics.md.
type family struct {
	typ    string
	labels []string
}

// docRow matches a metric row of docs/metrics.md: | `name` | type | labels | ...
var docRow = regexp.MustCompile("^\\| `([a-z_:][a-z0-9_:]*)` \\| (counter|gauge|histogram|summary) \\| ([^|]*) \\|")

// documented reads the metrics docs/metrics.md lists, with their types and
// labels.
func documented(t *testing.T) map[string]family {
	t.Helper()
	f, err := os.Open(metricsDoc)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]family{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := docRow.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		fam := family{typ: m[2]}
		for _, l := range strings.Split(m[3], ",") {
			if l = strings.Trim(strings.TrimSpace(l), "`"); l != "" && l != "—" {
				fam.labels = append(fam.labels, l)
			}
		}
		out[m[1]] = fam
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out) < 40 {
		t.Fatalf("found only %d metrics in %s; the table parsing is broken", len(out), metricsDoc)
	}
	return out
}

// targetLabels are the labels a scrape adds to every series: Prometheus's
// own (job, instance) and those of the Prometheus Operator's Kubernetes
// discovery (namespace, pod, ...). Queries may group and join on them.
var targetLabels = []string{"job", "instance", "namespace", "pod", "container", "endpoint", "service"}

// seriesOf resolves a metric name used in a query to its documented
// family and the labels its series carry; ok is false for a name KeeperLB
// does not export.
func seriesOf(docs map[string]family, name string) (labelSet []string, ok bool) {
	if f, found := docs[name]; found && f.typ != "histogram" {
		return f.labels, true
	}
	for _, suffix := range []string{"_bucket", "_count", "_sum"} {
		base, cut := strings.CutSuffix(name, suffix)
		if f, found := docs[base]; cut && found && f.typ == "histogram" {
			if suffix == "_bucket" {
				return append(slices.Clone(f.labels), "le"), true
			}
			return f.labels, true
		}
	}
	// The standard series both processes serve (docs/metrics.md says so):
	// up, which Prometheus adds per target, and the Go and process
	// collectors', which carry no labels of their own that the dashboard
	// uses.
	if name == "up" || strings.HasPrefix(name, "process_") || strings.HasPrefix(name, "go_") {
		return nil, true
	}
	return nil, false
}

// panelJSON is the part of a panel the checks read.
type panelJSON struct {
	ID         int              `json:"id"`
	Type       string           `json:"type"`
	Title      string           `json:"title"`
	Datasource *json.RawMessage `json:"datasource"`
	GridPos    *struct {
		X, Y, W, H int
	} `json:"gridPos"`
	Targets []struct {
		Expr         string `json:"expr"`
		LegendFormat string `json:"legendFormat"`
		RefID        string `json:"refId"`
		Datasource   struct {
			Type string `json:"type"`
			UID  string `json:"uid"`
		} `json:"datasource"`
	} `json:"targets"`
	Panels []panelJSON `json:"panels"`
}

type dashboardJSON struct {
	UID        string      `json:"uid"`
	Panels     []panelJSON `json:"panels"`
	Templating struct {
		List []struct {
			Name     string          `json:"name"`
			Type     string          `json:"type"`
			Query    json.RawMessage `json:"query"`
			AllValue string          `json:"allValue"`
		} `json:"list"`
	} `json:"templating"`
}

// allPanels flattens the panels, those nested in rows included, as the
// lab test walks them.
func allPanels(ps []panelJSON) []panelJSON {
	var out []panelJSON
	for _, p := range ps {
		out = append(out, p)
		out = append(out, allPanels(p.Panels)...)
	}
	return out
}

func readDashboard(t *testing.T) dashboardJSON {
	t.Helper()
	raw, err := os.ReadFile(chartCopy)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboardJSON
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("%s does not parse as JSON: %v", chartCopy, err)
	}
	if dec.More() {
		t.Fatalf("%s has data after the dashboard object", chartCopy)
	}
	if d.UID != UID {
		t.Errorf("uid is %q, want %q (fixed, so an upgrade replaces the dashboard)", d.UID, UID)
	}
	return d
}

// TestVariables: a data source variable and $namespace, nothing else, so
// that the lab test (and a user) knows every value a query can need.
func TestVariables(t *testing.T) {
	d := readDashboard(t)
	got := map[string]string{}
	for _, v := range d.Templating.List {
		got[v.Name] = v.Type
	}
	want := map[string]string{datasourceVar: "datasource", namespaceVar: "query"}
	if len(got) != len(want) || got[datasourceVar] != want[datasourceVar] || got[namespaceVar] != want[namespaceVar] {
		t.Errorf("variables %v, want %v", got, want)
	}
	for _, v := range d.Templating.List {
		if v.Name == datasourceVar && string(v.Query) != `"prometheus"` {
			t.Errorf("the data source variable picks %s, want prometheus", v.Query)
		}
		if v.Name == namespaceVar && v.AllValue != ".*" {
			t.Errorf("$namespace's All is %q, want .* (it must also match series without a namespace label)", v.AllValue)
		}
	}
}

// TestLayout: every panel sits inside Grafana's 24 columns and none
// overlaps another, so Grafana shows the layout as generated.
func TestLayout(t *testing.T) {
	d := readDashboard(t)
	type box struct {
		title      string
		x, y, w, h int
	}
	var boxes []box
	for _, p := range allPanels(d.Panels) {
		g := p.GridPos
		if g == nil || g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q: gridPos %+v is not within the 24 columns", p.Title, g)
			continue
		}
		for _, o := range boxes {
			if g.X < o.x+o.w && o.x < g.X+g.W && g.Y < o.y+o.h && o.y < g.Y+g.H {
				t.Errorf("panels %q and %q overlap", o.title, p.Title)
			}
		}
		boxes = append(boxes, box{p.Title, g.X, g.Y, g.W, g.H})
	}
}

// variableRef finds $name and ${name} in a query.
var variableRef = regexp.MustCompile(`\$\{?(\w+)\}?`)

// legendRef finds {{label}} in a legend.
var legendRef = regexp.MustCompile(`\{\{\s*(\w+)\s*\}\}`)

// nsSentinel stands for $namespace while a query is parsed, so that the
// matchers that use it can be found afterwards.
const nsSentinel = "NAMESPACE_VARIABLE"

// TestQueries: every panel has a query; every query is valid PromQL once
// Grafana's variables are put in, uses only the allowed variables, selects
// only metrics docs/metrics.md lists (or up, process_*, go_*), limits every
// selector to the dashboard's namespaces, and groups, joins and labels its
// legend only by labels its metrics have.
func TestQueries(t *testing.T) {
	docs := documented(t)
	d := readDashboard(t)
	p := parser.NewParser(parser.Options{})
	ids := map[int]string{}
	queries, panels := 0, 0
	used := map[string]bool{}
	for _, pn := range allPanels(d.Panels) {
		if prev, dup := ids[pn.ID]; dup {
			t.Errorf("panels %q and %q share id %d", prev, pn.Title, pn.ID)
		}
		ids[pn.ID] = pn.Title
		if pn.Type == "row" {
			if len(pn.Targets) > 0 {
				t.Errorf("row %q has queries", pn.Title)
			}
			continue
		}
		panels++
		if len(pn.Targets) == 0 {
			t.Errorf("panel %q has no query", pn.Title)
		}
		if pn.Datasource == nil || !strings.Contains(string(*pn.Datasource), `"${datasource}"`) {
			t.Errorf("panel %q does not use the data source variable: %v", pn.Title, pn.Datasource)
		}
		for _, tg := range pn.Targets {
			queries++
			what := pn.Title + " " + tg.RefID + ": " + tg.Expr
			if strings.TrimSpace(tg.Expr) == "" {
				t.Errorf("panel %q target %s has an empty expr", pn.Title, tg.RefID)
				continue
			}
			if tg.Datasource.UID != "${datasource}" || tg.Datasource.Type != "prometheus" {
				t.Errorf("%s: datasource %+v, want the prometheus ${datasource}", what, tg.Datasource)
			}
			for _, m := range variableRef.FindAllStringSubmatch(tg.Expr, -1) {
				switch m[1] {
				case "__rate_interval", "__interval", namespaceVar:
				default:
					t.Errorf("%s: uses $%s; only $__rate_interval, $__interval and $namespace are allowed", what, m[1])
				}
			}
			if n, ok := strings.Count(tg.Expr, "$"+namespaceVar), strings.Count(tg.Expr, `namespace=~"$`+namespaceVar+`"`); n != ok {
				t.Errorf("%s: $namespace must only appear as namespace=~\"$namespace\"", what)
			}
			expr := strings.NewReplacer("$__rate_interval", "1m", "$__interval", "30s", "$"+namespaceVar, nsSentinel).Replace(tg.Expr)
			ast, err := p.ParseExpr(expr)
			if err != nil {
				t.Errorf("%s: not valid PromQL: %v", what, err)
				continue
			}
			exprLabels, problems := checkSelectors(what, ast, docs, used)
			for _, pr := range append(problems, checkGrouping(what, ast, docs)...) {
				t.Error(pr)
			}
			for _, m := range legendRef.FindAllStringSubmatch(tg.LegendFormat, -1) {
				if !slices.Contains(exprLabels, m[1]) && !slices.Contains(targetLabels, m[1]) {
					t.Errorf("%s: legend uses {{%s}}, which none of its metrics has (%v)", what, m[1], exprLabels)
				}
			}
		}
	}
	if panels < 20 || queries < panels {
		t.Fatalf("%d panels with %d queries: the walk is broken", panels, queries)
	}
	// The panels the dashboard exists for: each of these must be shown.
	for _, name := range []string{
		"metallb_allocator_addresses_in_use_total", "metallb_allocator_addresses_total",
		"keeperlb_controller_services_waiting", "metallb_speaker_announced",
		"keeperlb_layer2_ownership_changes_total", "metallb_bgp_session_up",
		"metallb_bfd_session_up", "keeperlb_bfd_session_state", "keeperlb_speaker_live_members",
		"keeperlb_speaker_heartbeat_auth_failures_total", "keeperlb_speaker_heartbeat_dropped_total",
		"metallb_k8s_client_config_loaded_bool", "metallb_k8s_client_config_stale_bool", "up",
		"keeperlb_speaker_status_backlog_seconds", "keeperlb_controller_allocation_duration_seconds_bucket",
		"process_resident_memory_bytes",
	} {
		if !used[name] {
			t.Errorf("no panel queries %s", name)
		}
	}
}

// checkSelectors checks every selector of ast and returns the labels its
// metrics carry, and what is wrong.
func checkSelectors(what string, ast parser.Expr, docs map[string]family, used map[string]bool) (out, problems []string) {
	fail := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	parser.Inspect(ast, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		ls, known := seriesOf(docs, vs.Name)
		if !known {
			fail("%s: %q is not a metric docs/metrics.md lists (nor up, process_*, go_*)", what, vs.Name)
		}
		used[vs.Name] = true
		out = append(out, ls...)
		ns := false
		for _, m := range vs.LabelMatchers {
			switch {
			case m.Name == labels.MetricName:
			case m.Name == "namespace" && m.Type == labels.MatchRegexp && m.Value == nsSentinel:
				ns = true
			case !slices.Contains(ls, m.Name):
				fail("%s: matches label %q, which %s does not have (%v)", what, m.Name, vs.Name, ls)
			}
		}
		if !ns {
			fail("%s: selector %s is not limited to namespace=~\"$namespace\"", what, vs)
		}
		return nil
	})
	return out, problems
}

// checkGrouping checks that every by (...) and on (...) names labels of
// the metrics below it (or target labels), and returns what is wrong.
func checkGrouping(what string, ast parser.Expr, docs map[string]family) (problems []string) {
	fail := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	below := func(n parser.Node) []string {
		var ls []string
		parser.Inspect(n, func(c parser.Node, _ []parser.Node) error {
			if vs, ok := c.(*parser.VectorSelector); ok {
				l, _ := seriesOf(docs, vs.Name)
				ls = append(ls, l...)
			}
			return nil
		})
		return append(ls, targetLabels...)
	}
	parser.Inspect(ast, func(n parser.Node, _ []parser.Node) error {
		var grouping []string
		switch e := n.(type) {
		case *parser.AggregateExpr:
			if e.Without {
				fail("%s: uses without (...); say which labels to keep with by (...)", what)
			}
			grouping = e.Grouping
		case *parser.BinaryExpr:
			if e.VectorMatching != nil && e.VectorMatching.On {
				grouping = e.VectorMatching.MatchingLabels
			}
		default:
			return nil
		}
		have := below(n)
		for _, l := range grouping {
			if !slices.Contains(have, l) {
				fail("%s: groups or joins by %q, which its metrics do not have", what, l)
			}
		}
		return nil
	})
	return problems
}

// TestCheckerCatchesMistakes: the checks above can fail.
func TestCheckerCatchesMistakes(t *testing.T) {
	docs := documented(t)
	p := parser.NewParser(parser.Options{})
	for _, tc := range []struct{ expr string }{
		{`metallb_no_such_metric{namespace=~"` + nsSentinel + `"}`},
		{`metallb_bgp_session_up`},
		{`metallb_bgp_session_up{namespace=~"` + nsSentinel + `",pool="x"}`},
		{`sum by (pool) (metallb_bgp_session_up{namespace=~"` + nsSentinel + `"})`},
	} {
		ast, err := p.ParseExpr(tc.expr)
		if err != nil {
			t.Fatal(err)
		}
		_, problems := checkSelectors(tc.expr, ast, docs, map[string]bool{})
		problems = append(problems, checkGrouping(tc.expr, ast, docs)...)
		if len(problems) == 0 {
			t.Errorf("%s passed the checks", tc.expr)
		}
	}
	if _, ok := seriesOf(docs, "keeperlb_controller_allocation_duration_seconds_bucket"); !ok {
		t.Error("a documented histogram's _bucket series is not recognised")
	}
	if _, ok := seriesOf(docs, "keeperlb_controller_services_waiting_bucket"); ok {
		t.Error("_bucket of a gauge is taken for a series")
	}
}
