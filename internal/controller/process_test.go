package controller_test

import (
	"os"
	"runtime/debug"
	"testing"

	clientfeatures "k8s.io/client-go/features"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
)

// TestRunLeavesProcessStateAlone runs a controller whose process settings
// all differ from the process's, and checks that once it serves, the GC
// target, client-go's WatchListClient gate and controller-runtime's global
// logger are as they were: several controllers in one process (tests) must
// not overwrite each other's, and setting them is the main's
// (SetUpProcess). Nothing in this test binary sets the global logger, so it
// must still be unset, whichever test ran a controller first.
func TestRunLeavesProcessStateAlone(t *testing.T) {
	e := newEnv(t)
	// The GC target is set only when $GOGC is not; unset it for the test.
	t.Setenv("GOGC", "")
	os.Unsetenv("GOGC")
	const gc = 137
	prevGC := debug.SetGCPercent(gc)
	t.Cleanup(func() { debug.SetGCPercent(prevGC) })
	watchList := clientfeatures.FeatureGates().Enabled(clientfeatures.WatchListClient)
	e.opts.Process.GCPercent = gc / 2
	e.opts.Process.WatchList = !watchList

	e.pool("web", []string{"198.18.10.0/30"})
	e.start()
	e.createSvc("a")
	e.waitIPs("a", "198.18.10.0")

	if got := debug.SetGCPercent(gc); got != gc {
		t.Errorf("Run set the GC target to %d, want it left at %d", got, gc)
	}
	if got := clientfeatures.FeatureGates().Enabled(clientfeatures.WatchListClient); got != watchList {
		t.Errorf("Run set client-go's WatchListClient gate to %v, want it left at %v", got, watchList)
	}
	if ctrllog.Log.Enabled() {
		t.Error("Run set controller-runtime's global logger")
	}
}
