// Command dashboard writes KeeperLB's Grafana dashboard as JSON, built with
// the Grafana Foundation SDK (Apache-2.0; Grafana itself is never a
// dependency). `make generate` runs it:
//
//	go run . -out ../../charts/keeperlb/files/dashboards/keeperlb.json -out ../../config/grafana/keeperlb.json
//
// The chart's copy is the canonical one; config/grafana carries the same
// bytes because kustomize cannot read files outside its own tree.
//
// Every query selects series by metric name and by namespace=~"$namespace"
// only, never by job: the job label is whatever the scrape configuration
// makes it (controller and speaker with the chart's ServiceMonitors and
// PodMonitors, something else with a hand-written scrape job), and a
// dashboard that matched one job name would be blank under the others.
// Where a panel needs "KeeperLB's processes only" (process and Go runtime
// series, up), it joins on a series only KeeperLB exports.
//
// This is its own Go module, so that the SDK (and, for the test, the PromQL
// parser) does not become a dependency of the product.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// multi collects a repeatable string flag.
type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

func main() {
	var outs multi
	flag.Var(&outs, "out", "file to write the dashboard JSON to (repeatable); none: standard output")
	flag.Parse()
	if err := run(outs); err != nil {
		fmt.Fprintln(os.Stderr, "dashboard:", err)
		os.Exit(1)
	}
}

func run(outs []string) error {
	data, err := Render()
	if err != nil {
		return err
	}
	if len(outs) == 0 {
		_, err := os.Stdout.Write(data)
		return err
	}
	for _, out := range outs {
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			return fmt.Errorf("writing %s: %w", out, err)
		}
		if err := os.WriteFile(out, data, 0o644); err != nil {
			return fmt.Errorf("writing %s: %w", out, err)
		}
	}
	return nil
}

// Render returns the dashboard as indented JSON ending in a newline. The
// same code gives the same bytes on every run (no map iteration reaches
// the output, no time stamps), so `make verify-generate` can compare them.
func Render() ([]byte, error) {
	d, err := Dashboard().Build()
	if err != nil {
		return nil, fmt.Errorf("building the dashboard: %w", err)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	// Keep PromQL's <, > and & readable in the JSON.
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(d); err != nil {
		return nil, fmt.Errorf("encoding the dashboard: %w", err)
	}
	return buf.Bytes(), nil
}
