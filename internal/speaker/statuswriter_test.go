package speaker

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/keeperlb/keeperlb/api/v1beta1"
)

// l2Snap is a snapshot announcing the given Services on eth0.
func l2Snap(services ...string) statusSnapshot {
	s := statusSnapshot{l2: map[string]l2Status{}, live: []string{"node1"}}
	for _, svc := range services {
		s.l2[svc] = l2Status{service: svc, interfaces: []string{"eth0"}}
	}
	return s
}

func startWriter(t *testing.T, create func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error) (*statusWriter, client.Client) {
	t.Helper()
	return startWriterWith(t, create, nil)
}

// startWriterWith is startWriter with setup run on the writer before it
// starts.
func startWriterWith(t *testing.T, create func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error, setup func(*statusWriter)) (*statusWriter, client.Client) {
	t.Helper()
	scheme, err := NewScheme()
	if err != nil {
		t.Fatal(err)
	}
	c := fake.NewClientBuilder().WithScheme(scheme).WithStatusSubresource(&v1beta1.ServiceL2Status{}).
		WithInterceptorFuncs(interceptor.Funcs{Create: create}).Build()
	w := newStatusWriter(c, "metallb-system", "node1", slog.New(slog.DiscardHandler))
	if setup != nil {
		setup(w)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = w.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return w, c
}

// services lists the Services the ServiceL2Status objects name, sorted.
func services(t *testing.T, c client.Client) []string {
	t.Helper()
	var list v1beta1.ServiceL2StatusList
	if err := c.List(context.Background(), &list); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, s := range list.Items {
		if s.Status.Node != "node1" {
			t.Errorf("%s: node %q", s.Name, s.Status.Node)
		}
		out = append(out, s.Status.ServiceNamespace+"/"+s.Status.ServiceName)
	}
	slices.Sort(out)
	return out
}

func waitIdle(t *testing.T, w *statusWriter) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n := w.waitIdle(ctx)
	if ctx.Err() != nil {
		t.Fatal("the status writer did not finish within 10 s")
	}
	return n
}

// Snapshots that arrive while a write is held up never block the caller,
// and only the latest is written after it: the intermediate one is skipped.
func TestStatusWriterWritesTheLatest(t *testing.T) {
	release := make(chan struct{})
	var creates atomic.Int32
	var created []string
	w, c := startWriter(t, func(ctx context.Context, cl client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
		if creates.Add(1) == 1 {
			<-release
		}
		created = append(created, obj.GetLabels()[LabelServiceNamespace]+"/"+obj.GetLabels()[LabelServiceName])
		return cl.Create(ctx, obj, opts...)
	})
	w.Update(l2Snap("app/a"))
	deadline := time.Now().Add(5 * time.Second)
	for creates.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the first write never started")
		}
		time.Sleep(time.Millisecond)
	}
	// The write is held up inside Create; these must not wait for it.
	updated := make(chan struct{})
	go func() {
		w.Update(l2Snap("app/a", "app/b"))
		w.Update(l2Snap("app/c"))
		close(updated)
	}()
	select {
	case <-updated:
	case <-time.After(2 * time.Second):
		t.Fatal("Update blocked while a write was in progress")
	}
	close(release)
	if n := waitIdle(t, w); n != 2 {
		t.Errorf("%d successful writes, want 2 (the first and the latest)", n)
	}
	if got := services(t, c); !slices.Equal(got, []string{"app/c"}) {
		t.Errorf("ServiceL2Status objects for %v, want [app/c]", got)
	}
	if !slices.Equal(created, []string{"app/a", "app/c"}) {
		t.Errorf("created %v, want [app/a app/c]: app/b was only in a snapshot that was replaced", created)
	}
}

