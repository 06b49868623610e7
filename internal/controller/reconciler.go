package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/keeperlb/keeperlb/internal/ipam"
	"github.com/keeperlb/keeperlb/internal/kubeobj"
	"github.com/keeperlb/keeperlb/internal/request"
)

// ConditionIPAllocated is the Service status condition the controller keeps:
// True with the pool when the Service has its addresses, False with the
// reason and a readable message when it is waiting for them.
const ConditionIPAllocated = "keeperlb.io/IPAllocated"

// Event reasons beyond the allocator's own reasons.
const (
	// ReasonAllocated marks a Service that has its addresses.
	ReasonAllocated = "IPAllocated"
	// ReasonInvalidService marks a Service whose annotations or spec cannot
	// be turned into a request; the message names the field.
	ReasonInvalidService = "InvalidService"
	// ReasonNoConfig marks a Service waiting because no valid configuration
	// has been loaded yet.
	ReasonNoConfig = "NoValidConfiguration"
)

// serviceReconciler gives each managed Service its addresses. It is level
// based: every pass computes the desired status from the Service and the
// allocator and writes it only when it differs from what is there.
type serviceReconciler struct {
	client   client.Client
	services *serviceInformer
	state    *state
	lbClass  string
	events   recorder
	metrics  *metrics
	log      *slog.Logger
}

// Reconcile implements reconcile.Reconciler.
func (r *serviceReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	if err := r.state.waitReady(ctx); err != nil {
		return reconcile.Result{}, err
	}
	key := req.Namespace + "/" + req.Name
	svc, ok := r.services.get(key)
	if !ok {
		r.release(key)
		return reconcile.Result{}, nil
	}

	if !svc.managed(r.lbClass) {
		r.release(key)
		// A Service that stopped being a LoadBalancer must not keep
		// advertising an address it no longer owns.
		if svc.lbType != corev1.ServiceTypeLoadBalancer && svc.pool != "" {
			_, err := r.write(ctx, svc, desired{})
			return reconcile.Result{}, err
		}
		return reconcile.Result{}, nil
	}

	want := r.decide(ctx, svc, key)
	since, lacking := r.track(key, svc, want)
	written, err := r.write(ctx, svc, want)
	if err != nil || !written {
		// Events only for what changed: a waiting Service is reconciled
		// again whenever an address frees up, and repeating its Warning
		// each time would flood the namespace's Events.
		return reconcile.Result{}, err
	}
	if lacking && want.failure == nil {
		r.metrics.allocated(time.Since(since))
		r.state.mu.Lock()
		delete(r.state.lacking, key)
		r.state.mu.Unlock()
	}
	if want.failure != nil {
		r.events.warn(svc.ref(), want.failure.reason, want.failure.message)
	} else if wasFailing(svc) {
		r.events.normal(svc.ref(), ReasonAllocated, fmt.Sprintf("Assigned %s from pool %s", joinIPs(want.ips), want.pool))
	}
	return reconcile.Result{}, nil
}

// track keeps the start of a Service's allocation latency. It reports
// whether the Service's status lacks the addresses want gives it (or it
// waits for addresses it does not have) and, if so, since when this
// controller has seen it lacking them.
func (r *serviceReconciler) track(key string, svc *serviceView, want desired) (time.Time, bool) {
	r.state.mu.Lock()
	defer r.state.mu.Unlock()
	if !lacks(svc.ingress, want) {
		delete(r.state.lacking, key)
		return time.Time{}, false
	}
	return r.state.lackingSince(key, svc.seenAt()), true
}

// lacks reports whether a Service whose status holds ingress (sorted) lacks
// what want gives it: other addresses, or any address while it waits.
func lacks(ingress []string, want desired) bool {
	if want.failure != nil && len(want.ips) == 0 {
		return true
	}
	return !slices.Equal(sortedStrings(want.ips), ingress)
}

func sortedStrings(ips []netip.Addr) []string {
	out := make([]string, 0, len(ips))
	for _, ip := range ips {
		out = append(out, ip.String())
	}
	sort.Strings(out)
	return out
}

