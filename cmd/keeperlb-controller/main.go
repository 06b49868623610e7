// Command keeperlb-controller assigns addresses to LoadBalancer Services.
package main

import (
	"context"
	"flag"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/keeperlb/keeperlb/internal/controller"
	"github.com/keeperlb/keeperlb/internal/kubeconfig"
)

func main() {
	// A FlagSet of our own: controller-runtime registers its own flags on
	// flag.CommandLine when it is imported.
	fs := flag.NewFlagSet(os.Args[0], flag.ExitOnError)
	opts := controller.DefaultOptions()
	opts.BindFlags(fs)
	kc := fs.String("kubeconfig", "", "kubeconfig file (default: in-cluster, $KUBECONFIG or ~/.kube/config)")
	_ = fs.Parse(os.Args[1:])

	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	if err := run(*kc, opts, log); err != nil {
		log.Error("controller failed", "err", err)
		os.Exit(1)
	}
}

// run sets up the process (the global logger, GC target and feature gates
// are the main's) and runs the controller until SIGINT or SIGTERM.
func run(kc string, opts controller.Options, log *slog.Logger) error {
	if err := controller.SetUpProcess(opts.Process, log); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	cfg, err := kubeconfig.Load(kc)
	if err != nil {
		return err
	}
	return controller.Run(ctx, cfg, opts, log)
}
