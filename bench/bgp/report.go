package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"
)

// summary is the spread of one measured quantity over its trials.
type summary struct {
	n             int
	p50, p99, max time.Duration
}

// summarize takes nearest-rank percentiles of the samples.
func summarize(samples []time.Duration) summary {
	s := slices.Clone(samples)
	slices.Sort(s)
	out := summary{n: len(s)}
	if len(s) == 0 {
		return out
	}
	out.p50, out.p99, out.max = percentile(s, 50), percentile(s, 99), s[len(s)-1]
	return out
}

// percentile is the nearest-rank percentile of sorted samples: the smallest
// sample with at least p% of the samples at or below it. With 20 samples
// the p99 is the maximum, the honest reading of 20 trials.
func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := max((len(sorted)*p+99)/100, 1)
	return sorted[rank-1]
}

// ms renders a duration in milliseconds.
func ms(d time.Duration) string {
	return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
}

// describeMachine names CPU, cores, memory, kernel, Go, FRR and the load.
func describeMachine(ctx context.Context) string {
	cpu, mem := "unknown CPU", "unknown"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				mem = strings.TrimSpace(v)
			}
		}
	}
	kernel := "unknown"
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = strings.TrimSpace(string(b))
	}
	frr := "unknown"
	if out, err := exec.CommandContext(ctx, "/usr/lib/frr/bgpd", "--version").Output(); err == nil {
		frr = strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
	}
	load := "unknown"
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) >= 3 {
			load = strings.Join(f[:3], " ")
		}
	}
	return fmt.Sprintf("%s, %d CPUs, %s RAM, Linux %s, %s, %s/%s, FRR %s; load average at start %s.",
		cpu, runtime.NumCPU(), mem, kernel, runtime.Version(), runtime.GOOS, runtime.GOARCH, frr, load)
}

// print writes the Markdown report.
func (r *results) print(w io.Writer, o options) {
	fmt.Fprintf(w, "### BGP mode benchmark\n\n")
	fmt.Fprintf(w, "Machine: %s\n\n", r.machine)
	fmt.Fprintf(w, "Lab: 3 nodes, each running a real keeperlb-speaker (default flags); the real keeperlb-controller; "+
		"FRR (zebra, bgpd, bfdd) in the router, eBGP AS %d (nodes) to AS %d (router), explicit neighbors, maximum-paths 8. "+
		"Every time ends when the router's kernel table (read over netlink every %v) shows the change. "+
		"Percentiles are nearest-rank; with %d trials p99 is the slowest trial.\n\n", nodeASN, routerASN, pollEvery, o.trials)
	fmt.Fprintln(w, "| measurement | trials | p50 | p99 | max | target |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---|")
	row := func(name string, samples []time.Duration, target string) {
		s := summarize(samples)
		if s.n == 0 {
			fmt.Fprintf(w, "| %s | 0 | - | - | - | %s |\n", name, target)
			return
		}
		fmt.Fprintf(w, "| %s | %d | %s | %s | %s | %s |\n", name, s.n, ms(s.p50), ms(s.p99), ms(s.max), target)
	}
	judge := func(samples []time.Duration, limit time.Duration) string {
		s := summarize(samples)
		verdict := "met"
		if s.n == 0 || s.p99 >= limit {
			verdict = "missed"
		}
		return fmt.Sprintf("p99 < %s (%s)", ms(limit), verdict)
	}
	row("Service created → route in the router's kernel (first next hop)", r.created, judge(r.created, 500*time.Millisecond))
	row("Service created → all 3 next hops", r.createdAll, "-")
	row("Service deleted → route gone", r.deleted, "-")
	row("baseline: bare BGP engine announces → route in the kernel", r.engineAdd, "-")
	row("baseline: bare BGP engine withdraws → route gone", r.engineDel, "-")
	row("node cut off → its next hop gone, BFD 300 ms × 3", r.cutBFD, judge(r.cutBFD, 1200*time.Millisecond))
	row("node cut off → its next hop gone, hold timers 3/9 s (baseline of the BFD row)", r.cutHold, "-")
	row("node healed → next hop back (BFD run)", r.healBFD, "-")
	row("node healed → next hop back (hold-timer run)", r.healHold, "-")
	fmt.Fprintln(w)

	c, e := summarize(r.created), summarize(r.engineAdd)
	d, ed := summarize(r.deleted), summarize(r.engineDel)
	fmt.Fprintf(w, "- Kubernetes' share: at p50 a Service's route needs %s more than the bare engine's announce (%s vs %s), "+
		"and a deleted Service's route %s more than the engine's withdraw (%s vs %s): the API write, the controller's "+
		"allocation (created only), the speakers' watch and reconcile pass.\n",
		ms(c.p50-e.p50), ms(c.p50), ms(e.p50), ms(d.p50-ed.p50), ms(d.p50), ms(ed.p50))
	if b, h := summarize(r.cutBFD), summarize(r.cutHold); b.n > 0 && h.n > 0 && b.p50 > 0 {
		fmt.Fprintf(w, "- Cut-off: BFD removes a dead node's next hop %.1f× faster than the hold timer at p50 (%s vs %s).\n",
			float64(h.p50)/float64(b.p50), ms(b.p50), ms(h.p50))
	}
	if k := summarize(r.cutCall); k.n > 0 {
		fmt.Fprintf(w, "- The cut-off clock starts before lab.Cut, whose two nft calls take %s at p50 (%s max); the node is "+
			"isolated once the first one returns.\n", ms(k.p50), ms(k.max))
	}
}
