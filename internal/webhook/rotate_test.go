package webhook

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
)

// The rotator's ordering rules, with a fake client whose writes can be made
// to fail. The real API server tests (apiserver_test.go) cover the rest.
func TestRotatorOrdering(t *testing.T) {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := apiextensionsv1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	url := "https://127.0.0.1:1/x"
	vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: "vwc"},
		Webhooks: ValidatingWebhooks(func(path string) admissionregistrationv1.WebhookClientConfig {
			return admissionregistrationv1.WebhookClientConfig{URL: &url}
		}),
	}
	crd := &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: BGPPeerCRD},
		Spec:       apiextensionsv1.CustomResourceDefinitionSpec{Conversion: &apiextensionsv1.CustomResourceConversion{Strategy: apiextensionsv1.NoneConverter}},
	}
	var failVWC atomic.Bool
	c := fake.NewClientBuilder().WithScheme(s).WithObjects(vwc, crd).WithInterceptorFuncs(interceptor.Funcs{
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			if _, ok := obj.(*admissionregistrationv1.ValidatingWebhookConfiguration); ok && failVWC.Load() {
				return errors.New("injected failure")
			}
			return c.Update(ctx, obj, opts...)
		},
	}).Build()
	now := t0
	r := &rotator{
		client: c, namespace: ns, secret: "cert", vwc: "vwc", crd: BGPPeerCRD, id: testID,
		validity: 30 * time.Hour, interval: time.Hour, now: func() time.Time { return now }, log: slog.New(slog.DiscardHandler),
	}
	ctx := context.Background()
	state := func() (cert, ca []byte, vwcCAs [][]byte, crdConv *apiextensionsv1.CustomResourceConversion) {
		sec := &corev1.Secret{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "cert"}, sec); err == nil {
			cert, ca = sec.Data[SecretCertKey], sec.Data[SecretCAKey]
		}
		v := &admissionregistrationv1.ValidatingWebhookConfiguration{}
		if err := c.Get(ctx, client.ObjectKey{Name: "vwc"}, v); err != nil {
			t.Fatal(err)
		}
		for _, h := range v.Webhooks {
			vwcCAs = append(vwcCAs, h.ClientConfig.CABundle)
		}
		cr := &apiextensionsv1.CustomResourceDefinition{}
		if err := c.Get(ctx, client.ObjectKey{Name: BGPPeerCRD}, cr); err != nil {
			t.Fatal(err)
		}
		return cert, ca, vwcCAs, cr.Spec.Conversion
	}
	allEqual := func(cas [][]byte, want []byte) bool {
		for _, ca := range cas {
			if !bytes.Equal(ca, want) {
				return false
			}
		}
		return len(cas) > 0
	}

	// When the CA cannot be injected, no certificate is written: replicas
	// would serve one the API server does not trust.
	failVWC.Store(true)
	if wait := r.reconcile(ctx); wait != retryDelay {
		t.Errorf("wait after a failed injection = %s, want %s", wait, retryDelay)
	}
	if cert, _, _, _ := state(); cert != nil {
		t.Fatal("the Secret was written although the CA could not be injected")
	}

	failVWC.Store(false)
	wait := r.reconcile(ctx)
	cert1, ca1, cas, conv := state()
	if cert1 == nil || !allEqual(cas, ca1) {
		t.Fatalf("after a successful round: secret %d bytes, webhook CA bundles equal to it: %v", len(cert1), allEqual(cas, ca1))
	}
	if conv.Webhook != nil {
		t.Errorf("a CA bundle was injected into a CRD without webhook conversion: %+v", conv)
	}
	// 30h validity backdated 1h, a 31h lifetime: renewal due at 19h40m,
	// after the next 1h check.
	if wait != time.Hour {
		t.Errorf("next check in %s, want the 1h interval", wait)
	}

	// A wiped CA bundle (manifests re-applied) is put back at the next
	// check; the certificate is not renewed for it.
	v := &admissionregistrationv1.ValidatingWebhookConfiguration{}
	if err := c.Get(ctx, client.ObjectKey{Name: "vwc"}, v); err != nil {
		t.Fatal(err)
	}
	v.Webhooks[2].ClientConfig.CABundle = nil
	if err := c.Update(ctx, v); err != nil {
		t.Fatal(err)
	}
	// The CRD switched to webhook conversion gets the bundle too.
	cr := &apiextensionsv1.CustomResourceDefinition{}
	if err := c.Get(ctx, client.ObjectKey{Name: BGPPeerCRD}, cr); err != nil {
		t.Fatal(err)
	}
	cr.Spec.Conversion = &apiextensionsv1.CustomResourceConversion{Strategy: apiextensionsv1.WebhookConverter, Webhook: &apiextensionsv1.WebhookConversion{
		ClientConfig: &apiextensionsv1.WebhookClientConfig{URL: &url}, ConversionReviewVersions: []string{"v1"},
	}}
	if err := c.Update(ctx, cr); err != nil {
		t.Fatal(err)
	}
	now = now.Add(19 * time.Hour)
	wait = r.reconcile(ctx)
	cert2, _, cas, conv := state()
	if !bytes.Equal(cert2, cert1) || !allEqual(cas, ca1) || !bytes.Equal(conv.Webhook.ClientConfig.CABundle, ca1) {
		t.Errorf("re-injection: certificate kept %v, webhooks %v, CRD %v", bytes.Equal(cert2, cert1), allEqual(cas, ca1), conv.Webhook.ClientConfig.CABundle != nil)
	}
	if wait != 40*time.Minute {
		t.Errorf("next check in %s, want 40m, when renewal is due", wait)
	}

	// Due for renewal: a new certificate and CA, the old CA kept after it.
	now = now.Add(40 * time.Minute)
	r.reconcile(ctx)
	cert3, ca3, cas, conv := state()
	if bytes.Equal(cert3, cert1) || !bytes.HasSuffix(ca3, ca1) || bytes.Equal(ca3, ca1) {
		t.Fatalf("renewal: new certificate %v, bundle ends with the old CA %v", !bytes.Equal(cert3, cert1), bytes.HasSuffix(ca3, ca1))
	}
	if !allEqual(cas, ca3) || !bytes.Equal(conv.Webhook.ClientConfig.CABundle, ca3) {
		t.Error("the renewed CA bundle was not injected everywhere")
	}
	if _, err := Check(Bundle{Cert: cert1, Key: nil, CA: ca3}, now, testID); err == nil {
		t.Error("Check accepted a bundle without a key")
	}
}
