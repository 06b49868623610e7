package cli

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/keeperlb/keeperlb/internal/lab"
)

// TestBinariesRunLabRoles builds both shipped CLI binaries, keeperlb and the
// kubectl plugin kubectl-keeperlb, and asks each the lab's role probe, as
// `lab up` and `demo` do before re-executing the binary as a lab's owner
// or a node's backend. kubectl-keeperlb once answered with cobra's help, so
// `kubectl keeperlb lab up` and `kubectl keeperlb demo` failed.
func TestBinariesRunLabRoles(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command("go", "build", "-trimpath", "-o", dir+"/", "./cmd/keeperlb", "./cmd/kubectl-keeperlb")
	cmd.Dir = "../.."
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the binaries: %v\n%s", err, out)
	}
	for _, name := range []string{"keeperlb", "kubectl-keeperlb"} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := lab.CheckRoles(ctx, filepath.Join(dir, name)); err != nil {
				t.Fatal(err)
			}
		})
	}
}
