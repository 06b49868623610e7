// Package controller is KeeperLB's controller: it gives each LoadBalancer
// Service addresses from the configured pools and takes them back when the
// Service goes away or the configuration no longer allows them.
//
// The package is a thin adapter: internal/config decides what the
// configuration means and internal/ipam decides who gets which address. What
// lives here is the order of events (bootstrap before allocation), the API
// writes and the reporting (status, conditions, Events, metrics).
package controller

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/config"
	ctrlcontroller "sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/keeperlb/keeperlb/api/v1beta1"
	"github.com/keeperlb/keeperlb/api/v1beta2"
)

// Options configures the controller. BindFlags fills it from the command
// line; tests fill it directly.
type Options struct {
	// Namespace is the install namespace: configuration objects are read
	// from it only, and the lease and ConfigurationState live there.
	Namespace string
	// LBClass selects Services by spec.loadBalancerClass; empty means the
	// Services without a class.
	LBClass string
	// Workers is the number of Services reconciled in parallel.
	Workers int
	// LeaderElect enables leader election, so that several replicas can
	// run with one active.
	LeaderElect bool
	// LeaseDuration, RenewDeadline and RetryPeriod tune leader election.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// MetricsAddr serves Prometheus metrics; "0" disables it.
	MetricsAddr string
	// HealthAddr serves /healthz and /readyz; "0" disables it.
	HealthAddr string
	// QPS and Burst limit API requests on the client side; QPS < 0 turns
	// the limit off and leaves flow control to the API server (API Priority
	// and Fairness), which is the default.
	QPS   float32
	Burst int
	// PoolStatusInterval is the least time between two writes of the pool
	// status.
	PoolStatusInterval time.Duration

	// Registry receives the metrics; nil means controller-runtime's
	// registry, which the metrics server exposes.
	Registry prometheus.Registerer
	// SkipNameValidation allows several controllers in one process (tests).
	SkipNameValidation bool
}

// DefaultOptions returns the options used when no flag is given.
func DefaultOptions() Options {
	return Options{
		Namespace:          "metallb-system",
		Workers:            4,
		LeaderElect:        true,
		LeaseDuration:      15 * time.Second,
		RenewDeadline:      10 * time.Second,
		RetryPeriod:        2 * time.Second,
		MetricsAddr:        ":7472",
		HealthAddr:         ":7473",
		QPS:                -1,
		Burst:              0,
		PoolStatusInterval: time.Second,
	}
}

// BindFlags registers the options as command-line flags, with o's values as
// defaults.
func (o *Options) BindFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.Namespace, "namespace", o.Namespace, "install namespace: configuration objects are read from it only")
	fs.StringVar(&o.LBClass, "lb-class", o.LBClass, "handle only Services with this spec.loadBalancerClass (empty: Services without a class)")
	fs.IntVar(&o.Workers, "workers", o.Workers, "Services reconciled in parallel")
	fs.BoolVar(&o.LeaderElect, "leader-elect", o.LeaderElect, "elect one active replica among several")
	fs.DurationVar(&o.LeaseDuration, "leader-lease-duration", o.LeaseDuration, "leader election lease duration")
	fs.DurationVar(&o.RenewDeadline, "leader-renew-deadline", o.RenewDeadline, "leader election renew deadline")
	fs.DurationVar(&o.RetryPeriod, "leader-retry-period", o.RetryPeriod, "leader election retry period")
	fs.StringVar(&o.MetricsAddr, "metrics-bind-address", o.MetricsAddr, "address of the Prometheus endpoint (0 disables)")
	fs.StringVar(&o.HealthAddr, "health-probe-bind-address", o.HealthAddr, "address of /healthz and /readyz (0 disables)")
	qps := float64(o.QPS)
	fs.Func("kube-api-qps", fmt.Sprintf("client-side API request rate limit; negative disables it (default %v)", o.QPS), func(s string) error {
		_, err := fmt.Sscan(s, &qps)
		o.QPS = float32(qps)
		return err
	})
	fs.IntVar(&o.Burst, "kube-api-burst", o.Burst, "client-side API request burst (with --kube-api-qps > 0)")
	fs.DurationVar(&o.PoolStatusInterval, "pool-status-interval", o.PoolStatusInterval, "least time between two IPAddressPool status writes")
}

