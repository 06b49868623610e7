package controller

import (
	"context"
	"sort"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/keeperlb/keeperlb/internal/config"
	"github.com/keeperlb/keeperlb/internal/ipam"
)

// state is what the reconcilers share: the allocator, the last good config
// and the Services waiting for an address. The allocator is not safe for
// concurrent use, so every call goes through mu; API writes happen outside it.
type state struct {
	mu    sync.Mutex
	alloc *ipam.Allocator
	cfg   *config.Config // last config that parsed; nil until one did
	// pending holds the waiting Services, with the reason each waits for.
	pending map[string]string
	// lacking holds, for each Service whose status lacks the addresses
	// it should have, when this controller first saw it so: the start of
	// its allocation latency.
	lacking map[string]time.Time

	// ready is closed once the bootstrap has re-registered every existing
	// assignment; reconcilers wait for it so that nothing is allocated
	// before every Service already holding an address has claimed it.
	ready chan struct{}

	queueMu sync.Mutex
	queue   workqueue.TypedRateLimitingInterface[reconcile.Request]

	// poolsDirty wakes the pool status writer; capacity 1 coalesces kicks.
	poolsDirty chan struct{}
}

func newState() *state {
	return &state{
		alloc:      ipam.New(),
		pending:    map[string]string{},
		lacking:    map[string]time.Time{},
		ready:      make(chan struct{}),
		poolsDirty: make(chan struct{}, 1),
	}
}

// waitReady blocks until the bootstrap is done or ctx ends.
func (s *state) waitReady(ctx context.Context) error {
	select {
	case <-s.ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// setQueue records the Service controller's queue so that config changes
// and releases can requeue exactly the Services they affect.
func (s *state) setQueue(q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
	s.queueMu.Lock()
	s.queue = q
	s.queueMu.Unlock()
}

// requeue adds Services, by "namespace/name" key, to the Service queue.
func (s *state) requeue(keys []string) {
	s.queueMu.Lock()
	q := s.queue
	s.queueMu.Unlock()
	if q == nil {
		return
	}
	for _, k := range keys {
		ns, name, ok := splitKey(k)
		if !ok {
			continue
		}
		q.Add(reconcile.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: name}})
	}
}

// pendingKeys returns the waiting Services, sorted so that they are retried
// in a stable order. Caller holds mu.
func (s *state) pendingKeys() []string {
	out := make([]string, 0, len(s.pending))
	for k := range s.pending {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// waitingByReason counts the waiting Services per reason. Caller holds mu.
func (s *state) waitingByReason() map[string]int {
	out := map[string]int{}
	for _, reason := range s.pending {
		out[reason]++
	}
	return out
}

// lackingSince records that the Service, in the version seen at seen,
// lacks the addresses it should have, and returns when it was first seen
// lacking them. Caller holds mu.
func (s *state) lackingSince(key string, seen time.Time) time.Time {
	if t, ok := s.lacking[key]; ok && !t.After(seen) {
		return t
	}
	s.lacking[key] = seen
	return seen
}

// markPoolsDirty asks the pool status writer to publish new counts.
func (s *state) markPoolsDirty() {
	select {
	case s.poolsDirty <- struct{}{}:
	default:
	}
}

func splitKey(k string) (ns, name string, ok bool) {
	for i := 0; i < len(k); i++ {
		if k[i] == '/' {
			return k[:i], k[i+1:], true
		}
	}
	return "", "", false
}
