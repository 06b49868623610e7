package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Secret keys, those of a kubernetes.io/tls Secret plus the CA bundle.
const (
	// SecretCertKey holds the serving certificate.
	SecretCertKey = corev1.TLSCertKey
	// SecretKeyKey holds the serving certificate's private key.
	SecretKeyKey = corev1.TLSPrivateKeyKey
	// SecretCAKey holds the CA bundle.
	SecretCAKey = "ca.crt"
)

// BGPPeerCRD is the CRD whose conversion webhook gets the CA bundle.
const BGPPeerCRD = "bgppeers.metallb.io"

// retryDelay is the wait after a failed API call: long enough not to
// hammer a struggling API server, short enough that a rotation does not
// slip far.
const retryDelay = 5 * time.Second

// minWait keeps the rotation loop from spinning on a validity too short
// for its own clock granularity.
const minWait = 500 * time.Millisecond

// rotator keeps the webhook's certificate Secret valid and the CA bundle in
// the webhook configuration and the BGPPeer CRD current. It runs on the
// leader only, so that two replicas never write competing certificates;
// every replica serves with whatever the Secret holds (see certSync).
type rotator struct {
	client    client.Client // uncached: it reads cluster-scoped objects it does not watch
	namespace string
	secret    string
	vwc       string
	crd       string
	id        Identity
	validity  time.Duration
	interval  time.Duration
	now       func() time.Time
	log       *slog.Logger

	missing map[string]bool // objects already reported missing, to log that once
}

// NeedLeaderElection implements manager.LeaderElectionRunnable.
func (r *rotator) NeedLeaderElection() bool { return true }

