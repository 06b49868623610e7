package cli

import (
	"context"
	"fmt"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/keeperlb/keeperlb/internal/controller"
)

// leaderView says whether a controller is running: whether the leader
// Lease is held and renewed. Everything else `keeperlb status` shows is
// state that components wrote and left (ConfigurationStates,
// ServiceL2Statuses, Service status); without a live leader it may be
// left over from replicas that no longer run, as after `helm uninstall`,
// which keeps those objects with the CRDs.
type leaderView struct {
	// Live is true when a holder renewed the Lease within its duration.
	Live bool `json:"live"`
	// Holder is the identity that holds or last held the Lease.
	Holder string `json:"holder,omitempty"`
	// Renewed is when the holder last renewed it.
	Renewed *time.Time `json:"renewed,omitempty"`
	// Note says why there is no live leader.
	Note string `json:"note,omitempty"`
}

// leaderOf reads the Lease l (nil: there is none) at now.
func leaderOf(l *coordinationv1.Lease, now time.Time) leaderView {
	if l == nil {
		return leaderView{Note: "there is no Lease " + controller.LeaseName + ": no controller leads here (or it runs with --leader-elect=false)"}
	}
	v := leaderView{}
	if l.Spec.HolderIdentity != nil {
		v.Holder = *l.Spec.HolderIdentity
	}
	if l.Spec.RenewTime != nil {
		t := l.Spec.RenewTime.Time
		v.Renewed = &t
	}
	switch {
	case v.Holder == "":
		v.Note = "the Lease has no holder: the last leader released it and none has taken it"
	case v.Renewed == nil || l.Spec.LeaseDurationSeconds == nil:
		v.Note = "the Lease has no renewal time or duration"
	default:
		expires := v.Renewed.Add(time.Duration(*l.Spec.LeaseDurationSeconds) * time.Second)
		if now.Before(expires) {
			v.Live = true
		} else {
			v.Note = fmt.Sprintf("the Lease ran out %s ago (holder %s)", now.Sub(expires).Round(time.Second), v.Holder)
		}
	}
	return v
}

// loadLeader reads the controller's Lease in ns.
func loadLeader(ctx context.Context, c client.Client, ns string, now time.Time) leaderView {
	l := &coordinationv1.Lease{}
	err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: controller.LeaseName}, l)
	switch {
	case err == nil:
		return leaderOf(l, now)
	case apierrors.IsNotFound(err):
		return leaderOf(nil, now)
	default:
		// Not fatal: the rest of status still says what it can.
		return leaderView{Note: fmt.Sprintf("cannot read Lease %s/%s: %v", ns, controller.LeaseName, err)}
	}
}

// summary is the status line about the controller.
func (v leaderView) summary(now time.Time) string {
	if v.Live {
		return fmt.Sprintf("running: %s leads (renewed %s ago)", v.Holder, now.Sub(*v.Renewed).Round(time.Second))
	}
	return "NO LIVE CONTROLLER: " + v.Note + ".\n  What follows was written by components that may no longer run (`helm uninstall` leaves these objects with the CRDs)"
}
