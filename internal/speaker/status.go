package speaker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/keeperlb/keeperlb/api/v1beta1"
)

// Labels on ServiceL2Status objects, as MetalLB sets them, so that
// `kubectl get servicel2status -l metallb.io/service-name=web` works the same.
const (
	LabelNode             = "metallb.io/node"
	LabelServiceName      = "metallb.io/service-name"
	LabelServiceNamespace = "metallb.io/service-namespace"
)

// l2Status is the desired content of one ServiceL2Status.
type l2Status struct {
	service    string // namespace/name
	interfaces []string
}

// l2StatusName names the ServiceL2Status of one Service on one node. It is a
// hash so that it is a valid object name whatever the lengths, and stable so
// that writing it twice is an update, not a duplicate.
func l2StatusName(node, service string) string {
	sum := sha256.Sum256([]byte(node + "\x00" + service))
	return "l2-" + hex.EncodeToString(sum[:10])
}

// syncL2Statuses makes the ServiceL2Status objects of node match want: one
// per announced Service. It also deletes objects left by nodes that are not
// alive for Services this node now announces, since a dead speaker cannot
// clean up after itself.
func syncL2Statuses(ctx context.Context, c client.Client, ns, node string, want map[string]l2Status, live []string) error {
	var list v1beta1.ServiceL2StatusList
	if err := c.List(ctx, &list, client.InNamespace(ns)); err != nil {
		return fmt.Errorf("listing ServiceL2Status: %w", err)
	}
	var errs []string
	seen := map[string]bool{}
	for i := range list.Items {
		st := &list.Items[i]
		owner := st.Labels[LabelNode]
		key := st.Labels[LabelServiceNamespace] + "/" + st.Labels[LabelServiceName]
		if owner != node {
			// Another node's object: remove it only when that node is dead
			// and this one has taken the Service over.
			if _, mine := want[key]; mine && !slices.Contains(live, owner) {
				if err := c.Delete(ctx, st); err != nil && !apierrors.IsNotFound(err) {
					errs = append(errs, err.Error())
				}
			}
			continue
		}
		w, ok := want[key]
		if !ok || st.Name != l2StatusName(node, key) {
			if err := c.Delete(ctx, st); err != nil && !apierrors.IsNotFound(err) {
				errs = append(errs, err.Error())
			}
			continue
		}
		seen[key] = true
		svcNS, svcName, _ := strings.Cut(key, "/")
		desired := v1beta1.ServiceL2StatusStatus{Node: node, ServiceName: svcName, ServiceNamespace: svcNS, Interfaces: interfaceInfos(w.interfaces)}
		if st.Status.Node != node || st.Status.ServiceName != svcName || st.Status.ServiceNamespace != svcNS ||
			!slices.Equal(interfaceNames(st.Status.Interfaces), w.interfaces) {
			st.Status = desired
			if err := c.Status().Update(ctx, st); err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
				errs = append(errs, err.Error())
			}
		}
	}
	keys := make([]string, 0, len(want))
	for k := range want {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, key := range keys {
		if seen[key] {
			continue
		}
		svcNS, svcName, _ := strings.Cut(key, "/")
		st := &v1beta1.ServiceL2Status{ObjectMeta: metav1.ObjectMeta{
			Namespace: ns,
			Name:      l2StatusName(node, key),
			Labels:    map[string]string{LabelNode: node, LabelServiceName: svcName, LabelServiceNamespace: svcNS},
		}}
		if err := c.Create(ctx, st); err != nil && !apierrors.IsAlreadyExists(err) {
			errs = append(errs, err.Error())
			continue
		}
		st.Status = v1beta1.ServiceL2StatusStatus{Node: node, ServiceName: svcName, ServiceNamespace: svcNS, Interfaces: interfaceInfos(want[key].interfaces)}
		if err := c.Status().Update(ctx, st); err != nil && !apierrors.IsConflict(err) {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("writing ServiceL2Status: %s", strings.Join(errs, "; "))
	}
	return nil
}

func interfaceNames(in []v1beta1.InterfaceInfo) []string {
	out := make([]string, len(in))
	for i, x := range in {
		out[i] = x.Name
	}
	return out
}

func interfaceInfos(names []string) []v1beta1.InterfaceInfo {
	out := make([]v1beta1.InterfaceInfo, len(names))
	for i, n := range names {
		out[i] = v1beta1.InterfaceInfo{Name: n}
	}
	return out
}
