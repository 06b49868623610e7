package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/connrotation"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
)

// An API server outage must not end the controller process: a process that
// exits is restarted by the kubelet with a back-off that grows to minutes,
// so a short outage would become a long one, and while it is down its
// /healthz is closed, so the liveness probe restarts it again. Instead the
// process keeps its health endpoint and a probe of the API server for its
// whole life, and runs controller-runtime managers one after another:
//
//   - a manager is started only while the API server answers;
//   - when the API server has not answered for Options.APIOutage, the
//     manager is stopped (a leader stops leading; its reconcilers, caches and
//     webhook server stop), and every connection it had is closed, so that
//     the next one dials afresh instead of waiting on a connection the
//     network cut left hanging;
//   - a manager that ends by itself (a leader that lost its lease:
//     controller-runtime ends the manager then, rather than keep reconciling
//     without the lease) is replaced the same way.
//
// /readyz fails while the API server does not answer or no manager is
// serving, so that the Service in front of the webhook stops sending the API
// server's admission calls to a replica that cannot answer them.

// apiProbe asks the API server for its version, on a new connection each
// time, and remembers whether and since when it has been unanswered.
type apiProbe struct {
	client   discovery.ServerVersionInterface
	dialer   *connrotation.Dialer
	interval time.Duration
	// failAfter is how many probes in a row must fail before the API
	// server counts as unreachable, so that one slow answer on a loaded
	// machine does not take the replica out of the Service.
	failAfter int

	mu        sync.Mutex
	ok        bool      // some probe succeeded and fewer than failAfter failed since
	fails     int       // consecutive failures
	failSince time.Time // first failure of the current run of failures
	lastErr   error
	changed   chan struct{} // closed and replaced on each change of ok
}

// newAPIProbe returns a probe of the API server cfg points to. Each probe
// waits at most timeout.
func newAPIProbe(cfg *rest.Config, interval, timeout time.Duration) (*apiProbe, error) {
	pcfg := rest.CopyConfig(cfg)
	pcfg.Timeout = timeout
	pcfg.UserAgent = "keeperlb-controller-probe"
	d := connrotation.NewDialer((&net.Dialer{Timeout: timeout}).DialContext)
	pcfg.Dial = d.DialContext
	dc, err := discovery.NewDiscoveryClientForConfig(pcfg)
	if err != nil {
		return nil, fmt.Errorf("creating the API server probe: %w", err)
	}
	return &apiProbe{client: dc, dialer: d, interval: interval, failAfter: 2, changed: make(chan struct{})}, nil
}

// run probes until ctx ends.
func (p *apiProbe) run(ctx context.Context, log *slog.Logger) {
	t := time.NewTicker(p.interval)
	defer t.Stop()
	for {
		_, err := p.client.ServerVersion()
		// A new connection next time: one the network left hanging must
		// not make the API server look down after it is back.
		p.dialer.CloseAll()
		p.record(err, time.Now(), log)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (p *apiProbe) record(err error, now time.Time, log *slog.Logger) {
	p.mu.Lock()
	defer p.mu.Unlock()
	was := p.ok
	if err == nil {
		p.fails, p.lastErr, p.ok = 0, nil, true
	} else {
		if p.fails == 0 {
			p.failSince = now
		}
		p.fails++
		p.lastErr = err
		if p.fails >= p.failAfter {
			p.ok = false
		}
	}
	if p.ok != was {
		if p.ok {
			log.Info("the API server answers")
		} else {
			log.Warn("the API server does not answer", "since", p.failSince, "err", err)
		}
		close(p.changed)
		p.changed = make(chan struct{})
	}
}

// state returns whether the API server answers, for how long it has not
// (zero when it does), a channel closed at the next change and the last
// probe's error.
func (p *apiProbe) state(now time.Time) (ok bool, down time.Duration, changed <-chan struct{}, lastErr error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.ok && p.fails > 0 {
		down = now.Sub(p.failSince)
	}
	return p.ok, down, p.changed, p.lastErr
}

// waitReachable returns once the API server answers, or with ctx's error.
func (p *apiProbe) waitReachable(ctx context.Context) error {
	for {
		ok, _, changed, _ := p.state(time.Now())
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		}
	}
}

// check is the readiness check for the API server.
func (p *apiProbe) check(*http.Request) error {
	ok, _, _, err := p.state(time.Now())
	switch {
	case ok:
		return nil
	case err != nil:
		return fmt.Errorf("the API server does not answer: %w", err)
	default:
		return errors.New("the API server has not answered yet")
	}
}

// health serves /healthz and /readyz for the life of the process, whatever
// manager is running: /healthz says the process is alive, /readyz that the
// API server answers and the current manager is serving with all its own
// readiness checks passing.
type health struct {
	probe   *apiProbe
	current atomic.Pointer[managerHealth]
}

// managerHealth is what one manager contributes to /readyz.
type managerHealth struct {
	serving atomic.Bool
	checks  map[string]healthz.Checker
}

func (h *health) handler() http.Handler {
	mux := http.NewServeMux()
	live := &healthz.Handler{Checks: map[string]healthz.Checker{"ping": healthz.Ping}}
	mux.Handle("/healthz", http.StripPrefix("/healthz", live))
	mux.Handle("/healthz/", http.StripPrefix("/healthz", live))
	ready := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		checks := map[string]healthz.Checker{"api-server": h.probe.check, "manager": h.managerCheck}
		if mh := h.current.Load(); mh != nil {
			for n, c := range mh.checks {
				checks[n] = c
			}
		}
		http.StripPrefix("/readyz", &healthz.Handler{Checks: checks}).ServeHTTP(w, r)
	})
	mux.Handle("/readyz", ready)
	mux.Handle("/readyz/", ready)
	return mux
}

