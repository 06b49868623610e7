package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/keeperlb/keeperlb/api/v1beta1"
	"github.com/keeperlb/keeperlb/internal/speaker"
)

// footprintPrefix starts the names of the footprint's Services.
const footprintPrefix = "fp-"

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat; Linux
// fixes it at 100 on every architecture Go supports.
const clockTicks = 100

// usage is one speaker's footprint over a window.
type usage struct {
	mem     memory
	cpu     float64 // percent of one core
	threads int64
}

// nodeFootprint is one node's speaker: idle, while the Services are
// created (burst), and with them announced (loaded).
type nodeFootprint struct {
	node                string
	owned               int
	idle, burst, loaded usage
}

// footprintResult is what the footprint part measured.
type footprintResult struct {
	services int
	// created, allocated and announced are from the first create to the
	// last create returning, to every Service having an address, and to
	// every one having a ServiceL2Status.
	created, allocated, announced time.Duration
	// createCost is the API requests from the first create to every
	// Service having a ServiceL2Status.
	createCost apiCost
	// burst is every speaker's use from the first create to the last
	// status.
	burst map[string]usage
	nodes []nodeFootprint
	// loadedTrials are SIGKILL trials on the IPv4 VIPs with the Services
	// announced; loaded is one more on an IPv6 VIP of the Services, timing
	// the status objects too.
	loadedTrials []trialResult
	loaded       []loadedTrial
	// probes are sample VIPs reached from the client over IPv6 (NDP), as
	// "VIP via node".
	probes []string
}

