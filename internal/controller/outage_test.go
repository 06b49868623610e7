package controller_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/keeperlb/keeperlb/internal/controller"
)

// cutProxy forwards TCP connections to the API server and can cut them as
// a network cut does: while cut, connections are still accepted (as the
// SYN of a cut link would be retransmitted, not refused) and open ones stay
// open, but no byte passes either way; after the heal, what was waiting
// passes. The controller sees exactly what a node whose link went down sees:
// requests that hang, not errors.
type cutProxy struct {
	l      net.Listener
	target string

	mu    sync.Mutex
	cut   bool
	heal  chan struct{} // closed at the heal
	conns []net.Conn
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{l: l, target: target, heal: make(chan struct{})}
	close(p.heal)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *cutProxy) accept() {
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		go p.forward(c)
	}
}

func (p *cutProxy) forward(c net.Conn) {
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns = append(p.conns, c, up)
	p.mu.Unlock()
	go p.pipe(up, c)
	p.pipe(c, up)
}

// pipe copies from src to dst, holding every chunk while the link is cut.
func (p *cutProxy) pipe(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			heal := p.heal
			p.mu.Unlock()
			<-heal
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *cutProxy) setCut(cut bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if cut == p.cut {
		return
	}
	p.cut = cut
	if cut {
		p.heal = make(chan struct{})
	} else {
		close(p.heal)
	}
}

func (p *cutProxy) close() {
	p.setCut(false)
	p.l.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
}

