// Package webhook is KeeperLB's admission and conversion webhooks, served by
// the controller:
//
//   - validation of every metallb.io configuration kind, by config.Parse
//     over the namespace's whole configuration as it would be after the
//     change (Review), the same function the reconcilers load it with;
//   - conversion of BGPPeers between v1beta1 and v1beta2 (PeerToV1beta1,
//     PeerToV1beta2);
//   - the TLS certificate they are served with: generated and rotated by
//     the leader, stored in a Secret, served by every replica, its CA
//     injected into the ValidatingWebhookConfiguration and the BGPPeer CRD.
package webhook

import (
	"crypto/tls"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/go-logr/logr"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/flowcontrol"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// ConvertPath is where the BGPPeer conversion webhook is served.
const ConvertPath = "/convert"

// Endpoint is one validating webhook: what it reviews and where.
type Endpoint struct {
	// Name is the webhook's name in the ValidatingWebhookConfiguration.
	Name string
	// Path is the URL path it is served at.
	Path string
	// Resource is the metallb.io resource (plural) it reviews.
	Resource string
	// Version is the API version it reviews.
	Version string
	// Delete says whether deletions are reviewed too: only for kinds other
	// objects refer to in a way the configuration cannot do without (a
	// peer's bfdProfile, an advertisement's community alias). Reviewing
	// every deletion would make uninstalling depend on the webhook.
	Delete bool
}

// Endpoints lists the validating webhooks, in a fixed order.
func Endpoints() []Endpoint {
	return []Endpoint{
		{Name: "ipaddresspoolvalidationwebhook.metallb.io", Path: "/validate-metallb-io-v1beta1-ipaddresspool", Resource: "ipaddresspools", Version: "v1beta1"},
		{Name: "l2advertisementvalidationwebhook.metallb.io", Path: "/validate-metallb-io-v1beta1-l2advertisement", Resource: "l2advertisements", Version: "v1beta1"},
		{Name: "bgpadvertisementvalidationwebhook.metallb.io", Path: "/validate-metallb-io-v1beta1-bgpadvertisement", Resource: "bgpadvertisements", Version: "v1beta1"},
		{Name: "communityvalidationwebhook.metallb.io", Path: "/validate-metallb-io-v1beta1-community", Resource: "communities", Version: "v1beta1", Delete: true},
		{Name: "bfdprofilevalidationwebhook.metallb.io", Path: "/validate-metallb-io-v1beta1-bfdprofile", Resource: "bfdprofiles", Version: "v1beta1", Delete: true},
		{Name: "bgppeervalidationwebhook.metallb.io", Path: "/validate-metallb-io-v1beta1-bgppeer", Resource: "bgppeers", Version: "v1beta1"},
		{Name: "bgppeerv1beta2validationwebhook.metallb.io", Path: "/validate-metallb-io-v1beta2-bgppeer", Resource: "bgppeers", Version: "v1beta2"},
	}
}

// ValidatingWebhooks returns the webhooks of the
// ValidatingWebhookConfiguration, with clientConfig(path) saying where each
// is reached. Each reviews one version exactly (matchPolicy Exact): a
// BGPPeer written as v1beta1 is reviewed once, by the v1beta1 webhook, not
// again converted to v1beta2. The manifests declare the same webhooks.
func ValidatingWebhooks(clientConfig func(path string) admissionregistrationv1.WebhookClientConfig) []admissionregistrationv1.ValidatingWebhook {
	fail := admissionregistrationv1.Fail
	exact := admissionregistrationv1.Exact
	none := admissionregistrationv1.SideEffectClassNone
	var out []admissionregistrationv1.ValidatingWebhook
	for _, e := range Endpoints() {
		ops := []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update}
		if e.Delete {
			ops = append(ops, admissionregistrationv1.Delete)
		}
		out = append(out, admissionregistrationv1.ValidatingWebhook{
			Name:                    e.Name,
			ClientConfig:            clientConfig(e.Path),
			FailurePolicy:           &fail,
			MatchPolicy:             &exact,
			SideEffects:             &none,
			AdmissionReviewVersions: []string{"v1"},
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: ops,
				Rule: admissionregistrationv1.Rule{
					APIGroups:   []string{"metallb.io"},
					APIVersions: []string{e.Version},
					Resources:   []string{e.Resource},
				},
			}},
		})
	}
	return out
}

// Options configures the webhooks.
type Options struct {
	// Disable turns the webhooks off: no server, no certificate.
	Disable bool
	// Host is the address the server binds; empty means every address.
	Host string
	// Port is the server's port.
	Port int
	// CertDir is where the serving certificate is written and read from.
	CertDir string
	// ServiceName is the Service in front of the webhook; the certificate
	// is issued for its DNS names.
	ServiceName string
	// SecretName is the Secret holding the certificate.
	SecretName string
	// ConfigurationName is the ValidatingWebhookConfiguration to inject
	// the CA bundle into.
	ConfigurationName string
	// CertValidity is the lifetime of each certificate; it is renewed
	// when a third of it is left.
	CertValidity time.Duration
	// CertCheckInterval is the longest time between two checks of the
	// certificate and of the injected CA bundles.
	CertCheckInterval time.Duration
	// ExtraSANs are more names or IP addresses for the certificate, for
	// setups that reach the webhook other than through the Service.
	ExtraSANs []string
}

