package controller

import (
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keeperlb/keeperlb/internal/ipam"
	"github.com/keeperlb/keeperlb/internal/k8smetrics"
)

// metrics are the controller's series: the allocator gauges under the names
// MetalLB users already scrape and alert on, MetalLB's k8s client series,
// and KeeperLB's own (why Services wait, how long allocation takes).
type metrics struct {
	client *k8smetrics.Metrics

	total, inUse     *prometheus.GaugeVec
	v4Total, v4InUse *prometheus.GaugeVec
	v6Total, v6InUse *prometheus.GaugeVec
	services         *prometheus.GaugeVec

	waiting *prometheus.GaugeVec
	// reasons are the waiting reasons exported so far: a reason no Service
	// waits for any more is set to 0, not deleted, so that an alert on it
	// sees the recovery.
	reasons    map[string]bool
	allocation prometheus.Histogram
}

// allocationBuckets span a single Service on an idle controller (a few
// milliseconds: one API round trip) to a backlog of thousands after a
// restart (minutes).
var allocationBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300}

// waitReasons are the reasons a Service can wait for, exported at 0 from
// the start so that an alert on one has a series before the first wait.
var waitReasons = []string{
	ReasonInvalidService, ReasonNoConfig,
	string(ipam.ReasonPoolExhausted), string(ipam.ReasonNoMatchingPool), string(ipam.ReasonIPInUse),
	string(ipam.ReasonIPNotInPool), string(ipam.ReasonUnknownPool), string(ipam.ReasonPoolNotAllowed),
	string(ipam.ReasonInvalidRequest),
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	gauge := func(name, help string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "metallb", Subsystem: "allocator", Name: name, Help: help,
		}, []string{"pool"})
	}
	m := &metrics{
		total:    gauge("addresses_total", "Number of usable IP addresses, per pool"),
		inUse:    gauge("addresses_in_use_total", "Number of IP addresses in use, per pool"),
		v4Total:  gauge("ipv4_addresses_total", "Number of usable IPv4 addresses, per pool"),
		v4InUse:  gauge("ipv4_addresses_in_use_total", "Number of IPv4 addresses in use, per pool"),
		v6Total:  gauge("ipv6_addresses_total", "Number of usable IPv6 addresses, per pool"),
		v6InUse:  gauge("ipv6_addresses_in_use_total", "Number of IPv6 addresses in use, per pool"),
		services: gauge("services_allocated_total", "Number of Services holding addresses from the pool"),
		waiting: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "keeperlb", Subsystem: "controller", Name: "services_waiting",
			Help: "LoadBalancer Services without the addresses they need, by reason; their Events and the keeperlb.io/IPAllocated condition say more",
		}, []string{"reason"}),
		allocation: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "keeperlb", Subsystem: "controller", Name: "allocation_duration_seconds",
			Help:    "Time from when this controller first saw a Service lacking the addresses it should have to the status write that gave them",
			Buckets: allocationBuckets,
		}),
		reasons: map[string]bool{},
	}
	var err error
	if m.client, err = k8smetrics.New(reg, false); err != nil {
		return nil, err
	}
	if m.allocation, err = register(reg, m.allocation); err != nil {
		return nil, err
	}
	for _, g := range append(m.all(), &m.waiting) {
		if *g, err = register(reg, *g); err != nil {
			return nil, err
		}
	}
	m.setWaiting(nil)
	return m, nil
}

// register registers c, or returns the collector already registered under
// its name: a second controller in the same process (tests, or a replica
// that lost and regained the lease) shares the first one's metrics.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, fmt.Errorf("registering metrics: %w", err)
}

func (m *metrics) all() []**prometheus.GaugeVec {
	return []**prometheus.GaugeVec{&m.total, &m.inUse, &m.v4Total, &m.v4InUse, &m.v6Total, &m.v6InUse, &m.services}
}

func (m *metrics) set(pool string, u ipam.Usage) {
	v4Total := float64(u.AssignedV4) + float64(u.AvailableV4)
	v6Total := float64(u.AssignedV6) + float64(u.AvailableV6)
	m.total.WithLabelValues(pool).Set(v4Total + v6Total)
	m.inUse.WithLabelValues(pool).Set(float64(u.AssignedV4) + float64(u.AssignedV6))
	m.v4Total.WithLabelValues(pool).Set(v4Total)
	m.v4InUse.WithLabelValues(pool).Set(float64(u.AssignedV4))
	m.v6Total.WithLabelValues(pool).Set(v6Total)
	m.v6InUse.WithLabelValues(pool).Set(float64(u.AssignedV6))
	m.services.WithLabelValues(pool).Set(float64(u.Services))
}

func (m *metrics) forget(pool string) {
	for _, g := range m.all() {
		(*g).DeleteLabelValues(pool)
	}
}

// setWaiting exports the number of waiting Services per reason. Only the
// pool status writer calls it.
func (m *metrics) setWaiting(byReason map[string]int) {
	for _, r := range waitReasons {
		m.reasons[r] = true
	}
	for r := range byReason {
		m.reasons[r] = true
	}
	for r := range m.reasons {
		m.waiting.WithLabelValues(r).Set(float64(byReason[r]))
	}
}

// allocated records one Service getting its addresses after waiting d.
func (m *metrics) allocated(d time.Duration) {
	m.allocation.Observe(d.Seconds())
}
