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

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/keeperlb/keeperlb/internal/ipam"
)

// ConditionIPAllocated is the Service status condition the controller keeps:
// True with the pool when the Service has its addresses, False with the
// reason and a readable message when it is waiting for them.
const ConditionIPAllocated = "keeperlb.io/IPAllocated"

// Event reasons beyond the allocator's own reasons.
const (
	// ReasonAllocated marks a Service that has its addresses.
	ReasonAllocated = "IPAllocated"
	// ReasonNoConfig marks a Service waiting because no valid configuration
	// has been loaded yet.
	ReasonNoConfig = "NoValidConfiguration"
)

// serviceReconciler gives each managed Service its addresses. It is level
// based: every pass computes the desired status from the Service and the
// allocator and writes it only when it differs from what is there.
type serviceReconciler struct {
	client  client.Client
	state   *state
	lbClass string
	events  recorder
	log     *slog.Logger
}

// Reconcile implements reconcile.Reconciler.
func (r *serviceReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	if err := r.state.waitReady(ctx); err != nil {
		return reconcile.Result{}, err
	}
	key := req.Namespace + "/" + req.Name
	svc := &corev1.Service{}
	if err := r.client.Get(ctx, req.NamespacedName, svc); err != nil {
		if apierrors.IsNotFound(err) {
			r.release(key)
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, fmt.Errorf("getting service %s: %w", key, err)
	}

	if !Managed(svc, r.lbClass) {
		r.release(key)
		// A Service that stopped being a LoadBalancer must not keep
		// advertising an address it no longer owns.
		if svc.Spec.Type != corev1.ServiceTypeLoadBalancer && svc.Annotations[AnnotationAllocatedFromPool] != "" {
			return reconcile.Result{}, r.write(ctx, svc, desired{})
		}
		return reconcile.Result{}, nil
	}

	want := r.decide(ctx, svc, key)
	if err := r.write(ctx, svc, want); err != nil {
		return reconcile.Result{}, err
	}
	if want.failure != nil {
		r.events.warn(svc, want.failure.reason, want.failure.message)
	} else if wasFailing(svc) {
		r.events.normal(svc, ReasonAllocated, fmt.Sprintf("Assigned %s from pool %s", joinIPs(want.ips), want.pool))
	}
	return reconcile.Result{}, nil
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
func (r *serviceReconciler) decide(ctx context.Context, svc *corev1.Service, key string) desired {
	nsLabels, err := r.namespaceLabels(ctx, svc.Namespace)
	if err != nil {
		r.log.Warn("reading namespace labels", "namespace", svc.Namespace, "err", err)
	}
	req, err := Request(svc, nsLabels)
	if err != nil {
		// Keep whatever the Service already holds: the user is editing it,
		// and dropping a live address for a typo would cut traffic.
		f := &failure{reason: ReasonInvalidService, message: err.Error()}
		r.state.mu.Lock()
		defer r.state.mu.Unlock()
		r.state.pending[key] = struct{}{}
		if a, ok := r.state.alloc.Get(key); ok {
			return desired{ips: a.IPs, pool: a.Pool, failure: f, managed: true}
		}
		if r.state.cfg != nil {
			if a, ok := restore(r.state.alloc, fallbackRequest(svc, nsLabels)); ok {
				return desired{ips: a.IPs, pool: a.Pool, failure: f, managed: true}
			}
		}
		return desired{failure: f, managed: true}
	}

	r.state.mu.Lock()
	defer r.state.mu.Unlock()
	if r.state.cfg == nil {
		r.state.pending[key] = struct{}{}
		return desired{ips: req.Current, pool: svc.Annotations[AnnotationAllocatedFromPool], managed: true,
			failure: &failure{reason: ReasonNoConfig, message: "no valid metallb.io configuration is loaded; see the ConfigurationState named controller"}}
	}
	a, err := r.state.alloc.Ensure(req)
	if err != nil {
		r.state.pending[key] = struct{}{}
		reason, msg := string(ipam.ReasonInvalidRequest), err.Error()
		var ae *ipam.Error
		if errors.As(err, &ae) {
			reason, msg = string(ae.Reason), ae.Message
		}
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
	delete(r.state.pending, key)
	var retry []string
	if released {
		retry = r.state.pendingKeys()
	}
	r.state.mu.Unlock()
	if released {
		r.state.markPoolsDirty()
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
func (r *serviceReconciler) write(ctx context.Context, svc *corev1.Service, want desired) error {
	wantIPs := make([]string, 0, len(want.ips))
	for _, ip := range want.ips {
		wantIPs = append(wantIPs, ip.String())
	}
	sortedWant := slices.Clone(wantIPs)
	sort.Strings(sortedWant)

	cond, condChanged := r.condition(svc, want)
	ipsChanged := !slices.Equal(sortedWant, ingressIPs(svc))
	poolChanged := svc.Annotations[AnnotationAllocatedFromPool] != want.pool
	if !ipsChanged && !poolChanged && !condChanged {
		return nil
	}

	ingress := make([]map[string]string, 0, len(wantIPs))
	for _, ip := range wantIPs {
		ingress = append(ingress, map[string]string{"ip": ip})
	}
	var poolValue any // JSON null deletes the annotation
	if want.pool != "" {
		poolValue = want.pool
	}
	patch := map[string]any{
		"metadata": map[string]any{
			"resourceVersion": svc.ResourceVersion,
			"annotations":     map[string]any{AnnotationAllocatedFromPool: poolValue},
		},
		"status": map[string]any{
			"loadBalancer": map[string]any{"ingress": ingress},
			"conditions":   cond,
		},
	}
	body, err := json.Marshal(patch)
	if err != nil {
		return fmt.Errorf("encoding status patch: %w", err)
	}
	if err := r.client.Status().Patch(ctx, svc, client.RawPatch(types.MergePatchType, body)); err != nil {
		return fmt.Errorf("writing status of service %s/%s: %w", svc.Namespace, svc.Name, err)
	}
	return nil
}

// condition returns the Service's full condition list with ours set to match
// want, and whether ours changed. Other controllers' conditions are kept: a
// merge patch replaces the whole list.
func (r *serviceReconciler) condition(svc *corev1.Service, want desired) ([]metav1.Condition, bool) {
	conds := slices.Clone(svc.Status.Conditions)
	if !want.managed {
		changed := meta.RemoveStatusCondition(&conds, ConditionIPAllocated)
		return conds, changed
	}
	c := metav1.Condition{
		Type:               ConditionIPAllocated,
		Status:             metav1.ConditionTrue,
		ObservedGeneration: svc.Generation,
		Reason:             ReasonAllocated,
		Message:            fmt.Sprintf("%s from pool %s", joinIPs(want.ips), want.pool),
	}
	if want.failure != nil {
		c.Status = metav1.ConditionFalse
		c.Reason = want.failure.reason
		c.Message = want.failure.message
	}
	changed := meta.SetStatusCondition(&conds, c)
	return conds, changed
}

// wasFailing reports whether the Service's condition says it was waiting,
// so that its recovery is worth an Event.
func wasFailing(svc *corev1.Service) bool {
	c := meta.FindStatusCondition(svc.Status.Conditions, ConditionIPAllocated)
	return c != nil && c.Status == metav1.ConditionFalse
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
