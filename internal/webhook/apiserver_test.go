package webhook_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/keeperlb/keeperlb/api/v1beta1"
	"github.com/keeperlb/keeperlb/api/v1beta2"
	"github.com/keeperlb/keeperlb/internal/controller"
	"github.com/keeperlb/keeperlb/internal/controlplane"
	"github.com/keeperlb/keeperlb/internal/webhook"
)

// These tests run the controller, webhooks included, in this process
// against a real kube-apiserver, which calls the webhooks over HTTPS on
// 127.0.0.1 as it would call them through the Service in a cluster. They
// run one after another: the BGPPeer CRD's conversion webhook is
// cluster-wide and each test points it at its own controller.
var (
	cpOnce sync.Once
	cp     *controlplane.ControlPlane
	cpErr  error
	cpDir  string
	seq    atomic.Int64
)

func TestMain(m *testing.M) {
	// The controllers these tests run get the shipped binary's process
	// settings (client-go's WatchListClient off, the GC target), which its
	// main applies and Run does not.
	if err := controller.DefaultProcessOptions().Apply(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	if cp != nil {
		cp.Stop()
	}
	if cpDir != "" {
		os.RemoveAll(cpDir)
	}
	os.Exit(code)
}

// controlPlane returns the shared control plane, failing with a clear
// message when its binaries are missing (skipping only when the caller
// opted out with KEEPERLB_SKIP_LAB=1).
func controlPlane(t *testing.T) *rest.Config {
	t.Helper()
	if os.Getenv("KEEPERLB_SKIP_LAB") == "1" {
		t.Skip("KEEPERLB_SKIP_LAB=1: skipping a test that needs a real kube-apiserver and etcd")
	}
	cpOnce.Do(func() {
		var dir string
		if dir, cpErr = os.MkdirTemp("", "keeperlb-webhook-cp-"); cpErr != nil {
			return
		}
		cpDir = dir
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		if cp, cpErr = controlplane.Start(ctx, controlplane.Options{Dir: dir}); cpErr != nil {
			return
		}
		cpErr = controlplane.InstallCRDs(ctx, cp.Config)
	})
	if cpErr != nil {
		t.Fatalf("integration test needs a real control plane (export KEEPERLB_K8S_BIN=$(bash hack/k8s-tools/build.sh)): %v (set KEEPERLB_SKIP_LAB=1 to skip explicitly)", cpErr)
	}
	return cp.Config
}

// env is one test's cluster view: an install namespace, the webhook
// configuration pointing at this test's controller, and that controller.
type env struct {
	t    *testing.T
	ctx  context.Context
	cfg  *rest.Config
	c    client.Client
	ns   string
	vwc  string
	port int
}

func newEnv(t *testing.T) *env {
	t.Helper()
	cfg := controlPlane(t)
	scheme, err := controller.NewScheme()
	if err != nil {
		t.Fatal(err)
	}
	if err := apiextensionsv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	n := seq.Add(1)
	e := &env{t: t, ctx: ctx, cfg: cfg, c: c,
		ns:   fmt.Sprintf("kl-wh-%d-%d", os.Getpid(), n),
		vwc:  fmt.Sprintf("keeperlb-webhook-configuration-%d-%d", os.Getpid(), n),
		port: freePort(t),
	}
	t.Cleanup(func() {
		// Deleting the namespace takes its objects; without the webhook
		// configuration nothing calls a stopped controller.
		_ = c.Delete(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: e.ns}})
	})
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: e.ns}}); err != nil {
		t.Fatal(err)
	}
	e.installWebhooks()
	return e
}

