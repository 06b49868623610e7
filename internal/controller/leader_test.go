package controller_test

import (
	"context"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/keeperlb/keeperlb/internal/controller"
)

// Two replicas: one holds the lease and allocates; when it stops, the other
// takes over and keeps every address.
func TestLeaderElectionFailover(t *testing.T) {
	e := newEnv(t)
	e.opts.LeaseDuration, e.opts.RenewDeadline, e.opts.RetryPeriod = 4*time.Second, 3*time.Second, 500*time.Millisecond
	e.pool("p", []string{"198.18.22.0/29"})
	e.start()
	first := e.stopController
	e.stopController = nil
	firstHolder := waitLeaseHolder(t, e, "")

	e.start() // the standby
	e.createSvc("a")
	e.waitIPs("a", "198.18.22.0")
	if h := waitLeaseHolder(t, e, ""); h != firstHolder {
		t.Fatalf("lease moved to %q while the first replica was running", h)
	}

	first() // graceful stop releases the lease
	second := waitLeaseHolder(t, e, firstHolder)
	if second == firstHolder {
		t.Fatal("the standby never took the lease")
	}
	e.createSvc("b")
	e.waitIPs("b", "198.18.22.1")
	e.waitIPs("a", "198.18.22.0")
}

// waitLeaseHolder waits for a lease holder other than not, and returns it.
func waitLeaseHolder(t *testing.T, e *env, not string) string {
	t.Helper()
	var holder string
	err := wait.PollUntilContextTimeout(e.ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		l := &coordinationv1.Lease{}
		if err := e.c.Get(ctx, client.ObjectKey{Namespace: e.ns, Name: "keeperlb-controller"}, l); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		if l.Spec.HolderIdentity == nil {
			return false, nil
		}
		holder = *l.Spec.HolderIdentity
		return holder != "" && holder != not, nil
	})
	if err != nil {
		t.Fatalf("waiting for a lease holder other than %q: last %q: %v", not, holder, err)
	}
	return holder
}

// The leader makes its Pod the owner of the Lease, and a new leader takes
// the ownership over, so that the garbage collector deletes the Lease with
// the last leader's Pod: `helm uninstall` deletes the controller's RBAC
// with its Deployment, before the leader may release the Lease, and a
// reinstall then waited a lease duration for a leader. (This control plane
// runs no garbage collector; what is checked is the ownership it acts on.)
func TestLeaseOwnedByLeaderPod(t *testing.T) {
	e := newEnv(t)
	e.opts.LeaseDuration, e.opts.RenewDeadline, e.opts.RetryPeriod = 4*time.Second, 3*time.Second, 500*time.Millisecond
	e.opts.PodName, e.opts.PodUID = "keeperlb-controller-a", "00000000-0000-0000-0000-00000000000a"
	e.start()
	first := e.stopController
	e.stopController = nil
	waitLeaseOwner(t, e, e.opts.PodName, e.opts.PodUID)

	e.opts.PodName, e.opts.PodUID = "keeperlb-controller-b", "00000000-0000-0000-0000-00000000000b"
	e.start() // the standby
	first()
	waitLeaseOwner(t, e, e.opts.PodName, e.opts.PodUID)

	// The garbage collector may delete the Lease with the previous
	// leader's Pod just after the new leader took it: the leader creates
	// it again and owns it again.
	if err := e.c.Delete(e.ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: controller.LeaseName}}); err != nil {
		t.Fatal(err)
	}
	waitLeaseOwner(t, e, e.opts.PodName, e.opts.PodUID)
}

// waitLeaseOwner waits until the Lease is owned by exactly Pod name/uid.
func waitLeaseOwner(t *testing.T, e *env, name, uid string) {
	t.Helper()
	var last []metav1.OwnerReference
	err := wait.PollUntilContextTimeout(e.ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		l := &coordinationv1.Lease{}
		if err := e.c.Get(ctx, client.ObjectKey{Namespace: e.ns, Name: controller.LeaseName}, l); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		last = l.OwnerReferences
		return len(last) == 1 && last[0].APIVersion == "v1" && last[0].Kind == "Pod" && last[0].Name == name && string(last[0].UID) == uid, nil
	})
	if err != nil {
		t.Fatalf("the Lease should be owned by Pod %s (%s) alone; its owners: %+v", name, uid, last)
	}
}
