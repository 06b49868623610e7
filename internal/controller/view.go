package controller

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/keeperlb/keeperlb/internal/ipam"
	"github.com/keeperlb/keeperlb/internal/request"
)

// serviceView is the controller's compact copy of a Service: the request
// parsed from it and what the controller must compare before writing back.
// Holding this instead of the Service keeps a cluster of 10,000 Services
// within a few megabytes, and parses each Service once per change rather
// than once per reconcile.
type serviceView struct {
	// Identity and metadata, without metav1.ObjectMeta's dozen other
	// fields: the view is stored once per Service.
	name, namespace string
	uid             types.UID
	resourceVersion string
	generation      int64
	created         int64 // creationTimestamp, Unix seconds (its resolution)
	seen            int64 // when this process received this version, Unix nanoseconds
	labels          map[string]string

	lbType corev1.ServiceType
	class  *string // spec.loadBalancerClass

	req *ipam.Service // nil when the Service could not be parsed

	pool    string   // metallb.io/ip-allocated-from-pool
	ingress []string // status addresses, sorted

	// own is the controller's condition as last seen.
	own ownCondition
	// rare holds what few Services have; nil for nearly all of them, which
	// saves its size ten thousand times over.
	rare *rareFields
}

// rareFields are the parts of a view that most Services do not need.
type rareFields struct {
	reqErr   error         // why the Service could not be parsed
	fallback *ipam.Service // with reqErr: what the Service may keep meanwhile
	others   []metav1.Condition
}

// reqErr says why the Service could not be parsed, or nil.
func (v *serviceView) reqErr() error {
	if v.rare == nil {
		return nil
	}
	return v.rare.reqErr
}

// fallback is what a Service that could not be parsed may keep.
func (v *serviceView) fallback() *ipam.Service {
	if v.rare == nil {
		return nil
	}
	return v.rare.fallback
}

// others are the Service's conditions other than the controller's, which
// must be written back unchanged.
func (v *serviceView) others() []metav1.Condition {
	if v.rare == nil {
		return nil
	}
	return v.rare.others
}

// ownCondition is ConditionIPAllocated as last seen on a Service, without
// the parts that are the same on every Service.
type ownCondition struct {
	present    bool
	status     metav1.ConditionStatus
	reason     string
	message    string
	generation int64
	since      metav1.Time
}

// condition returns it as a metav1.Condition.
func (c ownCondition) condition() metav1.Condition {
	return metav1.Condition{
		Type: ConditionIPAllocated, Status: c.status, Reason: c.reason, Message: c.message,
		ObservedGeneration: c.generation, LastTransitionTime: c.since,
	}
}

// splitConditions separates the controller's condition from the others.
// Status and reason strings are replaced by the constants they equal, so
// that ten thousand Services share one copy of each.
func splitConditions(conds []metav1.Condition) (own ownCondition, others []metav1.Condition) {
	for _, c := range conds {
		if c.Type != ConditionIPAllocated {
			others = append(others, c)
			continue
		}
		own = ownCondition{present: true, status: internStatus(c.Status), reason: internReason(c.Reason),
			message: c.Message, generation: c.ObservedGeneration, since: c.LastTransitionTime}
	}
	return own, others
}

func internStatus(s metav1.ConditionStatus) metav1.ConditionStatus {
	switch s {
	case metav1.ConditionTrue:
		return metav1.ConditionTrue
	case metav1.ConditionFalse:
		return metav1.ConditionFalse
	}
	return s
}

func internReason(r string) string {
	for _, known := range []string{
		ReasonAllocated, ReasonInvalidService, ReasonNoConfig,
		string(ipam.ReasonPoolExhausted), string(ipam.ReasonNoMatchingPool), string(ipam.ReasonIPInUse),
		string(ipam.ReasonIPNotInPool), string(ipam.ReasonUnknownPool), string(ipam.ReasonPoolNotAllowed),
		string(ipam.ReasonInvalidRequest),
	} {
		if r == known {
			return known
		}
	}
	return r
}

