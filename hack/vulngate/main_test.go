package main

import (
	"strings"
	"testing"
)

func TestRead(t *testing.T) {
	in := `{"config":{"scanner_name":"govulncheck"}}
{"osv":{"id":"GO-1"}}
{"finding":{"osv":"GO-1","fixed_version":"v1.2.0","trace":[{"module":"example.com/a","version":"v1.1.0"}]}}
{"finding":{"osv":"GO-2","fixed_version":"v0.60.0","trace":[{"module":"golang.org/x/net","version":"v0.59.0","function":"Read"},{"module":"m","function":"main"}]}}
{"finding":{"osv":"GO-3","trace":[{"module":"github.com/osrg/gobgp/v4","version":"v4.8.0","function":"recv"}]}}
{"finding":{"osv":"GO-2","fixed_version":"v0.60.0","trace":[{"module":"golang.org/x/net","version":"v0.59.0","function":"Write"}]}}
`
	got, err := read(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []vuln{
		{id: "GO-2", module: "golang.org/x/net", version: "v0.59.0", fixed: "v0.60.0"},
		{id: "GO-3", module: "github.com/osrg/gobgp/v4", version: "v4.8.0"},
	}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("read = %+v, want %+v (GO-1 is not reached)", got, want)
	}
	if _, err := read(strings.NewReader("{")); err == nil {
		t.Error("truncated input accepted")
	}
}
