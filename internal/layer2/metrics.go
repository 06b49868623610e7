package layer2

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are MetalLB's layer 2 counters, under MetalLB's names so that
// existing dashboards and alerts keep working. The ip label only ever takes
// owned addresses: requests for anything else are not counted, so nobody on
// the network can grow the label set.
type metrics struct {
	requests   *prometheus.CounterVec
	responses  *prometheus.CounterVec
	gratuitous *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "metallb", Subsystem: "layer2", Name: "requests_received",
			Help: "ARP requests and neighbor solicitations received for an announced IP.",
		}, []string{"ip"}),
		responses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "metallb", Subsystem: "layer2", Name: "responses_sent",
			Help: "ARP replies and solicited neighbor advertisements sent for an announced IP.",
		}, []string{"ip"}),
		gratuitous: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "metallb", Subsystem: "layer2", Name: "gratuitous_sent",
			Help: "Gratuitous ARP frames and unsolicited neighbor advertisements sent for an announced IP.",
		}, []string{"ip"}),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	m.requests, err = register(reg, m.requests)
	if err != nil {
		return nil, err
	}
	m.responses, err = register(reg, m.responses)
	if err != nil {
		return nil, err
	}
	m.gratuitous, err = register(reg, m.gratuitous)
	if err != nil {
		return nil, err
	}
	return m, nil
}

// register registers c, or adopts the identical collector already there, so
// that an Announcer re-created on the same registry keeps counting.
func register(reg prometheus.Registerer, c *prometheus.CounterVec) (*prometheus.CounterVec, error) {
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
			return existing, nil
		}
	}
	return nil, fmt.Errorf("register layer 2 metrics: %w", err)
}