// A failed write is retried with backoff until it succeeds.
func TestStatusWriterRetries(t *testing.T) {
	var failures atomic.Int32
	failures.Store(2)
	w, c := startWriter(t, func(ctx context.Context, cl client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
		if failures.Add(-1) >= 0 {
			return errors.New("the API server is unavailable")
		}
		return cl.Create(ctx, obj, opts...)
	})
	began := time.Now()
	w.Update(l2Snap("app/a", "app/b"))
	if n := waitIdle(t, w); n != 1 {
		t.Errorf("%d successful writes, want 1", n)
	}
	if got := services(t, c); !slices.Equal(got, []string{"app/a", "app/b"}) {
		t.Errorf("ServiceL2Status objects for %v, want [app/a app/b]", got)
	}
	// Both creates of the first attempt fail; the retry comes 0.5 s later.
	if took := time.Since(began); took < statusRetryMin {
		t.Errorf("succeeded after %v, before the first retry was due", took)
	}
}

// manualClock is a clock the test moves; the writer reads it from its own
// goroutine.
type manualClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *manualClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *manualClock) set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// writeLog records the outcome of every write.
type writeLog struct {
	mu       sync.Mutex
	outcomes []bool // true: success
}

func (l *writeLog) observe(_ time.Duration, err error) {
	l.mu.Lock()
	l.outcomes = append(l.outcomes, err == nil)
	l.mu.Unlock()
}

func (l *writeLog) get() []bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.outcomes)
}

// TestStatusWriterBacklog follows how far behind the status objects are:
// from the first snapshot not written, across snapshots merged during a
// write and failed writes, back to 0 once the latest is written.
func TestStatusWriterBacklog(t *testing.T) {
	t0 := time.Unix(1000, 0)
	clk := &manualClock{t: t0}
	var log writeLog
	release := []chan struct{}{make(chan struct{}), make(chan struct{})}
	var creates atomic.Int32
	var failures atomic.Int32
	w, _ := startWriterWith(t, func(ctx context.Context, cl client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
		// The first two creates (app/a, then app/b) wait for the test.
		if n := int(creates.Add(1)); n <= len(release) {
			<-release[n-1]
		}
		if failures.Add(-1) >= 0 {
			return errors.New("the API server is unavailable")
		}
		return cl.Create(ctx, obj, opts...)
	}, func(w *statusWriter) { w.now, w.observe = clk.now, log.observe })
	at := func(d time.Duration) { clk.set(t0.Add(d)) }
	expect := func(step string, want time.Duration) {
		t.Helper()
		if got := w.backlog(); got != want {
			t.Errorf("%s: backlog %v, want %v", step, got, want)
		}
	}

	expect("nothing written yet, nothing to write", 0)
	w.Update(l2Snap("app/a"))
	for creates.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	at(2 * time.Second)
	expect("first write held up", 2*time.Second)
	at(3 * time.Second)
	w.Update(l2Snap("app/a", "app/b"))
	at(5 * time.Second)
	expect("a newer pass merged in", 5*time.Second)
	close(release[0])
	for creates.Load() < 2 {
		time.Sleep(time.Millisecond)
	}
	at(6 * time.Second)
	// The first pass is written; the newer one, from 3 s, is not yet.
	expect("the newer pass is being written", 3*time.Second)
	close(release[1])
	waitIdle(t, w)
	expect("caught up", 0)
	if got := log.get(); !slices.Equal(got, []bool{true, true}) {
		t.Errorf("writes observed %v, want two successes", got)
	}

	// A write that fails stays in the backlog until a retry succeeds.
	failures.Store(1 << 20)
	at(10 * time.Second)
	w.Update(l2Snap("app/c"))
	deadline := time.Now().Add(5 * time.Second)
	for len(log.get()) < 3 {
		if time.Now().After(deadline) {
			t.Fatal("the failing write was never observed")
		}
		time.Sleep(time.Millisecond)
	}
	at(12 * time.Second)
	expect("after a failed write", 2*time.Second)
	failures.Store(0)
	waitIdle(t, w)
	expect("retried", 0)
	got := log.get()
	if len(got) < 4 || !slices.Equal(got[:3], []bool{true, true, false}) || !got[len(got)-1] || slices.Contains(got[3:len(got)-1], true) {
		t.Errorf("writes observed %v, want success, success, failures, success", got)
	}
}