// Start implements manager.Runnable: it reconciles at once, then when the
// certificate is due for renewal or the check interval has passed,
// whichever comes first.
func (r *rotator) Start(ctx context.Context) error {
	for {
		wait := r.reconcile(ctx)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// reconcile renews the certificate when needed, injects the CA bundle, and
// returns how long to wait before the next round.
func (r *rotator) reconcile(ctx context.Context) time.Duration {
	now := r.now()
	secret, current, err := r.readSecret(ctx)
	if err != nil {
		r.log.Warn("reading the webhook certificate Secret", "err", err)
		return retryDelay
	}
	renewAt, checkErr := Check(current, now, r.id)
	if checkErr != nil || !now.Before(renewAt) {
		why := "due for renewal"
		if checkErr != nil {
			why = checkErr.Error()
		}
		next, err := Generate(now, r.validity, r.id, current.CA)
		if err != nil {
			r.log.Error("generating the webhook certificate", "err", err)
			return retryDelay
		}
		// The new CA goes to the API server before the certificate goes to
		// the replicas: a replica serving it earlier would be refused.
		if err := r.inject(ctx, next.CA); err != nil {
			r.log.Warn("injecting the new webhook CA bundle; the certificate is not rotated yet", "err", err)
			return retryDelay
		}
		if err := r.writeSecret(ctx, secret, next); err != nil {
			r.log.Warn("writing the webhook certificate Secret", "err", err)
			return retryDelay
		}
		if renewAt, err = Check(next, now, r.id); err != nil {
			r.log.Error("the new webhook certificate does not check", "err", err)
			return retryDelay
		}
		r.log.Info("issued a webhook serving certificate", "reason", why, "secret", r.namespace+"/"+r.secret, "renewAt", renewAt.Format(time.RFC3339))
	} else if err := r.inject(ctx, current.CA); err != nil {
		r.log.Warn("injecting the webhook CA bundle", "err", err)
		return retryDelay
	}
	return max(min(r.interval, renewAt.Sub(now)), minWait)
}

// readSecret returns the Secret (nil when missing) and the bundle in it.
func (r *rotator) readSecret(ctx context.Context) (*corev1.Secret, Bundle, error) {
	s := &corev1.Secret{}
	err := r.client.Get(ctx, client.ObjectKey{Namespace: r.namespace, Name: r.secret}, s)
	switch {
	case apierrors.IsNotFound(err):
		return nil, Bundle{}, nil
	case err != nil:
		return nil, Bundle{}, err
	}
	return s, Bundle{Cert: s.Data[SecretCertKey], Key: s.Data[SecretKeyKey], CA: s.Data[SecretCAKey]}, nil
}

// writeSecret stores b, creating the Secret or updating the one read (an
// update carries its resourceVersion, so a concurrent writer makes it fail
// rather than be overwritten).
func (r *rotator) writeSecret(ctx context.Context, s *corev1.Secret, b Bundle) error {
	data := map[string][]byte{SecretCertKey: b.Cert, SecretKeyKey: b.Key, SecretCAKey: b.CA}
	if s == nil {
		s = &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{
				Namespace: r.namespace,
				Name:      r.secret,
				Labels:    map[string]string{"app.kubernetes.io/name": "keeperlb", "app.kubernetes.io/component": "controller"},
			},
			Type: corev1.SecretTypeTLS,
			Data: data,
		}
		if err := r.client.Create(ctx, s); err != nil {
			return fmt.Errorf("creating Secret %s/%s: %w", r.namespace, r.secret, err)
		}
		return nil
	}
	s = s.DeepCopy()
	if s.Data == nil {
		s.Data = map[string][]byte{}
	}
	for k, v := range data {
		s.Data[k] = v
	}
	if err := r.client.Update(ctx, s); err != nil {
		return fmt.Errorf("updating Secret %s/%s: %w", r.namespace, r.secret, err)
	}
	return nil
}

// inject writes ca into every webhook of the ValidatingWebhookConfiguration
// and into the BGPPeer CRD's conversion webhook, where it differs. Either
// object may be missing (not installed yet, or installed without
// webhooks); that is logged once and is not an error.
func (r *rotator) inject(ctx context.Context, ca []byte) error {
	var errs []error
	vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{}
	err := r.client.Get(ctx, client.ObjectKey{Name: r.vwc}, vwc)
	switch {
	case apierrors.IsNotFound(err):
		r.reportMissing("ValidatingWebhookConfiguration "+r.vwc, "validating webhooks are not called until it exists")
	case err != nil:
		errs = append(errs, fmt.Errorf("reading ValidatingWebhookConfiguration %s: %w", r.vwc, err))
	default:
		delete(r.missing, "ValidatingWebhookConfiguration "+r.vwc)
		changed := false
		for i := range vwc.Webhooks {
			if !bytes.Equal(vwc.Webhooks[i].ClientConfig.CABundle, ca) {
				vwc.Webhooks[i].ClientConfig.CABundle = ca
				changed = true
			}
		}
		if changed {
			if err := r.client.Update(ctx, vwc); err != nil {
				errs = append(errs, fmt.Errorf("updating ValidatingWebhookConfiguration %s: %w", r.vwc, err))
			}
		}
	}

	crd := &apiextensionsv1.CustomResourceDefinition{}
	err = r.client.Get(ctx, client.ObjectKey{Name: r.crd}, crd)
	switch {
	case apierrors.IsNotFound(err):
		r.reportMissing("CustomResourceDefinition "+r.crd, "install the metallb.io CRDs")
	case err != nil:
		errs = append(errs, fmt.Errorf("reading CustomResourceDefinition %s: %w", r.crd, err))
	default:
		delete(r.missing, "CustomResourceDefinition "+r.crd)
		conv := crd.Spec.Conversion
		// With strategy None the API server converts by itself and refuses
		// a webhook client config, so there is nothing to inject.
		if conv != nil && conv.Strategy == apiextensionsv1.WebhookConverter && conv.Webhook != nil && conv.Webhook.ClientConfig != nil &&
			!bytes.Equal(conv.Webhook.ClientConfig.CABundle, ca) {
			conv.Webhook.ClientConfig.CABundle = ca
			if err := r.client.Update(ctx, crd); err != nil {
				errs = append(errs, fmt.Errorf("updating CustomResourceDefinition %s: %w", r.crd, err))
			}
		}
	}
	return errors.Join(errs...)
}

// reportMissing logs once that an object to inject into does not exist.
func (r *rotator) reportMissing(what, consequence string) {
	if r.missing[what] {
		return
	}
	if r.missing == nil {
		r.missing = map[string]bool{}
	}
	r.missing[what] = true
	r.log.Info(what+" not found; the CA bundle will be injected when it appears", "consequence", consequence)
}
