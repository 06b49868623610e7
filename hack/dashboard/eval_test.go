package main

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/promqltest"
)

// sampleValue gives each documented label a value the queries can group by.
var sampleValue = map[string]string{
	"pool": "default", "reason": "PoolExhausted", "service": "default/web",
	"protocol": "layer2", "node": "node-a", "ip": "198.18.100.1",
	"peer": "198.18.0.1:179", "state": "Up", "result": "success",
	"verb": "create",
}

// TestQueriesReturnData evaluates every query with Prometheus's own engine
// over synthetic series: each metric docs/metrics.md lists, with all its
// labels, from one scrape target, plus up and the process and Go series.
// A query that is empty even when every metric exists (a join on labels
// the two sides do not share, a filter that drops everything) fails here
// before it reaches the lab's real Prometheus.
func TestQueriesReturnData(t *testing.T) {
	docs := documented(t)
	target := `job="speaker",instance="198.18.0.2:7472",namespace="metallb-system"`
	var load []string
	series := func(name string, extra map[string]string, values string) {
		ls := []string{target}
		keys := make([]string, 0, len(extra))
		for k := range extra {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			ls = append(ls, fmt.Sprintf("%s=%q", k, extra[k]))
		}
		load = append(load, fmt.Sprintf("  %s{%s} %s", name, strings.Join(ls, ","), values))
	}
	names := make([]string, 0, len(docs))
	for n := range docs {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		f := docs[n]
		lv := map[string]string{}
		for _, l := range f.labels {
			v, ok := sampleValue[l]
			if !ok {
				t.Fatalf("no sample value for label %s of %s", l, n)
			}
			lv[l] = v
		}
		switch f.typ {
		case "counter":
			series(n, lv, "0+1x30")
		case "histogram":
			for _, le := range []string{"0.1", "1", "+Inf"} {
				b := map[string]string{"le": le}
				for k, v := range lv {
					b[k] = v
				}
				series(n+"_bucket", b, "0+1x30")
			}
			series(n+"_count", lv, "0+1x30")
			series(n+"_sum", lv, "0+0.5x30")
		default:
			series(n, lv, "1x30")
		}
	}
	for _, n := range []string{"up", "process_resident_memory_bytes", "go_goroutines"} {
		series(n, nil, "1x30")
	}
	series("process_cpu_seconds_total", nil, "0+1x30")
	storage := promqltest.LoadedStorage(t, "load 1m\n"+strings.Join(load, "\n"))
	engine := promqltest.NewTestEngine(t, false, 5*time.Minute, 1e6)
	at := time.Unix(0, 0).Add(25 * time.Minute)

	d := readDashboard(t)
	n := 0
	for _, p := range allPanels(d.Panels) {
		for _, tg := range p.Targets {
			n++
			expr := strings.NewReplacer("$__rate_interval", "2m", "$__interval", "1m", "$"+namespaceVar, "metallb-system").Replace(tg.Expr)
			q, err := engine.NewInstantQuery(context.Background(), storage, nil, expr, at)
			if err != nil {
				t.Errorf("%s %s: %v", p.Title, tg.RefID, err)
				continue
			}
			res := q.Exec(context.Background())
			switch {
			case res.Err != nil:
				t.Errorf("%s %s: %s: %v", p.Title, tg.RefID, expr, res.Err)
			case res.Value.Type() == "vector" && len(res.Value.(promql.Vector)) == 0:
				t.Errorf("%s %s: %s returns no data with every metric present", p.Title, tg.RefID, expr)
			}
			q.Close()
		}
	}
	if n < 20 {
		t.Fatalf("evaluated only %d queries", n)
	}
}
