package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/keeperlb/keeperlb/api/v1beta1"
	"github.com/keeperlb/keeperlb/internal/ipam"
)

// poolStatus publishes each pool's usage to its IPAddressPool status and to
// the metrics. Writing after every allocation would double the API writes
// of a busy controller, so kicks are coalesced and written at most once per
// interval.
type poolStatus struct {
	client    client.Client
	namespace string
	state     *state
	metrics   *metrics
	interval  time.Duration
	log       *slog.Logger

	written map[string]v1beta1.IPAddressPoolStatus
}

// Start implements manager.Runnable.
func (p *poolStatus) Start(ctx context.Context) error {
	p.written = map[string]v1beta1.IPAddressPoolStatus{}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-p.state.poolsDirty:
		}
		if err := p.publish(ctx); err != nil {
			p.log.Warn("publishing pool status", "err", err)
			p.state.markPoolsDirty() // retry on the next round
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(p.interval):
		}
	}
}

func (p *poolStatus) publish(ctx context.Context) error {
	p.state.mu.Lock()
	usage := map[string]ipam.Usage{}
	for _, name := range p.state.alloc.Pools() {
		if u, ok := p.state.alloc.Usage(name); ok {
			usage[name] = u
		}
	}
	waiting := p.state.waitingByReason()
	p.state.mu.Unlock()
	p.metrics.setWaiting(waiting)

	for name := range p.written {
		if _, ok := usage[name]; !ok {
			delete(p.written, name)
			p.metrics.forget(name)
		}
	}
	var firstErr error
	for _, name := range sortedKeys(usage) {
		u := usage[name]
		p.metrics.set(name, u)
		st := v1beta1.IPAddressPoolStatus{
			AssignedIPv4:  clampInt64(u.AssignedV4),
			AssignedIPv6:  clampInt64(u.AssignedV6),
			AvailableIPv4: clampInt64(u.AvailableV4),
			AvailableIPv6: clampInt64(u.AvailableV6),
		}
		if p.written[name] == st {
			continue
		}
		body, err := json.Marshal(map[string]any{"status": st})
		if err != nil {
			return fmt.Errorf("encoding pool status: %w", err)
		}
		pool := &v1beta1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Namespace: p.namespace, Name: name}}
		err = p.client.Status().Patch(ctx, pool, client.RawPatch(types.MergePatchType, body))
		switch {
		case err == nil:
			p.written[name] = st
		case apierrors.IsNotFound(err):
			// Deleted since the config was loaded; the next config drops it.
		case firstErr == nil:
			firstErr = fmt.Errorf("writing status of IPAddressPool %s: %w", name, err)
		}
	}
	return firstErr
}

func clampInt64(v uint64) int64 {
	if v > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(v)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
