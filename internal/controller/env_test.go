package controller_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/keeperlb/keeperlb/api/v1beta1"
	"github.com/keeperlb/keeperlb/internal/controller"
	"github.com/keeperlb/keeperlb/internal/controlplane"
	"github.com/keeperlb/keeperlb/internal/request"
)

// The integration tests share one real control plane, started on first use
// and stopped by TestMain. Each test isolates itself with its own install
// namespace and its own loadBalancerClass, so tests never see each other's
// pools or Services.
var (
	cpOnce sync.Once
	cp     *controlplane.ControlPlane
	cpErr  error
	cpDir  string
	seq    atomic.Int64
)

func TestMain(m *testing.M) {
	// The controllers these tests run get the shipped binary's process
	// settings (client-go's WatchListClient off, the GC target), which its
	// main applies and Run does not.
	if err := controller.DefaultProcessOptions().Apply(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	if cp != nil {
		cp.Stop()
	}
	if cpDir != "" {
		os.RemoveAll(cpDir)
	}
	os.Exit(code)
}

// controlPlane returns the shared control plane, failing the test with a
// clear message when the binaries are missing (skipping only when the caller
// opted out with KEEPERLB_SKIP_LAB=1).
func controlPlane(t *testing.T) *rest.Config {
	t.Helper()
	if os.Getenv("KEEPERLB_SKIP_LAB") == "1" {
		t.Skip("KEEPERLB_SKIP_LAB=1: skipping a test that needs a real kube-apiserver and etcd")
	}
	cpOnce.Do(func() {
		var dir string
		if dir, cpErr = os.MkdirTemp("", "keeperlb-cp-"); cpErr != nil {
			return
		}
		cpDir = dir
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		if cp, cpErr = controlplane.Start(ctx, controlplane.Options{Dir: dir}); cpErr != nil {
			return
		}
		cpErr = controlplane.InstallCRDs(ctx, cp.Config)
	})
	if cpErr != nil {
		t.Fatalf("integration test needs a real control plane: %v (set KEEPERLB_SKIP_LAB=1 to skip explicitly)", cpErr)
	}
	return cp.Config
}

// env is one test's view of the cluster: an install namespace, a
// loadBalancerClass and a running controller.
type env struct {
	t     *testing.T
	ctx   context.Context
	cfg   *rest.Config
	c     client.Client
	ns    string // install namespace
	app   string // namespace for the test's Services
	class string

	stopController func()
	opts           controller.Options
}

func newEnv(t *testing.T) *env {
	t.Helper()
	cfg := controlPlane(t)
	scheme, err := controller.NewScheme()
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	n := seq.Add(1)
	e := &env{
		t: t, ctx: ctx, cfg: cfg, c: c,
		ns:    fmt.Sprintf("lb-system-%d", n),
		app:   fmt.Sprintf("app-%d", n),
		class: fmt.Sprintf("keeperlb.io/test-%d", n),
	}
	for _, ns := range []string{e.ns, e.app} {
		e.create(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
	}
	e.opts = controller.DefaultOptions()
	e.opts.Namespace = e.ns
	e.opts.LBClass = e.class
	e.opts.MetricsAddr = "0"
	e.opts.HealthAddr = "0"
	e.opts.Registry = prometheus.NewRegistry()
	e.opts.SkipNameValidation = true
	e.opts.PoolStatusInterval = 100 * time.Millisecond
	// The webhooks have their own tests (internal/webhook); here they would
	// only compete for a port.
	e.opts.Webhook.Disable = true
	return e
}

// start runs the controller in this process until the test ends or stop.
func (e *env) start() {
	e.t.Helper()
	if e.stopController != nil {
		e.t.Fatal("controller already running")
	}
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan error, 1)
	w := &testWriter{t: e.t}
	e.t.Cleanup(func() { w.done.Store(true) })
	log := slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
	go func() { done <- controller.Run(ctx, e.cfg, e.opts, log) }()
	var once sync.Once
	e.stopController = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					e.t.Errorf("controller exited with error: %v", err)
				}
			case <-time.After(30 * time.Second):
				e.t.Error("controller did not stop within 30s")
			}
		})
	}
	e.t.Cleanup(e.stopController)
}

// stop stops the controller, as a restart or a crash would.
func (e *env) stop() {
	e.t.Helper()
	e.stopController()
	e.stopController = nil
}

// testWriter sends log lines to the test log while the test runs; the
// manager's goroutines may still log a line after the test has ended, which
// testing would turn into a panic, so those lines are dropped.
type testWriter struct {
	t    *testing.T
	done atomic.Bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	if !w.done.Load() {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (e *env) create(obj client.Object) {
	e.t.Helper()
	if err := e.c.Create(e.ctx, obj); err != nil {
		e.t.Fatalf("creating %T %s: %v", obj, obj.GetName(), err)
	}
}

// pool creates an IPAddressPool in the install namespace.
func (e *env) pool(name string, addrs []string, mutate ...func(*v1beta1.IPAddressPool)) *v1beta1.IPAddressPool {
	e.t.Helper()
	p := &v1beta1.IPAddressPool{
		ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: name},
		Spec:       v1beta1.IPAddressPoolSpec{Addresses: addrs},
	}
	for _, m := range mutate {
		m(p)
	}
	e.create(p)
	return p
}

// updatePool changes a pool's spec with a retry on conflicts.
func (e *env) updatePool(name string, mutate func(*v1beta1.IPAddressPool)) {
	e.t.Helper()
	err := wait.PollUntilContextTimeout(e.ctx, 20*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		p := &v1beta1.IPAddressPool{}
		if err := e.c.Get(ctx, client.ObjectKey{Namespace: e.ns, Name: name}, p); err != nil {
			return false, err
		}
		mutate(p)
		err := e.c.Update(ctx, p)
		if apierrors.IsConflict(err) {
			return false, nil
		}
		return err == nil, err
	})
	if err != nil {
		e.t.Fatalf("updating pool %s: %v", name, err)
	}
}

