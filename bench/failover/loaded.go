package main

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"slices"
	"syscall"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/keeperlb/keeperlb/api/v1beta1"
	"github.com/keeperlb/keeperlb/internal/speaker"
)

// refillWait is how long a speaker's client-side token bucket takes to
// fill up from empty, and a little more.
const refillWait = time.Duration(float64(speaker.DefaultBurst)/speaker.DefaultQPS*float64(time.Second)) + 2*time.Second

// loadedTrial is one SIGKILL of a speaker while it announces its share of
// the footprint's Services.
type loadedTrial struct {
	node    string
	owned   int
	service string
	ip      netip.Addr
	// neigh and http are from the kill to the client's entry for ip on
	// another node and to the first answer from another node.
	neigh, http time.Duration
	// status is from the kill to the Service's ServiceL2Status naming the
	// new owner (the speakers write statuses after the data plane).
	status time.Duration
	// back is from the restart to the client's entry on the node again;
	// statusBack to its ServiceL2Status naming it again.
	back, statusBack time.Duration
	// allStatus is from the kill to every Service's only ServiceL2Status
	// naming a live node; allBack from the restart to every one being
	// back as before the kill. failCost and backCost are the API requests
	// spent over each (from the API server's counters).
	allStatus, allBack time.Duration
	failCost, backCost apiCost
}

// loadedFailover repeats the SIGKILL trial while the footprint's Services
// are announced: on the three IPv4 VIPs of the failover part (created now),
// with the same measurements, and once on an IPv6 VIP of the footprint's,
// to time the ServiceL2Status objects catching up. Between trials it waits
// for the client only, not for the statuses: a cluster does not either.
func (b *bench) loadedFailover(ctx context.Context, owned map[string]int) ([]trialResult, []loadedTrial, error) {
	b.skipStatus = true
	defer func() { b.skipStatus = false }()
	vips, err := b.createVIPs(ctx)
	if err != nil {
		return nil, nil, err
	}
	var trials []trialResult
	for i := range b.o.loadedTrials {
		v := vips[i%len(vips)]
		if err := sleep(ctx, settle); err != nil {
			return trials, nil, err
		}
		if err := b.waitStable(ctx, v, 5*time.Minute); err != nil {
			return trials, nil, fmt.Errorf("before loaded trial %d: %w", i+1, err)
		}
		if err := sleep(ctx, rand.N(100*time.Millisecond)); err != nil {
			return trials, nil, err
		}
		r, err := b.trial(ctx, faultKill, v)
		if err != nil {
			if ctx.Err() != nil {
				return trials, nil, err
			}
			// Under load the client may not settle in trial's time
			// limits; that is a result, not a reason to stop.
			b.log.Warn("loaded trial did not settle", "n", i+1, "owner", v.owner, "err", err)
			r.unsettled = err.Error()
		}
		b.log.Info("loaded trial", "n", i+1, "owner", v.owner, "neighbour", r.neigh.Round(time.Millisecond),
			"http", r.http.Round(time.Millisecond), "back", r.back.Round(time.Millisecond),
			"doubleFirst", r.doubleFirst.Round(time.Millisecond), "doubleLast", r.doubleAfter.Round(time.Millisecond), "arp", r.arp)
		trials = append(trials, r)
	}
	var out []loadedTrial
	for _, n := range b.nodes[:1] {
		svc, err := b.serviceOwnedBy(ctx, n)
		if err != nil {
			return trials, out, err
		}
		ip, err := b.serviceIP(ctx, svc)
		if err != nil {
			return trials, out, err
		}
		if err := b.lab.Expose(ctx, ip, 80); err != nil {
			return trials, out, err
		}
		v := vip{service: svc, ip: ip, owner: n}
		if err := sleep(ctx, settle); err != nil {
			return trials, out, err
		}
		// The previous trials' statuses may still be queued: wait for
		// this Service's to name its owner, so that the clock below
		// measures this failover only.
		if _, err := b.waitStatus(ctx, svc, func(x string) bool { return x == n }, 5*time.Minute); err != nil {
			return trials, out, err
		}
		if err := b.waitClientOn(ctx, v, 30*time.Second); err != nil {
			return trials, out, fmt.Errorf("before killing %s: %w", n, err)
		}
		t := loadedTrial{node: n, owned: owned[n], service: svc, ip: ip, neigh: -1, http: -1, status: -1, back: -1, statusBack: -1,
			allStatus: -1, allBack: -1}
		other := func(x string) bool { return x != n }
		// Every status settled before the kill, so that the clock and
		// the request counts below are this failover's only.
		if err := poll(ctx, 5*time.Minute, 200*time.Millisecond, func() error { return b.statusesSettled(ctx, nil, owned) }); err != nil {
			return trials, out, fmt.Errorf("before killing %s: %w", n, err)
		}
		// The trials above left the speakers' client-side token buckets
		// (speaker.DefaultBurst requests, refilled at DefaultQPS a
		// second) drained: the kill comes once they are full again, as
		// in a cluster that has been steady for a few seconds.
		if err := sleep(ctx, refillWait); err != nil {
			return trials, out, err
		}
		before := b.requestsNow(ctx)
		wctx, cancel := context.WithTimeout(ctx, trialTimeout)
		t0 := time.Now()
		nch := b.watchNeighbour(wctx, ip, neighPoll, other)
		hch := b.watchHTTP(wctx, ip, httpPoll, httpTimeout, other)
		p := b.speakers[n]
		if err := p.Signal(syscall.SIGKILL); err != nil {
			cancel()
			return trials, out, err
		}
		for nch != nil || hch != nil {
			select {
			case o := <-nch:
				t.neigh, nch = o.at.Sub(t0), nil
			case o := <-hch:
				t.http, hch = o.at.Sub(t0), nil
			case <-wctx.Done():
				nch, hch = nil, nil
			}
		}
		cancel()
		<-p.Done()
		if at, err := b.waitStatus(ctx, svc, other, 5*time.Minute); err == nil {
			t.status = at.Sub(t0)
		} else {
			b.log.Warn("status did not follow the failover", "service", svc, "err", err)
		}
		if err := poll(ctx, 5*time.Minute, 100*time.Millisecond, func() error { return b.statusesSettled(ctx, other, nil) }); err == nil {
			t.allStatus = time.Since(t0)
		} else {
			b.log.Warn("statuses did not follow the failover", "node", n, "err", err)
		}
		t.failCost = b.costSince(ctx, before)
		before = b.requestsNow(ctx)
		tR := time.Now()
		if _, err := b.startSpeaker(n); err != nil {
			return trials, out, err
		}
		bctx, bcancel := context.WithTimeout(ctx, 30*time.Second)
		select {
		case o := <-b.watchNeighbour(bctx, ip, neighPoll, func(x string) bool { return x == n }):
			t.back = o.at.Sub(tR)
		case <-bctx.Done():
		}
		bcancel()
		if at, err := b.waitStatus(ctx, svc, func(x string) bool { return x == n }, 5*time.Minute); err == nil {
			t.statusBack = at.Sub(tR)
		} else {
			b.log.Warn("status did not follow the restart", "service", svc, "err", err)
		}
		if err := poll(ctx, 5*time.Minute, 100*time.Millisecond, func() error { return b.statusesSettled(ctx, nil, owned) }); err == nil {
			t.allBack = time.Since(tR)
		} else {
			b.log.Warn("statuses did not follow the restart", "node", n, "err", err)
		}
		t.backCost = b.costSince(ctx, before)
		b.log.Info("loaded failover", "node", n, "owned", t.owned, "vip", ip, "neighbour", t.neigh.Round(time.Millisecond),
			"http", t.http.Round(time.Millisecond), "status", t.status.Round(time.Millisecond),
			"allStatus", t.allStatus.Round(time.Millisecond), "allBack", t.allBack.Round(time.Millisecond),
			"failCost", t.failCost.String(), "backCost", t.backCost.String(),
			"back", t.back.Round(time.Millisecond), "statusBack", t.statusBack.Round(time.Millisecond))
		out = append(out, t)
	}
	return trials, out, nil
}

