package controller

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"

	"github.com/go-logr/logr"
	clientfeatures "k8s.io/client-go/features"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
)

// ProcessOptions are the controller's settings that hold for the whole
// process rather than for one Run: Go's garbage collector and client-go's
// feature gates are process-wide. SetUpProcess applies them; Run ignores
// them, so that tests can run several controllers in one process.
type ProcessOptions struct {
	// GCPercent is the Go garbage collector's target (GOGC), used when the
	// GOGC environment variable is not set. The controller's live heap is
	// small and steady, so collecting at 40% growth instead of Go's 100%
	// trades a few percent of CPU for a third less memory (see
	// bench/RESULTS.md).
	GCPercent int
	// WatchList makes informers stream their initial state (client-go's
	// WatchListClient) instead of listing it. Off by default: against
	// kube-apiserver 1.37 it added about a second to every cache sync, which
	// is a second more before a restarted controller serves.
	WatchList bool
}

// DefaultProcessOptions returns the process settings used when no flag is
// given.
func DefaultProcessOptions() ProcessOptions {
	return ProcessOptions{GCPercent: 40}
}

// BindFlags registers the process settings as command-line flags, with o's
// values as defaults.
func (o *ProcessOptions) BindFlags(fs *flag.FlagSet) {
	fs.IntVar(&o.GCPercent, "gc-percent", o.GCPercent, "Go GC target percentage, used when $GOGC is unset")
	fs.BoolVar(&o.WatchList, "watch-list", o.WatchList, "stream informers' initial state instead of listing it (client-go WatchListClient)")
}

// SetUpProcess makes log controller-runtime's global logger, which the parts
// of controller-runtime that are not handed the manager's logger (the
// webhook and metrics servers among them) write to, and applies o. Only a
// main calls it, once, before Run.
func SetUpProcess(o ProcessOptions, log *slog.Logger) error {
	ctrllog.SetLogger(logr.FromSlogHandler(log.Handler()))
	return o.Apply()
}

// Apply sets the GC target (unless $GOGC is set) and client-go's
// WatchListClient gate for this process. SetUpProcess calls it; a test
// binary that runs controllers calls it in TestMain, so that they run as
// the shipped binary does, without setting the global logger.
func (o ProcessOptions) Apply() error {
	if err := setWatchList(o.WatchList); err != nil {
		return err
	}
	if _, set := os.LookupEnv("GOGC"); !set && o.GCPercent > 0 {
		debug.SetGCPercent(o.GCPercent)
	}
	return nil
}

// setWatchList sets client-go's WatchListClient gate for this process.
func setWatchList(on bool) error {
	g, ok := clientfeatures.FeatureGates().(interface {
		Set(clientfeatures.Feature, bool) error
	})
	if !ok {
		return fmt.Errorf("client-go feature gates cannot be set")
	}
	if err := g.Set(clientfeatures.WatchListClient, on); err != nil {
		return fmt.Errorf("setting WatchListClient: %w", err)
	}
	return nil
}
