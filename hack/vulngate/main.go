// Command vulngate reads govulncheck's JSON output on standard input and
// fails when the code calls a vulnerable symbol that a newer version fixes.
// A vulnerability with no fix yet is listed but does not fail: there is
// nothing to move to, and a gate that always fails is soon ignored.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// message is one object of govulncheck's JSON stream; only findings matter
// here.
type message struct {
	Finding *struct {
		OSV          string `json:"osv"`
		FixedVersion string `json:"fixed_version"`
		Trace        []struct {
			Module   string `json:"module"`
			Version  string `json:"version"`
			Function string `json:"function"`
		} `json:"trace"`
	} `json:"finding"`
}

// vuln is what is known of one vulnerability the code reaches.
type vuln struct {
	id, module, version, fixed string
}

func main() {
	reached, err := read(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "vulngate:", err)
		os.Exit(2)
	}
	fixable := 0
	for _, v := range reached {
		fix := "no fixed version yet"
		if v.fixed != "" {
			fix = "fixed in " + v.fixed
			fixable++
		}
		fmt.Printf("%s\t%s@%s\t%s\n", v.id, v.module, v.version, fix)
	}
	fmt.Printf("%d vulnerabilities reached by the code, %d with a fix to move to\n", len(reached), fixable)
	if fixable > 0 {
		os.Exit(1)
	}
}

// read collects the vulnerabilities whose findings reach a function, sorted
// by ID.
func read(r io.Reader) ([]vuln, error) {
	dec := json.NewDecoder(r)
	byID := map[string]vuln{}
	for {
		var m message
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("decoding govulncheck output: %w", err)
		}
		f := m.Finding
		if f == nil || len(f.Trace) == 0 || f.Trace[0].Function == "" {
			continue // not reached by the code: a module or package finding
		}
		byID[f.OSV] = vuln{id: f.OSV, module: f.Trace[0].Module, version: f.Trace[0].Version, fixed: f.FixedVersion}
	}
	out := make([]vuln, 0, len(byID))
	for _, v := range byID {
		out = append(out, v)
	}
	slices.SortFunc(out, func(a, b vuln) int { return strings.Compare(a.id, b.id) })
	return out, nil
}
