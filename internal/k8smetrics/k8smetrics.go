// Package k8smetrics exports the metallb_k8s_client_* series, which the
// controller and the speaker both serve under MetalLB's names and meanings:
// how many reconcile passes ran and how many failed, whether a configuration
// was ever loaded, and whether the process runs an older configuration
// because the latest one was rejected. MetalLB's MetalLBConfigNotLoaded and
// MetalLBStaleConfig alerts are written against the two gauges.
package k8smetrics

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// Metric names, MetalLB's.
const (
	NameUpdates      = "metallb_k8s_client_updates_total"
	NameUpdateErrors = "metallb_k8s_client_update_errors_total"
	NameConfigLoaded = "metallb_k8s_client_config_loaded_bool"
	NameConfigStale  = "metallb_k8s_client_config_stale_bool"
)

// ConfigState is what the two configuration gauges say.
type ConfigState struct {
	// Loaded is true once a configuration has been loaded; it stays true.
	Loaded bool
	// Stale is true when the last configuration seen was rejected: the
	// process keeps running on the last one it loaded (or on none, when
	// Loaded is false).
	Stale bool
}

// Next is the state after one load attempt: accepted says whether the
// configuration parsed and was put in force.
func (s ConfigState) Next(accepted bool) ConfigState {
	if accepted {
		return ConfigState{Loaded: true}
	}
	return ConfigState{Loaded: s.Loaded, Stale: true}
}

// Metrics is the set of metallb_k8s_client_* series of one process. It is
// a prometheus.Collector; its methods may be called from any goroutine.
type Metrics struct {
	updatesDesc, errorsDesc, loadedDesc, staleDesc *prometheus.Desc

	mu       sync.Mutex
	updates  uint64
	failures uint64
	state    ConfigState
	serving  bool
}

// New returns the metrics registered with reg. When reg already holds a
// Metrics (a second controller or speaker in one process, as in tests), that
// one is returned, so that both count into the same series. serving says
// whether the configuration gauges are exported from the start; see Serve.
func New(reg prometheus.Registerer, serving bool) (*Metrics, error) {
	m := &Metrics{
		updatesDesc: prometheus.NewDesc(NameUpdates, "Reconcile passes over Kubernetes objects that have been processed.", nil, nil),
		errorsDesc:  prometheus.NewDesc(NameUpdateErrors, "Reconcile passes over Kubernetes objects that failed and were retried.", nil, nil),
		loadedDesc:  prometheus.NewDesc(NameConfigLoaded, "1 once a configuration has been loaded successfully, 0 before.", nil, nil),
		staleDesc:   prometheus.NewDesc(NameConfigStale, "1 when the latest configuration failed to load, so that an older one (or none) is in force.", nil, nil),
		serving:     serving,
	}
	if reg == nil {
		return m, nil
	}
	err := reg.Register(m)
	if err == nil {
		return m, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(*Metrics); ok {
			if serving {
				existing.Serve()
			}
			return existing, nil
		}
	}
	return nil, fmt.Errorf("registering the metallb_k8s_client metrics: %w", err)
}

// Serve makes the configuration gauges appear in scrapes from now on. A
// standby controller replica loads no configuration: a 0 from it would fire
// MetalLBConfigNotLoaded for a replica doing exactly what it should, so the
// controller calls Serve when it starts leading.
func (m *Metrics) Serve() {
	m.mu.Lock()
	m.serving = true
	m.mu.Unlock()
}

// Loaded records that a configuration was accepted and put in force.
func (m *Metrics) Loaded() { m.observe(true) }

// Rejected records that the latest configuration did not load, so that the
// previous one stays in force.
func (m *Metrics) Rejected() { m.observe(false) }

func (m *Metrics) observe(accepted bool) {
	m.mu.Lock()
	m.state = m.state.Next(accepted)
	m.mu.Unlock()
}

// State returns what the configuration gauges say.
func (m *Metrics) State() ConfigState {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.state
}

// Count records one reconcile pass and whether it failed.
func (m *Metrics) Count(failed bool) {
	m.mu.Lock()
	m.updates++
	if failed {
		m.failures++
	}
	m.mu.Unlock()
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.updatesDesc
	ch <- m.errorsDesc
	ch <- m.loadedDesc
	ch <- m.staleDesc
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	updates, failures, st, serving := m.updates, m.failures, m.state, m.serving
	m.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(m.updatesDesc, prometheus.CounterValue, float64(updates))
	ch <- prometheus.MustNewConstMetric(m.errorsDesc, prometheus.CounterValue, float64(failures))
	if !serving {
		return
	}
	ch <- prometheus.MustNewConstMetric(m.loadedDesc, prometheus.GaugeValue, boolValue(st.Loaded))
	ch <- prometheus.MustNewConstMetric(m.staleDesc, prometheus.GaugeValue, boolValue(st.Stale))
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Counting wraps a reconciler so that every pass counts as an update and
// every pass that returns an error as an update error. A pass cut short
// because the process is stopping (its context ended) is not an error.
func (m *Metrics) Counting(r reconcile.Reconciler) reconcile.Reconciler {
	return reconcile.Func(func(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
		res, err := r.Reconcile(ctx, req)
		m.Count(err != nil && ctx.Err() == nil)
		return res, err
	})
}
