// Package speaker is KeeperLB's speaker, the DaemonSet process on every node
// that makes the outside network send a Service IP's traffic to the cluster.
//
// It is an adapter: package election decides who announces what over layer
// 2, package membership says which speakers are alive, package layer2
// answers ARP and NDP, and package bgp plans and runs this node's BGP
// sessions and routes. What lives here is watching the cluster, feeding
// those packages and reporting (ServiceL2Status, ServiceBGPStatus,
// BGPSessionState and ConfigurationState objects, Events, metrics).
package speaker

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/flowcontrol"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/config"
	ctrlcontroller "sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/keeperlb/keeperlb/api/v1beta1"
	"github.com/keeperlb/keeperlb/api/v1beta2"
	"github.com/keeperlb/keeperlb/internal/bgp"
	"github.com/keeperlb/keeperlb/internal/kubeobj"
	"github.com/keeperlb/keeperlb/internal/layer2"
	"github.com/keeperlb/keeperlb/internal/membership"
	"github.com/keeperlb/keeperlb/internal/metricsauth"
)

// MemberKeyEnv names the environment variable holding the key that
// authenticates liveness heartbeats. It is MetalLB's name for its memberlist
// secret, so an existing DaemonSet spec keeps working.
const MemberKeyEnv = "METALLB_ML_SECRET_KEY"

// MemberSecondaryKeyEnv names the variable holding a second heartbeat key,
// accepted but never used to sign: rotating the key sets the new one here
// on every speaker, then swaps the two variables, then removes this one,
// one rollout each, and the speakers understand each other throughout.
const MemberSecondaryKeyEnv = "KEEPERLB_ML_SECRET_KEY_SECONDARY"

// Options configures the speaker.
type Options struct {
	// NodeName is this node's name; the speaker's identity.
	NodeName string
	// Namespace is the install namespace, where configuration objects and
	// ServiceL2Status objects live.
	Namespace string
	// LBClass selects Services by spec.loadBalancerClass, as the
	// controller's flag does.
	LBClass string
	// MetricsAddr and HealthAddr are the listen addresses of the Prometheus
	// and health endpoints; "0" disables one.
	MetricsAddr, HealthAddr string
	// MetricsAuth says whether the metrics endpoint is HTTPS with
	// authorization.
	MetricsAuth metricsauth.Options
	// Liveness configures the heartbeats; Node is filled from NodeName.
	Liveness membership.Options
	// Layer2 configures the ARP/NDP announcer.
	Layer2 layer2.Options
	// Registry receives the metrics; nil means controller-runtime's
	// registry, which the metrics server exposes.
	Registry prometheus.Registerer
	// QPS and Burst are the client-side limit on API requests, one token
	// bucket for the whole process (status writes, Events, informers);
	// QPS < 0 turns it off and leaves flow control to the API server, 0
	// means DefaultQPS and DefaultBurst.
	// client-go's default (5/s, burst 10, per resource) made a failover
	// of a few hundred Services take minutes to show in ServiceL2Status.
	QPS   float32
	Burst int
	// SkipNameValidation allows several speakers in one process (tests).
	SkipNameValidation bool
}

// Default client-side API limit of the speaker: a failover that moves
// about 160 Services to one node (3 requests each, and an Event) goes out
// within the burst; beyond it, 50 requests a second per speaker. In steady
// state a speaker writes nothing.
const (
	DefaultQPS   = 50
	DefaultBurst = 500
)

// DefaultOptions returns the options used when no flag is given.
func DefaultOptions() Options {
	node := os.Getenv("NODE_NAME")
	if node == "" {
		node = os.Getenv("METALLB_NODE_NAME")
	}
	return Options{
		NodeName:    node,
		Namespace:   "metallb-system",
		MetricsAddr: ":7472",
		MetricsAuth: metricsauth.DefaultOptions(),
		HealthAddr:  ":7473",
		Liveness:    membership.DefaultOptions(node),
		Layer2:      layer2.Options{},
		QPS:         DefaultQPS,
		Burst:       DefaultBurst,
	}
}

