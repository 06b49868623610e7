// Command failover measures KeeperLB's layer 2 failover and the speaker's
// footprint on the network-namespace lab (internal/lab), with the real
// controller and one real speaker process per node, and prints Markdown
// tables.
//
// Failover: the announcing node of a VIP is hit by one of three faults, and
// the client's view is timed from the fault:
//
//   - SIGKILL of its speaker (the node and its backend stay up);
//   - cutting the node off the network (lab.Cut: drops in the node and at
//     the switch port);
//   - the baseline, a planned SIGTERM: the speaker's leave heartbeat hands
//     over without waiting for the liveness timeout, so this row is the
//     failover machinery (election, announcement, the client's kernel)
//     without detection.
//
// For each trial it records when (i) the client's neighbour entry for the
// VIP first points at another node's MAC (read over netlink in the client's
// namespace every 5 ms) and (ii) the client first gets an HTTP answer from
// another node (a new connection every 10 ms; the faulty node's backend may
// still answer, so only another node counts). It also reads, from the new
// owner's log, when it noticed the old owner was gone. After each trial the
// fault is repaired (speaker restarted, node healed), the time until the
// client's entry is back on the owner is taken, and arping -b from the client
// checks that exactly one node answers ARP for the VIP at least 1 s after the
// repair. Three VIPs, one owned by each node, rotate the faulty node.
//
// Footprint: every speaker's RSS and CPU, first with no Services, then with
// -services IPv6 Services announced (the lab's IPv6 layer 2 pool is a /112).
//
// Run it as root with `make bench-failover`.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/keeperlb/keeperlb/internal/lab"
)

// options are the command-line flags.
type options struct {
	trials  int
	planned int
	// loadedTrials are SIGKILL trials repeated with the footprint's
	// Services announced.
	loadedTrials int
	services     int
	window       time.Duration
	// backCap bounds the wait for the client to return to the owner after
	// a repair, with no help from the benchmark.
	backCap       time.Duration
	controllerBin string
	speakerBin    string
	speakerFlags  []string
	keepLogs      bool
}

func main() {
	// The lab re-executes this binary for its node backends.
	lab.RunRoleIfRequested()
	ctrllog.SetLogger(logr.Discard())

	o := options{}
	flag.IntVar(&o.trials, "trials", 20, "trials of each unplanned fault (SIGKILL, cut-off); 0 with -planned-trials 0 skips the failover part")
	flag.IntVar(&o.planned, "planned-trials", -1, "trials of the planned SIGTERM baseline (default: -trials)")
	flag.IntVar(&o.services, "services", 1000, "announced Services for the footprint")
	flag.IntVar(&o.loadedTrials, "loaded-trials", 3, "SIGKILL trials repeated with the footprint's Services announced")
	flag.DurationVar(&o.window, "window", 30*time.Second, "CPU measurement window of the footprint")
	flag.DurationVar(&o.backCap, "back-cap", 15*time.Second, "after a repair, how long to wait for the client to return to the owner by itself")
	flag.StringVar(&o.controllerBin, "controller-bin", "", "keeperlb-controller binary (default: build one)")
	flag.StringVar(&o.speakerBin, "speaker-bin", "", "keeperlb-speaker binary (default: build one)")
	extra := flag.String("speaker-flags", "", "extra speaker flags, space-separated (e.g. --liveness-timeout=300ms)")
	flag.BoolVar(&o.keepLogs, "keep-logs", false, "keep the lab folder (speaker and controller logs) after the run")
	quick := flag.Bool("quick", false, "a short run: 3 trials each, 100 Services, 5 s windows")
	flag.Parse()
	o.speakerFlags = strings.Fields(*extra)
	if *quick {
		o.trials, o.services, o.window, o.loadedTrials = 3, 100, 5*time.Second, 3
	}
	if o.planned < 0 {
		o.planned = o.trials
	}
	if o.trials < 0 || o.planned < 0 || o.loadedTrials < 0 || o.services < 1 || o.window <= 0 || o.backCap <= 0 {
		fmt.Fprintln(os.Stderr, "-trials must not be negative (0 with -planned-trials 0 measures the footprint only), -services must be positive, -window and -back-cap longer than zero")
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
	if os.Geteuid() != 0 {
		return fmt.Errorf("the lab needs root (network namespaces, nftables)")
	}
	if _, err := exec.LookPath("arping"); err != nil {
		return fmt.Errorf("arping is missing: run `bash hack/lab-deps.sh`")
	}
	if err := lab.Reap(log); err != nil {
		log.Warn("reaping leftover labs", "err", err)
	}
	if o.controllerBin == "" || o.speakerBin == "" {
		dir, err := os.MkdirTemp("", "keeperlb-bench-failover-bin-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		if err := build(ctx, dir); err != nil {
			return err
		}
		if o.controllerBin == "" {
			o.controllerBin = filepath.Join(dir, "keeperlb-controller")
		}
		if o.speakerBin == "" {
			o.speakerBin = filepath.Join(dir, "keeperlb-speaker")
		}
	}
	began := time.Now()
	loadBefore := loadAverage()
	l, err := lab.Up(ctx, lab.Options{Nodes: 3, Router: true, Log: log, Keep: o.keepLogs})
	if err != nil {
		return err
	}
	defer func() {
		if err := l.Down(); err != nil {
			log.Warn("taking the lab down", "err", err)
		}
		if o.keepLogs {
			log.Info("lab logs kept", "dir", l.Dir)
		}
	}()
	b, err := newBench(ctx, o, l, log)
	if err != nil {
		return err
	}
	defer b.close()

	fo := &failoverResult{}
	if o.trials+o.planned > 0 {
		if fo, err = b.failover(ctx); err != nil {
			return fmt.Errorf("failover: %w (logs in %s)", err, l.Dir)
		}
	}
	fp, err := b.footprint(ctx)
	if err != nil {
		return fmt.Errorf("footprint: %w (logs in %s)", err, l.Dir)
	}
	warnings := b.speakerWarnings()
	printReport(o, b, fo, fp, warnings, loadBefore, loadAverage(), time.Since(began))
	return nil
}

// build compiles the controller and the speaker into dir.
func build(ctx context.Context, dir string) error {
	gomod, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return fmt.Errorf("go env GOMOD: %w", err)
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-o", dir+"/", "./cmd/keeperlb-controller", "./cmd/keeperlb-speaker")
	cmd.Dir = filepath.Dir(strings.TrimSpace(string(gomod)))
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building the binaries: %w\n%s", err, out)
	}
	return nil
}

// loadAverage returns the first three fields of /proc/loadavg.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
