package cli

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/keeperlb/keeperlb/api/v1beta1"
	"github.com/keeperlb/keeperlb/internal/controller"
)

func TestLeaderOf(t *testing.T) {
	now := time.Date(2026, 12, 3, 14, 47, 0, 0, time.UTC)
	lease := func(holder string, renewed time.Duration, seconds int32) *coordinationv1.Lease {
		l := &coordinationv1.Lease{}
		if holder != "" {
			l.Spec.HolderIdentity = &holder
		}
		rt := metav1.NewMicroTime(now.Add(-renewed))
		l.Spec.RenewTime = &rt
		l.Spec.LeaseDurationSeconds = &seconds
		return l
	}
	tests := []struct {
		name string
		l    *coordinationv1.Lease
		live bool
		note string // substring of Note
	}{
		{"renewed within its duration", lease("pod-a_1", 3*time.Second, 15), true, ""},
		{"just ran out", lease("pod-a_1", 15*time.Second, 15), false, "ran out 0s ago (holder pod-a_1)"},
		{"left by a deleted pod", lease("pod-a_1", 10*time.Minute, 15), false, "ran out 9m45s ago"},
		{"released", lease("", time.Second, 1), false, "released it"},
		{"missing", nil, false, "there is no Lease keeperlb-controller"},
		{"no duration", &coordinationv1.Lease{Spec: coordinationv1.LeaseSpec{HolderIdentity: new("x")}}, false, "no renewal time"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := leaderOf(tt.l, now)
			if v.Live != tt.live || !strings.Contains(v.Note, tt.note) || (tt.live && v.Note != "") {
				t.Errorf("leaderOf = %+v, want live=%v and a note containing %q", v, tt.live, tt.note)
			}
			s := v.summary(now)
			if tt.live != strings.HasPrefix(s, "running: ") || !tt.live && !strings.Contains(s, "NO LIVE CONTROLLER") {
				t.Errorf("summary %q does not say whether a controller runs (live=%v)", s, tt.live)
			}
		})
	}
}

// TestStatusTellsLeftoversFromLive: `keeperlb status` said
// "Allocated l2:krc-n2" and "controller Valid" after `helm uninstall`,
// with no KeeperLB pod running, from the objects the uninstall left. It
// now says whether a controller leads, from the Lease, first.
func TestStatusTellsLeftoversFromLive(t *testing.T) {
	e := newCLIEnv(t)
	stop := e.startController(func(o *controller.Options) {
		o.LeaderElect = true
		o.LeaseDuration, o.RenewDeadline, o.RetryPeriod = 4*time.Second, 3*time.Second, 500*time.Millisecond
	})
	// Names of its own: other tests' pools and Services are in the same
	// API server, and pools count Services by pool name.
	e.mustRun("-n", e.ns, "lb", "create", "leftover", "--addresses", "198.18.44.0/30", "--advertise-mode", "arp")
	e.createSvc("shop")
	l2 := &v1beta1.ServiceL2Status{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "l2-shop-node-a"}}
	if err := e.c.Create(e.ctx, l2); err != nil {
		t.Fatal(err)
	}
	l2.Status = v1beta1.ServiceL2StatusStatus{Node: "node-a", ServiceName: "shop", ServiceNamespace: e.app}
	if err := e.c.Status().Update(e.ctx, l2); err != nil {
		t.Fatal(err)
	}
	e.eventually("shop to get an address", func() bool {
		s := &corev1.Service{}
		return e.c.Get(e.ctx, client.ObjectKey{Namespace: e.app, Name: "shop"}, s) == nil && len(s.Status.LoadBalancer.Ingress) == 1
	})
	e.eventually("status to see the leader", func() bool {
		return strings.Contains(e.mustRun("-n", e.ns, "status"), "Controller: running: ")
	})

	// What an uninstall leaves: the controller gone, its objects kept.
	stop()
	out := e.mustRun("-n", e.ns, "status")
	for _, want := range []string{"Controller: NO LIVE CONTROLLER: ", "may no longer run", "l2:node-a"} {
		if !strings.Contains(out, want) {
			t.Errorf("status after the controller stopped lacks %q:\n%s", want, out)
		}
	}
	var st statusView
	if err := json.Unmarshal([]byte(e.mustRun("-n", e.ns, "status", "-o", "json")), &st); err != nil || st.Controller.Live {
		t.Errorf("status -o json after the controller stopped: controller %+v (err %v)", st.Controller, err)
	}
}
