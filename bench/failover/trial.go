package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/keeperlb/keeperlb/internal/election"
)

// fault is what a trial does to the VIP's owner.
type fault int

const (
	faultKill fault = iota // SIGKILL of the owner's speaker
	faultCut               // the owner node cut off the network
	faultTerm              // SIGTERM of the owner's speaker: the planned baseline
)

func (f fault) String() string {
	switch f {
	case faultKill:
		return "speaker SIGKILL"
	case faultCut:
		return "node cut off"
	default:
		return "planned: speaker SIGTERM (baseline)"
	}
}

func (f fault) repair() string {
	if f == faultCut {
		return "heal"
	}
	return "restart speaker"
}

// Timings of a trial.
const (
	neighPoll    = 5 * time.Millisecond
	httpPoll     = 10 * time.Millisecond
	httpTimeout  = 300 * time.Millisecond
	arpPoll      = 20 * time.Millisecond
	trialTimeout = 10 * time.Second
	// settle lets the owner's gratuitous bursts (3, 1.1 s apart) finish
	// and its entry age past Linux's 1 s ARP locktime before a fault, so
	// that every trial starts from the same steady state.
	settle = 2500 * time.Millisecond
)

// trialResult is what one trial measured; negative durations were not
// observed within their time limit.
type trialResult struct {
	fault fault
	vip   vip
	// faultTook is how long the fault action itself took (Cut runs nft
	// twice); the clock starts before it.
	faultTook time.Duration
	// neigh and http are from the fault to the client's entry pointing at
	// another node, and to the first answer from another node.
	neigh, http      time.Duration
	neighTo, httpVia string
	// detect is from the fault to the new owner logging a live set without
	// the old owner.
	detect time.Duration
	// back and backHTTP are from the repair to the client's entry pointing
	// at the owner again, and to its first answer from the owner; the
	// client keeps sending meanwhile, and never ARPs itself.
	back, backHTTP time.Duration
	// doubleDuring counts the ARP watch rounds between the fault and the
	// repair that two nodes answered; doubleFirst and doubleAfter are from
	// the repair to the first and the last such round after it (negative:
	// none).
	doubleDuring             int
	doubleFirst, doubleAfter time.Duration
	// t0 is when the trial began (just before the fault), tR when the
	// repair began.
	t0, tR time.Time
	// foreign lists the gratuitous announcements, from this trial's start
	// to the next one's, of a VIP by a node that should not announce it
	// (see foreignAnnouncements).
	foreign []foreignAnnouncement
	// ownerARP is, for a restart, from the restart to the owner's first
	// ARP answer.
	ownerARP time.Duration
	// arp lists the nodes answering arping -b (from the router host) for
	// the VIP, started 1 s after the repair; arpOK is "only the owner".
	arp   []string
	arpOK bool
	// stable is from the repair to the end of waitStable (the client's
	// entry and answers on the owner, one ServiceL2Status).
	stable time.Duration
	// unsettled, in the loaded trials, is why the trial could not wait for
	// the client to settle after the repair.
	unsettled string
	// flushed says the client's entry had to be flushed for it to reach
	// the owner again after the trial.
	flushed bool
}

// failoverResult is everything the failover part measured.
type failoverResult struct {
	vips   []vip
	trials []trialResult
	// falseAlarms are the peers a speaker dropped from its live set while
	// no fault was under way.
	falseAlarms []expiry
	// hijacks describes every time a VIP's client entry was found on a
	// node that does not own it before a trial (the trial VIP was made
	// stable after its own last trial; something moved it since).
	hijacks []string
}

