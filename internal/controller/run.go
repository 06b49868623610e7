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
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/connrotation"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/config"
	ctrlcontroller "sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/keeperlb/keeperlb/api/v1beta1"
	"github.com/keeperlb/keeperlb/api/v1beta2"
	"github.com/keeperlb/keeperlb/internal/kubeobj"
	"github.com/keeperlb/keeperlb/internal/metricsauth"
	"github.com/keeperlb/keeperlb/internal/webhook"
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
	// MetricsAuth says whether the endpoint is HTTPS with authorization.
	MetricsAuth metricsauth.Options
	// HealthAddr serves /healthz and /readyz; "0" disables it.
	HealthAddr string
	// PprofAddr serves Go's /debug/pprof profiles; "0" (default) disables it.
	PprofAddr string
	// QPS and Burst limit API requests on the client side; QPS < 0 turns
	// the limit off and leaves flow control to the API server (API Priority
	// and Fairness), which is the default.
	QPS   float32
	Burst int
	// Process holds the settings of the whole process (the GC target,
	// client-go's feature gates): the main applies them with SetUpProcess,
	// and Run leaves them alone.
	Process ProcessOptions
	// PoolStatusInterval is the least time between two writes of the pool
	// status.
	PoolStatusInterval time.Duration
	// APIProbeInterval is how often the API server is asked for its
	// version; two unanswered probes in a row make /readyz fail.
	APIProbeInterval time.Duration
	// APIOutage is how long the API server may go unanswered before the
	// running manager is stopped (a leader gives up leading) and a new one
	// is started once it answers again. The process never exits for an
	// outage. Keep it under RenewDeadline, so that a leader stops leading
	// by itself before its lease runs out.
	APIOutage time.Duration

	// Registry receives the metrics; nil means controller-runtime's
	// registry, which the metrics server exposes.
	Registry prometheus.Registerer
	// SkipNameValidation allows several controllers in one process (tests).
	SkipNameValidation bool

	// Webhook configures the admission and conversion webhooks the
	// controller serves (internal/webhook).
	Webhook webhook.Options
	// PodName and PodUID name the controller's own Pod (from the downward
	// API); when both are set, the leader makes that Pod the owner of the
	// Lease, so that uninstalling deletes the Lease with the Pod. Empty
	// outside Kubernetes.
	PodName, PodUID string
	// MemberlistSecret names the Secret in Namespace holding the speakers'
	// heartbeat key; the controller creates it, with a random key, when it
	// does not exist. Empty: the controller leaves it to the installer.
	MemberlistSecret string
}

