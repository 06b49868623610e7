package speaker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/resourceversion"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/keeperlb/keeperlb/api/v1beta1"
	"github.com/keeperlb/keeperlb/internal/bgp"
)

// Labels on the status objects a speaker writes. The first three are
// MetalLB's, so that `kubectl get servicel2status -l metallb.io/service-name=web`
// works the same.
const (
	LabelNode             = "metallb.io/node"
	LabelServiceName      = "metallb.io/service-name"
	LabelServiceNamespace = "metallb.io/service-namespace"
	LabelPeer             = "metallb.io/peer"
)

// statusName names a status object of one node about one thing (a Service,
// a peer). It is a hash so that it is a valid object name whatever the
// lengths, and stable so that writing it twice is an update, not a
// duplicate.
func statusName(prefix, node, about string) string {
	sum := sha256.Sum256([]byte(node + "\x00" + about))
	return prefix + hex.EncodeToString(sum[:10])
}

// LabelValue is the value of LabelNode or LabelPeer for a node or peer
// name. Node and object names may have up to 253 characters and a label
// value at most 63, and the API server refuses an object with a longer one:
// a name that fits is used as it is (so `-l metallb.io/node=NAME` works as
// under MetalLB), a longer one becomes its first 46 characters, a dash and
// 16 hex digits of its SHA-256, which is stable and still unique.
func LabelValue(name string) string {
	if len(validation.IsValidLabelValue(name)) == 0 {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	head := strings.TrimRight(name[:min(len(name), 46)], "-_.")
	return head + "-" + hex.EncodeToString(sum[:8])
}

// serviceLabels are the labels of a status object about Service key.
func serviceLabels(node, key string) map[string]string {
	ns, name, _ := strings.Cut(key, "/")
	return map[string]string{LabelNode: LabelValue(node), LabelServiceName: name, LabelServiceNamespace: ns}
}

// statusAPI is how the status writer talks to the API server.
type statusAPI struct {
	// c writes, and lists from the cache.
	c client.Client
	// live reads from the API server itself: it settles a write that the
	// cache was behind for (a conflict, or an object already created).
	live client.Reader
	// workers bounds the requests in flight.
	workers int
	// count, when set, gets the verb and result of every request.
	count func(verb, result string)
	// written, when set, records the successful writes, so that the next
	// write can wait for the cache to show them (see ownWrites).
	written *ownWrites
}

// ownWrites records the objects one status write created, updated or
// deleted, with the resourceVersion the API server gave them. The writer's
// lists come from the informer cache, which shows its own writes a few
// milliseconds later; a write that starts before the cache shows the
// previous one's sees stale objects and spends a conflict and a read on
// each. Waiting for the cache first costs milliseconds and no request.
type ownWrites struct {
	mu      sync.Mutex
	entries []ownWrite
}

type ownWrite struct {
	obj     client.Object // an object of the kind, to Get into
	key     client.ObjectKey
	rv      string
	deleted bool
}

func (l *ownWrites) add(obj client.Object, deleted bool) {
	if l == nil {
		return
	}
	e := ownWrite{obj: obj.DeepCopyObject().(client.Object), key: client.ObjectKeyFromObject(obj), rv: obj.GetResourceVersion(), deleted: deleted}
	l.mu.Lock()
	l.entries = append(l.entries, e)
	l.mu.Unlock()
}

// awaitCache waits, at most timeout, until c (the cache) shows every write
// logged since the last call: a written object at its resourceVersion or
// later, a deleted one gone.
func (l *ownWrites) awaitCache(ctx context.Context, c client.Reader, timeout time.Duration) {
	if l == nil {
		return
	}
	l.mu.Lock()
	pending := l.entries
	l.entries = nil
	l.mu.Unlock()
	deadline := time.Now().Add(timeout)
	for len(pending) > 0 && time.Now().Before(deadline) && ctx.Err() == nil {
		rest := pending[:0]
		for _, e := range pending {
			if !e.shownBy(ctx, c) {
				rest = append(rest, e)
			}
		}
		pending = rest
		if len(pending) > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(5 * time.Millisecond):
			}
		}
	}
}

func (e ownWrite) shownBy(ctx context.Context, c client.Reader) bool {
	obj := e.obj.DeepCopyObject().(client.Object)
	err := c.Get(ctx, e.key, obj)
	if e.deleted || err != nil {
		return e.deleted && apierrors.IsNotFound(err)
	}
	cmp, err := resourceversion.CompareResourceVersion(obj.GetResourceVersion(), e.rv)
	return err != nil || cmp >= 0
}

// Verbs and results of keeperlb_speaker_status_requests_total.
const (
	verbCreate, verbUpdate, verbDelete, verbGet  = "create", "update", "delete", "get"
	resultConflict, resultNotFound, resultExists = "conflict", "not_found", "already_exists"
)

// statusWorkers is how many requests one status write has in flight: with
// one, a failover's few hundred objects take as many round trips one after
// the other; the client's rate limit still caps the rate.
const statusWorkers = 8

