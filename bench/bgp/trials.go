package main

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// Addresses of the lab's BGP pool each kind of trial uses (last byte):
// KeeperLB Services from 10, the engine baseline from 130, both cycling
// through 100 addresses; the cut-off Service at 250.
const (
	serviceBase = 10
	engineBase  = 130
	cycle       = 100
	cutAddr     = 250
)

// results are every sample of a run.
type results struct {
	machine string
	// Service rows and their baseline.
	created, createdAll, deleted []time.Duration
	engineAdd, engineDel         []time.Duration
	// Cut-off rows; cutCall is how long lab.Cut itself took.
	cutBFD, healBFD, cutHold, healHold, cutCall []time.Duration
}

// serviceTrials interleaves, n times (after one warm-up round of each), a
// baseline trial (the bare engine announces, then withdraws a prefix) and
// a KeeperLB trial (a Service is created, then deleted), each timed to the
// router's kernel table.
func (b *bench) serviceTrials(ctx context.Context, n int, r *results) error {
	eng, err := startEngine(b.lab, b.lab.Client, b.logPath("engine"))
	if err != nil {
		return err
	}
	defer eng.close()
	if err := eng.apply(); err != nil {
		return err
	}
	if err := b.waitSessions(ctx, false, b.lab.Client); err != nil {
		return fmt.Errorf("the engine's session: %w", err)
	}
	b.log.Info("service trials", "trials", n)
	for i := -1; i < n; i++ {
		add, del, err := b.engineTrial(ctx, eng, b.vip(engineBase+(i+1)%cycle))
		if err != nil {
			return fmt.Errorf("engine trial %d: %w", i+1, err)
		}
		first, all, gone, err := b.serviceTrial(ctx, fmt.Sprintf("svc-%d", i+1), b.vip(serviceBase+(i+1)%cycle))
		if err != nil {
			return fmt.Errorf("service trial %d: %w", i+1, err)
		}
		if i < 0 {
			continue // warm-up: caches, connections, first policy
		}
		r.engineAdd, r.engineDel = append(r.engineAdd, add), append(r.engineDel, del)
		r.created, r.createdAll, r.deleted = append(r.created, first), append(r.createdAll, all), append(r.deleted, gone)
	}
	return nil
}

// engineTrial announces ip from the bare engine and withdraws it.
func (b *bench) engineTrial(ctx context.Context, eng *engine, ip netip.Addr) (add, del time.Duration, err error) {
	p := hostRoute(ip)
	start := time.Now()
	if err := eng.apply(p); err != nil {
		return 0, 0, err
	}
	seen, err := b.routes.until(ctx, p, 30*time.Second, "engine announce", func(h []netip.Addr) bool { return len(h) > 0 })
	if err != nil {
		return 0, 0, err
	}
	add = seen.Sub(start)
	time.Sleep(settle)
	start = time.Now()
	if err := eng.apply(); err != nil {
		return 0, 0, err
	}
	if seen, err = b.routes.until(ctx, p, 30*time.Second, "engine withdraw", func(h []netip.Addr) bool { return len(h) == 0 }); err != nil {
		return 0, 0, err
	}
	del = seen.Sub(start)
	time.Sleep(settle)
	return add, del, nil
}

// serviceTrial creates a Service with endpoints on every node and ip as
// its requested address, times its route (first next hop, then all of
// them), deletes it and times the route's removal.
func (b *bench) serviceTrial(ctx context.Context, name string, ip netip.Addr) (first, all, gone time.Duration, err error) {
	p := hostRoute(ip)
	start := time.Now()
	if err := b.createService(ctx, name, ip); err != nil {
		return 0, 0, 0, err
	}
	seen, err := b.routes.until(ctx, p, 30*time.Second, "Service created", func(h []netip.Addr) bool { return len(h) > 0 })
	if err != nil {
		return 0, 0, 0, err
	}
	first = seen.Sub(start)
	if seen, err = b.routes.until(ctx, p, 30*time.Second, "all next hops", func(h []netip.Addr) bool { return len(h) == len(b.nodes) }); err != nil {
		return 0, 0, 0, err
	}
	all = seen.Sub(start)
	time.Sleep(settle)
	start = time.Now()
	if err := b.deleteService(ctx, name); err != nil {
		return 0, 0, 0, err
	}
	if seen, err = b.routes.until(ctx, p, 30*time.Second, "Service deleted", func(h []netip.Addr) bool { return len(h) == 0 }); err != nil {
		return 0, 0, 0, err
	}
	gone = seen.Sub(start)
	if err := b.lab.DeleteEndpoints(ctx, appNS, name); err != nil {
		return 0, 0, 0, err
	}
	time.Sleep(settle)
	return first, all, gone, nil
}

// cutTrials cuts each node off in turn, n times, while a Service is
// advertised by all of them: the time until the router's route loses the
// node's next hop, then (after healing) until it is back. Before each trial
// every session is up again (with BFD in bfdMode).
func (b *bench) cutTrials(ctx context.Context, n int) (cut, heal, call []time.Duration, err error) {
	ip := b.vip(cutAddr)
	p := hostRoute(ip)
	if err := b.createService(ctx, "cut", ip); err != nil {
		return nil, nil, nil, err
	}
	b.log.Info("cut-off trials", "trials", n, "mode", b.modeName())
	for i := range n {
		victim := b.nodes[i%len(b.nodes)]
		if err := b.waitSessions(ctx, true, b.nodes...); err != nil {
			return nil, nil, nil, fmt.Errorf("before cut-off trial %d: %w", i, err)
		}
		if _, err := b.routes.until(ctx, p, 30*time.Second, "all next hops", func(h []netip.Addr) bool { return len(h) == len(b.nodes) }); err != nil {
			return nil, nil, nil, err
		}
		time.Sleep(settle)
		var others []netip.Addr
		for _, h := range b.nodes {
			if h != victim {
				others = append(others, h.IPv4)
			}
		}
		start := time.Now()
		if err := b.lab.Cut(victim); err != nil {
			return nil, nil, nil, err
		}
		call = append(call, time.Since(start))
		seen, err := b.routes.until(ctx, p, 60*time.Second, "cut-off", func(h []netip.Addr) bool { return slices.Equal(h, others) })
		if err != nil {
			_ = b.lab.Heal(victim)
			return nil, nil, nil, err
		}
		cut = append(cut, seen.Sub(start))
		start = time.Now()
		if err := b.lab.Heal(victim); err != nil {
			return nil, nil, nil, err
		}
		if seen, err = b.routes.until(ctx, p, 60*time.Second, "healed", func(h []netip.Addr) bool { return len(h) == len(b.nodes) }); err != nil {
			return nil, nil, nil, err
		}
		heal = append(heal, seen.Sub(start))
		b.log.Info("cut-off trial", "mode", b.modeName(), "trial", i, "node", victim.Name, "gone", cut[i].Round(time.Millisecond), "back", heal[i].Round(time.Millisecond))
	}
	return cut, heal, call, nil
}

func (b *bench) modeName() string {
	if b.mode == bfdMode {
		return "BFD 300ms x 3"
	}
	return "hold timers 3/9s"
}