func (h *health) managerCheck(*http.Request) error {
	if mh := h.current.Load(); mh == nil || !mh.serving.Load() {
		return errors.New("no manager is serving (starting, or waiting for the API server)")
	}
	return nil
}

// serve serves the health endpoints on addr until ctx ends. It returns once
// the listener is bound, or with the error that prevented it.
func (h *health) serve(ctx context.Context, addr string, log *slog.Logger) (done <-chan struct{}, err error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listening for health probes on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: h.handler(), ReadHeaderTimeout: 5 * time.Second}
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("health probe server failed", "err", err)
		}
	}()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	return stopped, nil
}

// checkRecorder is the manager as webhook.Setup and the rest of the set-up
// see it: readiness checks go to this manager's managerHealth, which the
// process-wide /readyz consults, instead of the manager's own probe server
// (which is off).
type checkRecorder struct {
	manager.Manager
	mh *managerHealth
}

// AddReadyzCheck records a readiness check of this manager.
func (c checkRecorder) AddReadyzCheck(name string, check healthz.Checker) error {
	if _, dup := c.mh.checks[name]; dup {
		return fmt.Errorf("readiness check %q added twice", name)
	}
	c.mh.checks[name] = check
	return nil
}

// AddHealthzCheck ignores liveness checks: the process is alive while it
// serves /healthz, whatever manager runs.
func (c checkRecorder) AddHealthzCheck(string, healthz.Checker) error { return nil }

// servingSignal is a runnable that marks the manager as serving once
// controller-runtime starts it: after the webhook server and the caches.
type servingSignal struct{ mh *managerHealth }

// Start marks the manager serving until ctx ends.
func (s servingSignal) Start(ctx context.Context) error {
	s.mh.serving.Store(true)
	<-ctx.Done()
	s.mh.serving.Store(false)
	return nil
}

// NeedLeaderElection is false: standbys serve the webhooks too.
func (servingSignal) NeedLeaderElection() bool { return false }

// stopOnOutage cancels stop when the API server has not answered for
// outage, and returns when ctx ends. It reports whether it did.
func stopOnOutage(ctx context.Context, p *apiProbe, outage time.Duration, stop context.CancelFunc, log *slog.Logger) bool {
	for {
		ok, down, changed, err := p.state(time.Now())
		var t *time.Timer
		var wait <-chan time.Time
		if !ok {
			if down >= outage {
				log.Warn("the API server has not answered for too long; stopping this manager until it does", "for", down.Round(time.Millisecond), "err", err)
				stop()
				return true
			}
			t = time.NewTimer(outage - down)
			wait = t.C
		}
		select {
		case <-ctx.Done():
		case <-changed:
		case <-wait:
		}
		if t != nil {
			t.Stop()
		}
		if ctx.Err() != nil {
			return false
		}
	}
}