// NewScheme returns a scheme holding the core kinds and every metallb.io kind.
func NewScheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, v1beta1.AddToScheme, v1beta2.AddToScheme} {
		if err := add(s); err != nil {
			return nil, fmt.Errorf("building scheme: %w", err)
		}
	}
	return s, nil
}

// The controller's permissions; `make generate` turns them into
// config/rbac/controller.
//
// +kubebuilder:rbac:groups="",resources=services;namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=services/status,verbs=get;patch
// +kubebuilder:rbac:groups="";events.k8s.io,resources=events,verbs=create;patch;update
// +kubebuilder:rbac:groups=metallb.io,resources=ipaddresspools;l2advertisements;bgpadvertisements;bgppeers;bfdprofiles;communities,verbs=get;list;watch
// +kubebuilder:rbac:groups=metallb.io,resources=ipaddresspools/status,verbs=get;patch
// +kubebuilder:rbac:groups=metallb.io,resources=configurationstates,verbs=get;list;watch;create
// +kubebuilder:rbac:groups=metallb.io,resources=configurationstates/status,verbs=get;patch
// +kubebuilder:rbac:groups="",namespace=metallb-system,resources=secrets,verbs=get;list;watch
// +kubebuilder:rbac:groups=coordination.k8s.io,namespace=metallb-system,resources=leases,verbs=get;create;update