// installWebhooks registers the validating webhooks for the test's
// namespace and points the BGPPeer CRD's conversion at this test's port,
// both without a CA bundle: injecting it is the controller's job.
func (e *env) installWebhooks() {
	e.t.Helper()
	base := fmt.Sprintf("https://127.0.0.1:%d", e.port)
	hooks := webhook.ValidatingWebhooks(func(path string) admissionregistrationv1.WebhookClientConfig {
		u := base + path
		return admissionregistrationv1.WebhookClientConfig{URL: &u}
	})
	for i := range hooks {
		// Only this test's namespace, so that no other test's objects
		// depend on this test's controller.
		hooks[i].NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{corev1.LabelMetadataName: e.ns}}
	}
	vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: e.vwc}, Webhooks: hooks}
	e.t.Cleanup(func() { _ = e.c.Delete(context.Background(), vwc) })
	if err := e.c.Create(e.ctx, vwc); err != nil {
		e.t.Fatalf("creating the ValidatingWebhookConfiguration: %v", err)
	}

	e.t.Cleanup(func() {
		e.updateCRD(func(crd *apiextensionsv1.CustomResourceDefinition) {
			crd.Spec.Conversion = &apiextensionsv1.CustomResourceConversion{Strategy: apiextensionsv1.NoneConverter}
		})
	})
	e.updateCRD(func(crd *apiextensionsv1.CustomResourceDefinition) {
		u := base + webhook.ConvertPath
		crd.Spec.Conversion = &apiextensionsv1.CustomResourceConversion{
			Strategy: apiextensionsv1.WebhookConverter,
			Webhook: &apiextensionsv1.WebhookConversion{
				ClientConfig:             &apiextensionsv1.WebhookClientConfig{URL: &u},
				ConversionReviewVersions: []string{"v1"},
			},
		}
	})
}

// updateCRD changes the BGPPeer CRD, retrying on conflicts (the
// controller writes the CA bundle into it too).
func (e *env) updateCRD(mutate func(*apiextensionsv1.CustomResourceDefinition)) {
	e.t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 20*time.Second, true, func(ctx context.Context) (bool, error) {
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := e.c.Get(ctx, client.ObjectKey{Name: webhook.BGPPeerCRD}, crd); err != nil {
			return false, err
		}
		mutate(crd)
		err := e.c.Update(ctx, crd)
		if apierrors.IsConflict(err) {
			return false, nil
		}
		return err == nil, err
	})
	if err != nil {
		e.t.Fatalf("updating CRD %s: %v", webhook.BGPPeerCRD, err)
	}
}

// start runs a controller replica serving the webhooks on port, until
// the test ends.
func (e *env) start(port int, mutate func(*controller.Options)) {
	e.t.Helper()
	opts := controller.DefaultOptions()
	opts.Namespace = e.ns
	opts.LBClass = "keeperlb.io/" + e.ns
	opts.MetricsAddr, opts.HealthAddr = "0", "0"
	opts.Registry = prometheus.NewRegistry()
	opts.SkipNameValidation = true
	opts.Webhook.Host = "127.0.0.1"
	opts.Webhook.Port = port
	opts.Webhook.CertDir = e.t.TempDir()
	opts.Webhook.ConfigurationName = e.vwc
	opts.Webhook.ExtraSANs = []string{"127.0.0.1"}
	if mutate != nil {
		mutate(&opts)
	}
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan error, 1)
	w := &testWriter{t: e.t}
	e.t.Cleanup(func() { w.done.Store(true) })
	log := slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo})).With("replica", port)
	go func() { done <- controller.Run(ctx, e.cfg, opts, log) }()
	e.t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				e.t.Errorf("controller exited with error: %v", err)
			}
		case <-time.After(30 * time.Second):
			e.t.Error("controller did not stop within 30s")
		}
	})
}