// BindFlags registers the options as command-line flags.
func (o *Options) BindFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.NodeName, "node-name", o.NodeName, "this node's name (default $NODE_NAME, else $METALLB_NODE_NAME)")
	fs.StringVar(&o.Namespace, "namespace", o.Namespace, "install namespace: configuration and status objects live there")
	fs.StringVar(&o.LBClass, "lb-class", o.LBClass, "announce only Services with this spec.loadBalancerClass (empty: Services without a class)")
	fs.StringVar(&o.MetricsAddr, "metrics-bind-address", o.MetricsAddr, "address of the Prometheus endpoint (0 disables)")
	o.MetricsAuth.BindFlags(fs)
	fs.StringVar(&o.HealthAddr, "health-probe-bind-address", o.HealthAddr, "address of /healthz and /readyz (0 disables)")
	fs.IntVar(&o.Liveness.Port, "liveness-port", o.Liveness.Port, "UDP port of the speakers' heartbeats")
	fs.DurationVar(&o.Liveness.Interval, "liveness-interval", o.Liveness.Interval, "time between two heartbeats to each speaker")
	fs.DurationVar(&o.Liveness.Timeout, "liveness-timeout", o.Liveness.Timeout, "silence after which a speaker counts as dead; failover takes about this long")
	qps := float64(o.QPS)
	fs.Func("kube-api-qps", fmt.Sprintf("client-side API request rate limit of the whole process; negative disables it (default %v)", o.QPS), func(s string) error {
		_, err := fmt.Sscan(s, &qps)
		o.QPS = float32(qps)
		return err
	})
	fs.IntVar(&o.Burst, "kube-api-burst", o.Burst, "client-side API request burst (with --kube-api-qps > 0)")
	fs.DurationVar(&o.Liveness.SettleMax, "liveness-settle-max", o.Liveness.SettleMax, "longest a starting speaker waits for a known peer to speak, then to be ready (0: ten liveness timeouts)")
}

// NewScheme returns a scheme holding the core kinds and every metallb.io kind.
func NewScheme() (*runtime.Scheme, error) { return kubeobj.NewScheme() }

// The speaker's permissions; `make generate` turns them into
// config/rbac/speaker.
//
// +kubebuilder:rbac:groups="",resources=services;nodes;namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups=discovery.k8s.io,resources=endpointslices,verbs=get;list;watch
// +kubebuilder:rbac:groups="";events.k8s.io,resources=events,verbs=create;patch;update
// +kubebuilder:rbac:groups=metallb.io,resources=ipaddresspools;l2advertisements;bgpadvertisements;bgppeers;bfdprofiles;communities,verbs=get;list;watch
// +kubebuilder:rbac:groups=metallb.io,resources=servicel2statuses;servicebgpstatuses;bgpsessionstates,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=metallb.io,resources=servicel2statuses/status;servicebgpstatuses/status;bgpsessionstates/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=metallb.io,resources=configurationstates,verbs=get;list;watch;create
// +kubebuilder:rbac:groups=metallb.io,resources=configurationstates/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",namespace=metallb-system,resources=secrets,verbs=get;list;watch
// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create