// desired is the status the controller wants a Service to have.
type desired struct {
	ips     []netip.Addr
	pool    string
	failure *failure // nil when the Service has its addresses (or is not ours)
	managed bool
}

type failure struct {
	reason  string
	message string
}

// decide asks the allocator for the Service's addresses.
func (r *serviceReconciler) decide(ctx context.Context, svc *serviceView, key string) desired {
	nsLabels, err := r.namespaceLabels(ctx, svc.namespace)
	if err != nil {
		r.log.Warn("reading namespace labels", "namespace", svc.namespace, "err", err)
	}
	if reqErr := svc.reqErr(); reqErr != nil {
		// Keep whatever the Service already holds: the user is editing it,
		// and dropping a live address for a typo would cut traffic.
		f := &failure{reason: ReasonInvalidService, message: reqErr.Error()}
		r.state.mu.Lock()
		defer r.state.mu.Unlock()
		r.state.pending[key] = f.reason
		r.state.markPoolsDirty() // publishes the waiting count
		if a, ok := r.state.alloc.Get(key); ok {
			return desired{ips: a.IPs, pool: a.Pool, failure: f, managed: true}
		}
		if r.state.cfg != nil {
			if a, ok := restore(r.state.alloc, withNamespace(svc.fallback(), nsLabels)); ok {
				return desired{ips: a.IPs, pool: a.Pool, failure: f, managed: true}
			}
		}
		return desired{failure: f, managed: true}
	}

	req := withNamespace(svc.req, nsLabels)
	r.state.mu.Lock()
	defer r.state.mu.Unlock()
	if r.state.cfg == nil {
		r.state.pending[key] = ReasonNoConfig
		r.state.markPoolsDirty()
		return desired{ips: req.Current, pool: svc.pool, managed: true,
			failure: &failure{reason: ReasonNoConfig, message: "no valid metallb.io configuration is loaded; see the ConfigurationState named controller"}}
	}
	a, err := r.state.alloc.Ensure(req)
	if err != nil {
		reason, msg := string(ipam.ReasonInvalidRequest), err.Error()
		var ae *ipam.Error
		if errors.As(err, &ae) {
			reason, msg = string(ae.Reason), ae.Message
		}
		r.state.pending[key] = reason
		r.state.markPoolsDirty()
		return desired{failure: &failure{reason: reason, message: msg}, managed: true}
	}
	delete(r.state.pending, key)
	r.state.markPoolsDirty()
	return desired{ips: a.IPs, pool: a.Pool, managed: true}
}

// release frees a Service's addresses and, when that freed something, gives
// the waiting Services another chance.
func (r *serviceReconciler) release(key string) {
	r.state.mu.Lock()
	released := r.state.alloc.Release(key)
	_, waited := r.state.pending[key]
	delete(r.state.pending, key)
	delete(r.state.lacking, key)
	var retry []string
	if released {
		retry = r.state.pendingKeys()
	}
	r.state.mu.Unlock()
	if released || waited {
		r.state.markPoolsDirty()
	}
	if released {
		r.state.requeue(retry)
	}
}

func (r *serviceReconciler) namespaceLabels(ctx context.Context, ns string) (map[string]string, error) {
	n := &corev1.Namespace{}
	if err := r.client.Get(ctx, types.NamespacedName{Name: ns}, n); err != nil {
		return nil, client.IgnoreNotFound(err)
	}
	return n.Labels, nil
}