// testWriter sends log lines to the test log while the test runs.
type testWriter struct {
	t    *testing.T
	done atomic.Bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	if !w.done.Load() {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// poll waits up to a minute for cond, failing with what() at the end.
func (e *env) poll(what func() string, cond func(ctx context.Context) (bool, error)) {
	e.t.Helper()
	if err := wait.PollUntilContextTimeout(e.ctx, 100*time.Millisecond, time.Minute, true, cond); err != nil {
		e.t.Fatalf("waiting for %s: %v", what(), err)
	}
}

// certState is what the controller wrote and injected.
type certState struct {
	cert, ca, vwcCA, crdCA []byte
}

func (e *env) certState(ctx context.Context) (certState, error) {
	var s certState
	sec := &corev1.Secret{}
	if err := e.c.Get(ctx, client.ObjectKey{Namespace: e.ns, Name: "keeperlb-webhook-server-cert"}, sec); err != nil {
		return s, client.IgnoreNotFound(err)
	}
	s.cert, s.ca = sec.Data["tls.crt"], sec.Data["ca.crt"]
	vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{}
	if err := e.c.Get(ctx, client.ObjectKey{Name: e.vwc}, vwc); err != nil {
		return s, err
	}
	for i, h := range vwc.Webhooks {
		if i > 0 && !bytes.Equal(h.ClientConfig.CABundle, s.vwcCA) {
			return s, nil // some injected, not all: not settled
		}
		s.vwcCA = h.ClientConfig.CABundle
	}
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := e.c.Get(ctx, client.ObjectKey{Name: webhook.BGPPeerCRD}, crd); err != nil {
		return s, err
	}
	if crd.Spec.Conversion != nil && crd.Spec.Conversion.Webhook != nil && crd.Spec.Conversion.Webhook.ClientConfig != nil {
		s.crdCA = crd.Spec.Conversion.Webhook.ClientConfig.CABundle
	}
	return s, nil
}

// settled reports whether the Secret exists and both CA bundles are the
// Secret's.
func (s certState) settled() bool {
	return len(s.cert) > 0 && len(s.ca) > 0 && bytes.Equal(s.vwcCA, s.ca) && bytes.Equal(s.crdCA, s.ca)
}

// waitSettled waits until the certificate is issued and injected, and
// returns it.
func (e *env) waitSettled(notCert []byte) certState {
	e.t.Helper()
	var last certState
	e.poll(func() string {
		return fmt.Sprintf("the webhook certificate to be issued and injected (secret cert %d bytes, ca %d, vwc ca %d, crd ca %d)", len(last.cert), len(last.ca), len(last.vwcCA), len(last.crdCA))
	}, func(ctx context.Context) (bool, error) {
		s, err := e.certState(ctx)
		last = s
		return err == nil && s.settled() && !bytes.Equal(s.cert, notCert), err
	})
	return last
}

// waitServing waits until the webhook server on port presents the
// certificate the Secret holds at that moment, verified against the
// Secret's CA bundle for 127.0.0.1. It re-reads the Secret on every try, as
// a short-lived certificate may be rotated again meanwhile.
func (e *env) waitServing(port int) {
	e.t.Helper()
	var lastErr error
	e.poll(func() string { return fmt.Sprintf("port %d to serve the Secret's certificate: %v", port, lastErr) }, func(ctx context.Context) (bool, error) {
		s, err := e.certState(ctx)
		if err != nil {
			return false, err
		}
		want, _ := pem.Decode(s.cert)
		if want == nil {
			lastErr = errors.New("no certificate in the Secret")
			return false, nil
		}
		roots := x509.NewCertPool()
		roots.AppendCertsFromPEM(s.ca)
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", fmt.Sprintf("127.0.0.1:%d", port), &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"})
		if err != nil {
			lastErr = err
			return false, nil
		}
		defer c.Close()
		if got := c.ConnectionState().PeerCertificates[0].Raw; !bytes.Equal(got, want.Bytes) {
			lastErr = errors.New("another certificate is served")
			return false, nil
		}
		return true, nil
	})
}

// waitAdmitting waits until the API server gets answers from the webhook:
// a dry-run create of a valid pool succeeds.
func (e *env) waitAdmitting() {
	e.t.Helper()
	var lastErr error
	e.poll(func() string { return fmt.Sprintf("the webhook to admit a valid pool: %v", lastErr) }, func(ctx context.Context) (bool, error) {
		p := &v1beta1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "probe"}, Spec: v1beta1.IPAddressPoolSpec{Addresses: []string{"198.19.255.0/30"}}}
		lastErr = e.c.Create(ctx, p, client.DryRunAll)
		return lastErr == nil, nil
	})
}

// ready starts one replica and waits until the API server calls it.
func (e *env) ready(mutate func(*controller.Options)) certState {
	e.t.Helper()
	e.start(e.port, mutate)
	s := e.waitSettled(nil)
	e.waitServing(e.port)
	e.waitAdmitting()
	return s
}

// mustReject checks that creating obj fails with a webhook denial whose
// message holds every want.
func (e *env) mustReject(err error, what string, want ...string) {
	e.t.Helper()
	if err == nil {
		e.t.Fatalf("%s was accepted", what)
	}
	msg := err.Error()
	if !strings.Contains(msg, "denied the request") {
		e.t.Fatalf("%s failed, but not by the webhook: %v", what, err)
	}
	for _, w := range want {
		if !strings.Contains(msg, w) {
			e.t.Errorf("%s: the refusal %q does not say %q", what, msg, w)
		}
	}
}