// failover creates one VIP per node and runs the trials, interleaving the
// faults so that a noisy minute on the shared machine hits them alike.
func (b *bench) failover(ctx context.Context) (*failoverResult, error) {
	for _, n := range b.nodes {
		if err := b.waitSpeakerReady(ctx, b.speakers[n], time.Minute); err != nil {
			return nil, err
		}
	}
	vips, err := b.createVIPs(ctx)
	if err != nil {
		return nil, err
	}
	res := &failoverResult{vips: vips}
	// Every ARP frame from the VIPs that reaches the client, for the whole
	// run: a passive socket, it changes nothing the client does.
	var all []netip.Addr
	for _, v := range vips {
		all = append(all, v.ip)
	}
	rec, err := startARPWatch(b.lab.Client, netip.Addr{}, all, 0)
	if err != nil {
		return nil, err
	}
	b.rec = rec
	defer func() {
		rec.finish()
		b.rec = nil
	}()
	var plan []fault
	for i := range max(b.o.trials, b.o.planned) {
		if i < b.o.trials {
			plan = append(plan, faultKill, faultCut)
		}
		if i < b.o.planned {
			plan = append(plan, faultTerm)
		}
	}
	done := map[fault]int{}
	for i, f := range plan {
		// Each fault rotates over the owners on its own: the plan's
		// period equals the number of VIPs, so indexing by i would hit
		// every fault on one node.
		v := vips[(done[f]+int(f))%len(vips)]
		done[f]++
		// Settle first: the owners' re-announcements after the previous
		// repair go on for 2.2 s, and a client moved by a stale claim is
		// only stuck if it is still on the wrong node after them.
		if err := sleep(ctx, settle); err != nil {
			return nil, err
		}
		var prev *trialResult
		if i > 0 {
			prev = &res.trials[i-1]
		}
		if h, err := b.preCheck(ctx, v, prev); err != nil {
			return nil, fmt.Errorf("before trial %d: %w", i+1, err)
		} else if h != "" {
			prevDesc := "the start"
			if prev != nil {
				prevDesc = fmt.Sprintf("trial %d (%s on %s)", i, plan[i-1], prev.vip.owner)
			}
			msg := fmt.Sprintf("before trial %d, after %s: %s", i+1, prevDesc, h)
			b.log.Warn("client's entry for a VIP on a node that does not own it", "what", msg)
			res.hijacks = append(res.hijacks, msg)
			if err := sleep(ctx, settle); err != nil {
				return nil, err
			}
		}
		// A random phase against the 100 ms heartbeat clock.
		if err := sleep(ctx, rand.N(100*time.Millisecond)); err != nil {
			return nil, err
		}
		r, err := b.trial(ctx, f, v)
		if err != nil {
			return nil, fmt.Errorf("trial %d (%s on %s): %w", i+1, f, v.owner, err)
		}
		b.log.Info("trial", "n", fmt.Sprintf("%d/%d", i+1, len(plan)), "fault", f.String(), "owner", v.owner,
			"neighbour", r.neigh.Round(time.Millisecond), "to", r.neighTo,
			"http", r.http.Round(time.Millisecond), "via", r.httpVia,
			"detect", r.detect.Round(time.Millisecond), "back", r.back.Round(time.Millisecond), "backHTTP", r.backHTTP.Round(time.Millisecond),
			"double", r.doubleDuring, "doubleFirst", r.doubleFirst.Round(time.Millisecond), "doubleLast", r.doubleAfter.Round(time.Millisecond),
			"ownerARP", r.ownerARP.Round(time.Millisecond), "stable", r.stable.Round(time.Millisecond),
			"arp", r.arp, "flushed", r.flushed)
		res.trials = append(res.trials, r)
	}
	res.falseAlarms = b.falseAlarms(res.trials)
	for _, e := range res.falseAlarms {
		b.log.Warn("peer dropped while no fault was under way", "at", e.at.Format("15:04:05.000"), "speaker", e.node, "peer", e.peer,
			"back after", e.back.Sub(e.at).Round(time.Millisecond))
	}
	for i := range res.trials {
		until := time.Now()
		if i+1 < len(res.trials) {
			until = res.trials[i+1].t0
		}
		r := &res.trials[i]
		r.foreign = b.foreignAnnouncements(rec.announcements(r.t0, until), vips, r.vip, r.tR)
		for _, f := range r.foreign {
			b.log.Info("announcement by a node that does not own the VIP", "trial", i+1, "what", f)
		}
	}
	for _, v := range vips {
		if err := b.c.Delete(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: appNS, Name: v.service}}); err != nil {
			return nil, err
		}
		if err := b.lab.DeleteEndpoints(ctx, appNS, v.service); err != nil {
			return nil, err
		}
		if err := b.lab.Unexpose(ctx, v.ip, 80); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// createVIPs creates Services fo-<node> with an IPv4 address requested so