// viewOf builds the view of a Service. It is the informer's transform, so
// the full Service is garbage as soon as it has been seen.
func viewOf(s *corev1.Service) *serviceView {
	v := &serviceView{
		name:            s.Name,
		namespace:       s.Namespace,
		uid:             s.UID,
		resourceVersion: s.ResourceVersion,
		generation:      s.Generation,
		created:         s.CreationTimestamp.Unix(),
		seen:            time.Now().UnixNano(),
		labels:          s.Labels,
		lbType:          s.Spec.Type,
		class:           s.Spec.LoadBalancerClass,
		pool:            s.Annotations[request.AnnotationAllocatedFromPool],
		ingress:         ingressIPs(s),
	}
	var others []metav1.Condition
	v.own, others = splitConditions(s.Status.Conditions)
	if others != nil {
		v.rare = &rareFields{others: others}
	}
	if s.Spec.Type != corev1.ServiceTypeLoadBalancer {
		return v // not ours to parse
	}
	req, err := request.FromService(s, nil)
	if err != nil {
		if v.rare == nil {
			v.rare = &rareFields{}
		}
		v.rare.reqErr, v.rare.fallback = err, request.Fallback(s, nil)
		return v
	}
	v.req = req
	return v
}

// managed reports whether the controller owns the Service; see Managed.
func (v *serviceView) managed(lbClass string) bool {
	return request.ManagedBy(v.lbType, v.class, lbClass)
}

// withNamespace returns a copy of a request with the namespace's labels,
// which the view cannot know (they come from the Namespace).
func withNamespace(req *ipam.Service, nsLabels map[string]string) *ipam.Service {
	if req == nil {
		return nil
	}
	r := *req
	r.NamespaceLabels = nsLabels
	return &r
}

// seenAt is when this process received this version of the Service.
func (v *serviceView) seenAt() time.Time { return time.Unix(0, v.seen) }

// key is the Service's "namespace/name".
func (v *serviceView) key() string { return v.namespace + "/" + v.name }

// GetObjectMeta lets client-go's informer key and index views (through
// meta.Accessor) without storing a full ObjectMeta in each.
func (v *serviceView) GetObjectMeta() metav1.Object {
	return &metav1.ObjectMeta{Name: v.name, Namespace: v.namespace, UID: v.uid, ResourceVersion: v.resourceVersion}
}

// GetObjectKind implements runtime.Object.
func (v *serviceView) GetObjectKind() schema.ObjectKind { return schema.EmptyObjectKind }

// DeepCopyObject implements runtime.Object. Views are never modified after
// the transform built them, so sharing the nested values is safe.
func (v *serviceView) DeepCopyObject() runtime.Object {
	c := *v
	c.ingress = slices.Clone(v.ingress)
	if v.rare != nil {
		r := *v.rare
		r.others = slices.Clone(v.rare.others)
		c.rare = &r
	}
	return &c
}

// ref is a stand-in Service for Events: the recorder needs the kind, name,
// namespace and UID (kubectl describe finds Events by UID).
func (v *serviceView) ref() *corev1.Service {
	return &corev1.Service{
		TypeMeta:   metav1.TypeMeta{Kind: "Service", APIVersion: "v1"},
		ObjectMeta: metav1.ObjectMeta{Name: v.name, Namespace: v.namespace, UID: v.uid, ResourceVersion: v.resourceVersion},
	}
}

// listPageSize bounds how many full Services are decoded at once while
// listing; each page is turned into views before the next is fetched.
const listPageSize = 500

// viewList is a list of serviceViews, as the reflector receives it from
// listViews.
type viewList struct {
	metav1.TypeMeta
	metav1.ListMeta
	Items []runtime.Object
}

// DeepCopyObject implements runtime.Object.
func (l *viewList) DeepCopyObject() runtime.Object {
	c := *l
	c.Items = slices.Clone(l.Items)
	return &c
}

// listViews lists every Service a page at a time and returns their views.
// client-go's reflector would hold the whole list of full Services in memory
// before transforming any of them: at 10,000 Services that transient list
// was the controller's peak memory.
func listViews(ctx context.Context, cs kubernetes.Interface, o metav1.ListOptions) (runtime.Object, error) {
	if o.ResourceVersion == "0" {
		// "Any version" makes the API server ignore the page size; ask for
		// the current state instead, which it serves in pages.
		o.ResourceVersion, o.ResourceVersionMatch = "", ""
	}
	if o.ResourceVersion != "" {
		o.Limit = 0 // a relist at a given version: one request, as client-go would
	} else {
		o.Limit = listPageSize
	}
	out := &viewList{}
	for {
		page, err := cs.CoreV1().Services(metav1.NamespaceAll).List(ctx, o)
		if err != nil {
			return nil, err
		}
		for i := range page.Items {
			out.Items = append(out.Items, viewOf(&page.Items[i]))
		}
		out.ResourceVersion = page.ResourceVersion
		if page.Continue == "" {
			return out, nil
		}
		o.Continue = page.Continue
	}
}