func (e *env) meta(name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Namespace: e.ns, Name: name}
}

func TestValidationOnRealAPIServer(t *testing.T) {
	e := newEnv(t)
	e.ready(nil)
	ctx := e.ctx

	// A valid configuration is accepted.
	for _, obj := range []client.Object{
		&v1beta1.IPAddressPool{ObjectMeta: e.meta("a"), Spec: v1beta1.IPAddressPoolSpec{Addresses: []string{"198.18.0.0/28"}}},
		&v1beta1.BFDProfile{ObjectMeta: e.meta("fast")},
		&v1beta1.BFDProfile{ObjectMeta: e.meta("unused")},
		&v1beta2.BGPPeer{ObjectMeta: e.meta("p1"), Spec: v1beta2.BGPPeerSpec{MyASN: 64500, PeerASN: 64501, PeerAddress: "198.18.100.1", BFDProfile: "fast"}},
		&v1beta1.L2Advertisement{ObjectMeta: e.meta("l2"), Spec: v1beta1.L2AdvertisementSpec{IPAddressPools: []string{"a"}}},
	} {
		if err := e.c.Create(ctx, obj); err != nil {
			t.Fatalf("creating valid %T %s: %v", obj, obj.GetName(), err)
		}
	}

	// An overlapping pool is refused, naming the field and the reason.
	err := e.c.Create(ctx, &v1beta1.IPAddressPool{ObjectMeta: e.meta("b"), Spec: v1beta1.IPAddressPoolSpec{Addresses: []string{"198.18.0.8/29"}}})
	e.mustReject(err, "an overlapping pool",
		`admission webhook "ipaddresspoolvalidationwebhook.metallb.io" denied the request`,
		fmt.Sprintf(`IPAddressPool %s/b: spec.addresses[0]: "198.18.0.8/29" overlaps "198.18.0.0/28" (IPAddressPool %s/a`, e.ns, e.ns))
	// Exactly, as the API server passes it on and kubectl prints it: the
	// object, its field path and the reason, once.
	reason := fmt.Sprintf(`"198.18.0.8/29" overlaps "198.18.0.0/28" (IPAddressPool %s/a spec.addresses[0])`, e.ns)
	if want := fmt.Sprintf(`admission webhook "ipaddresspoolvalidationwebhook.metallb.io" denied the request: IPAddressPool %s/b: spec.addresses[0]: %s`, e.ns, reason); err.Error() != want {
		t.Errorf("the refusal of an overlapping pool:\n got %s\nwant %s", err, want)
	}
	var status apierrors.APIStatus
	if !errors.As(err, &status) || status.Status().Reason != metav1.StatusReasonInvalid || status.Status().Details == nil ||
		status.Status().Details.Name != "b" || len(status.Status().Details.Causes) != 1 ||
		status.Status().Details.Causes[0].Field != "spec.addresses[0]" || status.Status().Details.Causes[0].Message != reason {
		t.Errorf("the refusal's status should carry one cause, spec.addresses[0]: %s; it is %+v", reason, status)
	}
	if err := e.c.Get(ctx, client.ObjectKey{Namespace: e.ns, Name: "b"}, &v1beta1.IPAddressPool{}); !apierrors.IsNotFound(err) {
		t.Errorf("the refused pool exists: %v", err)
	}
	// An update that makes an existing pool overlap is refused too.
	a := &v1beta1.IPAddressPool{}
	if err := e.c.Get(ctx, client.ObjectKey{Namespace: e.ns, Name: "a"}, a); err != nil {
		t.Fatal(err)
	}
	a.Spec.Addresses = append(a.Spec.Addresses, "198.18.0.4/30")
	e.mustReject(e.c.Update(ctx, a), "a pool overlapping itself",
		fmt.Sprintf(`denied the request: IPAddressPool %s/a: spec.addresses[0]: "198.18.0.0/28" overlaps "198.18.0.4/30" (IPAddressPool %s/a spec.addresses[1])`, e.ns, e.ns))
	if err := e.c.Update(ctx, a); strings.Count(err.Error(), "overlaps") != 1 {
		t.Errorf("a pool overlapping itself: the overlap should be stated once: %v", err)
	}

	// Bad peers, in both versions, are refused with the reason.
	dur := func(d time.Duration) *metav1.Duration { return &metav1.Duration{Duration: d} }
	badPeers := []struct {
		what string
		obj  client.Object
		want []string
	}{
		{"a 2s hold time", &v1beta2.BGPPeer{ObjectMeta: e.meta("p2"), Spec: v1beta2.BGPPeerSpec{MyASN: 64500, PeerASN: 64502, PeerAddress: "198.18.100.2", HoldTime: dur(2 * time.Second)}},
			[]string{`"bgppeerv1beta2validationwebhook.metallb.io" denied`, "BGPPeer " + e.ns + "/p2: spec.holdTime: 2s is too short: must be 0 (no keepalives) or at least 3s"}},
		{"a keepalive longer than the hold time", &v1beta2.BGPPeer{ObjectMeta: e.meta("p2"), Spec: v1beta2.BGPPeerSpec{MyASN: 64500, PeerASN: 64502, PeerAddress: "198.18.100.2", HoldTime: dur(9 * time.Second), KeepaliveTime: dur(30 * time.Second)}},
			[]string{"spec.keepaliveTime: 30s is greater than holdTime 9s"}},
		{"both peerASN and dynamicASN", &v1beta2.BGPPeer{ObjectMeta: e.meta("p2"), Spec: v1beta2.BGPPeerSpec{MyASN: 64500, PeerASN: 64502, DynamicASN: v1beta2.ExternalASNMode, PeerAddress: "198.18.100.2"}},
			[]string{"spec.peerASN: peerASN and dynamicASN are mutually exclusive"}},
		{"a v1beta1 peer with a 2s hold time", &v1beta1.BGPPeer{ObjectMeta: e.meta("p2"), Spec: v1beta1.BGPPeerSpec{MyASN: 64500, PeerASN: 64502, PeerAddress: "198.18.100.2", HoldTime: metav1.Duration{Duration: 2 * time.Second}}},
			[]string{`"bgppeervalidationwebhook.metallb.io" denied`, "BGPPeer " + e.ns + "/p2: spec.holdTime: 2s is too short"}},
		{"a second session to the same peer", &v1beta2.BGPPeer{ObjectMeta: e.meta("p2"), Spec: v1beta2.BGPPeerSpec{MyASN: 64500, PeerASN: 64501, PeerAddress: "198.18.100.1"}},
			[]string{"BGPPeer " + e.ns + "/p2", "p1"}},
	}
	for _, bp := range badPeers {
		e.mustReject(e.c.Create(ctx, bp.obj), bp.what, bp.want...)
	}

	// Deleting a BFD profile in use is refused; an unused one goes.
	err = e.c.Delete(ctx, &v1beta1.BFDProfile{ObjectMeta: e.meta("fast")})
	e.mustReject(err, "deleting a BFD profile in use", "BFDProfile "+e.ns+"/fast is used by BGPPeer p1", `spec.bfdProfile: BFDProfile "fast" does not exist`)
	if err := e.c.Get(ctx, client.ObjectKey{Namespace: e.ns, Name: "fast"}, &v1beta1.BFDProfile{}); err != nil {
		t.Errorf("the BFD profile in use is gone: %v", err)
	}
	if err := e.c.Delete(ctx, &v1beta1.BFDProfile{ObjectMeta: e.meta("unused")}); err != nil {
		t.Errorf("deleting an unused BFD profile: %v", err)
	}
	// Once no peer uses it, the profile may go.
	if err := e.c.Delete(ctx, &v1beta2.BGPPeer{ObjectMeta: e.meta("p1")}); err != nil {
		t.Fatal(err)
	}
	if err := e.c.Delete(ctx, &v1beta1.BFDProfile{ObjectMeta: e.meta("fast")}); err != nil {
		t.Errorf("deleting a BFD profile no longer used: %v", err)
	}

	// The controller loads what the webhook admitted.
	e.poll(func() string { return "ConfigurationState Valid" }, func(ctx context.Context) (bool, error) {
		cs := &v1beta1.ConfigurationState{}
		err := e.c.Get(ctx, client.ObjectKey{Namespace: e.ns, Name: controller.ConfigurationStateName}, cs)
		return err == nil && cs.Status.Result == v1beta1.ConfigurationResultValid, client.IgnoreNotFound(err)
	})
}

