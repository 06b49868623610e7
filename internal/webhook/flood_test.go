package webhook_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/keeperlb/keeperlb/api/v1beta1"
	"github.com/keeperlb/keeperlb/internal/webhook"
)

// TestObjectBeingDeletedStaysValid gives a pool a finalizer, deletes it, and
// edits it into garbage while it waits for the finalizer: refused. Removing
// the finalizer still works.
func TestObjectBeingDeletedStaysValid(t *testing.T) {
	e := newEnv(t)
	e.ready(nil)
	ctx := e.ctx
	p := &v1beta1.IPAddressPool{ObjectMeta: e.meta("held"), Spec: v1beta1.IPAddressPoolSpec{Addresses: []string{"198.18.40.0/28"}}}
	p.Finalizers = []string{"example.com/hold"}
	if err := e.c.Create(ctx, p); err != nil {
		t.Fatal(err)
	}
	if err := e.c.Delete(ctx, p); err != nil {
		t.Fatal(err)
	}
	if err := e.c.Get(ctx, client.ObjectKeyFromObject(p), p); err != nil || p.DeletionTimestamp == nil {
		t.Fatalf("the pool is not waiting for its finalizer: %v", err)
	}
	// The controller writes the pool's status meanwhile: retry on a
	// conflict, which is not the answer under test.
	update := func(mutate func(*v1beta1.IPAddressPool)) error {
		return retry.RetryOnConflict(retry.DefaultRetry, func() error {
			if err := e.c.Get(ctx, client.ObjectKeyFromObject(p), p); err != nil {
				return err
			}
			mutate(p)
			return e.c.Update(ctx, p)
		})
	}
	err := update(func(p *v1beta1.IPAddressPool) { p.Spec.Addresses = []string{"not-an-address"} })
	e.mustReject(err, "an invalid edit of a pool being deleted", `"not-an-address" is neither a CIDR nor a range`)
	if err := update(func(p *v1beta1.IPAddressPool) { p.Finalizers = nil }); err != nil {
		t.Fatalf("removing the finalizer of a pool being deleted: %v", err)
	}
	if err := e.c.Get(ctx, client.ObjectKeyFromObject(p), p); !apierrors.IsNotFound(err) {
		t.Errorf("the pool is still there after its finalizer went: %v", err)
	}
}

