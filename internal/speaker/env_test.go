package speaker

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"github.com/keeperlb/keeperlb/internal/controlplane"
)

// Tests that need a real API server share one control plane, started on
// first use and stopped by TestMain.
var (
	cpOnce sync.Once
	cp     *controlplane.ControlPlane
	cpErr  error
	cpDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if cp != nil {
		cp.Stop()
	}
	if cpDir != "" {
		os.RemoveAll(cpDir)
	}
	os.Exit(code)
}

// controlPlane returns the shared control plane, failing the test when the
// binaries are missing (skipping only when the caller opted out with
// KEEPERLB_SKIP_LAB=1).
func controlPlane(t *testing.T) *rest.Config {
	t.Helper()
	if os.Getenv("KEEPERLB_SKIP_LAB") == "1" {
		t.Skip("KEEPERLB_SKIP_LAB=1: skipping a test that needs a real kube-apiserver and etcd")
	}
	cpOnce.Do(func() {
		var dir string
		if dir, cpErr = os.MkdirTemp("", "keeperlb-cp-"); cpErr != nil {
			return
		}
		cpDir = dir
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		if cp, cpErr = controlplane.Start(ctx, controlplane.Options{Dir: dir}); cpErr != nil {
			return
		}
		cpErr = controlplane.InstallCRDs(ctx, cp.Config)
	})
	if cpErr != nil {
		t.Fatalf("integration test needs a real control plane: %v (set KEEPERLB_SKIP_LAB=1 to skip explicitly)", cpErr)
	}
	return cp.Config
}