// that the election gives each node one of them while all are alive.
func (b *bench) createVIPs(ctx context.Context) ([]vip, error) {
	var vips []vip
	taken := map[string]bool{}
	first := b.lab.L2Pool4.Addr().Next() // skip the .0 of the range
	for ip := first; b.lab.L2Pool4.Contains(ip) && len(vips) < len(b.nodes); ip = ip.Next() {
		owner := election.Owner(b.nodes, ip)
		if taken[owner] {
			continue
		}
		taken[owner] = true
		vips = append(vips, vip{service: "fo-" + owner, ip: ip, owner: owner})
	}
	if len(vips) < len(b.nodes) {
		return nil, fmt.Errorf("found addresses for only %d of %d nodes in %s", len(vips), len(b.nodes), b.lab.L2Pool4)
	}
	slices.SortFunc(vips, func(a, c vip) int { return strings.Compare(a.owner, c.owner) })
	for _, v := range vips {
		if err := b.createService(ctx, v.service, func(s *corev1.Service) {
			s.Annotations = map[string]string{annotationIPs: v.ip.String()}
		}); err != nil {
			return nil, err
		}
	}
	for _, v := range vips {
		got, err := b.serviceIP(ctx, v.service)
		if err != nil {
			return nil, err
		}
		if got != v.ip {
			return nil, fmt.Errorf("the Service %s got %s, requested %s", v.service, got, v.ip)
		}
		if err := b.lab.Expose(ctx, v.ip, 80); err != nil {
			return nil, err
		}
		if err := b.waitStable(ctx, v, 30*time.Second); err != nil {
			return nil, fmt.Errorf("VIP %s before the trials: %w", v.ip, err)
		}
	}
	return vips, nil
}

// trial hits v's owner with f, times the client's view, repairs and waits
// until the client reaches the owner again.
func (b *bench) trial(ctx context.Context, f fault, v vip) (trialResult, error) {
	r := trialResult{fault: f, vip: v, t0: time.Now(), neigh: -1, http: -1, detect: -1, back: -1, backHTTP: -1, doubleFirst: -1, doubleAfter: -1, ownerARP: -1}
	owner := v.owner
	other := func(n string) bool { return n != owner }
	isOwner := func(n string) bool { return n == owner }
	p := b.speakers[owner]

	aw, err := startARPWatch(b.lab.Router, v.ip, nil, arpPoll)
	if err != nil {
		return r, err
	}
	wctx, cancel := context.WithTimeout(ctx, trialTimeout)
	defer cancel()
	t0 := time.Now()
	nch := b.watchNeighbour(wctx, v.ip, neighPoll, other)
	hch := b.watchHTTP(wctx, v.ip, httpPoll, httpTimeout, other)
	switch f {
	case faultKill:
		err = p.Signal(syscall.SIGKILL)
	case faultCut:
		err = b.lab.Cut(b.lab.Node(owner))
	case faultTerm:
		err = p.Signal(syscall.SIGTERM)
	}
	r.faultTook = time.Since(t0)
	if err != nil {
		aw.finish()
		return r, err
	}
	for nch != nil || hch != nil {
		select {
		case o := <-nch:
			r.neigh, r.neighTo, nch = o.at.Sub(t0), o.node, nil
		case o := <-hch:
			r.http, r.httpVia, hch = o.at.Sub(t0), o.node, nil
		case <-wctx.Done():
			nch, hch = nil, nil
		}
	}
	cancel()
	if ctx.Err() != nil {
		aw.finish()
		return r, ctx.Err()
	}
	r.detect = b.detection(r, t0)

	// Repair.
	if f != faultCut {
		select {
		case <-p.Done():
		case <-time.After(10 * time.Second):
			if err := p.Kill(); err != nil {
				aw.finish()
				return r, err
			}
		}
	}
	tR := time.Now()
	r.tR = tR
	switch f {
	case faultCut:
		err = b.lab.Heal(b.lab.Node(owner))
	default:
		_, err = b.startSpeaker(owner)
	}
	if err != nil {
		aw.finish()
		return r, err
	}
	// arping -b from the router host, 1 s after the handover back: after
	// the heal, or once the restarted speaker has first answered ARP (it
	// needs most of a second to start and learn its peers, which is not
	// part of the handover). Not from the client: its kernel takes any ARP
	// reply from the VIP into its entry, which would repair the very entry
	// being timed.
	ownerMAC := b.lab.Node(owner).MAC.String()
	arpDone := make(chan error, 1)
	go func() {
		from := tR
		if f != faultCut {
			err := poll(ctx, b.o.backCap, 10*time.Millisecond, func() error {
				at, ok := aw.firstFrom(ownerMAC, tR)
				if !ok {
					return fmt.Errorf("restarted owner %s has not answered ARP", owner)
				}
				from, r.ownerARP = at, at.Sub(tR)
				return nil
			})
			if err != nil {
				arpDone <- err
				return
			}
		}
		if err := sleep(ctx, time.Until(from.Add(time.Second))); err != nil {
			arpDone <- err
			return
		}
		var err error
		r.arp, err = b.arpAnswerers(ctx, b.lab.Router, v.ip)
		arpDone <- err
	}()
	// The client keeps sending, as a real one would, until its entry
	// points at the owner and the owner answers.
	bctx, bcancel := context.WithTimeout(ctx, b.o.backCap)
	bn := b.watchNeighbour(bctx, v.ip, neighPoll, isOwner)
	bh := b.watchHTTP(bctx, v.ip, httpPoll, httpTimeout, isOwner)
	for bn != nil || bh != nil {
		select {
		case o := <-bn:
			r.back, bn = o.at.Sub(tR), nil
		case o := <-bh:
			r.backHTTP, bh = o.at.Sub(tR), nil
		case <-bctx.Done():
			bn, bh = nil, nil
		}
	}
	bcancel()
	if r.back < 0 {
		out, _ := b.lab.Exec(ctx, b.lab.Client, "ip", "neigh", "show", v.ip.String())
		b.log.Info("client's entry not back on the owner", "vip", v.ip, "owner", owner, "entry", strings.TrimSpace(string(out)))
	}
	if err := <-arpDone; err != nil {
		aw.finish()
		return r, err
	}
	r.arpOK = slices.Equal(r.arp, []string{owner})
	sent, replies, _, err := aw.finish()
	if err != nil {
		return r, fmt.Errorf("ARP watch: %w", err)
	}
	for _, at := range doubleRounds(sent, replies) {
		switch {
		case at.Before(tR):
			r.doubleDuring++
		case r.doubleFirst < 0:
			r.doubleFirst, r.doubleAfter = at.Sub(tR), at.Sub(tR)
		default:
			r.doubleAfter = at.Sub(tR) // they are sorted: the last one wins
		}
	}

	err = b.waitStable(ctx, v, 5*time.Second)
	r.stable = time.Since(tR)
	if err != nil {
		// The client still uses another node's MAC: flush it so that the
		// next trial starts from the owner, and count it.
		b.log.Warn("client did not return to the owner by itself; flushing its entry", "vip", v.ip, "owner", owner, "err", err)
		r.flushed = true
		if err := b.lab.FlushNeighbor(ctx, b.lab.Client, v.ip); err != nil {
			return r, err
		}
		if err := b.waitStable(ctx, v, 30*time.Second); err != nil {
			return r, fmt.Errorf("after the repair: %w", err)
		}
		r.stable = time.Since(tR)
	}
	return r, nil
}