func (a statusAPI) note(verb string, err error) error {
	if a.count != nil {
		result := resultSuccess
		switch {
		case err == nil:
		case apierrors.IsConflict(err):
			result = resultConflict
		case apierrors.IsNotFound(err):
			result = resultNotFound
		case apierrors.IsAlreadyExists(err):
			result = resultExists
		default:
			result = resultError
		}
		a.count(verb, result)
	}
	return err
}

func (a statusAPI) delete(ctx context.Context, obj client.Object) error {
	if err := a.note(verbDelete, a.c.Delete(ctx, obj)); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting %s: %w", obj.GetName(), err)
	}
	a.written.add(obj, true)
	return nil
}

// run runs ops with at most a.workers in flight and joins their errors.
func (a statusAPI) run(ops []func() error) error {
	workers := max(a.workers, 1)
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	next := make(chan func() error)
	for range min(workers, len(ops)) {
		wg.Go(func() {
			for op := range next {
				if err := op(); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		})
	}
	for _, op := range ops {
		next <- op
	}
	close(next)
	wg.Wait()
	return errors.Join(errs...)
}

// syncStatuses makes the status objects in have (this node's, of one kind,
// from the cache) match want (by name): it deletes the extra ones, updates
// the status of those that differ and creates the missing ones, with
// statusWorkers requests in flight. T's status lives in the status
// subresource, so a create is followed by a status update. extra are more
// objects to delete (another node's). The cache may be behind this
// writer's own last writes: a create that finds the object, or an update
// that conflicts, reads it from the API server and writes again only if it
// still differs.
func syncStatuses[T client.Object](ctx context.Context, a statusAPI, have []T, want map[string]T, extra []client.Object,
	same func(have, want T) bool, copyStatus func(dst, src T)) error {
	var ops []func() error
	for _, obj := range extra {
		ops = append(ops, func() error { return a.delete(ctx, obj) })
	}
	seen := map[string]bool{}
	for _, obj := range have {
		w, ok := want[obj.GetName()]
		if !ok {
			ops = append(ops, func() error { return a.delete(ctx, obj) })
			continue
		}
		seen[obj.GetName()] = true
		if same(obj, w) {
			continue
		}
		ops = append(ops, func() error { return updateStatus(ctx, a, obj, w, same, copyStatus) })
	}
	names := make([]string, 0, len(want))
	for n := range want {
		if !seen[n] {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	for _, n := range names {
		w := want[n]
		ops = append(ops, func() error {
			obj := w.DeepCopyObject().(T)
			err := a.note(verbCreate, a.c.Create(ctx, obj))
			switch {
			case apierrors.IsAlreadyExists(err):
				// Created by an earlier write the cache has not
				// shown yet.
				if err := a.note(verbGet, a.live.Get(ctx, client.ObjectKeyFromObject(obj), obj)); err != nil {
					return fmt.Errorf("reading %s: %w", n, err)
				}
				if same(obj, w) {
					return nil
				}
			case err != nil:
				return fmt.Errorf("creating %s: %w", n, err)
			}
			return updateStatus(ctx, a, obj, w, same, copyStatus)
		})
	}
	return a.run(ops)
}

// updateStatus writes want's status into obj. On a conflict (obj was a
// stale copy) it reads the object from the API server and tries once more
// if it still differs.
func updateStatus[T client.Object](ctx context.Context, a statusAPI, obj, want T, same func(have, want T) bool, copyStatus func(dst, src T)) error {
	copyStatus(obj, want)
	err := a.note(verbUpdate, a.c.Status().Update(ctx, obj))
	if apierrors.IsConflict(err) {
		if err = a.note(verbGet, a.live.Get(ctx, client.ObjectKeyFromObject(obj), obj)); err == nil {
			if same(obj, want) {
				return nil
			}
			copyStatus(obj, want)
			err = a.note(verbUpdate, a.c.Status().Update(ctx, obj))
		}
	}
	if err != nil && !apierrors.IsNotFound(err) {
		// Deleted meanwhile: its delete starts a pass that recreates
		// it if it is still wanted.
		return fmt.Errorf("updating the status of %s: %w", obj.GetName(), err)
	}
	if err == nil {
		a.written.add(obj, false)
	}
	return nil
}

// l2Status is the desired content of one ServiceL2Status.
type l2Status struct {
	service    string // namespace/name
	interfaces []string
}

// syncL2Statuses makes the ServiceL2Status objects of node match want: one
// per announced Service. It also deletes objects left by nodes that are not
// alive for Services this node now announces, since a dead speaker cannot
// clean up after itself.
func syncL2Statuses(ctx context.Context, a statusAPI, ns, node string, want map[string]l2Status, live []string) error {
	var list v1beta1.ServiceL2StatusList
	if err := a.c.List(ctx, &list, client.InNamespace(ns)); err != nil {
		return fmt.Errorf("listing ServiceL2Status: %w", err)
	}
	var mine []*v1beta1.ServiceL2Status
	var theirs []client.Object
	alive := make(map[string]bool, len(live))
	for _, n := range live {
		alive[LabelValue(n)] = true
	}
	for i := range list.Items {
		st := &list.Items[i]
		owner := st.Labels[LabelNode]
		if owner == LabelValue(node) {
			mine = append(mine, st)
			continue
		}
		key := st.Labels[LabelServiceNamespace] + "/" + st.Labels[LabelServiceName]
		if _, taken := want[key]; taken && !alive[owner] {
			theirs = append(theirs, st)
		}
	}
	desired := map[string]*v1beta1.ServiceL2Status{}
	for key, w := range want {
		svcNS, svcName, _ := strings.Cut(key, "/")
		name := statusName("l2-", node, key)
		desired[name] = &v1beta1.ServiceL2Status{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: serviceLabels(node, key)},
			Status: v1beta1.ServiceL2StatusStatus{Node: node, ServiceName: svcName, ServiceNamespace: svcNS,
				Interfaces: interfaceInfos(w.interfaces)},
		}
	}
	err := syncStatuses(ctx, a, mine, desired, theirs,
		func(a, b *v1beta1.ServiceL2Status) bool {
			return a.Status.Node == b.Status.Node && a.Status.ServiceName == b.Status.ServiceName &&
				a.Status.ServiceNamespace == b.Status.ServiceNamespace &&
				slices.Equal(a.Status.Interfaces, b.Status.Interfaces)
		},
		func(dst, src *v1beta1.ServiceL2Status) { dst.Status = src.Status })
	if err != nil {
		return fmt.Errorf("writing ServiceL2Status: %w", err)
	}
	return nil
}

// syncBGPStatuses writes one ServiceBGPStatus per Service this node
// advertises, naming the peers that receive it.
func syncBGPStatuses(ctx context.Context, a statusAPI, ns, node string, adverts []bgp.ServiceAdvert) error {
	var list v1beta1.ServiceBGPStatusList
	if err := a.c.List(ctx, &list, client.InNamespace(ns), client.MatchingLabels{LabelNode: LabelValue(node)}); err != nil {
		return fmt.Errorf("listing ServiceBGPStatus: %w", err)
	}
	have := make([]*v1beta1.ServiceBGPStatus, len(list.Items))
	for i := range list.Items {
		have[i] = &list.Items[i]
	}
	want := map[string]*v1beta1.ServiceBGPStatus{}
	for _, a := range adverts {
		svcNS, svcName, _ := strings.Cut(a.Key, "/")
		name := statusName("bgp-", node, a.Key)
		want[name] = &v1beta1.ServiceBGPStatus{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: serviceLabels(node, a.Key)},
			Status:     v1beta1.ServiceBGPStatusStatus{Node: node, ServiceName: svcName, ServiceNamespace: svcNS, Peers: a.Peers},
		}
	}
	err := syncStatuses(ctx, a, have, want, nil,
		func(a, b *v1beta1.ServiceBGPStatus) bool {
			return a.Status.Node == b.Status.Node && a.Status.ServiceName == b.Status.ServiceName &&
				a.Status.ServiceNamespace == b.Status.ServiceNamespace && slices.Equal(a.Status.Peers, b.Status.Peers)
		},
		func(dst, src *v1beta1.ServiceBGPStatus) { dst.Status = src.Status })
	if err != nil {
		return fmt.Errorf("writing ServiceBGPStatus: %w", err)
	}
	return nil
}

// syncSessionStates writes one BGPSessionState per session of this node.
func syncSessionStates(ctx context.Context, a statusAPI, ns, node string, sessions []bgp.SessionState) error {
	var list v1beta1.BGPSessionStateList
	if err := a.c.List(ctx, &list, client.InNamespace(ns), client.MatchingLabels{LabelNode: LabelValue(node)}); err != nil {
		return fmt.Errorf("listing BGPSessionState: %w", err)
	}
	have := make([]*v1beta1.BGPSessionState, len(list.Items))
	for i := range list.Items {
		have[i] = &list.Items[i]
	}
	want := map[string]*v1beta1.BGPSessionState{}
	for _, s := range sessions {
		name := statusName("session-", node, s.Peer)
		bfd := s.BFD
		if bfd == "" {
			bfd = "N/A"
		}
		want[name] = &v1beta1.BGPSessionState{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{LabelNode: LabelValue(node), LabelPeer: LabelValue(s.Peer)}},
			Status: v1beta1.BGPSessionStateStatus{Node: node, Peer: s.Address.String(), BGPStatus: s.State, BFDStatus: bfd,
				Reason: s.Reason, Message: s.Message},
		}
	}
	err := syncStatuses(ctx, a, have, want, nil,
		func(a, b *v1beta1.BGPSessionState) bool { return a.Status == b.Status },
		func(dst, src *v1beta1.BGPSessionState) { dst.Status = src.Status })
	if err != nil {
		return fmt.Errorf("writing BGPSessionState: %w", err)
	}
	return nil
}

func interfaceInfos(names []string) []v1beta1.InterfaceInfo {
	out := make([]v1beta1.InterfaceInfo, len(names))
	for i, n := range names {
		out[i] = v1beta1.InterfaceInfo{Name: n}
	}
	return out
}