// statusesSettled checks that every Service of the footprint has exactly
// one ServiceL2Status naming a node, accepted by ok when it is set, and, when
// want is set, that each node names as many as want says.
func (b *bench) statusesSettled(ctx context.Context, ok func(string) bool, want map[string]int) error {
	got, err := b.owners(ctx)
	if err != nil {
		return err
	}
	total := 0
	for n, k := range got {
		total += k
		if ok != nil && !ok(n) {
			return fmt.Errorf("%d ServiceL2Status objects still name %s", k, n)
		}
	}
	if total != b.o.services {
		return fmt.Errorf("%d of %d Services have a ServiceL2Status", total, b.o.services)
	}
	if want != nil && !maps.Equal(got, want) {
		return fmt.Errorf("ServiceL2Status objects per node %v, want %v", got, want)
	}
	return nil
}

// serviceOwnedBy returns a footprint Service that node reports announcing.
func (b *bench) serviceOwnedBy(ctx context.Context, node string) (string, error) {
	var list v1beta1.ServiceL2StatusList
	if err := b.c.List(ctx, &list, client.InNamespace(installNS),
		client.MatchingLabels{speaker.LabelServiceNamespace: appNS, speaker.LabelNode: speaker.LabelValue(node)}); err != nil {
		return "", err
	}
	var names []string
	for _, s := range list.Items {
		if s.Status.Node == node {
			names = append(names, s.Labels[speaker.LabelServiceName])
		}
	}
	if len(names) == 0 {
		return "", fmt.Errorf("no Service announced by %s", node)
	}
	slices.Sort(names)
	return names[len(names)/2], nil
}

// waitStatus waits until the Service's only ServiceL2Status names a node
// accepted by ok and returns when it saw that.
func (b *bench) waitStatus(ctx context.Context, svc string, ok func(string) bool, timeout time.Duration) (time.Time, error) {
	var at time.Time
	err := poll(ctx, timeout, 50*time.Millisecond, func() error {
		got, err := b.announcers(ctx, svc)
		if err != nil {
			return err
		}
		if len(got) != 1 || !ok(got[0]) {
			return fmt.Errorf("ServiceL2Status of %s names %v", svc, got)
		}
		at = time.Now()
		return nil
	})
	return at, err
}

// waitClientOn waits until the client's entry for v.ip points at v.owner
// and the owner answers a new connection, whatever the status objects say.
func (b *bench) waitClientOn(ctx context.Context, v vip, timeout time.Duration) error {
	return poll(ctx, timeout, 50*time.Millisecond, func() error { return b.clientOnOwner(ctx, v) })
}