// write patches the Service's status, pool annotation and condition in one
// request, when they differ from want. The patch carries the resourceVersion
// the decision was based on, so a decision made on a stale Service is
// refused by the API server and retried instead of overwriting newer state.
// It reports whether it wrote.
func (r *serviceReconciler) write(ctx context.Context, svc *serviceView, want desired) (bool, error) {
	wantIPs := make([]string, 0, len(want.ips))
	for _, ip := range want.ips {
		wantIPs = append(wantIPs, ip.String())
	}
	sortedWant := slices.Clone(wantIPs)
	sort.Strings(sortedWant)

	cond, condChanged := r.condition(svc, want)
	ipsChanged := !slices.Equal(sortedWant, svc.ingress)
	poolChanged := svc.pool != want.pool
	if !ipsChanged && !poolChanged && !condChanged {
		return false, nil
	}

	patch := statusPatch{}
	patch.Metadata.ResourceVersion = svc.resourceVersion
	patch.Metadata.Annotations = map[string]*string{request.AnnotationAllocatedFromPool: nil} // null deletes
	if want.pool != "" {
		patch.Metadata.Annotations[request.AnnotationAllocatedFromPool] = &want.pool
	}
	patch.Status.LoadBalancer.Ingress = make([]ingressPatch, 0, len(wantIPs))
	for _, ip := range wantIPs {
		patch.Status.LoadBalancer.Ingress = append(patch.Status.LoadBalancer.Ingress, ingressPatch{IP: ip})
	}
	patch.Status.Conditions = cond
	body, err := json.Marshal(&patch)
	if err != nil {
		return false, fmt.Errorf("encoding status patch: %w", err)
	}
	err = r.services.patchStatus(ctx, svc.namespace, svc.name, body)
	if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
		// The view is older than the Service (or the Service is gone): the
		// watch is about to bring the newer version or the deletion, whose
		// reconcile will decide again.
		r.log.Debug("stale view; waiting for the newer version", "service", svc.key())
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("writing status of service %s: %w", svc.key(), err)
	}
	return true, nil
}

// statusPatch is the JSON merge patch the controller sends to a Service's
// status subresource: typed, so that encoding it costs no reflection over
// maps on the hot path of a backlog.
type statusPatch struct {
	Metadata struct {
		ResourceVersion string             `json:"resourceVersion"`
		Annotations     map[string]*string `json:"annotations"`
	} `json:"metadata"`
	Status struct {
		LoadBalancer struct {
			// Always a list, never null: an empty list clears the
			// addresses.
			Ingress []ingressPatch `json:"ingress"`
		} `json:"loadBalancer"`
		Conditions []metav1.Condition `json:"conditions"`
	} `json:"status"`
}

type ingressPatch struct {
	IP string `json:"ip"`
}

// condition returns the Service's full condition list with ours set to match
// want, and whether ours changed. Other controllers' conditions are kept: a
// merge patch replaces the whole list.
func (r *serviceReconciler) condition(svc *serviceView, want desired) ([]metav1.Condition, bool) {
	conds := slices.Clone(svc.others())
	if svc.own.present {
		conds = append(conds, svc.own.condition())
	}
	if !want.managed {
		changed := meta.RemoveStatusCondition(&conds, ConditionIPAllocated)
		return conds, changed
	}
	c := metav1.Condition{
		Type:               ConditionIPAllocated,
		Status:             metav1.ConditionTrue,
		ObservedGeneration: svc.generation,
		Reason:             ReasonAllocated,
		Message:            fmt.Sprintf("%s from pool %s", joinIPs(want.ips), want.pool),
	}
	if want.failure != nil {
		c.Status = metav1.ConditionFalse
		c.Reason = want.failure.reason
		c.Message = want.failure.message
	}
	// Bounded here, where the desired condition is made, so that it
	// compares equal to what the API stored and is not patched again on
	// every pass.
	c.Message = kubeobj.Truncate(c.Message, kubeobj.MaxConditionMessage)
	changed := meta.SetStatusCondition(&conds, c)
	return conds, changed
}

// wasFailing reports whether the Service's condition says it was waiting,
// so that its recovery is worth an Event.
func wasFailing(svc *serviceView) bool {
	return svc.own.present && svc.own.status == metav1.ConditionFalse
}

func joinIPs(ips []netip.Addr) string {
	s := ""
	for i, ip := range ips {
		if i > 0 {
			s += ","
		}
		s += ip.String()
	}
	return s
}