// DefaultOptions returns the options used when no flag is given.
func DefaultOptions() Options {
	return Options{
		Port:              9443,
		CertDir:           "/tmp/k8s-webhook-server/serving-certs",
		ServiceName:       "keeperlb-webhook-service",
		SecretName:        "keeperlb-webhook-server-cert",
		ConfigurationName: "keeperlb-webhook-configuration",
		CertValidity:      365 * 24 * time.Hour,
		CertCheckInterval: time.Minute,
	}
}

// BindFlags registers the options as command-line flags, with o's values as
// defaults.
func (o *Options) BindFlags(fs *flag.FlagSet) {
	fs.BoolVar(&o.Disable, "disable-webhook", o.Disable, "serve no admission or conversion webhook")
	fs.StringVar(&o.Host, "webhook-host", o.Host, "address the webhook server binds (empty: all)")
	fs.IntVar(&o.Port, "webhook-port", o.Port, "port of the webhook server")
	fs.StringVar(&o.CertDir, "webhook-cert-dir", o.CertDir, "directory the webhook serving certificate is written to and served from")
	fs.StringVar(&o.ServiceName, "webhook-service-name", o.ServiceName, "Service in front of the webhook, in the install namespace; the certificate is issued for its names")
	fs.StringVar(&o.SecretName, "webhook-secret-name", o.SecretName, "Secret, in the install namespace, holding the webhook certificate")
	fs.StringVar(&o.ConfigurationName, "webhook-configuration-name", o.ConfigurationName, "ValidatingWebhookConfiguration that gets the CA bundle")
	fs.DurationVar(&o.CertValidity, "webhook-cert-validity", o.CertValidity, "lifetime of a webhook certificate; renewed when a third is left")
	fs.DurationVar(&o.CertCheckInterval, "webhook-cert-check-interval", o.CertCheckInterval, "longest time between two checks of the certificate and the injected CA bundles")
	fs.Func("webhook-cert-extra-sans", "comma-separated extra DNS names or IP addresses for the webhook certificate", func(s string) error {
		for _, n := range strings.Split(s, ",") {
			if n = strings.TrimSpace(n); n != "" {
				o.ExtraSANs = append(o.ExtraSANs, n)
			}
		}
		return nil
	})
}

// Identity returns what the certificate must be valid for: the Service's
// names in namespace, then the extra names.
func (o Options) Identity(namespace string) Identity {
	svc := o.ServiceName + "." + namespace
	id := Identity{DNSNames: []string{svc + ".svc", svc + ".svc.cluster.local", svc, o.ServiceName}}
	for _, n := range o.ExtraSANs {
		if ip := net.ParseIP(n); ip != nil {
			id.IPs = append(id.IPs, ip)
		} else {
			id.DNSNames = append(id.DNSNames, n)
		}
	}
	return id
}

// validate reports options that cannot work.
func (o Options) validate() error {
	switch {
	case o.Port < 1 || o.Port > 65535:
		return fmt.Errorf("--webhook-port %d is not a TCP port", o.Port)
	case o.CertDir == "":
		return fmt.Errorf("--webhook-cert-dir is empty")
	case o.ServiceName == "" || o.SecretName == "" || o.ConfigurationName == "":
		return fmt.Errorf("--webhook-service-name, --webhook-secret-name and --webhook-configuration-name must be set")
	case o.CertValidity <= 0:
		return fmt.Errorf("--webhook-cert-validity %s must be positive", o.CertValidity)
	case o.CertCheckInterval <= 0:
		return fmt.Errorf("--webhook-cert-check-interval %s must be positive", o.CertCheckInterval)
	}
	return nil
}

