package controller

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/keeperlb/keeperlb/api/v1beta1"
	"github.com/keeperlb/keeperlb/api/v1beta2"

	"github.com/keeperlb/keeperlb/internal/ipam"
	"github.com/keeperlb/keeperlb/internal/k8smetrics"
)

// bootstrap runs once the controller leads and its caches are synced. It
// loads the configuration, re-registers the address of every Service that
// already has one, and only then allocates for the others, oldest first. That
// order is what guarantees that a restart never moves an address: no new
// allocation can run before every existing holder has claimed its address.
type bootstrap struct {
	client   client.Client
	cache    cache.Cache
	services *serviceInformer
	config   *configSync
	state    *state
	metrics  *k8smetrics.Metrics
	lbClass  string
	log      *slog.Logger
}

// Start implements manager.Runnable.
func (b *bootstrap) Start(ctx context.Context) error {
	start := time.Now()
	// This replica leads from here on, and loads the configuration: its
	// config_loaded and config_stale gauges start to mean something.
	b.metrics.Serve()
	if err := b.warmCache(ctx); err != nil {
		return err
	}
	b.log.Info("caches synced", "took", time.Since(start).Round(time.Millisecond))
	if _, err := b.config.sync(ctx); err != nil {
		// A failed status write must not keep the controller from
		// serving; the config reconciler retries it.
		b.log.Warn("bootstrap: reporting configuration state", "err", err)
	}

	var nss corev1.NamespaceList
	if err := b.client.List(ctx, &nss); err != nil {
		return fmt.Errorf("bootstrap: listing namespaces: %w", err)
	}
	nsLabels := make(map[string]map[string]string, len(nss.Items))
	for i := range nss.Items {
		nsLabels[nss.Items[i].Name] = nss.Items[i].Labels
	}

	type item struct {
		svc *serviceView
		req *ipam.Service // what to keep; nil when nothing can be kept
		ok  bool          // the Service parsed, so it may get a new address
	}
	var items []item
	for _, v := range b.services.list() {
		if !v.managed(b.lbClass) {
			continue
		}
		req := withNamespace(v.req, nsLabels[v.namespace])
		if req == nil {
			req = withNamespace(v.fallback(), nsLabels[v.namespace])
		}
		items = append(items, item{svc: v, req: req, ok: v.req != nil})
	}
	// Oldest first, so that allocation order, and with it every address,
	// is a function of the cluster's history rather than of list order.
	sort.Slice(items, func(i, j int) bool {
		a, b := items[i].svc, items[j].svc
		if a.created != b.created {
			return a.created < b.created
		}
		if a.namespace != b.namespace {
			return a.namespace < b.namespace
		}
		return a.name < b.name
	})

	restored, allocated, waiting := 0, 0, 0
	b.state.mu.Lock()
	if b.state.cfg != nil {
		for _, it := range items {
			if _, ok := restore(b.state.alloc, it.req); ok {
				restored++
			}
		}
		for _, it := range items {
			if !it.ok {
				continue // the reconciler reports why
			}
			if _, ok := b.state.alloc.Get(it.req.Key); ok {
				continue
			}
			if _, err := b.state.alloc.Ensure(it.req); err != nil {
				waiting++
				continue
			}
			allocated++
		}
	}
	b.state.mu.Unlock()
	b.state.markPoolsDirty()
	close(b.state.ready)
	b.log.Info("bootstrap done", "services", len(items), "kept", restored, "allocated", allocated,
		"waiting", waiting, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// warmCache starts every informer the bootstrap reads at once and waits for
// them together, polling briefly: listing them one by one would start them one
// by one, and client-go's own wait polls only every 100 ms, which at start-up
// adds up to seconds before the first address is written.
func (b *bootstrap) warmCache(ctx context.Context) error {
	objs := []client.Object{
		&corev1.Namespace{}, &corev1.Secret{},
		&v1beta1.IPAddressPool{}, &v1beta1.L2Advertisement{}, &v1beta1.BGPAdvertisement{},
		&v1beta2.BGPPeer{}, &v1beta1.BFDProfile{}, &v1beta1.Community{}, &v1beta1.ConfigurationState{},
	}
	synced := []func() bool{b.services.HasSynced}
	for _, o := range objs {
		inf, err := b.cache.GetInformer(ctx, o, cache.BlockUntilSynced(false))
		if err != nil {
			return fmt.Errorf("bootstrap: starting informer for %T: %w", o, err)
		}
		synced = append(synced, inf.HasSynced)
	}
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for _, done := range synced {
		for !done() {
			select {
			case <-ctx.Done():
				return fmt.Errorf("bootstrap: caches did not sync: %w", ctx.Err())
			case <-t.C:
			}
		}
	}
	return nil
}

// restore registers the addresses a Service already holds, and only those:
// asking for exactly its current addresses makes the allocator keep them when
// they are valid and take nothing otherwise. The bootstrap uses it so that no
// new allocation can take an address whose holder was not seen yet.
func restore(a *ipam.Allocator, req *ipam.Service) (ipam.Assignment, bool) {
	if req == nil || len(req.Current) == 0 {
		return ipam.Assignment{}, false
	}
	r := *req
	r.RequestedIPs = req.Current
	r.Pool = ""
	got, err := a.Ensure(&r)
	if err != nil {
		return ipam.Assignment{}, false
	}
	return got, true
}
