package speaker

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/keeperlb/keeperlb/internal/bgp"
)

// statusSnapshot is what this node's status objects should say after one
// pass of the reconciler.
type statusSnapshot struct {
	// l2 is the ServiceL2Status content per announced Service, and live
	// the speakers alive (objects of dead ones for those Services are
	// removed).
	l2   map[string]l2Status
	live []string
	// bgp is nil when the speaker runs without BGP, or when this pass
	// could not apply it: the BGP status objects are then left alone.
	bgp *bgpSnapshot
}

// bgpSnapshot is the BGP part of a statusSnapshot.
type bgpSnapshot struct {
	adverts  []bgp.ServiceAdvert
	sessions []bgp.SessionState
}

// Backoff of the status writer after a failed write.
const (
	statusRetryMin = 500 * time.Millisecond
	statusRetryMax = 30 * time.Second
)

// statusWriter writes this node's ServiceL2Status, ServiceBGPStatus and
// BGPSessionState objects in the background, always toward the latest
// snapshot, so that a pass of the reconciler never waits for API writes.
//
// A pass moves IPs; its status objects take two or three API requests each
// (see syncStatuses), and the client's rate limit spaces them out. With a
// few hundred Services changing hands at once (a node dying at scale),
// writing them in the pass held the next pass back for tens of seconds, and
// with it the next takeover or release: the benchmark saw failovers of 8 s.
// Snapshots that arrive while a write runs are merged into one (only the
// latest counts): each write lists what exists (from the cache, once the
// cache shows the previous write) and changes only what differs, with
// statusWorkers requests in flight, so catching up after a burst costs one
// write, not one per pass.
type statusWriter struct {
	api      statusAPI
	ns, node string
	log      *slog.Logger

	// now is the clock; observe, when set, gets the duration and outcome
	// of every write.
	now     func() time.Time
	observe func(took time.Duration, err error)

	mu      sync.Mutex
	pending *statusSnapshot // latest snapshot not yet written; nil when none
	// pendingSince is when pending first arrived after the last write
	// started; behindSince is when the status objects fell behind the
	// passes (the oldest snapshot not written yet), zero when they are
	// not behind.
	pendingSince, behindSince time.Time
	kick                      chan struct{}
	// written counts successful writes (see waitIdle).
	written uint64
	idle    *sync.Cond // signalled after each write attempt
	busy    bool
}

// newStatusWriter returns a writer that writes and lists through c, and
// reads from it too to settle a write the list was behind for (Run sets a
// reader of the API server itself).
func newStatusWriter(c client.Client, ns, node string, log *slog.Logger) *statusWriter {
	w := &statusWriter{api: statusAPI{c: c, live: c, workers: statusWorkers, written: &ownWrites{}}, ns: ns, node: node, log: log, now: time.Now, kick: make(chan struct{}, 1)}
	w.idle = sync.NewCond(&w.mu)
	return w
}

// Update replaces the snapshot to write; it never blocks. The caller must
// not change s afterwards.
func (w *statusWriter) Update(s statusSnapshot) {
	w.mu.Lock()
	now := w.now()
	if w.pending == nil {
		w.pendingSince = now
	}
	if w.behindSince.IsZero() {
		w.behindSince = now
	}
	w.pending = &s
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// Run writes snapshots until ctx ends. A failed write is retried with
// backoff, or as soon as a newer snapshot arrives.
func (w *statusWriter) Run(ctx context.Context) error {
	var retry <-chan time.Time
	backoff := time.Duration(0)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-w.kick:
		case <-retry:
		}
		w.mu.Lock()
		s := w.pending
		w.pending = nil
		w.busy = s != nil
		w.mu.Unlock()
		if s == nil {
			continue
		}
		began := w.now()
		err := w.write(ctx, *s)
		took := w.now().Sub(began)
		if w.observe != nil && ctx.Err() == nil {
			w.observe(took, err)
		}
		w.mu.Lock()
		w.busy = false
		if err != nil && w.pending == nil {
			// Keep it for the retry unless something newer came.
			w.pending, w.pendingSince = s, w.behindSince
		}
		if err == nil {
			w.written++
			// Caught up, or behind since the first snapshot that came
			// during the write.
			w.behindSince = time.Time{}
			if w.pending != nil {
				w.behindSince = w.pendingSince
			}
		}
		w.idle.Broadcast()
		w.mu.Unlock()
		retry = nil
		switch {
		case err == nil:
			backoff = 0
		case ctx.Err() != nil:
			return nil
		default:
			backoff = min(max(2*backoff, statusRetryMin), statusRetryMax)
			w.log.Warn("writing status objects; retrying", "err", err, "retry_in", backoff)
			retry = time.After(backoff)
		}
	}
}

// cacheWait bounds how long a write waits for the cache to show the
// previous write's objects (see ownWrites); it usually takes milliseconds.
const cacheWait = time.Second

// write makes the status objects match s.
func (w *statusWriter) write(ctx context.Context, s statusSnapshot) error {
	w.api.written.awaitCache(ctx, w.api.c, cacheWait)
	errs := []error{syncL2Statuses(ctx, w.api, w.ns, w.node, s.l2, s.live)}
	if s.bgp != nil {
		errs = append(errs,
			syncBGPStatuses(ctx, w.api, w.ns, w.node, s.bgp.adverts),
			syncSessionStates(ctx, w.api, w.ns, w.node, s.bgp.sessions))
	}
	return errors.Join(errs...)
}

// backlog is how far the status objects are behind the passes: the age of
// the oldest snapshot not written yet, 0 when every one is.
func (w *statusWriter) backlog() time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.behindSince.IsZero() {
		return 0
	}
	return w.now().Sub(w.behindSince)
}

// waitIdle waits until nothing is pending or being written, or ctx ends;
// it returns the number of successful writes so far.
func (w *statusWriter) waitIdle(ctx context.Context) uint64 {
	stop := context.AfterFunc(ctx, func() {
		w.mu.Lock()
		w.idle.Broadcast()
		w.mu.Unlock()
	})
	defer stop()
	w.mu.Lock()
	defer w.mu.Unlock()
	for (w.pending != nil || w.busy) && ctx.Err() == nil {
		w.idle.Wait()
	}
	return w.written
}