// footprint restarts every speaker (so that idle and loaded are the same
// processes, started alike), measures them with no Services, then with
// o.services IPv6 Services announced.
func (b *bench) footprint(ctx context.Context) (*footprintResult, error) {
	res := &footprintResult{services: b.o.services}
	// The failover VIPs are gone; wait for their statuses to go too.
	if err := poll(ctx, time.Minute, 200*time.Millisecond, func() error {
		n, err := b.statusCount(ctx)
		if err == nil && n != 0 {
			err = fmt.Errorf("%d ServiceL2Status objects left", n)
		}
		return err
	}); err != nil {
		return nil, err
	}
	for _, n := range b.nodes {
		if err := b.stopSpeaker(n); err != nil {
			return nil, err
		}
		if _, err := b.startSpeaker(n); err != nil {
			return nil, err
		}
	}
	for _, n := range b.nodes {
		if err := b.waitSpeakerReady(ctx, b.speakers[n], time.Minute); err != nil {
			return nil, err
		}
	}
	if err := sleep(ctx, 5*time.Second); err != nil {
		return nil, err
	}
	b.log.Info("measuring idle speakers", "window", b.o.window)
	idle, err := b.measure(ctx)
	if err != nil {
		return nil, err
	}

	b.log.Info("creating Services", "n", b.o.services)
	reqBefore := b.requestsNow(ctx)
	began := time.Now()
	burst, err := b.snapshot()
	if err != nil {
		return nil, err
	}
	names := make([]string, b.o.services)
	for i := range names {
		names[i] = fmt.Sprintf("%s%04d", footprintPrefix, i)
	}
	if err := parallel(ctx, 8, names, func(name string) error {
		return b.createService(ctx, name, func(s *corev1.Service) {
			s.Spec.IPFamilyPolicy = new(corev1.IPFamilyPolicySingleStack)
			s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv6Protocol}
		})
	}); err != nil {
		return nil, err
	}
	res.created = time.Since(began)
	b.log.Info("Services created", "took", res.created.Round(time.Millisecond))
	var owned map[string]int
	if err := poll(ctx, 10*time.Minute, 250*time.Millisecond, func() error {
		if res.allocated == 0 {
			n, err := b.allocated(ctx)
			if err != nil {
				return err
			}
			if n < b.o.services {
				return fmt.Errorf("%d of %d Services have an address", n, b.o.services)
			}
			res.allocated = time.Since(began)
		}
		var err error
		owned, err = b.owners(ctx)
		if err != nil {
			return err
		}
		total := 0
		for _, c := range owned {
			total += c
		}
		if total != b.o.services {
			return fmt.Errorf("%d of %d Services announced", total, b.o.services)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	if res.burst, err = b.usageSince(burst); err != nil {
		return nil, err
	}
	res.announced = time.Since(began)
	res.createCost = b.costSince(ctx, reqBefore)
	b.log.Info("every Service announced", "took", res.announced.Round(time.Millisecond), "per node", owned,
		"from the last address", (res.announced - res.allocated).Round(time.Millisecond), "requests", res.createCost.String())
	if res.probes, err = b.probeSample(ctx, names); err != nil {
		return nil, err
	}
	// The takeover bursts (3, 1.1 s apart) and status writes end well
	// within this.
	if err := sleep(ctx, 10*time.Second); err != nil {
		return nil, err
	}
	b.log.Info("measuring loaded speakers", "window", b.o.window)
	loaded, err := b.measure(ctx)
	if err != nil {
		return nil, err
	}
	for _, n := range b.nodes {
		res.nodes = append(res.nodes, nodeFootprint{node: n, owned: owned[n], idle: idle[n], burst: res.burst[n], loaded: loaded[n]})
	}
	b.log.Info("failover with the Services announced")
	if res.loadedTrials, res.loaded, err = b.loadedFailover(ctx, owned); err != nil {
		return nil, fmt.Errorf("failover with %d Services: %w", b.o.services, err)
	}
	return res, nil
}

// sample is every speaker's CPU counters at one moment.
type sample struct {
	at    time.Time
	pids  map[string]int
	stats map[string]procStat
}

// snapshot reads every speaker's CPU counters.
func (b *bench) snapshot() (sample, error) {
	s := sample{at: time.Now(), pids: map[string]int{}, stats: map[string]procStat{}}
	for _, n := range b.nodes {
		pid, err := speakerPID(b.speakers[n])
		if err != nil {
			return s, err
		}
		st, err := readStat(pid)
		if err != nil {
			return s, err
		}
		s.pids[n], s.stats[n] = pid, st
	}
	return s, nil
}

// usageSince returns every speaker's CPU use since the snapshot, and its
// memory now.
func (b *bench) usageSince(start sample) (map[string]usage, error) {
	elapsed := time.Since(start.at)
	out := map[string]usage{}
	for _, n := range b.nodes {
		pid := start.pids[n]
		st, err := readStat(pid)
		if err != nil {
			return nil, fmt.Errorf("speaker on %s (pid %d): %w", n, pid, err)
		}
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			return nil, err
		}
		mem, err := parseProcStatus(raw)
		if err != nil {
			return nil, err
		}
		ticks := (st.utime + st.stime) - (start.stats[n].utime + start.stats[n].stime)
		cpu := float64(ticks) / clockTicks / elapsed.Seconds() * 100
		out[n] = usage{mem: mem, cpu: cpu, threads: st.threadsNum}
	}
	return out, nil
}

// measure samples every speaker's CPU time over o.window and its memory at
// the end.
func (b *bench) measure(ctx context.Context) (map[string]usage, error) {
	start, err := b.snapshot()
	if err != nil {
		return nil, err
	}
	if err := sleep(ctx, b.o.window); err != nil {
		return nil, err
	}
	return b.usageSince(start)
}

// allocated counts the benchmark's Services that have an address.
func (b *bench) allocated(ctx context.Context) (int, error) {
	var list corev1.ServiceList
	if err := b.c.List(ctx, &list, client.InNamespace(appNS)); err != nil {
		return 0, err
	}
	n := 0
	for _, s := range list.Items {
		if len(s.Status.LoadBalancer.Ingress) > 0 {
			n++
		}
	}
	return n, nil
}

func readStat(pid int) (procStat, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	return parseProcStat(raw)
}

// statusCount counts the ServiceL2Status objects of the benchmark's
// Services.
func (b *bench) statusCount(ctx context.Context) (int, error) {
	var list v1beta1.ServiceL2StatusList
	if err := b.c.List(ctx, &list, client.InNamespace(installNS),
		client.MatchingLabels{speaker.LabelServiceNamespace: appNS}); err != nil {
		return 0, err
	}
	return len(list.Items), nil
}

// owners counts, per node, the footprint Services it reports announcing. A Service
// with more than one status (a handover in progress) is an error, so that
// the count is only accepted once it is settled.
func (b *bench) owners(ctx context.Context) (map[string]int, error) {
	var list v1beta1.ServiceL2StatusList
	if err := b.c.List(ctx, &list, client.InNamespace(installNS),
		client.MatchingLabels{speaker.LabelServiceNamespace: appNS}); err != nil {
		return nil, err
	}
	seen := map[string]string{}
	out := map[string]int{}
	for _, s := range list.Items {
		svc := s.Labels[speaker.LabelServiceName]
		if !strings.HasPrefix(svc, footprintPrefix) {
			// The failover part's VIPs, created again for the
			// loaded trials.
			continue
		}
		if s.Status.Node == "" {
			// Created, status not written yet.
			return nil, fmt.Errorf("ServiceL2Status %s of %s names no node yet", s.Name, svc)
		}
		if prev, dup := seen[svc]; dup {
			return nil, fmt.Errorf("two nodes announce Service %s: %s and %s", svc, prev, s.Status.Node)
		}
		seen[svc] = s.Status.Node
		out[s.Status.Node]++
	}
	return out, nil
}

// probeSample checks from the client, over IPv6 and NDP, that three of the
// Services are reached through the node that reports announcing them.
func (b *bench) probeSample(ctx context.Context, names []string) ([]string, error) {
	var out []string
	for _, name := range []string{names[0], names[len(names)/2], names[len(names)-1]} {
		ip, err := b.serviceIP(ctx, name)
		if err != nil {
			return nil, err
		}
		if !ip.Is6() {
			return nil, fmt.Errorf("the Service %s got %s, want an IPv6 address", name, ip)
		}
		if err := b.lab.Expose(ctx, ip, 80); err != nil {
			return nil, err
		}
		who, err := b.announcers(ctx, name)
		if err != nil {
			return nil, err
		}
		var node string
		if err := poll(ctx, 10*time.Second, 100*time.Millisecond, func() error {
			rctx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			var err error
			node, err = b.lab.Curl(rctx, b.lab.Client, ip, 80)
			return err
		}); err != nil {
			return nil, err
		}
		if !slices.Equal(who, []string{node}) {
			return nil, fmt.Errorf("%s (%s) answered by %s, but ServiceL2Status names %v", ip, name, node, who)
		}
		out = append(out, fmt.Sprintf("%s via %s", netip.Addr.String(ip), node))
	}
	return out, nil
}

// parallel runs f on every item with the given number of workers and
// returns the errors joined (at most a few, then a count).
func parallel(ctx context.Context, workers int, items []string, f func(string) error) error {
	ch := make(chan string)
	var (
		mu   sync.Mutex
		errs []string
		n    int
		wg   sync.WaitGroup
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := range ch {
				if err := f(it); err != nil {
					mu.Lock()
					n++
					if len(errs) < 3 {
						errs = append(errs, err.Error())
					}
					mu.Unlock()
				}
			}
		}()
	}
	for _, it := range items {
		if ctx.Err() != nil {
			break
		}
		ch <- it
	}
	close(ch)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	if n > 0 {
		return fmt.Errorf("%d of %d failed: %s", n, len(items), strings.Join(errs, "; "))
	}
	return nil
}
