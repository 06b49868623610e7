package controller

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// LeaseName is the name of the controller's leader election Lease, in the
// install namespace.
const LeaseName = "keeperlb-controller"

// leaseOwner makes the leader's Pod the owner of the Lease, once elected.
//
// `helm uninstall` deletes the RBAC objects in the same breath as the
// Deployment, so by the time the leader gets SIGTERM it may no longer be
// allowed to release the Lease, and a reinstall then waited a lease
// duration for a leader (and, without the webhook Secret, for a serving
// certificate). With the Pod as its owner, the garbage collector deletes the
// Lease when the Pod object goes, whatever the leader could still do. A new
// leader takes the ownership over; should the old Pod's deletion take the
// Lease in between, the leader's next renewal creates it again (client-go
// does so for a missing Lease).
type leaseOwner struct {
	// reader reads the Lease from the API server: the controller may not
	// list or watch Leases, which a cached read would.
	reader    client.Reader
	client    client.Client
	namespace string
	pod       metav1.OwnerReference
	log       *slog.Logger
}

// podOwner returns the owner reference to Pod name/uid, or false when the
// controller does not know its Pod (it runs outside Kubernetes).
func podOwner(name, uid string) (metav1.OwnerReference, bool) {
	if name == "" || uid == "" {
		return metav1.OwnerReference{}, false
	}
	return metav1.OwnerReference{APIVersion: "v1", Kind: "Pod", Name: name, UID: types.UID(uid)}, true
}

// Start sets the owner once the replica leads and checks it again every
// few seconds while it leads: a Lease the garbage collector deleted with the
// previous leader's Pod is created again by client-go, without an owner.
// Failures are only logged: a Lease without an owner is what it was before.
func (o *leaseOwner) Start(ctx context.Context) error {
	_ = wait.PollUntilContextCancel(ctx, 5*time.Second, true, func(ctx context.Context) (bool, error) {
		if err := o.set(ctx); err != nil && ctx.Err() == nil {
			o.log.Warn("making this Pod the owner of the leader Lease", "err", err)
		}
		return false, nil
	})
	return nil
}

// NeedLeaderElection is true: only the holder owns the Lease.
func (*leaseOwner) NeedLeaderElection() bool { return true }

func (o *leaseOwner) set(ctx context.Context) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		l := &coordinationv1.Lease{}
		if err := o.reader.Get(ctx, client.ObjectKey{Namespace: o.namespace, Name: LeaseName}, l); err != nil {
			return fmt.Errorf("reading Lease %s/%s: %w", o.namespace, LeaseName, err)
		}
		if ownedOnlyBy(l.OwnerReferences, o.pod) {
			return nil
		}
		l.OwnerReferences = []metav1.OwnerReference{o.pod}
		if err := o.client.Update(ctx, l); err != nil {
			return fmt.Errorf("updating Lease %s/%s: %w", o.namespace, LeaseName, err)
		}
		o.log.Info("this Pod now owns the leader Lease", "pod", o.pod.Name)
		return nil
	})
}

// ownedOnlyBy reports whether refs is exactly the one reference to pod.
func ownedOnlyBy(refs []metav1.OwnerReference, pod metav1.OwnerReference) bool {
	return len(refs) == 1 && refs[0].UID == pod.UID && refs[0].Kind == pod.Kind && refs[0].Name == pod.Name
}
