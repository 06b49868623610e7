// Command keeperlb-speaker announces Service IPs from its node: it answers
// ARP and NDP for the IPs this node is elected to announce.
package main

import (
	"context"
	"flag"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/keeperlb/keeperlb/internal/kubeconfig"
	"github.com/keeperlb/keeperlb/internal/speaker"
)

func main() {
	// A FlagSet of our own: controller-runtime registers its own flags on
	// flag.CommandLine when it is imported.
	fs := flag.NewFlagSet(os.Args[0], flag.ExitOnError)
	opts := speaker.DefaultOptions()
	opts.BindFlags(fs)
	kc := fs.String("kubeconfig", "", "kubeconfig file (default: in-cluster, $KUBECONFIG or ~/.kube/config)")
	_ = fs.Parse(os.Args[1:])

	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	// The global logger is the main's to set; the speaker's lines name
	// their node.
	speaker.SetUpProcess(log.With("node", opts.NodeName))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	cfg, err := kubeconfig.Load(*kc)
	if err == nil {
		err = speaker.Run(ctx, cfg, opts, log)
	}
	if err != nil {
		log.Error("speaker failed", "err", err)
		os.Exit(1)
	}
}
