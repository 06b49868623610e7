package cli

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/keeperlb/keeperlb/internal/controller"
	"github.com/keeperlb/keeperlb/internal/controlplane"
)

// The CLI tests share one real control plane (etcd + kube-apiserver),
// started on first use and stopped by TestMain. Each test isolates itself
// with its own install namespace, app namespace and loadBalancerClass.
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

// controlPlane returns the shared control plane, failing with a clear
// message when kube-apiserver and etcd are missing (skipping only when
// KEEPERLB_SKIP_LAB=1 asks for it).
func controlPlane(t *testing.T) *controlplane.ControlPlane {
	t.Helper()
	if os.Getenv("KEEPERLB_SKIP_LAB") == "1" {
		t.Skip("KEEPERLB_SKIP_LAB=1: skipping a test that needs a real kube-apiserver and etcd")
	}
	cpOnce.Do(func() {
		if cpDir, cpErr = os.MkdirTemp("", "keeperlb-cli-"); cpErr != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		if cp, cpErr = controlplane.Start(ctx, controlplane.Options{Dir: cpDir}); cpErr != nil {
			return
		}
		cpErr = controlplane.InstallCRDs(ctx, cp.Config)
	})
	if cpErr != nil {
		t.Fatalf("this test needs a real control plane: %v (export KEEPERLB_K8S_BIN=$(bash hack/k8s-tools/build.sh), or set KEEPERLB_SKIP_LAB=1 to skip explicitly)", cpErr)
	}
	return cp
}

// cliEnv is one test's corner of the cluster.
type cliEnv struct {
	t     *testing.T
	ctx   context.Context
	cp    *controlplane.ControlPlane
	c     client.Client
	ns    string // install namespace
	app   string // namespace of the test's Services
	class string // loadBalancerClass of the test's Services and controller
}

func newCLIEnv(t *testing.T) *cliEnv {
	t.Helper()
	cp := controlPlane(t)
	c, err := newClient(cp.Config)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	n := seq.Add(1)
	e := &cliEnv{
		t: t, ctx: ctx, cp: cp, c: c,
		ns:    fmt.Sprintf("lbsys-%d-%d", os.Getpid(), n),
		app:   fmt.Sprintf("app-%d-%d", os.Getpid(), n),
		class: fmt.Sprintf("keeperlb.io/cli-%d", n),
	}
	for _, ns := range []string{e.ns, e.app} {
		nsObj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{"team": "t" + fmt.Sprint(n)}}}
		if err := c.Create(ctx, nsObj); err != nil {
			t.Fatalf("creating namespace %s: %v", ns, err)
		}
		t.Cleanup(func() { _ = c.Delete(context.Background(), nsObj) })
	}
	return e
}

// run runs the keeperlb command with the test's kubeconfig, returning
// standard output, standard error and the error.
func (e *cliEnv) run(args ...string) (string, string, error) {
	e.t.Helper()
	var out, errOut bytes.Buffer
	root := NewRoot(&out)
	root.SetErr(&errOut)
	root.SetArgs(append([]string{"--kubeconfig", e.cp.Kubeconfig}, args...))
	err := root.ExecuteContext(e.ctx)
	return out.String(), errOut.String(), err
}

// mustRun runs a command that must succeed and returns its output.
func (e *cliEnv) mustRun(args ...string) string {
	e.t.Helper()
	out, errOut, err := e.run(args...)
	if err != nil {
		e.t.Fatalf("keeperlb %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// startController runs the real controller in this process for the
// test's install namespace and class, changed by mutate, and returns a
// function that stops it (also called at cleanup).
func (e *cliEnv) startController(mutate ...func(*controller.Options)) (stop func()) {
	e.t.Helper()
	opts := controller.DefaultOptions()
	opts.Namespace = e.ns
	opts.LBClass = e.class
	opts.LeaderElect = false
	opts.MetricsAddr = "0"
	opts.HealthAddr = "0"
	// No admission webhook: it would bind :9443 once per test controller.
	opts.Webhook.Disable = true
	opts.Registry = prometheus.NewRegistry()
	opts.SkipNameValidation = true
	opts.PoolStatusInterval = 100 * time.Millisecond
	for _, m := range mutate {
		m(&opts)
	}
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan error, 1)
	log := slog.New(slog.DiscardHandler)
	go func() { done <- controller.Run(ctx, e.cp.Config, opts, log) }()
	var once sync.Once
	stop = func() {
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
	e.t.Cleanup(stop)
	return stop
}

// createSvc creates a LoadBalancer Service of the test's class.
func (e *cliEnv) createSvc(name string, mutate ...func(*corev1.Service)) {
	e.t.Helper()
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: e.app, Name: name, Labels: map[string]string{"app": name}},
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
	if err := e.c.Create(e.ctx, s); err != nil {
		e.t.Fatalf("creating Service %s: %v", name, err)
	}
}

// eventually polls cond until it holds, failing the test after a while.
func (e *cliEnv) eventually(what string, cond func() bool) {
	e.t.Helper()
	err := wait.PollUntilContextTimeout(e.ctx, 50*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		return cond(), nil
	})
	if err != nil {
		e.t.Fatalf("waiting for %s: %v", what, err)
	}
}