// probeStatus is the HTTP status of GET url, or 0 when nothing answers.
func probeStatus(url string) int {
	c := &http.Client{Timeout: time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

// TestAPIServerOutage cuts the controller off a real API server, at start
// and while it leads, and checks that the process never ends, reports
// not-ready while cut (so that the webhook's Service stops routing to it),
// stays live (so that the kubelet does not restart it) and is ready and
// leading again soon after the heal. The first real-cluster run found a
// replica that exited when its node lost the API server and then
// crash-looped at start-up ("failed to get restmapping ... no route to
// host") with a back-off longer than the outage.
//
// The cut lasts KEEPERLB_TEST_OUTAGE (default 8s): longer than
// --api-outage-restart-after (5s), so the manager is stopped and replaced,
// which is all that a longer cut adds (nothing in the code counts to 60s;
// set KEEPERLB_TEST_OUTAGE=60s to run the cut).
func TestAPIServerOutage(t *testing.T) {
	cut := 8 * time.Second
	if v := os.Getenv("KEEPERLB_TEST_OUTAGE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("KEEPERLB_TEST_OUTAGE=%q: %v", v, err)
		}
		cut = d
	}
	e := newEnv(t)
	e.pool("p", []string{"198.18.23.0/29"})

	u, err := url.Parse(e.cfg.Host)
	if err != nil {
		t.Fatal(err)
	}
	proxy := newCutProxy(t, u.Host)
	cfg := rest.CopyConfig(e.cfg)
	cfg.Host = "https://" + proxy.l.Addr().String()
	health := freePort(t)
	e.opts.HealthAddr = health
	readyz, healthz := "http://"+health+"/readyz", "http://"+health+"/healthz"

	// Cut before the controller starts: it must wait, not exit.
	proxy.setCut(true)
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan struct{})
	var runErr error
	w := &testWriter{t: t}
	t.Cleanup(func() { w.done.Store(true) })
	log := slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
	go func() { defer close(done); runErr = controller.Run(ctx, cfg, e.opts, log) }()
	stop := func() {
		t.Helper()
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Fatal("the controller did not stop within 30s of its context ending")
		}
	}
	t.Cleanup(stop)
	alive := func(when string) {
		t.Helper()
		select {
		case <-done:
			t.Fatalf("%s: the controller process ended: %v", when, runErr)
		default:
		}
	}
	// during checks, for the given time, that the process runs, is live
	// and not ready.
	during := func(what string, d time.Duration) {
		t.Helper()
		end := time.Now().Add(d)
		for time.Now().Before(end) {
			alive(what)
			if s := probeStatus(healthz); s != http.StatusOK {
				t.Fatalf("%s: /healthz answered %d: the kubelet would restart the controller", what, s)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	// waitReady waits for /readyz to succeed (ok) or fail (!ok).
	waitReady := func(what string, ok bool, within time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		last := 0
		err := wait.PollUntilContextTimeout(e.ctx, 100*time.Millisecond, within, true, func(context.Context) (bool, error) {
			alive(what)
			last = probeStatus(readyz)
			return (last == http.StatusOK) == ok, nil
		})
		if err != nil {
			t.Fatalf("%s: /readyz still answered %d after %s (want ready=%v)", what, last, within, ok)
		}
		return time.Since(start)
	}

	if err := wait.PollUntilContextTimeout(e.ctx, 50*time.Millisecond, 5*time.Second, true, func(context.Context) (bool, error) {
		alive("start-up")
		return probeStatus(healthz) == http.StatusOK, nil
	}); err != nil {
		t.Fatalf("/healthz does not answer 200 while the API server is cut: %v", err)
	}
	during("cut at start", 3*time.Second)
	if s := probeStatus(readyz); s == http.StatusOK {
		t.Fatalf("cut at start: /readyz answered %d, want a failure", s)
	}
	proxy.setCut(false)
	took := waitReady("heal after the cut at start", true, 10*time.Second)
	t.Logf("ready %s after the heal at start", took.Round(time.Millisecond))
	first := waitLeaseHolder(t, e, "")
	e.createSvc("a")
	e.waitIPs("a", "198.18.23.0")

	// Cut the leader.
	proxy.setCut(true)
	cutAt := time.Now()
	took = waitReady("cut while leading", false, 5*time.Second)
	t.Logf("not ready %s after the cut", took.Round(time.Millisecond))
	during("cut while leading", cut-time.Since(cutAt))
	proxy.setCut(false)
	took = waitReady("heal", true, 10*time.Second)
	t.Logf("ready %s after a %s cut", took.Round(time.Millisecond), cut)
	alive("after the heal")

	// It leads again (once its old lease has run out) and allocates.
	second := waitLeaseHolder(t, e, first)
	t.Logf("lease: %s, then %s", first, second)
	e.createSvc("b")
	e.waitIPs("b", "198.18.23.1")
	e.waitIPs("a", "198.18.23.0")
	alive("at the end")

	stop()
	if runErr != nil && !errors.Is(runErr, context.Canceled) {
		t.Errorf("the controller ended with %v when stopped", runErr)
	}
}

// A leader that loses its Lease to another holder stops leading without
// the process ending (controller-runtime ends the manager; Run starts a new
// one, which campaigns again) and leads again once the other holder's
// Lease runs out.
func TestLostLeaseDoesNotEndTheProcess(t *testing.T) {
	e := newEnv(t)
	e.opts.LeaseDuration, e.opts.RenewDeadline, e.opts.RetryPeriod = 4*time.Second, 3*time.Second, 500*time.Millisecond
	e.pool("p", []string{"198.18.24.0/29"})
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan struct{})
	var runErr error
	w := &testWriter{t: t}
	t.Cleanup(func() { w.done.Store(true) })
	log := slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
	go func() { defer close(done); runErr = controller.Run(ctx, e.cfg, e.opts, log) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("the controller did not stop within 30s")
		}
	})
	first := waitLeaseHolder(t, e, "")
	e.createSvc("a")
	e.waitIPs("a", "198.18.24.0")

	// Another holder takes the Lease, as a replica that believed the
	// leader dead would, and renews it for a while.
	steal := func() {
		l := &coordinationv1.Lease{}
		if err := e.c.Get(e.ctx, client.ObjectKey{Namespace: e.ns, Name: controller.LeaseName}, l); err != nil {
			t.Fatal(err)
		}
		holder, now := "thief", metav1.NewMicroTime(time.Now())
		l.Spec.HolderIdentity, l.Spec.RenewTime = &holder, &now
		if err := e.c.Update(e.ctx, l); err != nil {
			t.Fatal(err)
		}
	}
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error { steal(); return nil }); err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(6 * time.Second); time.Now().Before(end); time.Sleep(time.Second) {
		_ = retry.RetryOnConflict(retry.DefaultRetry, func() error { steal(); return nil })
		select {
		case <-done:
			t.Fatalf("the controller process ended after losing its Lease: %v", runErr)
		default:
		}
	}
	// The thief stops renewing; the controller leads again, with a new
	// identity (a new manager), and allocates.
	second := waitLeaseHolder(t, e, "thief")
	if second == first {
		t.Errorf("the same identity %s leads again: the manager was not replaced", first)
	}
	e.createSvc("b")
	e.waitIPs("b", "198.18.24.1")
	select {
	case <-done:
		t.Fatalf("the controller process ended: %v", runErr)
	default:
	}
}
