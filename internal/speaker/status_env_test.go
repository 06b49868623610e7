package speaker

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/keeperlb/keeperlb/api/v1beta1"
)

// staleLister is a client whose List returns a copy saved earlier: an
// informer cache behind the writer's own writes.
type staleLister struct {
	client.Client
	saved *v1beta1.ServiceL2StatusList
}

func (s staleLister) List(_ context.Context, list client.ObjectList, _ ...client.ListOption) error {
	s.saved.DeepCopyInto(list.(*v1beta1.ServiceL2StatusList))
	return nil
}

// requestCounter counts the status writer's requests by verb and result.
type requestCounter struct {
	mu sync.Mutex
	n  map[[2]string]int
}

func (r *requestCounter) count(verb, result string) {
	r.mu.Lock()
	r.n[[2]string{verb, result}]++
	r.mu.Unlock()
}

func (r *requestCounter) take() map[[2]string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.n
	r.n = map[[2]string]int{}
	return out
}

// TestStatusWritesOnARealAPIServer counts the requests of the status
// writes that matter on a real API server: a node's first statuses (two
// each: create, then the status), a takeover from a dead node (three
// each: the dead node's delete too), and a write from a cache that is
// behind the previous one, which must still leave every object right
// without writing it again.
func TestStatusWritesOnARealAPIServer(t *testing.T) {
	cfg := rest.CopyConfig(controlPlane(t))
	// No client-side limit: client-go's default (5 a second) would make
	// this test take minutes, as it made the speaker's failovers.
	cfg.QPS = -1
	scheme, err := NewScheme()
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	ns := fmt.Sprintf("status-%d", time.Now().UnixNano())
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	rc := &requestCounter{n: map[[2]string]int{}}
	api := statusAPI{c: c, live: c, workers: statusWorkers, count: rc.count}
	const n = 60
	mine, theirs := map[string]l2Status{}, map[string]l2Status{}
	for i := range n {
		key := fmt.Sprintf("app/s%02d", i)
		st := l2Status{service: key, interfaces: []string{"eth0"}}
		if i%2 == 0 {
			mine[key] = st
		} else {
			theirs[key] = st
		}
	}
	both := []string{"n1", "n2"}
	if err := syncL2Statuses(ctx, api, ns, "n1", mine, both); err != nil {
		t.Fatal(err)
	}
	if err := syncL2Statuses(ctx, api, ns, "n2", theirs, both); err != nil {
		t.Fatal(err)
	}
	expect := func(step string, want map[[2]string]int) {
		t.Helper()
		if got := rc.take(); !maps.Equal(got, want) {
			t.Errorf("%s: requests %v, want %v", step, got, want)
		}
	}
	expect("first statuses", map[[2]string]int{{verbCreate, resultSuccess}: n, {verbUpdate, resultSuccess}: n})

	// n2 dies; n1 takes its Services.
	var before v1beta1.ServiceL2StatusList
	if err := c.List(ctx, &before, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	all := maps.Clone(mine)
	maps.Copy(all, theirs)
	if err := syncL2Statuses(ctx, api, ns, "n1", all, []string{"n1"}); err != nil {
		t.Fatal(err)
	}
	expect("takeover", map[[2]string]int{{verbDelete, resultSuccess}: n / 2, {verbCreate, resultSuccess}: n / 2, {verbUpdate, resultSuccess}: n / 2})

	// The same again from a cache that has seen none of it: every create
	// finds its object (read back, already right), every delete finds
	// none. Nothing is written twice.
	stale := api
	stale.c = staleLister{Client: c, saved: &before}
	if err := syncL2Statuses(ctx, stale, ns, "n1", all, []string{"n1"}); err != nil {
		t.Fatal(err)
	}
	expect("stale cache", map[[2]string]int{{verbDelete, resultNotFound}: n / 2, {verbCreate, resultExists}: n / 2, {verbGet, resultSuccess}: n / 2})

	// A changed status written over a stale copy conflicts, is read back
	// and written.
	var now v1beta1.ServiceL2StatusList
	if err := c.List(ctx, &now, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	for key, st := range all {
		st.interfaces = []string{"eth1"}
		all[key] = st
	}
	if err := syncL2Statuses(ctx, api, ns, "n1", all, []string{"n1"}); err != nil {
		t.Fatal(err)
	}
	rc.take()
	for key, st := range all {
		st.interfaces = []string{"eth2"}
		all[key] = st
	}
	stale.c = staleLister{Client: c, saved: &now}
	if err := syncL2Statuses(ctx, stale, ns, "n1", all, []string{"n1"}); err != nil {
		t.Fatal(err)
	}
	expect("conflict", map[[2]string]int{{verbUpdate, resultConflict}: n, {verbGet, resultSuccess}: n, {verbUpdate, resultSuccess}: n})
	var final v1beta1.ServiceL2StatusList
	if err := c.List(ctx, &final, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	if len(final.Items) != n {
		t.Fatalf("%d ServiceL2Status objects, want %d", len(final.Items), n)
	}
	for _, st := range final.Items {
		if st.Status.Node != "n1" || len(st.Status.Interfaces) != 1 || st.Status.Interfaces[0].Name != "eth2" {
			t.Errorf("%s: %+v", st.Name, st.Status)
		}
	}
}

// TestStatusWriterWaitsForItsCache runs the status writer as the speaker
// does, listing from an informer cache, while Services arrive one by one
// and every pass sends a snapshot: each write waits until the cache shows
// the previous one's objects, so each Service costs exactly its create and
// its status update, with no conflict or read spent on a stale copy.
func TestStatusWriterWaitsForItsCache(t *testing.T) {
	cfg := rest.CopyConfig(controlPlane(t))
	cfg.QPS = -1
	scheme, err := NewScheme()
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	ca, err := cache.New(cfg, cache.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = ca.Start(ctx) }()
	c, err := client.New(cfg, client.Options{Scheme: scheme, Cache: &client.CacheOptions{Reader: ca}})
	if err != nil {
		t.Fatal(err)
	}
	live, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	ns := fmt.Sprintf("status-cache-%d", time.Now().UnixNano())
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	rc := &requestCounter{n: map[[2]string]int{}}
	w := newStatusWriter(c, ns, "n1", slog.New(slog.DiscardHandler))
	w.api.live, w.api.count = live, rc.count
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = w.Run(wctx); close(done) }()
	defer func() { cancel(); <-done }()
	const n = 200
	want := map[string]l2Status{}
	for i := range n {
		key := fmt.Sprintf("app/s%03d", i)
		want = maps.Clone(want)
		want[key] = l2Status{service: key, interfaces: []string{"eth0"}}
		w.Update(statusSnapshot{l2: want, live: []string{"n1"}})
		time.Sleep(time.Duration(i%5) * time.Millisecond)
	}
	ictx, icancel := context.WithTimeout(ctx, 30*time.Second)
	defer icancel()
	w.waitIdle(ictx)
	if got, exp := rc.take(), map[[2]string]int{{verbCreate, resultSuccess}: n, {verbUpdate, resultSuccess}: n}; !maps.Equal(got, exp) {
		t.Errorf("requests %v, want %v", got, exp)
	}
	var list v1beta1.ServiceL2StatusList
	if err := live.List(ctx, &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != n {
		t.Errorf("%d ServiceL2Status objects, want %d", len(list.Items), n)
	}
}