func TestBGPPeerConversionOnRealAPIServer(t *testing.T) {
	e := newEnv(t)
	e.ready(nil)
	ctx := e.ctx

	// Created as v1beta1, read back identically as v1beta1 and as the
	// matching v1beta2.
	v1spec := v1beta1.BGPPeerSpec{
		MyASN: 64500, PeerASN: 4200000001, PeerAddress: "198.18.100.1", SourceAddress: "198.18.100.254", PeerPort: 1179,
		HoldTime: metav1.Duration{Duration: 90 * time.Second}, KeepaliveTime: metav1.Duration{Duration: 30 * time.Second},
		RouterID: "10.1.1.1", Password: "s3cret", EBGPMultiHop: true,
		NodeSelectors: []v1beta1.NodeSelector{{MatchLabels: map[string]string{"rack": "r1"}, MatchExpressions: []v1beta1.MatchExpression{{Key: "zone", Operator: "In", Values: []string{"a", "b"}}}}},
	}
	if err := e.c.Create(ctx, &v1beta1.BGPPeer{ObjectMeta: e.meta("old"), Spec: v1spec}); err != nil {
		t.Fatalf("creating a v1beta1 BGPPeer: %v", err)
	}
	gotV1 := &v1beta1.BGPPeer{}
	if err := e.c.Get(ctx, client.ObjectKey{Namespace: e.ns, Name: "old"}, gotV1); err != nil {
		t.Fatalf("reading it as v1beta1: %v", err)
	}
	if !reflect.DeepEqual(gotV1.Spec, v1spec) || len(gotV1.Annotations) != 0 {
		t.Errorf("v1beta1 read back\n%+v (annotations %v)\nwant\n%+v", gotV1.Spec, gotV1.Annotations, v1spec)
	}
	gotV2 := &v1beta2.BGPPeer{}
	if err := e.c.Get(ctx, client.ObjectKey{Namespace: e.ns, Name: "old"}, gotV2); err != nil {
		t.Fatalf("reading it as v1beta2: %v", err)
	}
	wantV2 := v1beta2.BGPPeerSpec{
		MyASN: 64500, PeerASN: 4200000001, PeerAddress: "198.18.100.1", SourceAddress: "198.18.100.254", PeerPort: 1179,
		HoldTime: &metav1.Duration{Duration: 90 * time.Second}, KeepaliveTime: &metav1.Duration{Duration: 30 * time.Second},
		RouterID: "10.1.1.1", Password: "s3cret", EBGPMultiHop: true,
		NodeSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"rack": "r1"}, MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "zone", Operator: metav1.LabelSelectorOpIn, Values: []string{"a", "b"}}}}},
	}
	if !reflect.DeepEqual(gotV2.Spec, wantV2) || gotV2.UID != gotV1.UID || gotV2.ResourceVersion != gotV1.ResourceVersion {
		t.Errorf("v1beta2 read back\n%+v\nwant\n%+v", gotV2.Spec, wantV2)
	}

	// Created as v1beta2 with fields v1beta1 lacks: they survive a read,
	// edit and write through v1beta1.
	v2spec := v1beta2.BGPPeerSpec{
		MyASN: 64500, DynamicASN: v1beta2.InternalASNMode, PeerAddress: "198.18.100.2", PeerPort: 179,
		HoldTime: &metav1.Duration{}, ConnectTime: &metav1.Duration{Duration: 5 * time.Second}, VRF: "red",
		EnableGracefulRestart: true, DualStackAddressFamily: true,
	}
	if err := e.c.Create(ctx, &v1beta2.BGPPeer{ObjectMeta: e.meta("new"), Spec: v2spec}); err != nil {
		t.Fatalf("creating a v1beta2 BGPPeer: %v", err)
	}
	asV1 := &v1beta1.BGPPeer{}
	if err := e.c.Get(ctx, client.ObjectKey{Namespace: e.ns, Name: "new"}, asV1); err != nil {
		t.Fatalf("reading the v1beta2 peer as v1beta1: %v", err)
	}
	if asV1.Spec.PeerASN != 0 || asV1.Spec.PeerAddress != "198.18.100.2" || asV1.Annotations[webhook.PeerFieldsAnnotation] == "" {
		t.Fatalf("v1beta1 view of a v1beta2 peer: %+v, annotations %v", asV1.Spec, asV1.Annotations)
	}
	asV1.Labels = map[string]string{"edited": "through-v1beta1"}
	asV1.Spec.BFDProfile = ""
	asV1.Spec.Password = "new-password"
	if err := e.c.Update(ctx, asV1); err != nil {
		t.Fatalf("updating through v1beta1: %v", err)
	}
	back := &v1beta2.BGPPeer{}
	if err := e.c.Get(ctx, client.ObjectKey{Namespace: e.ns, Name: "new"}, back); err != nil {
		t.Fatal(err)
	}
	v2spec.Password = "new-password"
	if !reflect.DeepEqual(back.Spec, v2spec) || back.Labels["edited"] != "through-v1beta1" {
		t.Errorf("after a v1beta1 update, v1beta2 reads\n%+v (labels %v)\nwant\n%+v", back.Spec, back.Labels, v2spec)
	}
	if _, ok := back.Annotations[webhook.PeerFieldsAnnotation]; ok {
		t.Errorf("the v1beta2 object carries %s", webhook.PeerFieldsAnnotation)
	}

	// Lists convert too.
	var l1 v1beta1.BGPPeerList
	if err := e.c.List(ctx, &l1, client.InNamespace(e.ns)); err != nil || len(l1.Items) != 2 {
		t.Fatalf("listing as v1beta1: %d items, %v", len(l1.Items), err)
	}
	for _, p := range l1.Items {
		if p.Name == "old" && !reflect.DeepEqual(p.Spec, v1spec) {
			t.Errorf("listed v1beta1 peer\n%+v\nwant\n%+v", p.Spec, v1spec)
		}
	}
}

