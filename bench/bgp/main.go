// Command bgp measures KeeperLB's BGP mode on the network-namespace lab
// (internal/lab): the real controller, one real speaker process per node,
// and FRR (zebra, bgpd, bfdd) in the lab's router. Every time is read off
// the router's kernel routing table, polled over netlink every 2 ms: it is
// what traffic from the far client follows.
//
// It prints a Markdown table of p50/p99 (nearest rank) over -trials trials:
//
//   - Service created → its route in the router's kernel (sessions already
//     up): first next hop, and all three;
//   - Service deleted → the route gone;
//   - node cut off (lab.Cut: drops in the node and at its switch port) → its
//     next hop gone from the route, once with BFD at 300 ms × 3 and once
//     with hold timers only (FRR `timers bgp 3 9`, BGPPeer holdTime 9s and
//     keepaliveTime 3s), each the other's baseline.
//
// The baseline of the Service rows, measured in the same lab and
// interleaved with them, is the BGP engine alone (package bgp's Speaker,
// in a helper process in the lab's client host, peering with the same FRR):
// announce or withdraw → kernel, with no Kubernetes in the way. The
// difference is what the controller and the speaker's reconcile add.
//
// Run it as root with `make bench-bgp`.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/keeperlb/keeperlb/internal/lab"
)

// options are the command-line flags.
type options struct {
	trials        int
	holdTrials    int
	controllerBin string
	speakerBin    string
	keepLogs      bool
}

func main() {
	// The lab re-executes this binary for its node backends, and the
	// baseline re-executes it as the bare BGP engine.
	lab.RunRoleIfRequested()
	if os.Getenv(engineRoleEnv) != "" {
		os.Exit(engineMain())
	}
	ctrllog.SetLogger(logr.Discard())

	o := options{}
	flag.IntVar(&o.trials, "trials", 20, "trials of each measurement")
	flag.IntVar(&o.holdTrials, "hold-trials", -1, "trials of the hold-timer cut-off, about 12 s each (default: -trials)")
	flag.StringVar(&o.controllerBin, "controller-bin", "bin/keeperlb-controller", "keeperlb-controller binary (make build)")
	flag.StringVar(&o.speakerBin, "speaker-bin", "bin/keeperlb-speaker", "keeperlb-speaker binary (make build)")
	flag.BoolVar(&o.keepLogs, "keep-logs", false, "keep the labs' folders (FRR, speaker and controller logs)")
	quick := flag.Bool("quick", false, "a short run: 3 trials each")
	flag.Parse()
	if *quick {
		o.trials = 3
	}
	if o.holdTrials < 0 {
		o.holdTrials = o.trials
	}
	if o.trials < 1 {
		fmt.Fprintln(os.Stderr, "-trials must be positive")
		os.Exit(2)
	}

	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, log); err != nil {
		log.Error("benchmark failed", "err", err)
		stop()
		os.Exit(1)
	}
}

func run(ctx context.Context, o options, log *slog.Logger) error {
	if err := lab.CheckPrerequisites(); err != nil {
		return err
	}
	if err := lab.CheckFRR(); err != nil {
		return err
	}
	for _, b := range []string{o.controllerBin, o.speakerBin} {
		if _, err := os.Stat(b); err != nil {
			return fmt.Errorf("%s: %w (run `make build`, or pass -controller-bin and -speaker-bin)", b, err)
		}
	}
	if err := lab.Reap(log); err != nil {
		log.Warn("reaping leftover labs", "err", err)
	}
	var r results
	r.machine = describeMachine(ctx)

	// The BFD lab: Service rows, the engine baseline, BFD cut-offs.
	if err := withLab(ctx, o, log, bfdMode, func(b *bench) error {
		if err := b.serviceTrials(ctx, o.trials, &r); err != nil {
			return err
		}
		var err error
		r.cutBFD, r.healBFD, r.cutCall, err = b.cutTrials(ctx, o.trials)
		return err
	}); err != nil {
		return err
	}
	// A fresh router (zebra leaves routes behind) for hold timers only.
	if o.holdTrials > 0 {
		if err := withLab(ctx, o, log, holdMode, func(b *bench) error {
			var err error
			r.cutHold, r.healHold, _, err = b.cutTrials(ctx, o.holdTrials)
			return err
		}); err != nil {
			return err
		}
	}
	r.print(os.Stdout, o)
	return nil
}