// svc builds a LoadBalancer Service of the test's class in the app namespace.
func (e *env) svc(name string, mutate ...func(*corev1.Service)) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: e.app, Name: name},
		Spec: corev1.ServiceSpec{
			Type:                          corev1.ServiceTypeLoadBalancer,
			LoadBalancerClass:             &e.class,
			AllocateLoadBalancerNodePorts: new(false),
			Selector:                      map[string]string{"app": name},
			Ports:                         []corev1.ServicePort{{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80, TargetPort: intstr.FromInt32(8080)}},
		},
	}
	for _, m := range mutate {
		m(s)
	}
	return s
}

// createSvc creates a Service built by svc.
func (e *env) createSvc(name string, mutate ...func(*corev1.Service)) *corev1.Service {
	e.t.Helper()
	s := e.svc(name, mutate...)
	e.create(s)
	return s
}

func (e *env) getSvc(name string) *corev1.Service {
	e.t.Helper()
	s := &corev1.Service{}
	if err := e.c.Get(e.ctx, client.ObjectKey{Namespace: e.app, Name: name}, s); err != nil {
		e.t.Fatalf("getting service %s: %v", name, err)
	}
	return s
}

func ips(s *corev1.Service) []string {
	var out []string
	for _, i := range s.Status.LoadBalancer.Ingress {
		out = append(out, i.IP)
	}
	return out
}

// waitFor polls until cond holds for the Service, failing after 20 s with
// the last state seen.
func (e *env) waitFor(name, what string, cond func(*corev1.Service) bool) *corev1.Service {
	e.t.Helper()
	return e.waitForIn(e.app, name, what, cond)
}

// waitForIn is waitFor for a Service in another namespace.
func (e *env) waitForIn(namespace, name, what string, cond func(*corev1.Service) bool) *corev1.Service {
	e.t.Helper()
	var last *corev1.Service
	err := wait.PollUntilContextTimeout(e.ctx, 20*time.Millisecond, 20*time.Second, true, func(ctx context.Context) (bool, error) {
		s := &corev1.Service{}
		if err := e.c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, s); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		last = s
		return cond(s), nil
	})
	if err != nil {
		desc := "service not found"
		if last != nil {
			desc = fmt.Sprintf("ingress=%v annotations=%v conditions=%+v", ips(last), last.Annotations, last.Status.Conditions)
		}
		e.t.Fatalf("service %s: waiting for %s: %v; last seen: %s", name, what, err, desc)
	}
	return last
}

// waitIPs waits until the Service's ingress holds exactly want (any order).
func (e *env) waitIPs(name string, want ...string) *corev1.Service {
	e.t.Helper()
	sort.Strings(want)
	return e.waitFor(name, fmt.Sprintf("ingress %v", want), func(s *corev1.Service) bool {
		got := ips(s)
		sort.Strings(got)
		return slices.Equal(got, want) && (len(want) == 0 || s.Annotations[request.AnnotationAllocatedFromPool] != "")
	})
}

// waitPending waits until the Service reports that it waits for an address
// with the given reason, and returns the condition message.
func (e *env) waitPending(name, reason string) string {
	e.t.Helper()
	return e.waitPendingIn(e.app, name, reason)
}

// waitPendingIn is waitPending for a Service in another namespace.
func (e *env) waitPendingIn(namespace, name, reason string) string {
	e.t.Helper()
	s := e.waitForIn(namespace, name, "condition reason "+reason, func(s *corev1.Service) bool {
		c := meta.FindStatusCondition(s.Status.Conditions, controller.ConditionIPAllocated)
		return c != nil && c.Status == metav1.ConditionFalse && c.Reason == reason
	})
	return meta.FindStatusCondition(s.Status.Conditions, controller.ConditionIPAllocated).Message
}

// waitEvent waits for a Warning Event with reason on the named object and
// returns its message.
func (e *env) waitEvent(namespace, name, reason string) string {
	e.t.Helper()
	var msg string
	err := wait.PollUntilContextTimeout(e.ctx, 50*time.Millisecond, 20*time.Second, true, func(ctx context.Context) (bool, error) {
		var l corev1.EventList
		if err := e.c.List(ctx, &l, client.InNamespace(namespace)); err != nil {
			return false, err
		}
		for _, ev := range l.Items {
			if ev.InvolvedObject.Name == name && ev.Reason == reason && ev.Type == corev1.EventTypeWarning {
				msg = ev.Message
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		e.t.Fatalf("no Warning event %s on %s/%s: %v", reason, namespace, name, err)
	}
	return msg
}
