package speaker

import (
	"context"
	"errors"
	"log/slog"
	"slices"
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
	scheme, err := NewScheme()
	if err != nil {
		t.Fatal(err)
	}
	c := fake.NewClientBuilder().WithScheme(scheme).WithStatusSubresource(&v1beta1.ServiceL2Status{}).
		WithInterceptorFuncs(interceptor.Funcs{Create: create}).Build()
	w := newStatusWriter(c, "metallb-system", "node1", slog.New(slog.DiscardHandler))
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