// foreignAnnouncements describes the gratuitous announcements that only a
// wrong view of the cluster explains: a VIP other than the trial's announced
// by anyone but its owner (their owners were never hit), or the trial VIP
// announced by anyone but its owner after the owner announced it again
// following the repair. Each says when, and when the rightful owner
// announced that VIP next (which repairs a client that took the wrong one).
func (b *bench) foreignAnnouncements(garps []announcement, vips []vip, trial vip, tR time.Time) []foreignAnnouncement {
	// The trial VIP legitimately moves and comes back: only an
	// announcement by another node after its owner re-announced it counts.
	garps = slices.DeleteFunc(slices.Clone(garps), func(a announcement) bool { return !a.gratuitous })
	var ownerBack time.Time
	for _, g := range garps {
		if g.ip == trial.ip && !g.at.Before(tR) && b.nodeOfMAC(mustMAC(g.mac)) == trial.owner {
			ownerBack = g.at
			break
		}
	}
	var out []foreignAnnouncement
	var last *announcement
	for _, g := range garps {
		var owner string
		for _, o := range vips {
			if o.ip == g.ip {
				owner = o.owner
			}
		}
		node := b.nodeOfMAC(mustMAC(g.mac))
		if node == owner || (g.ip == trial.ip && (ownerBack.IsZero() || g.at.Before(ownerBack))) {
			continue
		}
		// A burst is two frames (a request and a reply): report it once.
		if last != nil && last.ip == g.ip && last.mac == g.mac && g.at.Sub(last.at) < 50*time.Millisecond {
			continue
		}
		last = &g
		fa := foreignAnnouncement{ip: g.ip, owner: owner, by: node, at: g.at.Sub(tR), ownerNext: -1}
		for _, h := range garps {
			if h.ip == g.ip && h.at.After(g.at) && b.nodeOfMAC(mustMAC(h.mac)) == owner {
				fa.ownerNext = h.at.Sub(tR)
				break
			}
		}
		out = append(out, fa)
	}
	return out
}