// Run runs the speaker until ctx ends. It changes no process-wide state:
// that is SetUpProcess's, in the main.
func Run(ctx context.Context, restCfg *rest.Config, opts Options, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.NodeName == "" {
		return fmt.Errorf("the node name is not set: pass --node-name or set $NODE_NAME (in a DaemonSet, from fieldRef spec.nodeName)")
	}
	lopts := opts.Liveness
	lopts.Node = opts.NodeName
	if lopts.Key == nil {
		lopts.Key = []byte(os.Getenv(MemberKeyEnv))
	}
	if lopts.SecondaryKey == nil {
		lopts.SecondaryKey = []byte(os.Getenv(MemberSecondaryKeyEnv))
	}
	if len(lopts.Key) < membership.MinKeyLen {
		// Before anything else: a speaker with a forgeable key must not
		// run at all.
		return fmt.Errorf("the heartbeat key ($%s, the memberlist secret) has %d bytes; set it to at least %d random bytes, the same on every speaker, so that nobody on the node network can forge speaker liveness",
			MemberKeyEnv, len(lopts.Key), membership.MinKeyLen)
	}
	log = log.With("node", opts.NodeName)
	lr := logr.FromSlogHandler(log.Handler())

	cfg := rest.CopyConfig(restCfg)
	cfg.UserAgent = "keeperlb-speaker"
	if opts.QPS == 0 {
		opts.QPS, opts.Burst = DefaultQPS, DefaultBurst
	}
	cfg.QPS, cfg.Burst, cfg.RateLimiter = opts.QPS, opts.Burst, nil
	if opts.QPS > 0 {
		// One bucket for every client built from cfg (status writes,
		// Events, informers): given only QPS and Burst, client-go gives
		// each resource's client a bucket of its own.
		cfg.RateLimiter = flowcontrol.NewTokenBucketRateLimiter(opts.QPS, max(opts.Burst, 1))
	}
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

	if err := waitForAPIServer(ctx, cfg, opts.HealthAddr, time.Second, log); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	mgr, err := manager.New(cfg, manager.Options{
		Scheme: scheme,
		Logger: lr,
		Cache: cache.Options{
			DefaultTransform: kubeobj.Trim,
			ByObject: kubeobj.InNamespace(opts.Namespace, &v1beta1.ServiceL2Status{}, &v1beta1.ServiceBGPStatus{},
				&v1beta1.BGPSessionState{}, &v1beta1.ConfigurationState{}),
		},
		Metrics:                opts.MetricsAuth.ServerOptions(opts.MetricsAddr),
		HealthProbeBindAddress: opts.HealthAddr,
		Controller:             ctrlconfig.Controller{SkipNameValidation: &opts.SkipNameValidation},
	})
	if err != nil {
		return fmt.Errorf("creating manager: %w", err)
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return fmt.Errorf("adding health check: %w", err)
	}

	det, err := membership.New(log.With("component", "membership"), lopts)
	if err != nil {
		return err
	}
	if err := registerMembershipMetrics(reg, det); err != nil {
		det.Close()
		return err
	}
	if err := mgr.Add(manager.RunnableFunc(det.Run)); err != nil {
		det.Close()
		return fmt.Errorf("adding membership: %w", err)
	}
	ann, err := layer2.New(log.With("component", "layer2"), reg, opts.Layer2)
	if err != nil {
		return fmt.Errorf("starting the layer 2 announcer: %w", err)
	}
	defer ann.Close()
	if err := mgr.AddReadyzCheck("membership", func(*http.Request) error {
		if !det.Ready() {
			return errors.New("still learning which speakers are alive")
		}
		return nil
	}); err != nil {
		return fmt.Errorf("adding ready check: %w", err)
	}

	// Session changes come from GoBGP's goroutines: each becomes an Event
	// on the BGPPeer and a pass, which rewrites BGPSessionState.
	rec := kubeobj.BoundedRecorder(mgr.GetEventRecorder("keeperlb-speaker"))
	sessionChanged := make(chan struct{}, 1)
	engine, err := bgp.New(log.With("component", "bgp"), reg, bgp.Options{
		OnSessionChange: func(s bgp.SessionState) {
			sessionEvent(rec, opts.Namespace, opts.NodeName, s)
			select {
			case sessionChanged <- struct{}{}:
			default:
			}
		},
	})
	if err != nil {
		return fmt.Errorf("starting the BGP engine: %w", err)
	}
	// Close shuts sessions down; with graceful restart negotiated the
	// routers keep the routes while the speaker restarts.
	defer engine.Close()

	status := newStatusWriter(mgr.GetClient(), opts.Namespace, opts.NodeName, log.With("component", "status"))
	status.observe = m.observeStatusWrite
	status.api.live = mgr.GetAPIReader()
	status.api.count = m.countStatusRequest
	if err := registerStatusMetrics(reg, status); err != nil {
		return err
	}
	if err := mgr.Add(manager.RunnableFunc(status.Run)); err != nil {
		return fmt.Errorf("adding the status writer: %w", err)
	}
	r := &reconciler{
		client:     mgr.GetClient(),
		status:     status,
		namespace:  opts.Namespace,
		node:       opts.NodeName,
		lbClass:    opts.LBClass,
		live:       det,
		settle:     lopts.Timeout,
		l2:         ann,
		bgp:        engine,
		interfaces: layer2.SystemInterfaces,
		metrics:    m,
		events:     rec,
		log:        log.With("component", "speaker"),
	}
	all := handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request {
		return []reconcile.Request{{}}
	})
	b := ctrl.NewControllerManagedBy(mgr).Named("speaker").
		WithOptions(ctrlcontroller.Options{MaxConcurrentReconciles: 1}).
		WatchesRawSource(source.Func(func(ctx context.Context, q ctrlQueue) error {
			go func() {
				for {
					select {
					case <-ctx.Done():
						return
					case <-det.Changes():
						q.Add(reconcile.Request{})
					case <-sessionChanged:
						q.Add(reconcile.Request{})
					}
				}
			}()
			return nil
		}))
	for _, obj := range []client.Object{
		&corev1.Service{}, &discoveryv1.EndpointSlice{}, &corev1.Node{}, &corev1.Secret{},
		&v1beta1.IPAddressPool{}, &v1beta1.L2Advertisement{}, &v1beta1.BGPAdvertisement{},
		&v1beta2.BGPPeer{}, &v1beta1.BFDProfile{}, &v1beta1.Community{},
	} {
		b = b.Watches(obj, all)
	}
	// A deleted ServiceL2Status takes a pass, whose snapshot makes the
	// status writer restore it. Creates and updates are mostly the
	// writers' own, on every node: a pass for each would recompute every
	// Service once per status write while hundreds are being written.
	b = b.Watches(&v1beta1.ServiceL2Status{}, all, builder.WithPredicates(predicate.Funcs{
		CreateFunc:  func(event.CreateEvent) bool { return false },
		UpdateFunc:  func(event.UpdateEvent) bool { return false },
		DeleteFunc:  func(event.DeleteEvent) bool { return true },
		GenericFunc: func(event.GenericEvent) bool { return false },
	}))
	if err := b.Complete(m.client.Counting(r)); err != nil {
		return fmt.Errorf("creating speaker controller: %w", err)
	}

	log.Info("starting speaker", "namespace", opts.Namespace, "lbClass", opts.LBClass,
		"livenessPort", lopts.Port, "livenessTimeout", lopts.Timeout)
	if err := mgr.Start(ctx); err != nil {
		return fmt.Errorf("running manager: %w", err)
	}
	return nil
}

// ctrlQueue is the queue type controller-runtime hands to raw sources.
type ctrlQueue = workqueue.TypedRateLimitingInterface[reconcile.Request]
