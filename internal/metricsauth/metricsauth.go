// Package metricsauth serves the controller's and the speakers' Prometheus
// endpoints the way the API server guards its own: over TLS, to callers
// whose bearer token the API server authenticates (TokenReview) and whose
// identity may get the /metrics path (SubjectAccessReview).
//
// The endpoint sits on every node's host network and names Services, IPs
// and routers, so plain HTTP is an opt-in (--metrics-secure=false) for labs
// and for clusters that scrape through a proxy of their own.
package metricsauth

import (
	"crypto/tls"
	"flag"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apiserver/pkg/apis/apiserver"
	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authentication/authenticatorfactory"
	"k8s.io/apiserver/pkg/authorization/authorizer"
	"k8s.io/apiserver/pkg/authorization/authorizerfactory"
	authenticationv1 "k8s.io/client-go/kubernetes/typed/authentication/v1"
	authorizationv1 "k8s.io/client-go/kubernetes/typed/authorization/v1"
	"k8s.io/client-go/rest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

// ReaderRole is the ClusterRole that lets a ServiceAccount scrape the
// metrics (get on the non-resource URL /metrics); the install ships it
// and binds nothing to it: whoever runs Prometheus binds its account.
const ReaderRole = "keeperlb-metrics-reader"

// Options says how the metrics endpoint is served.
type Options struct {
	// Secure serves HTTPS with authentication and authorization; false
	// serves plain HTTP to anyone who can reach the port.
	Secure bool
	// CertDir holds tls.crt and tls.key (reloaded when they change); when
	// empty or missing them, a self-signed certificate is made at start,
	// which encrypts but proves nothing to the scraper.
	CertDir string
}

// DefaultOptions serves securely with a self-signed certificate.
func DefaultOptions() Options { return Options{Secure: true} }

// BindFlags registers the options as command-line flags.
func (o *Options) BindFlags(fs *flag.FlagSet) {
	fs.BoolVar(&o.Secure, "metrics-secure", o.Secure, "serve metrics over HTTPS to callers with a bearer token allowed to get /metrics (TokenReview and SubjectAccessReview); false serves plain HTTP to anyone")
	fs.StringVar(&o.CertDir, "metrics-cert-dir", o.CertDir, "directory with tls.crt and tls.key for the metrics endpoint (empty: a self-signed certificate)")
}

// ServerOptions returns the controller-runtime metrics server options for
// the endpoint at addr ("0" disables it).
func (o Options) ServerOptions(addr string) metricsserver.Options {
	so := metricsserver.Options{BindAddress: addr}
	if !o.Secure {
		return so
	}
	so.SecureServing = true
	so.FilterProvider = NewFilter
	so.CertDir = o.CertDir
	so.TLSOpts = []func(*tls.Config){tlsPolicy}
	return so
}

// tlsPolicy turns HTTP/2 off: a scrape is one small request, and HTTP/2's
// stream handling has been the way to exhaust servers (CVE-2023-44487), so
// an endpoint every pod can reach offers HTTP/1.1 only.
func tlsPolicy(c *tls.Config) {
	c.NextProtos = []string{"http/1.1"}
	c.MinVersion = tls.VersionTLS12
}

// maxChecks bounds the scrapes being authenticated and authorized at once.
// Each costs the API server a TokenReview and a SubjectAccessReview unless
// cached, and a forged token is never cached twice: without a bound, a
// flood of random tokens at the port would be a flood at the API server.
// Prometheus scrapes each endpoint every few seconds at most.
const maxChecks = 4

// checkWait is how long a scrape waits for a check slot before it is told
// to come back later.
const checkWait = time.Second

// NewFilter returns the filter that admits a scrape only with a bearer
// token the API server authenticates and authorizes for the request's
// verb on its path. Every refusal is a 401 or a 403 without details: a
// caller who may not read the metrics learns nothing from them either.
func NewFilter(cfg *rest.Config, hc *http.Client) (metricsserver.Filter, error) {
	authn, err := authenticationv1.NewForConfigAndClient(cfg, hc)
	if err != nil {
		return nil, fmt.Errorf("metrics authentication client: %w", err)
	}
	authz, err := authorizationv1.NewForConfigAndClient(cfg, hc)
	if err != nil {
		return nil, fmt.Errorf("metrics authorization client: %w", err)
	}
	// A short retry: a scrape that cannot be checked soon is better
	// refused than held while the API server is away.
	backoff := &wait.Backoff{Duration: 200 * time.Millisecond, Factor: 2, Jitter: 0.2, Steps: 3}
	a, _, err := authenticatorfactory.DelegatingAuthenticatorConfig{
		Anonymous:                &apiserver.AnonymousAuthConfig{Enabled: false},
		TokenAccessReviewClient:  authn,
		TokenAccessReviewTimeout: 5 * time.Second,
		WebhookRetryBackoff:      backoff,
		CacheTTL:                 time.Minute,
	}.New()
	if err != nil {
		return nil, fmt.Errorf("metrics authenticator: %w", err)
	}
	z, err := authorizerfactory.DelegatingAuthorizerConfig{
		SubjectAccessReviewClient: authz,
		AllowCacheTTL:             5 * time.Minute,
		DenyCacheTTL:              30 * time.Second,
		WebhookRetryBackoff:       backoff,
	}.New()
	if err != nil {
		return nil, fmt.Errorf("metrics authorizer: %w", err)
	}
	return Filter(a, z), nil
}

// Filter guards handlers with a and z; NewFilter builds them on the API
// server's reviews.
func Filter(a authenticator.Request, z authorizer.UnconditionalAuthorizer) metricsserver.Filter {
	slots := make(chan struct{}, maxChecks)
	return func(log logr.Logger, next http.Handler) (http.Handler, error) {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
				// Refused before any API call.
				http.Error(w, "Unauthorized", http.StatusUnauthorized)
				return
			}
			t := time.NewTimer(checkWait)
			select {
			case slots <- struct{}{}:
				t.Stop()
			case <-t.C:
				w.Header().Set("Retry-After", "1")
				http.Error(w, "Too many scrapes being checked", http.StatusTooManyRequests)
				return
			case <-r.Context().Done():
				t.Stop()
				return
			}
			status := check(r, a, z, log)
			<-slots
			if status != http.StatusOK {
				http.Error(w, http.StatusText(status), status)
				return
			}
			next.ServeHTTP(w, r)
		}), nil
	}
}

// check authenticates and authorizes r, returning 200 or the refusal.
func check(r *http.Request, a authenticator.Request, z authorizer.UnconditionalAuthorizer, log logr.Logger) int {
	res, ok, err := a.AuthenticateRequest(r)
	if err != nil || !ok {
		// A rejected token comes back as an error from the TokenReview;
		// either way the caller is not authenticated. Logged quietly:
		// anyone who reaches the port can make this line.
		log.V(1).Info("metrics scrape not authenticated", "remote", r.RemoteAddr, "reason", fmt.Sprint(err))
		return http.StatusUnauthorized
	}
	attrs := authorizer.AttributesRecord{User: res.User, Verb: strings.ToLower(r.Method), Path: r.URL.Path}
	decision, reason, err := z.Authorize(r.Context(), attrs)
	switch {
	case err != nil:
		log.Info("metrics scrape not authorized: the SubjectAccessReview failed", "user", res.User.GetName(), "error", err.Error())
		return http.StatusServiceUnavailable
	case decision != authorizer.DecisionAllow:
		log.V(1).Info("metrics scrape forbidden", "user", res.User.GetName(), "reason", reason)
		return http.StatusForbidden
	}
	return http.StatusOK
}