// foreignAnnouncement is a gratuitous announcement of ip by a node that
// does not own it, at a time from the repair, and the owner's next
// announcement (negative: none in the trial's span).
type foreignAnnouncement struct {
	ip            netip.Addr
	owner, by     string
	at, ownerNext time.Duration
}

func (f foreignAnnouncement) String() string {
	next := "none before the next trial"
	if f.ownerNext >= 0 {
		next = fmt.Sprintf("%+d ms, so a client that took it was on the wrong node for %d ms",
			f.ownerNext.Milliseconds(), (f.ownerNext - f.at).Milliseconds())
	}
	return fmt.Sprintf("%s (owner %s) announced by %s at %+d ms from the repair; the owner's next announcement: %s",
		f.ip, f.owner, f.by, f.at.Milliseconds(), next)
}

// describeFrames lists the ARP frames from ip, relative to since.
func (b *bench) describeFrames(frames []announcement, ip netip.Addr, since time.Time) string {
	var parts []string
	for _, f := range frames {
		if f.ip != ip {
			continue
		}
		kind := "reply"
		switch {
		case f.gratuitous && f.reply:
			kind = "gratuitous reply"
		case f.gratuitous:
			kind = "gratuitous request"
		case !f.reply:
			kind = "request"
		}
		parts = append(parts, fmt.Sprintf("%+d ms %s by %s", f.at.Sub(since).Milliseconds(), kind, b.nodeOfMAC(mustMAC(f.mac))))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

func mustMAC(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		return nil
	}
	return m
}

// falseAlarms returns the peer expiries in the speakers' logs during the
// trials that no fault explains: outside every trial's span from the fault
// to 600 ms after the repair (time for a healed node's last stale expiries).
func (b *bench) falseAlarms(trials []trialResult) []expiry {
	if len(trials) == 0 {
		return nil
	}
	var windows [][2]time.Time
	for _, r := range trials {
		windows = append(windows, [2]time.Time{r.t0, r.tR.Add(600 * time.Millisecond)})
	}
	var all []expiry
	for _, path := range b.logs {
		data, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		all = append(all, expiries(data)...)
	}
	return unexplained(all, windows, trials[0].t0, time.Now())
}

// preCheck makes sure the client reaches v's owner before a trial. When the
// client's entry points at another node, it says so (a takeover during some
// other trial moved it and nobody moved it back), flushes the entry and waits
// for the owner.
func (b *bench) preCheck(ctx context.Context, v vip, prev *trialResult) (string, error) {
	mac, err := b.neigh.lookup(v.ip)
	if err != nil {
		return "", err
	}
	if node := b.nodeOfMAC(mac); mac != nil && node != v.owner {
		out, _ := b.lab.Exec(ctx, b.lab.Client, "ip", "neigh", "show", v.ip.String())
		if err := b.lab.FlushNeighbor(ctx, b.lab.Client, v.ip); err != nil {
			return "", err
		}
		if err := b.waitStable(ctx, v, 30*time.Second); err != nil {
			return "", err
		}
		msg := fmt.Sprintf("the client's entry for %s (owner %s) pointed at %s (%s)", v.ip, v.owner, node, strings.TrimSpace(string(out)))
		if prev != nil && b.rec != nil {
			msg += "; ARP from " + v.ip.String() + " reaching the client since the previous repair: " + b.describeFrames(b.rec.announcements(prev.tR, time.Now()), v.ip, prev.tR)
		}
		return msg, nil
	}
	return "", b.waitStable(ctx, v, 10*time.Second)
}

// detection reads, from the log of the node the client moved to, when it
// noticed that the old owner was gone.
func (b *bench) detection(r trialResult, t0 time.Time) time.Duration {
	to := r.neighTo
	if to == "" {
		to = r.httpVia
	}
	p := b.speakers[to]
	if p == nil {
		return -1
	}
	data, err := os.ReadFile(p.Log)
	if err != nil {
		return -1
	}
	// slog writes milliseconds: allow the line to read up to 1 ms early.
	at, ok := firstLiveWithout(data, r.vip.owner, t0.Add(-time.Millisecond))
	if !ok {
		return -1
	}
	return max(at.Sub(t0), 0)
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