// DefaultOptions returns the options used when no flag is given.
func DefaultOptions() Options {
	return Options{
		Namespace:          "metallb-system",
		Workers:            8,
		LeaderElect:        true,
		LeaseDuration:      15 * time.Second,
		RenewDeadline:      10 * time.Second,
		RetryPeriod:        2 * time.Second,
		MetricsAddr:        ":7472",
		MetricsAuth:        metricsauth.DefaultOptions(),
		HealthAddr:         ":7473",
		PprofAddr:          "0",
		QPS:                -1,
		Burst:              0,
		PoolStatusInterval: time.Second,
		APIProbeInterval:   time.Second,
		APIOutage:          5 * time.Second,
		Process:            DefaultProcessOptions(),
		Webhook:            webhook.DefaultOptions(),
		MemberlistSecret:   "keeperlb-memberlist",
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
	o.MetricsAuth.BindFlags(fs)
	fs.StringVar(&o.HealthAddr, "health-probe-bind-address", o.HealthAddr, "address of /healthz and /readyz (0 disables)")
	fs.StringVar(&o.PprofAddr, "pprof-bind-address", o.PprofAddr, "address of Go's /debug/pprof profiles (0 disables)")
	qps := float64(o.QPS)
	fs.Func("kube-api-qps", fmt.Sprintf("client-side API request rate limit; negative disables it (default %v)", o.QPS), func(s string) error {
		_, err := fmt.Sscan(s, &qps)
		o.QPS = float32(qps)
		return err
	})
	fs.IntVar(&o.Burst, "kube-api-burst", o.Burst, "client-side API request burst (with --kube-api-qps > 0)")
	o.Process.BindFlags(fs)
	fs.DurationVar(&o.PoolStatusInterval, "pool-status-interval", o.PoolStatusInterval, "least time between two IPAddressPool status writes")
	fs.DurationVar(&o.APIProbeInterval, "api-probe-interval", o.APIProbeInterval, "how often the API server is probed; two failed probes in a row make /readyz fail")
	fs.DurationVar(&o.APIOutage, "api-outage-restart-after", o.APIOutage, "how long the API server may go unanswered before the running manager is stopped and, once it answers, replaced (the process never exits for an outage)")
	fs.StringVar(&o.PodName, "pod-name", o.PodName, "this replica's Pod (downward API metadata.name); with --pod-uid, the leader makes it the owner of the Lease")
	fs.StringVar(&o.PodUID, "pod-uid", o.PodUID, "this replica's Pod UID (downward API metadata.uid)")
	fs.StringVar(&o.MemberlistSecret, "memberlist-secret-name", o.MemberlistSecret, "Secret holding the speakers' heartbeat key, created with a random key when missing (empty: never created)")
	o.Webhook.BindFlags(fs)
}

// NewScheme returns a scheme holding the core kinds and every metallb.io kind.
func NewScheme() (*runtime.Scheme, error) { return kubeobj.NewScheme() }

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
// +kubebuilder:rbac:groups="",namespace=metallb-system,resources=secrets,verbs=get;list;watch;create;update
// +kubebuilder:rbac:groups=admissionregistration.k8s.io,resources=validatingwebhookconfigurations,resourceNames=keeperlb-webhook-configuration,verbs=get;update
// +kubebuilder:rbac:groups=apiextensions.k8s.io,resources=customresourcedefinitions,resourceNames=bgppeers.metallb.io,verbs=get;update
// +kubebuilder:rbac:groups=coordination.k8s.io,namespace=metallb-system,resources=leases,verbs=get;create;update
// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create

// Run runs the controller until ctx ends. It outlives API server outages:
// see supervise.go. It returns an error only for a configuration that
// cannot work, never because the API server cannot be reached. It changes
// no process-wide state: that is SetUpProcess's, in the main.
func Run(ctx context.Context, restCfg *rest.Config, opts Options, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.Workers < 1 {
		opts.Workers = 1
	}

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
	if opts.APIProbeInterval <= 0 || opts.APIOutage <= 0 {
		return fmt.Errorf("--api-probe-interval %s and --api-outage-restart-after %s must be positive", opts.APIProbeInterval, opts.APIOutage)
	}
	// A probe waits at most one interval (and at least a second, which
	// /version never takes from a healthy API server), so that a cut
	// shows in /readyz within about two intervals.
	probe, err := newAPIProbe(cfg, opts.APIProbeInterval, max(time.Second, opts.APIProbeInterval))
	if err != nil {
		return err
	}
	pctx, stopProbe := context.WithCancel(ctx)
	defer stopProbe()
	go probe.run(pctx, log.With("component", "api-probe"))
	h := &health{probe: probe}
	if opts.HealthAddr != "0" && opts.HealthAddr != "" {
		done, err := h.serve(pctx, opts.HealthAddr, log)
		if err != nil {
			return err
		}
		defer func() { stopProbe(); <-done }()
	}

	log.Info("starting controller", "namespace", opts.Namespace, "lbClass", opts.LBClass, "workers", opts.Workers, "leaderElect", opts.LeaderElect, "webhooks", !opts.Webhook.Disable)
	for n := 0; ; n++ {
		if n > 0 {
			// Names of controllers are process-wide in controller-runtime;
			// the next manager registers the same ones.
			opts.SkipNameValidation = true
		}
		if err := probe.waitReachable(ctx); err != nil {
			return nil
		}
		err := runManager(ctx, cfg, opts, scheme, m, probe, h, log)
		if ctx.Err() != nil {
			return err
		}
		var perm permanentError
		if errors.As(err, &perm) {
			return err
		}
		log.Warn("the manager stopped; a new one starts when the API server answers", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(opts.RetryPeriod):
		}
	}
}

// permanentError is a set-up error that no retry can fix (a bad option).
type permanentError struct{ error }

func (e permanentError) Unwrap() error { return e.error }

// runManager runs one controller-runtime manager until ctx ends, the API
// server has not answered for opts.APIOutage, or the manager ends by itself
// (a leader that lost its lease).
func runManager(ctx context.Context, baseCfg *rest.Config, opts Options, scheme *runtime.Scheme, m *metrics, probe *apiProbe, h *health, log *slog.Logger) error {
	// Connections of this manager only, closed when it stops: the next
	// one dials afresh rather than inherit one a network cut left hanging
	// (client-go shares transports between clients of the same config).
	cfg := rest.CopyConfig(baseCfg)
	dialer := connrotation.NewDialer((&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext)
	cfg.Dial = dialer.DialContext
	defer dialer.CloseAll()

	mctx, stop := context.WithCancel(ctx)
	defer stop()
	outage := make(chan bool, 1)
	go func() { outage <- stopOnOutage(mctx, probe, opts.APIOutage, func() { stop(); dialer.CloseAll() }, log) }()

	mh := &managerHealth{checks: map[string]healthz.Checker{}}
	h.current.Store(mh)
	defer h.current.CompareAndSwap(mh, nil)

	mgr, err := manager.New(cfg, manager.Options{
		Scheme: scheme,
		Logger: logr.FromSlogHandler(log.Handler()),
		Cache: cache.Options{
			DefaultTransform: kubeobj.Trim,
			ByObject:         kubeobj.InNamespace(opts.Namespace, &v1beta1.ConfigurationState{}),
		},
		Metrics: opts.MetricsAuth.ServerOptions(opts.MetricsAddr),
		// Health probes are served by Run for the life of the process.
		HealthProbeBindAddress:        "0",
		PprofBindAddress:              opts.PprofAddr,
		LeaderElection:                opts.LeaderElect,
		LeaderElectionID:              LeaseName,
		LeaderElectionNamespace:       opts.Namespace,
		LeaderElectionReleaseOnCancel: true,
		LeaseDuration:                 &opts.LeaseDuration,
		RenewDeadline:                 &opts.RenewDeadline,
		RetryPeriod:                   &opts.RetryPeriod,
		// The classic queue: the priority queue keeps per-item maps sized for
		// the largest backlog ever seen, megabytes at 10,000 Services, and its
		// priorities buy nothing when every Service is equally urgent.
		Controller: ctrlconfig.Controller{SkipNameValidation: &opts.SkipNameValidation, UsePriorityQueue: new(false)},
	})
	if err != nil {
		return fmt.Errorf("creating manager: %w", err)
	}
	if err := mgr.Add(servingSignal{mh: mh}); err != nil {
		return fmt.Errorf("adding the serving signal: %w", err)
	}
	// Every replica serves the webhooks; only the leader rotates their
	// certificate.
	if err := webhook.Setup(checkRecorder{Manager: mgr, mh: mh}, cfg, opts.Namespace, opts.Webhook, log); err != nil {
		return permanentError{fmt.Errorf("setting up webhooks: %w", err)}
	}

	// Services are not in controller-runtime's cache: a dedicated informer
	// keeps a compact view of each (see serviceView).
	services, err := newServiceInformer(cfg)
	if err != nil {
		return err
	}
	if err := mgr.Add(services); err != nil {
		return fmt.Errorf("adding service informer: %w", err)
	}

	st := newState()
	events := recorder{rec: kubeobj.BoundedRecorder(mgr.GetEventRecorder("keeperlb-controller"))}
	cs := &configSync{client: mgr.GetClient(), namespace: opts.Namespace, state: st, events: events, metrics: m.client, log: log.With("component", "config")}
	svcRec := &serviceReconciler{client: mgr.GetClient(), services: services, state: st, lbClass: opts.LBClass, events: events, metrics: m, log: log.With("component", "service")}

	if opts.MemberlistSecret != "" {
		if err := mgr.Add(&memberlistKey{client: mgr.GetClient(), namespace: opts.Namespace, name: opts.MemberlistSecret, log: log.With("component", "memberlist")}); err != nil {
			return fmt.Errorf("adding the memberlist key: %w", err)
		}
	}
	if pod, ok := podOwner(opts.PodName, opts.PodUID); ok && opts.LeaderElect {
		if err := mgr.Add(&leaseOwner{reader: mgr.GetAPIReader(), client: mgr.GetClient(), namespace: opts.Namespace, pod: pod, log: log.With("component", "lease-owner")}); err != nil {
			return fmt.Errorf("adding the lease owner: %w", err)
		}
	}
	if err := mgr.Add(&bootstrap{client: mgr.GetClient(), cache: mgr.GetCache(), services: services, config: cs, state: st, metrics: m.client, lbClass: opts.LBClass, log: log.With("component", "bootstrap")}); err != nil {
		return fmt.Errorf("adding bootstrap: %w", err)
	}
	if err := mgr.Add(&poolStatus{client: mgr.GetClient(), namespace: opts.Namespace, state: st, metrics: m, interval: opts.PoolStatusInterval, log: log.With("component", "pool-status")}); err != nil {
		return fmt.Errorf("adding pool status writer: %w", err)
	}

	err = ctrl.NewControllerManagedBy(mgr).
		Named("service").
		WatchesRawSource(source.Func(services.enqueue)).
		Watches(&corev1.Namespace{}, handler.EnqueueRequestsFromMapFunc(services.requestsInNamespace),
			builder.WithPredicates(predicate.LabelChangedPredicate{})).
		WatchesRawSource(source.Func(func(_ context.Context, q ctrlQueue) error {
			st.setQueue(q)
			return nil
		})).
		WithOptions(ctrlcontroller.Options{MaxConcurrentReconciles: opts.Workers, NewQueue: unmeteredQueue}).
		Complete(m.client.Counting(svcRec))
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
	if err := b.Complete(m.client.Counting(cs)); err != nil {
		return fmt.Errorf("creating config controller: %w", err)
	}

	err = mgr.Start(mctx)
	stop()
	if <-outage {
		return fmt.Errorf("the API server did not answer for %s", opts.APIOutage)
	}
	if err != nil {
		return fmt.Errorf("running manager: %w", err)
	}
	if ctx.Err() == nil {
		return errors.New("the manager stopped")
	}
	return nil
}

// unmeteredQueue builds the Service queue without client-go's workqueue
// metrics: their per-item timestamp maps grow to the largest backlog ever
// seen and never shrink, megabytes at 10,000 Services. The waiting-Services
// gauge and the pool metrics say what an operator needs instead.
func unmeteredQueue(_ string, rl workqueue.TypedRateLimiter[reconcile.Request]) ctrlQueue {
	return workqueue.NewTypedRateLimitingQueueWithConfig(rl, workqueue.TypedRateLimitingQueueConfig[reconcile.Request]{})
}
