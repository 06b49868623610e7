package controller

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keeperlb/keeperlb/internal/ipam"
)

// metrics are the allocator gauges, under the names MetalLB users already
// scrape and alert on.
type metrics struct {
	waiting          prometheus.Gauge
	total, inUse     *prometheus.GaugeVec
	v4Total, v4InUse *prometheus.GaugeVec
	v6Total, v6InUse *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	gauge := func(name, help string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "metallb", Subsystem: "allocator", Name: name, Help: help,
		}, []string{"pool"})
	}
	m := &metrics{
		total:   gauge("addresses_total", "Number of usable IP addresses, per pool"),
		inUse:   gauge("addresses_in_use_total", "Number of IP addresses in use, per pool"),
		v4Total: gauge("ipv4_addresses_total", "Number of usable IPv4 addresses, per pool"),
		v4InUse: gauge("ipv4_addresses_in_use_total", "Number of IPv4 addresses in use, per pool"),
		v6Total: gauge("ipv6_addresses_total", "Number of usable IPv6 addresses, per pool"),
		v6InUse: gauge("ipv6_addresses_in_use_total", "Number of IPv6 addresses in use, per pool"),
	}
	var err error
	if m.waiting, err = register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "keeperlb", Subsystem: "controller", Name: "services_waiting",
		Help: "LoadBalancer Services without the addresses they need; their Events and the keeperlb.io/IPAllocated condition say why",
	})); err != nil {
		return nil, err
	}
	for _, g := range []**prometheus.GaugeVec{&m.total, &m.inUse, &m.v4Total, &m.v4InUse, &m.v6Total, &m.v6InUse} {
		if *g, err = register(reg, *g); err != nil {
			return nil, err
		}
	}
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

func (m *metrics) all() []*prometheus.GaugeVec {
	return []*prometheus.GaugeVec{m.total, m.inUse, m.v4Total, m.v4InUse, m.v6Total, m.v6InUse}
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
}

func (m *metrics) forget(pool string) {
	for _, g := range m.all() {
		g.DeleteLabelValues(pool)
	}
}