// serviceInformer watches every Service and stores their views.
type serviceInformer struct {
	toolscache.SharedIndexInformer
	client kubernetes.Interface
}

func newServiceInformer(cfg *rest.Config) (*serviceInformer, error) {
	c := rest.CopyConfig(cfg)
	c.ContentType = "application/vnd.kubernetes.protobuf"
	c.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	cs, err := kubernetes.NewForConfig(c)
	if err != nil {
		return nil, fmt.Errorf("building service client: %w", err)
	}
	lw := &toolscache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return listViews(ctx, cs, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return cs.CoreV1().Services(metav1.NamespaceAll).Watch(ctx, o)
		},
	}
	// No namespace index: it would cost every Service a few dozen bytes to
	// speed up a rare event (a namespace's labels changing).
	inf := toolscache.NewSharedIndexInformerWithOptions(lw, &corev1.Service{}, toolscache.SharedIndexInformerOptions{})
	if err := inf.SetTransform(func(obj any) (any, error) {
		if s, ok := obj.(*corev1.Service); ok {
			return viewOf(s), nil
		}
		return obj, nil
	}); err != nil {
		return nil, fmt.Errorf("setting service transform: %w", err)
	}
	return &serviceInformer{SharedIndexInformer: inf, client: cs}, nil
}

// patchStatus sends a JSON merge patch to a Service's status subresource.
// The response, a full Service, is not decoded: the watch brings the new
// state anyway, and decoding it was a third of the controller's allocations
// in a backlog.
func (i *serviceInformer) patchStatus(ctx context.Context, namespace, name string, body []byte) error {
	return i.client.CoreV1().RESTClient().Patch(types.MergePatchType).
		Namespace(namespace).Resource("services").Name(name).SubResource("status").
		Body(body).Do(ctx).Error()
}

// Start implements manager.Runnable.
func (i *serviceInformer) Start(ctx context.Context) error {
	i.RunWithContext(ctx)
	return nil
}

// NeedLeaderElection keeps the informer running on standby replicas too, so
// that a replica taking over starts with a warm cache.
func (i *serviceInformer) NeedLeaderElection() bool { return false }

// get returns the view of a Service by "namespace/name".
func (i *serviceInformer) get(key string) (*serviceView, bool) {
	obj, ok, err := i.GetIndexer().GetByKey(key)
	if err != nil || !ok {
		return nil, false
	}
	v, ok := obj.(*serviceView)
	return v, ok
}

// list returns every view.
func (i *serviceInformer) list() []*serviceView {
	objs := i.GetIndexer().List()
	out := make([]*serviceView, 0, len(objs))
	for _, o := range objs {
		if v, ok := o.(*serviceView); ok {
			out = append(out, v)
		}
	}
	return out
}

// enqueue registers a handler that queues the key of every added, changed
// or deleted Service; it is the Service controller's event source.
func (i *serviceInformer) enqueue(_ context.Context, q ctrlQueue) error {
	add := func(obj any) {
		if d, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
			obj = d.Obj
		}
		if v, ok := obj.(*serviceView); ok {
			q.Add(reconcile.Request{NamespacedName: types.NamespacedName{Namespace: v.namespace, Name: v.name}})
		}
	}
	_, err := i.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    add,
		UpdateFunc: func(_, obj any) { add(obj) },
		DeleteFunc: add,
	})
	if err != nil {
		return fmt.Errorf("watching services: %w", err)
	}
	return nil
}

// requestsInNamespace maps a Namespace to its Services: a label change can
// change which pools those Services may use.
func (i *serviceInformer) requestsInNamespace(_ context.Context, o client.Object) []reconcile.Request {
	var out []reconcile.Request
	for _, v := range i.list() {
		if v.namespace == o.GetName() {
			out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Namespace: v.namespace, Name: v.name}})
		}
	}
	return out
}

// ingressIPs returns the addresses of a Service's status as sorted strings,
// for comparison with the desired ones.
func ingressIPs(s *corev1.Service) []string {
	out := make([]string, 0, len(s.Status.LoadBalancer.Ingress))
	for _, ing := range s.Status.LoadBalancer.Ingress {
		out = append(out, ing.IP)
	}
	sort.Strings(out)
	return out
}