// Setup adds the webhook server, the certificate sync (every replica) and
// the certificate rotator (leader only) to mgr. namespace is the install
// namespace. Nothing is added when o.Disable is set.
func Setup(mgr manager.Manager, cfg *rest.Config, namespace string, o Options, log *slog.Logger) error {
	if o.Disable {
		log.Info("webhooks disabled")
		return nil
	}
	if err := o.validate(); err != nil {
		return err
	}
	direct, err := directClient(cfg)
	if err != nil {
		return err
	}
	reloader := &certReloader{dir: o.CertDir, every: time.Second, now: time.Now}
	srv := crwebhook.NewServer(crwebhook.Options{
		Host: o.Host,
		Port: o.Port,
		TLSOpts: []func(*tls.Config){func(c *tls.Config) {
			c.GetCertificate = reloader.GetCertificate
			c.MinVersion = tls.VersionTLS12
			// HTTP/1.1 only: the API server needs nothing more, and
			// HTTP/2's streams and its history of resource-exhaustion
			// bugs would be open to every pod that reaches the port.
			c.NextProtos = []string{"http/1.1"}
		}},
	})
	reader, err := reviewReader(cfg, mgr.GetScheme())
	if err != nil {
		return err
	}
	v := &validator{reader: reader, namespace: namespace, log: log.With("component", "webhook")}
	lr := logr.FromSlogHandler(log.Handler())
	slots := make(chan struct{}, maxConcurrentReviews)
	for _, e := range Endpoints() {
		srv.Register(e.Path, bounded(slots, &admission.Webhook{
			Handler:        v,
			LogConstructor: func(logr.Logger, *admission.Request) logr.Logger { return lr.WithName("admission") },
		}))
	}
	srv.Register(ConvertPath, bounded(slots, conversionHandler{log: log.With("component", "conversion")}))
	if err := mgr.Add(srv); err != nil {
		return fmt.Errorf("adding the webhook server: %w", err)
	}
	if err := mgr.AddReadyzCheck("webhook-certificate", reloader.Ready); err != nil {
		return fmt.Errorf("adding the webhook certificate check: %w", err)
	}
	syncer := &certSync{
		reader: mgr.GetClient(), namespace: namespace, secret: o.SecretName,
		reloader: reloader, every: time.Second, log: log.With("component", "webhook-cert"),
	}
	if err := mgr.Add(syncer); err != nil {
		return fmt.Errorf("adding the webhook certificate sync: %w", err)
	}
	rot := &rotator{
		client: direct, namespace: namespace, secret: o.SecretName, vwc: o.ConfigurationName, crd: BGPPeerCRD,
		id: o.Identity(namespace), validity: o.CertValidity, interval: o.CertCheckInterval, now: time.Now,
		log: log.With("component", "webhook-cert-rotator"),
	}
	if err := mgr.Add(rot); err != nil {
		return fmt.Errorf("adding the webhook certificate rotator: %w", err)
	}
	log.Info("serving webhooks", "host", o.Host, "port", o.Port, "certDir", o.CertDir, "secret", namespace+"/"+o.SecretName)
	return nil
}

// Any pod can reach the webhook port, so what one request may cost is
// bounded: maxConcurrentReviews are served at once (the others wait for a
// slot, up to maxReviewWait, then get 503), each body is at most
// maxReviewBytes, and so the API reads that reviews make are bounded too.
const (
	maxConcurrentReviews = 4
	maxReviewWait        = 10 * time.Second
)

// bounded serves h only while it holds one of slots.
func bounded(slots chan struct{}, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t := time.NewTimer(maxReviewWait)
		defer t.Stop()
		select {
		case slots <- struct{}{}:
		case <-r.Context().Done():
			return
		case <-t.C:
			http.Error(w, "too many reviews at once", http.StatusServiceUnavailable)
			return
		}
		defer func() { <-slots }()
		h.ServeHTTP(w, r)
	})
}

// Reviews read through their own client with a fixed request rate, apart
// from the controller's (which may run unlimited, --kube-api-qps): anyone
// who reaches the port can send reviews, and whatever they send, what the
// API server gets from them stays under reviewQPS. A kubectl apply of a
// whole configuration (tens of objects, a few reads each) fits the burst.
const (
	reviewQPS   = 50
	reviewBurst = 200
)

// reviewReader builds the uncached, rate-limited client reviews read with.
func reviewReader(cfg *rest.Config, scheme *runtime.Scheme) (client.Reader, error) {
	rc := rest.CopyConfig(cfg)
	// One bucket for the whole client: given only QPS and Burst, each
	// kind's REST client would get a bucket of its own, and the bound
	// would grow with the number of kinds a review reads.
	rc.RateLimiter = flowcontrol.NewTokenBucketRateLimiter(reviewQPS, reviewBurst)
	rc.UserAgent = "keeperlb-controller-webhook"
	c, err := client.New(rc, client.Options{Scheme: scheme})
	if err != nil {
		return nil, fmt.Errorf("building the webhook's review client: %w", err)
	}
	return c, nil
}

// directClient builds an uncached client for the objects the rotator
// reads: cluster-scoped ones the manager's cache does not hold, and the
// Secret, read fresh before each write.
func directClient(cfg *rest.Config) (client.Client, error) {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		return nil, fmt.Errorf("building the webhook scheme: %w", err)
	}
	if err := apiextensionsv1.AddToScheme(s); err != nil {
		return nil, fmt.Errorf("building the webhook scheme: %w", err)
	}
	c, err := client.New(cfg, client.Options{Scheme: s})
	if err != nil {
		return nil, fmt.Errorf("building the webhook client: %w", err)
	}
	return c, nil
}
