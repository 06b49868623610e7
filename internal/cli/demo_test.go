package cli

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDemo runs `keeperlb demo` as `make demo` does: a real control plane,
// keeperlb-controller as a real process built from this tree.
func TestDemo(t *testing.T) {
	if os.Getenv("KEEPERLB_SKIP_LAB") == "1" {
		t.Skip("KEEPERLB_SKIP_LAB=1: skipping the demo, which needs a real kube-apiserver and etcd")
	}
	if _, ok := os.LookupEnv("KEEPERLB_K8S_BIN"); !ok {
		t.Fatal("the demo needs $KEEPERLB_K8S_BIN (run `make test`, which builds kube-apiserver and etcd), or set KEEPERLB_SKIP_LAB=1 to skip explicitly")
	}
	bin := filepath.Join(t.TempDir(), "keeperlb-controller")
	build := exec.Command("go", "build", "-o", bin, "../../cmd/keeperlb-controller")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building keeperlb-controller: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var out bytes.Buffer
	if err := runDemo(ctx, &out, demoOptions{controllerBin: bin}); err != nil {
		t.Fatalf("demo failed: %v\n%s", err, out.String())
	}
	got := out.String()
	for _, want := range []string{
		"the controller loaded the configuration",
		// web is dual-stack and first; api asked for .11; late waits.
		"web   198.18.100.10,2001:db8:100::",
		"api   198.18.100.11",
		"PoolExhausted: Service demo/late needs IPv4 addresses",
		`UnknownPool: Service demo/typo asks for pool "prod"`,
		"Warning  PoolExhausted",
		// After api is deleted, late gets its address.
		"late  198.18.100.11",
		`metallb_allocator_ipv4_addresses_in_use_total{pool="demo"} 2`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("demo output:\n%s", got)
	}
}