func TestCertificateRotationOnRealAPIServer(t *testing.T) {
	e := newEnv(t)
	// A 15s lifetime is renewed after about 11s; the check interval only
	// bounds how late the injection is repaired, rotation is scheduled.
	first := e.ready(func(o *controller.Options) { o.Webhook.CertValidity = 15 * time.Second })

	// A standby replica, which never holds the lease while the first one
	// runs, serves the same Secret.
	standby := freePort(t)
	e.start(standby, nil)
	e.waitServing(standby)

	second := e.waitSettled(first.cert)
	if bytes.Equal(second.ca, first.ca) {
		t.Fatal("the CA bundle did not change with the certificate")
	}
	// The previous CA stays in the bundle while it is valid, so that a
	// replica that has not picked up the new certificate yet is trusted.
	if !bytes.Contains(second.ca, first.ca) {
		t.Errorf("the new bundle dropped the previous, still valid CA")
	}
	// Both replicas serve the rotated certificate (or a later one: at
	// this lifetime rotations keep coming).
	e.waitServing(e.port)
	e.waitServing(standby)

	// The webhooks still answer, through the API server, with the new
	// certificate.
	ok := &v1beta1.IPAddressPool{ObjectMeta: e.meta("a"), Spec: v1beta1.IPAddressPoolSpec{Addresses: []string{"198.18.0.0/28"}}}
	if err := e.c.Create(e.ctx, ok); err != nil {
		t.Fatalf("creating a valid pool after the rotation: %v", err)
	}
	err := e.c.Create(e.ctx, &v1beta1.IPAddressPool{ObjectMeta: e.meta("b"), Spec: v1beta1.IPAddressPoolSpec{Addresses: []string{"198.18.0.0/30"}}})
	e.mustReject(err, "an overlapping pool after the rotation", "spec.addresses[0]", "overlaps")
	if err := e.c.Create(e.ctx, &v1beta1.BGPPeer{ObjectMeta: e.meta("p"), Spec: v1beta1.BGPPeerSpec{MyASN: 1, PeerASN: 2, PeerAddress: "198.18.100.1"}}); err != nil {
		t.Fatalf("creating a v1beta1 peer (converted by the webhook) after the rotation: %v", err)
	}
}
