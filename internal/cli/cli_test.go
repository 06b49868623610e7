package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	root := NewRoot(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

func write(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestValidateAcceptsTheDemoConfiguration(t *testing.T) {
	out, err := run(t, "validate", "-f", "../../examples/demo/pool.yaml")
	if err != nil {
		t.Fatalf("validate: %v\n%s", err, out)
	}
	if !strings.Contains(out, "valid: 1 pools, 1 L2 advertisements") {
		t.Errorf("unexpected output:\n%s", out)
	}
}

func TestValidateReportsEveryProblemWithObjectAndField(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "a.yaml", `
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: first}
spec:
  addresses: [198.18.0.0/24]
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: second}
spec:
  addresses: [198.18.0.128/25, not-a-cidr]
`)
	write(t, dir, "b.yml", `
apiVersion: v1
kind: ConfigMap
metadata: {name: unrelated}
---
apiVersion: metallb.io/v1beta1
kind: BGPPeer
metadata: {name: peer}
spec:
  myASN: 64512
  peerAddress: 198.18.0.1
`)
	out, err := run(t, "validate", "-f", dir)
	if err == nil {
		t.Fatalf("validate accepted a broken configuration:\n%s", out)
	}
	for _, want := range []string{
		"skipped ConfigMap metallb-system/unrelated",
		`IPAddressPool metallb-system/second: spec.addresses[1]`,
		"overlaps",
		"BGPPeer metallb-system/peer: spec",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestValidateCatchesMisspeltFields(t *testing.T) {
	dir := t.TempDir()
	p := write(t, dir, "pool.yaml", `
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: p}
spec:
  addresses: [198.18.0.0/24]
  autoAsign: false
`)
	out, err := run(t, "validate", "-f", p)
	if err == nil || !strings.Contains(err.Error(), "autoAsign") {
		t.Fatalf("want an error naming the unknown field, got %v\n%s", err, out)
	}
}

func TestDecodeAllFlattensListsAndRejectsKindless(t *testing.T) {
	objs, err := decodeAll(strings.NewReader(`
apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: Service, metadata: {name: a}}
- {apiVersion: v1, kind: Service, metadata: {name: b}}
---
---
apiVersion: v1
kind: Namespace
metadata: {name: c}
`))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, o := range objs {
		names = append(names, o.GetName())
	}
	if strings.Join(names, ",") != "a,b,c" {
		t.Errorf("decoded %v, want a,b,c", names)
	}
	if _, err := decodeAll(strings.NewReader("metadata: {name: x}\n")); err == nil || !strings.Contains(err.Error(), "missing apiVersion or kind") {
		t.Errorf("kindless document: got %v", err)
	}
}

func TestPrintServicesSaysWhyAServiceWaits(t *testing.T) {
	var out bytes.Buffer
	err := printServices(&out, []serviceRow{
		{Namespace: "ns", Name: "ok", IPs: []string{"198.18.0.1", "2001:db8::1"}, Pool: "p", State: "Allocated", Reason: "IPAllocated"},
		{Namespace: "ns", Name: "stuck", State: "Pending", Reason: "PoolExhausted", Message: "pool p is full"},
	})
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("want a header and two rows:\n%s", out.String())
	}
	if !strings.Contains(lines[1], "198.18.0.1,2001:db8::1") || strings.Contains(lines[1], "IPAllocated") {
		t.Errorf("allocated row: %q", lines[1])
	}
	if !strings.Contains(lines[2], "<pending>") || !strings.Contains(lines[2], "PoolExhausted: pool p is full") {
		t.Errorf("pending row: %q", lines[2])
	}
}