// TestWebhookFlood floods the webhook port as any pod could: bodies just
// over the limit on the conversion path and a stream of forged admission
// reviews, from 16 connections for 4 seconds. The controller's heap must
// stay bounded, HTTP/2 must not be offered, and a Service created in the
// middle of it must still get its address within 2 s.
func TestWebhookFlood(t *testing.T) {
	e := newEnv(t)
	// Count what the reviews cost the API server: the webhook's requests
	// carry their own user agent.
	var reviewReads atomic.Int64
	e.cfg = rest.CopyConfig(e.cfg)
	e.cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			if r.Header.Get("User-Agent") == "keeperlb-controller-webhook" {
				reviewReads.Add(1)
			}
			return rt.RoundTrip(r)
		})
	})
	e.ready(nil)
	ctx := e.ctx
	if err := e.c.Create(ctx, &v1beta1.IPAddressPool{ObjectMeta: e.meta("flood"), Spec: v1beta1.IPAddressPoolSpec{Addresses: []string{"198.18.41.0/28"}}}); err != nil {
		t.Fatal(err)
	}

	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2", "http/1.1"}}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 20 * time.Second}
	base := fmt.Sprintf("https://127.0.0.1:%d", e.port)

	conn, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", e.port), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2", "http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	if p := conn.ConnectionState().NegotiatedProtocol; p == "h2" {
		t.Errorf("the webhook offers HTTP/2")
	}
	conn.Close()

	big := bytes.Repeat([]byte{' '}, 7<<20+1)
	review, err := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID: "forged", Operation: admissionv1.Create, Namespace: e.ns, Name: "forged",
			Kind:     metav1.GroupVersionKind{Group: "metallb.io", Version: "v1beta1", Kind: "IPAddressPool"},
			Resource: metav1.GroupVersionResource(schema.GroupVersionResource{Group: "metallb.io", Version: "v1beta1", Resource: "ipaddresspools"}),
			Object: runtimeRaw(t, &v1beta1.IPAddressPool{TypeMeta: metav1.TypeMeta{APIVersion: "metallb.io/v1beta1", Kind: "IPAddressPool"},
				ObjectMeta: e.meta("forged"), Spec: v1beta1.IPAddressPoolSpec{Addresses: []string{"198.18.41.0/30"}}}),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	validate := base + webhook.Endpoints()[0].Path

	var base0 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&base0)
	reads0 := reviewReads.Load()
	floodStart := time.Now()
	floodCtx, stop := context.WithTimeout(ctx, 4*time.Second)
	defer stop()
	var wg sync.WaitGroup
	var mu sync.Mutex
	sent := map[int]int{}
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for floodCtx.Err() == nil {
				url, body := validate, review
				if i%2 == 0 {
					url, body = base+webhook.ConvertPath, big
				}
				req, err := http.NewRequestWithContext(floodCtx, http.MethodPost, url, bytes.NewReader(body))
				if err != nil {
					return
				}
				req.Header.Set("Content-Type", "application/json")
				resp, err := hc.Do(req)
				if err != nil {
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				mu.Lock()
				sent[resp.StatusCode]++
				mu.Unlock()
			}
		}()
	}
	var peak uint64
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for floodCtx.Err() == nil {
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			peak = max(peak, m.HeapInuse)
			time.Sleep(20 * time.Millisecond)
		}
	}()

	// Into the flood: once both paths have answered a few times.
	for floodCtx.Err() == nil {
		mu.Lock()
		busy := sent[http.StatusRequestEntityTooLarge] >= 8 && sent[http.StatusOK] >= 8
		mu.Unlock()
		if busy {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if floodCtx.Err() != nil {
		wg.Wait()
		<-sampled
		t.Fatalf("the flood never got going: %v", sent)
	}
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "during-flood"}, Spec: corev1.ServiceSpec{
		Type: corev1.ServiceTypeLoadBalancer, LoadBalancerClass: new("keeperlb.io/" + e.ns), AllocateLoadBalancerNodePorts: new(false),
		Ports: []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080), Protocol: corev1.ProtocolTCP}},
	}}
	created := time.Now()
	if err := e.c.Create(ctx, svc); err != nil {
		t.Fatal(err)
	}
	var got time.Duration
	for got == 0 && time.Since(created) < 2*time.Second {
		if err := e.c.Get(ctx, client.ObjectKeyFromObject(svc), svc); err == nil && len(svc.Status.LoadBalancer.Ingress) > 0 {
			got = time.Since(created)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	wg.Wait()
	<-sampled
	t.Logf("flood: responses by status %v; heap in use %d MiB before, %d MiB at the peak; the Service got its address after %v",
		sent, base0.HeapInuse>>20, peak>>20, got)
	if got == 0 {
		t.Errorf("a Service created during the flood had no address 2 s later")
	}
	// The review client's token bucket: its burst plus its rate over the
	// flood, and not a request more, whatever the flood sent.
	reads, took := reviewReads.Load()-reads0, time.Since(floodStart)
	limit := int64(200 + 50*took.Seconds() + 1)
	t.Logf("the reviews made %d API requests in %v (bound %d)", reads, took.Round(time.Millisecond), limit)
	if reads == 0 {
		t.Error("no API request was counted from the reviews: the count is not measuring them")
	}
	if reads > limit {
		t.Errorf("the reviews made %d API requests in %v, over the %d their rate limit allows", reads, took, limit)
	}
	if sent[http.StatusRequestEntityTooLarge] == 0 || sent[http.StatusOK] == 0 {
		t.Errorf("the flood did not exercise both paths: %v", sent)
	}
	if peak > base0.HeapInuse+192<<20 {
		t.Errorf("heap in use grew from %d MiB to %d MiB under the flood; the bound is 192 MiB more", base0.HeapInuse>>20, peak>>20)
	}
}

func runtimeRaw(t *testing.T, obj any) (raw kruntime.RawExtension) {
	t.Helper()
	b, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	raw.Raw = b
	return raw
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