// Run runs the controller until ctx ends.
func Run(ctx context.Context, restCfg *rest.Config, opts Options, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.Workers < 1 {
		opts.Workers = 1
	}
	lr := logr.FromSlogHandler(log.Handler())
	ctrllog.SetLogger(lr)

	cfg := rest.CopyConfig(restCfg)
	cfg.QPS, cfg.Burst = opts.QPS, opts.Burst
	if cfg.QPS < 0 {
		// controller-runtime replaces a zero QPS with its own small
		// default; a negative one reaches client-go, which then applies
		// no client-side limit.
		cfg.RateLimiter = nil
	}
	cfg.UserAgent = "keeperlb-controller"

	scheme, err := NewScheme()
	if err != nil {
		return err
	}
	reg := opts.Registry
	if reg == nil {
		reg = ctrlmetrics.Registry
	}
	m, err := newMetrics(reg)
	if err != nil {
		return err
	}

	inNamespace := cache.ByObject{Namespaces: map[string]cache.Config{opts.Namespace: {}}}
	mgr, err := manager.New(cfg, manager.Options{
		Scheme: scheme,
		Logger: lr,
		Cache: cache.Options{
			DefaultTransform: trimForCache,
			ByObject: map[client.Object]cache.ByObject{
				&corev1.Secret{}:              inNamespace,
				&v1beta1.IPAddressPool{}:      inNamespace,
				&v1beta1.L2Advertisement{}:    inNamespace,
				&v1beta1.BGPAdvertisement{}:   inNamespace,
				&v1beta2.BGPPeer{}:            inNamespace,
				&v1beta1.BFDProfile{}:         inNamespace,
				&v1beta1.Community{}:          inNamespace,
				&v1beta1.ConfigurationState{}: inNamespace,
			},
		},
		Metrics:                       metricsserver.Options{BindAddress: opts.MetricsAddr},
		HealthProbeBindAddress:        opts.HealthAddr,
		LeaderElection:                opts.LeaderElect,
		LeaderElectionID:              "keeperlb-controller",
		LeaderElectionNamespace:       opts.Namespace,
		LeaderElectionReleaseOnCancel: true,
		LeaseDuration:                 &opts.LeaseDuration,
		RenewDeadline:                 &opts.RenewDeadline,
		RetryPeriod:                   &opts.RetryPeriod,
		Controller:                    ctrlconfig.Controller{SkipNameValidation: &opts.SkipNameValidation},
	})
	if err != nil {
		return fmt.Errorf("creating manager: %w", err)
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return fmt.Errorf("adding health check: %w", err)
	}
	if err := mgr.AddReadyzCheck("ping", healthz.Ping); err != nil {
		return fmt.Errorf("adding ready check: %w", err)
	}

	st := newState()
	events := recorder{rec: mgr.GetEventRecorder("keeperlb-controller")}
	cs := &configSync{client: mgr.GetClient(), namespace: opts.Namespace, state: st, events: events, log: log.With("component", "config")}
	svcRec := &serviceReconciler{client: mgr.GetClient(), state: st, lbClass: opts.LBClass, events: events, log: log.With("component", "service")}

	if err := mgr.Add(&bootstrap{client: mgr.GetClient(), cache: mgr.GetCache(), config: cs, state: st, lbClass: opts.LBClass, log: log.With("component", "bootstrap")}); err != nil {
		return fmt.Errorf("adding bootstrap: %w", err)
	}
	if err := mgr.Add(&poolStatus{client: mgr.GetClient(), namespace: opts.Namespace, state: st, metrics: m, interval: opts.PoolStatusInterval, log: log.With("component", "pool-status")}); err != nil {
		return fmt.Errorf("adding pool status writer: %w", err)
	}

	err = ctrl.NewControllerManagedBy(mgr).
		Named("service").
		For(&corev1.Service{}).
		Watches(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(servicesInNamespace(mgr.GetClient())),
			builder.WithPredicates(predicate.LabelChangedPredicate{})).
		WatchesRawSource(source.Func(func(_ context.Context, q ctrlQueue) error {
			st.setQueue(q)
			return nil
		})).
		WithOptions(ctrlcontroller.Options{MaxConcurrentReconciles: opts.Workers}).
		Complete(svcRec)
	if err != nil {
		return fmt.Errorf("creating service controller: %w", err)
	}

	toConfig := handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request {
		return []reconcile.Request{{}}
	})
	// Status writes (our own pool counts) do not change the config, so
	// only spec (generation) and label changes trigger a reload.
	specOrLabels := builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.LabelChangedPredicate{}))
	b := ctrl.NewControllerManagedBy(mgr).Named("config")
	for _, obj := range []client.Object{
		&v1beta1.IPAddressPool{}, &v1beta1.L2Advertisement{}, &v1beta1.BGPAdvertisement{},
		&v1beta2.BGPPeer{}, &v1beta1.BFDProfile{}, &v1beta1.Community{},
	} {
		b = b.Watches(obj, toConfig, specOrLabels)
	}
	b = b.Watches(&corev1.Secret{}, toConfig)
	if err := b.Complete(cs); err != nil {
		return fmt.Errorf("creating config controller: %w", err)
	}

	log.Info("starting controller", "namespace", opts.Namespace, "lbClass", opts.LBClass, "workers", opts.Workers, "leaderElect", opts.LeaderElect)
	if err := mgr.Start(ctx); err != nil {
		return fmt.Errorf("running manager: %w", err)
	}
	return nil
}

// servicesInNamespace maps a Namespace to its Services: a label change can
// change which pools those Services may use.
func servicesInNamespace(c client.Client) handler.MapFunc {
	return func(ctx context.Context, o client.Object) []reconcile.Request {
		var l corev1.ServiceList
		if err := c.List(ctx, &l, client.InNamespace(o.GetName())); err != nil {
			return nil
		}
		out := make([]reconcile.Request, 0, len(l.Items))
		for i := range l.Items {
			out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&l.Items[i])})
		}
		return out
	}
}
