package speaker

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/keeperlb/keeperlb/internal/kubeobj"
)

// countingRecorder forwards Events to client-go's recorder and counts the
// calls per Service and reason: client-go folds repeats of one Event into
// a series that it writes back only every 30 minutes, so the API cannot
// show whether a pass repeated one.
type countingRecorder struct {
	inner events.EventRecorder
	mu    sync.Mutex
	calls map[string]int // "namespace/name reason"
}

func (r *countingRecorder) Eventf(regarding, related runtime.Object, eventtype, reason, action, note string, args ...any) {
	if o, ok := regarding.(client.Object); ok {
		r.mu.Lock()
		r.calls[o.GetNamespace()+"/"+o.GetName()+" "+reason]++
		r.mu.Unlock()
	}
	r.inner.Eventf(regarding, related, eventtype, reason, action, note, args...)
}

func (r *countingRecorder) count(key string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls[key]
}

// recordEvents gives the env's reconciler a real Event recorder (client-go's
// events.k8s.io broadcaster on the API server, as the speaker's), counted.
func (e *ownershipEnv) recordEvents() *countingRecorder {
	e.t.Helper()
	cs, err := kubernetes.NewForConfig(controlPlane(e.t))
	if err != nil {
		e.t.Fatal(err)
	}
	b := events.NewBroadcaster(&events.EventSinkImpl{Interface: cs.EventsV1()})
	ctx, cancel := context.WithCancel(e.ctx)
	b.StartRecordingToSink(ctx.Done())
	e.t.Cleanup(func() { cancel(); b.Shutdown() })
	scheme, err := NewScheme()
	if err != nil {
		e.t.Fatal(err)
	}
	rec := &countingRecorder{inner: b.NewRecorder(scheme, "keeperlb-speaker"), calls: map[string]int{}}
	e.r.events = kubeobj.BoundedRecorder(rec)
	return rec
}

// serviceEvents lists the Events regarding Service app/name with reason,
// as `kubectl describe svc` shows them.
func (e *ownershipEnv) serviceEvents(name, reason string) []eventsv1.Event {
	e.t.Helper()
	var list eventsv1.EventList
	if err := e.c.List(e.ctx, &list, client.InNamespace(e.app)); err != nil {
		e.t.Fatal(err)
	}
	var out []eventsv1.Event
	for _, ev := range list.Items {
		if ev.Regarding.Kind == "Service" && ev.Regarding.Name == name && ev.Reason == reason {
			out = append(out, ev)
		}
	}
	return out
}

// waitEvent waits until Service name has an Event with reason whose note
// contains every one of want, and returns it.
func (e *ownershipEnv) waitEvent(name, reason string, want ...string) eventsv1.Event {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		for _, ev := range e.serviceEvents(name, reason) {
			ok := true
			for _, w := range want {
				ok = ok && strings.Contains(ev.Note, w)
			}
			if ok {
				return ev
			}
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("no %s Event on Service %s saying %q; it has %v", reason, name, want, e.serviceEvents(name, reason))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestFailoverEvents kills node 2's speaker and checks that node 1, which
// takes its Services, puts exactly one nodeAssigned Event on each, naming
// node 2 and why, however many passes follow; and that a restart of node 1
// (a new reconciler, nothing in memory) emits none for the Services the
// ServiceL2Status objects already say it announces.
func TestFailoverEvents(t *testing.T) {
	e := newOwnershipEnv(t)
	rec := e.recordEvents()
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	go func() { _ = e.r.status.Run(ctx) }()
	e.detector(e.n2, 2)
	both := []string{e.n1, e.n2}
	mine := e.run(both...)
	if len(mine) == 0 || len(mine) == len(e.serviceIPs) {
		t.Fatalf("the election gave node 1 %d of %d IPs; the test needs both nodes to own some", len(mine), len(e.serviceIPs))
	}
	owner := map[string]string{}
	for svc, n := range e.r.svcOwners {
		owner[strings.TrimPrefix(svc, e.app+"/")] = n
	}
	for name, n := range owner {
		key := e.app + "/" + name + " " + eventNodeAssigned
		if n == e.n1 {
			if got := rec.count(key); got != 1 {
				t.Errorf("%s: %d nodeAssigned Events from node 1 at start, want 1 (first announcer)", name, got)
			}
			e.waitEvent(name, eventNodeAssigned, fmt.Sprintf("announcing from node %q with protocol \"layer2\"", e.n1), "reason "+reasonAssigned)
		} else if got := rec.count(key); got != 0 {
			t.Errorf("%s is node 2's, but node 1 emitted %d nodeAssigned Events", name, got)
		}
	}

	e.stopPeer(false)
	if got := e.run(e.n1); len(got) != len(e.serviceIPs) {
		t.Fatalf("node 1 announces %d IPs after node 2 died, want all %d", len(got), len(e.serviceIPs))
	}
	// More passes change nothing.
	for range 5 {
		e.run(e.n1)
	}
	for name, n := range owner {
		if n != e.n2 {
			continue
		}
		if got := rec.count(e.app + "/" + name + " " + eventNodeAssigned); got != 1 {
			t.Errorf("%s: node 1 emitted %d nodeAssigned Events for taking it over, want exactly 1", name, got)
		}
		ev := e.waitEvent(name, eventNodeAssigned, fmt.Sprintf("announcing from node %q with protocol \"layer2\"", e.n1),
			fmt.Sprintf("taken over from node %q", e.n2), "reason "+reasonPeerDead)
		if ev.Type != "Normal" || ev.ReportingController != "keeperlb-speaker" {
			t.Errorf("%s: Event %s type %s from %s", name, ev.Name, ev.Type, ev.ReportingController)
		}
		if evs := e.serviceEvents(name, eventNodeAssigned); len(evs) != 1 {
			t.Errorf("%s has %d nodeAssigned Events in the API, want 1 (the takeover)", name, len(evs))
		}
	}

	// A restart: the status objects name node 1 for everything.
	wctx, wcancel := context.WithTimeout(e.ctx, 30*time.Second)
	e.r.status.waitIdle(wctx)
	wcancel()
	cancel()
	before := map[string]int{}
	for name := range owner {
		before[name] = rec.count(e.app + "/" + name + " " + eventNodeAssigned)
	}
	fresh := *e.r
	fresh.announcing, fresh.owners, fresh.ownersLive, fresh.svcOwners = nil, nil, nil, nil
	fresh.status = newStatusWriter(e.c, e.ns, e.n1, slog.New(slog.DiscardHandler))
	e.r = &fresh
	e.pass = fresh.metrics.client.Counting(e.r)
	for range 3 {
		e.run(e.n1)
	}
	for name := range owner {
		if got := rec.count(e.app + "/" + name + " " + eventNodeAssigned); got != before[name] {
			t.Errorf("%s: the restarted node 1 emitted %d nodeAssigned Events for a Service it already announced", name, got-before[name])
		}
	}
}
