// Package install_test applies KeeperLB's install manifests, rendered by
// kustomize and by Helm, to a real kube-apiserver and etcd
// (internal/controlplane) and checks that every object is accepted and
// stored as the install policy wants. The commands in docs/install.md are
// the ones these tests run.
package install_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/kube"
	helmrelease "helm.sh/helm/v4/pkg/release"
	release "helm.sh/helm/v4/pkg/release/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/keeperlb/keeperlb/internal/cli"
	"github.com/keeperlb/keeperlb/internal/controller"
	"github.com/keeperlb/keeperlb/internal/controlplane"
	"github.com/keeperlb/keeperlb/internal/install"
)

const (
	root      = "../.."
	chartDir  = root + "/charts/keeperlb"
	configDir = root + "/config"
	namespace = "metallb-system"
)

func TestMain(m *testing.M) {
	// Helm's loader logs each symbolic link it follows; the chart's links
	// into config/ are intended.
	log.SetOutput(io.Discard)
	os.Exit(m.Run())
}

// startControlPlane starts a fresh etcd and kube-apiserver for one test:
// the kustomize and Helm installs create the same cluster-scoped objects,
// so each gets a cluster of its own.
func startControlPlane(t *testing.T) *controlplane.ControlPlane {
	t.Helper()
	if os.Getenv("KEEPERLB_SKIP_LAB") == "1" {
		t.Skip("KEEPERLB_SKIP_LAB=1: skipping a test that needs a real kube-apiserver and etcd")
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cp, err := controlplane.Start(ctx, controlplane.Options{Dir: dir})
	if err != nil {
		t.Fatalf("this test needs a real control plane: %v (set KEEPERLB_SKIP_LAB=1 to skip explicitly)", err)
	}
	t.Cleanup(cp.Stop)
	return cp
}

// controllerMakesKey does what the controller of these manifests does at
// start about the speakers' heartbeat key: it parses the Deployment's args
// with the controller's own flag definitions and, for a non-empty
// --memberlist-secret-name, runs the controller's own
// controller.EnsureMemberlistSecret. Nothing here runs the controller pods,
// so the test stands in for them. It returns the Secret's name ("" when the
// controller creates none) and whether it created one.
func controllerMakesKey(t *testing.T, ctx context.Context, cfg *rest.Config, objs []*unstructured.Unstructured) (name string, created bool) {
	t.Helper()
	d := install.Find(objs, "Deployment", install.ControllerName)
	if d == nil {
		t.Fatal("no controller Deployment")
	}
	cs, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
	args, _, _ := unstructured.NestedStringSlice(cs[0].(map[string]any), "args")
	for i := range args {
		args[i] = strings.ReplaceAll(args[i], "$(POD_NAMESPACE)", d.GetNamespace())
	}
	fs := flag.NewFlagSet("keeperlb-controller", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	opts := controller.DefaultOptions()
	opts.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("controller args %v: %v", args, err)
	}
	if opts.MemberlistSecret == "" {
		return "", false
	}
	c, err := client.New(cfg, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	created, err = controller.EnsureMemberlistSecret(ctx, c, opts.Namespace, opts.MemberlistSecret)
	if err != nil {
		t.Fatalf("the controller's key creation: %v", err)
	}
	return opts.MemberlistSecret, created
}

// liveSecret reads Secret name in the install namespace; nil when there
// is none.
func liveSecret(t *testing.T, ctx context.Context, cfg *rest.Config, name string) *corev1.Secret {
	t.Helper()
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s, err := cs.CoreV1().Secrets(namespace).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// sameSecret fails the test unless the live memberlist Secret is still
// exactly before: same object, never written, same key.
func sameSecret(t *testing.T, ctx context.Context, cfg *rest.Config, before *corev1.Secret, after string) {
	t.Helper()
	now := liveSecret(t, ctx, cfg, before.Name)
	switch {
	case now == nil:
		t.Errorf("%s deleted Secret %s (the speakers would get a new key)", after, before.Name)
	case now.UID != before.UID || now.ResourceVersion != before.ResourceVersion:
		t.Errorf("%s rewrote Secret %s (uid %s rv %s, was %s rv %s)", after, before.Name, now.UID, now.ResourceVersion, before.UID, before.ResourceVersion)
	case !reflect.DeepEqual(now.Data, before.Data):
		t.Errorf("%s changed the key in Secret %s", after, before.Name)
	}
}

func wantFor(t *testing.T) install.Want {
	t.Helper()
	w, err := install.Generated(root)
	if err != nil {
		t.Fatal(err)
	}
	w.Namespace = namespace
	w.ControllerReplicas = 2
	w.Webhook = true
	return w
}

// fetch reads every object back from the API server: present means
// accepted and stored.
func fetch(t *testing.T, ctx context.Context, cfg *rest.Config, objs []*unstructured.Unstructured) []*unstructured.Unstructured {
	t.Helper()
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	disc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disc))
	var out []*unstructured.Unstructured
	for _, o := range objs {
		gvk := o.GroupVersionKind()
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			t.Errorf("%s %s: kind not served: %v", gvk.Kind, o.GetName(), err)
			continue
		}
		var ri dynamic.ResourceInterface = dyn.Resource(m.Resource)
		if m.Scope.Name() == meta.RESTScopeNameNamespace {
			ri = dyn.Resource(m.Resource).Namespace(o.GetNamespace())
		}
		got, err := ri.Get(ctx, o.GetName(), metav1.GetOptions{})
		if err != nil {
			t.Errorf("%s %s/%s was not stored: %v", gvk.Kind, o.GetNamespace(), o.GetName(), err)
			continue
		}
		out = append(out, got)
	}
	return out
}

func readFile(t *testing.T, path string) []*unstructured.Unstructured {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := install.Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// TestKustomizeInstall follows docs/install.md's kustomize path on a real
// API server: `keeperlb apply -f` of the built config/default (what a
// machine without kubectl does), then the equivalent of `kubectl apply
// --server-side -k config/default` with strict field validation, then the
// monitoring overlay once the ServiceMonitor kind exists.
func TestKustomizeInstall(t *testing.T) {
	cp := startControlPlane(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	fsys, err := install.ConfigFS(configDir)
	if err != nil {
		t.Fatal(err)
	}
	objs, yaml, err := install.Kustomize(fsys, "/config/default")
	if err != nil {
		t.Fatal(err)
	}

	// 1. `go run ./hack/render kustomize config/default > keeperlb.yaml`
	//    `keeperlb apply -f keeperlb.yaml`
	file := filepath.Join(t.TempDir(), "keeperlb.yaml")
	if err := os.WriteFile(file, yaml, 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd := cli.NewRoot(&out)
	cmd.SetArgs([]string{"apply", "-f", file, "--kubeconfig", cp.Kubeconfig})
	if err := cmd.ExecuteContext(ctx); err != nil {
		t.Fatalf("keeperlb apply refused the kustomize install: %v\n%s", err, out.String())
	}
	if n := strings.Count(out.String(), " applied\n"); n != len(objs) {
		t.Errorf("keeperlb apply applied %d objects, want %d:\n%s", n, len(objs), out.String())
	}

	// 2. kubectl apply --server-side -k config/default, strictly.
	applied, err := install.Apply(ctx, cp.Config, objs, install.ApplyOptions{FieldManager: "kubectl"})
	if err != nil {
		t.Fatalf("server-side apply refused the kustomize install: %v", err)
	}
	if len(applied.Warnings) > 0 {
		t.Errorf("the API server warned about the kustomize install:\n%s", strings.Join(applied.Warnings, "\n"))
	}
	stored := fetch(t, ctx, cp.Config, objs)
	if err := install.Check(stored, wantFor(t)); err != nil {
		t.Errorf("the stored kustomize install breaks the install policy:\n%v", err)
	}

	// The install carries no heartbeat key; the controller creates it.
	if name, created := controllerMakesKey(t, ctx, cp.Config, objs); name != install.MemberlistSecretName || !created {
		t.Fatalf("the kustomize controller made Secret %q (created %v), want %s created", name, created, install.MemberlistSecretName)
	}
	key := liveSecret(t, ctx, cp.Config, install.MemberlistSecretName)
	if key == nil || len(key.Data[install.MemberlistSecretKey]) < 16 {
		t.Fatalf("the controller's memberlist Secret is missing or short: %v", key)
	}

	// The controller injects its CA into the webhook configuration and the
	// BGPPeer CRD; applying the manifests again must leave it, and the
	// controller's key, alone.
	ca := injectCA(t, ctx, cp.Config)
	if _, err := install.Apply(ctx, cp.Config, objs, install.ApplyOptions{FieldManager: "kubectl"}); err != nil {
		t.Fatalf("re-applying the kustomize install: %v", err)
	}
	checkCA(t, ctx, cp.Config, ca)
	sameSecret(t, ctx, cp.Config, key, "re-applying config/default")

	// 3. config/monitoring, where the Prometheus Operator's CRDs exist.
	if _, err := install.Apply(ctx, cp.Config, readFile(t, "testdata/servicemonitors-crd.yaml"), install.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	mon, _, err := install.Kustomize(fsys, "/config/monitoring")
	if err != nil {
		t.Fatal(err)
	}
	applied, err = install.Apply(ctx, cp.Config, mon, install.ApplyOptions{FieldManager: "kubectl"})
	if err != nil {
		t.Fatalf("server-side apply refused config/monitoring: %v", err)
	}
	if len(applied.Warnings) > 0 {
		t.Errorf("the API server warned about config/monitoring:\n%s", strings.Join(applied.Warnings, "\n"))
	}
	w := wantFor(t)
	w.ServiceMonitors = true
	w.CABundleInjected = true
	if err := install.Check(fetch(t, ctx, cp.Config, mon), w); err != nil {
		t.Errorf("the stored monitoring install breaks the install policy:\n%v", err)
	}
	sameSecret(t, ctx, cp.Config, key, "applying config/monitoring")
}

// warningRecorder collects the API server's warnings to Helm's requests.
type warningRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warningRecorder) HandleWarningHeader(code int, _ string, text string) {
	if code == 299 && text != "" {
		w.mu.Lock()
		w.msgs = append(w.msgs, text)
		w.mu.Unlock()
	}
}

func (w *warningRecorder) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.msgs
	w.msgs = nil
	return out
}

// helmConfig is what `helm --kubeconfig K --namespace N` sets up.
func helmConfig(t *testing.T, cp *controlplane.ControlPlane, warn *warningRecorder) *action.Configuration {
	t.Helper()
	flags := genericclioptions.NewConfigFlags(false)
	kc, ns := cp.Kubeconfig, namespace
	flags.KubeConfig, flags.Namespace = &kc, &ns
	flags.WrapConfigFn = func(c *rest.Config) *rest.Config {
		c.WarningHandler = warn
		return c
	}
	cfg := action.NewConfiguration(action.ConfigurationSetLogger(slog.NewTextHandler(testWriter{t}, nil)))
	if err := cfg.Init(flags, namespace, "secret"); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// testWriter sends Helm's log lines to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Logf("helm: %s", bytes.TrimRight(p, "\n"))
	return len(p), nil
}

// v1Release is the release record a Helm action returned, failing the test
// on an action error.
func v1Release(t *testing.T, r helmrelease.Releaser, err error) *release.Release {
	t.Helper()
	if err != nil {
		t.Fatalf("helm: %v", err)
	}
	rel, err := install.AsRelease(r)
	if err != nil {
		t.Fatal(err)
	}
	return rel
}

// helmUpgrade runs `helm upgrade keeperlb charts/keeperlb -n metallb-system
// --reset-values` with values (without --reset-values, an upgrade given no
// values reuses the last release's) and returns the release's objects.
func helmUpgrade(t *testing.T, ctx context.Context, cfg *action.Configuration, values map[string]any, takeOwnership bool) ([]*unstructured.Unstructured, error) {
	t.Helper()
	ch, err := install.LoadChart(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	up := action.NewUpgrade(cfg)
	up.Namespace = namespace
	up.Timeout = time.Minute
	up.ResetValues = true
	up.TakeOwnership = takeOwnership
	up.WaitStrategy = kube.HookOnlyStrategy // the CLI's default without --wait
	r, err := up.RunWithContext(ctx, "keeperlb", ch, values)
	if err != nil {
		return nil, err
	}
	rel := v1Release(t, r, nil)
	objs, err := install.Decode([]byte(rel.Manifest))
	if err != nil {
		t.Fatal(err)
	}
	return objs, nil
}

// TestHelmInstall follows docs/install.md's Helm path on a real API server
// with the Helm library itself: install (CRDs, RBAC, workloads, webhooks,
// ServiceMonitors), every object stored and within the policy, the
// controller creating the heartbeat key the release does not carry, then an
// upgrade that must leave that key exactly as it was.
func TestHelmInstall(t *testing.T) {
	cp := startControlPlane(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if _, err := install.Apply(ctx, cp.Config, readFile(t, "testdata/servicemonitors-crd.yaml"), install.ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	ch, err := install.LoadChart(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	warn := &warningRecorder{}
	cfg := helmConfig(t, cp, warn)
	values := map[string]any{"serviceMonitor": map[string]any{"enabled": true}}

	// helm install keeperlb charts/keeperlb -n metallb-system --create-namespace --set serviceMonitor.enabled=true
	// (docs/install.md adds --wait; this control plane has no kubelet, so
	// no Pod would ever be Ready: the test waits for what it checks.)
	inst := action.NewInstall(cfg)
	inst.ReleaseName = "keeperlb"
	inst.Namespace = namespace
	inst.CreateNamespace = true
	inst.Timeout = time.Minute
	inst.WaitStrategy = kube.HookOnlyStrategy // the CLI's default without --wait
	r, err := inst.RunWithContext(ctx, ch, values)
	if err != nil {
		t.Fatalf("helm install: %v", err)
	}
	rel := v1Release(t, r, nil)
	if w := warn.take(); len(w) > 0 {
		t.Errorf("the API server warned during helm install:\n%s", strings.Join(w, "\n"))
	}
	objs, err := install.Decode([]byte(rel.Manifest))
	if err != nil {
		t.Fatal(err)
	}
	stored := fetch(t, ctx, cp.Config, objs)
	want := wantFor(t)
	want.ServiceMonitors = true
	if err := install.Check(stored, want); err != nil {
		t.Errorf("the stored Helm install breaks the install policy:\n%v", err)
	}
	strictDryRun(t, ctx, cp.Config, objs)
	if s := install.Find(objs, "Secret", install.MemberlistSecretName); s != nil {
		t.Fatal("the release carries the memberlist Secret; the controller creates it")
	}
	if name, created := controllerMakesKey(t, ctx, cp.Config, objs); name != install.MemberlistSecretName || !created {
		t.Fatalf("the Helm controller made Secret %q (created %v), want %s created", name, created, install.MemberlistSecretName)
	}
	key := liveSecret(t, ctx, cp.Config, install.MemberlistSecretName)
	ca := injectCA(t, ctx, cp.Config)

	// helm upgrade keeperlb charts/keeperlb -n metallb-system --reuse-values --set controller.extraArgs={--workers=4}
	up := action.NewUpgrade(cfg)
	up.Namespace = namespace
	up.ReuseValues = true
	up.Timeout = time.Minute
	up.WaitStrategy = kube.HookOnlyStrategy
	r, err = up.RunWithContext(ctx, "keeperlb", ch, map[string]any{"controller": map[string]any{"extraArgs": []any{"--workers=4"}}})
	if err != nil {
		t.Fatalf("helm upgrade: %v", err)
	}
	rel = v1Release(t, r, nil)
	if w := warn.take(); len(w) > 0 {
		t.Errorf("the API server warned during helm upgrade:\n%s", strings.Join(w, "\n"))
	}
	objs, err = install.Decode([]byte(rel.Manifest))
	if err != nil {
		t.Fatal(err)
	}
	stored = fetch(t, ctx, cp.Config, objs)
	sameSecret(t, ctx, cp.Config, key, "helm upgrade")
	if _, created := controllerMakesKey(t, ctx, cp.Config, objs); created {
		t.Error("the upgraded controller made a second key")
	}
	checkCA(t, ctx, cp.Config, ca)
	if install.Find(stored, "ServiceMonitor", install.ControllerName) == nil {
		t.Error("--reuse-values lost serviceMonitor.enabled")
	}
	d := install.Find(stored, "Deployment", install.ControllerName)
	cs, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
	args, _, _ := unstructured.NestedStringSlice(cs[0].(map[string]any), "args")
	if !slices.Contains(args, "--workers=4") {
		t.Errorf("upgrade did not reach the controller: args %v", args)
	}
	want.CABundleInjected = true
	if err := install.Check(stored, want); err != nil {
		t.Errorf("the upgraded Helm install breaks the install policy:\n%v", err)
	}
}

// TestHelmMemberlistKeyHandover moves the heartbeat key between the
// controller and the release on a real API server, as docs/install.md
// tells users to: a key the controller made cannot be overwritten by a
// `helm upgrade` that sets another one; setting the current key with
// --take-ownership hands it to the release unchanged; and when a release
// stops rendering the Secret (as an upgrade from a chart version that
// rendered it does), helm.sh/resource-policy: keep keeps it, while without
// the annotation Helm deletes it and the controller makes a new key.
func TestHelmMemberlistKeyHandover(t *testing.T) {
	cp := startControlPlane(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ch, err := install.LoadChart(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	cfg := helmConfig(t, cp, &warningRecorder{})
	inst := action.NewInstall(cfg)
	inst.ReleaseName = "keeperlb"
	inst.Namespace = namespace
	inst.CreateNamespace = true
	inst.Timeout = time.Minute
	inst.WaitStrategy = kube.HookOnlyStrategy
	r, err := inst.RunWithContext(ctx, ch, nil)
	if err != nil {
		t.Fatalf("helm install: %v", err)
	}
	rel := v1Release(t, r, nil)
	objs, err := install.Decode([]byte(rel.Manifest))
	if err != nil {
		t.Fatal(err)
	}
	controllerMakesKey(t, ctx, cp.Config, objs)
	made := liveSecret(t, ctx, cp.Config, install.MemberlistSecretName)
	if made == nil {
		t.Fatal("the controller made no memberlist Secret")
	}
	current := string(made.Data[install.MemberlistSecretKey])
	keyValues := func(key string) map[string]any {
		return map[string]any{"speaker": map[string]any{"memberlist": map[string]any{"secretKey": key}}}
	}

	// 1. helm upgrade --set speaker.memberlist.secretKey=<another key>:
	//    refused before anything changes.
	_, err = helmUpgrade(t, ctx, cfg, keyValues("another-key-0123456789abcdef"), false)
	if err == nil || !strings.Contains(err.Error(), install.MemberlistSecretName) || !strings.Contains(err.Error(), "cannot be imported") {
		t.Fatalf("helm upgrade over the controller's key: want a refusal naming Secret %s, got %v", install.MemberlistSecretName, err)
	}
	sameSecret(t, ctx, cp.Config, made, "a refused helm upgrade")

	// 2. The current key, --take-ownership: the release owns the Secret,
	//    the key is unchanged and the controller creates none.
	objs, err = helmUpgrade(t, ctx, cfg, keyValues(current), true)
	if err != nil {
		t.Fatalf("helm upgrade --take-ownership with the current key: %v", err)
	}
	owned := liveSecret(t, ctx, cp.Config, install.MemberlistSecretName)
	if owned == nil || owned.UID != made.UID || !reflect.DeepEqual(owned.Data, made.Data) {
		t.Fatalf("taking the Secret over changed it: %v", owned)
	}
	if owned.Annotations["meta.helm.sh/release-name"] != "keeperlb" {
		t.Errorf("the Secret is not the release's: annotations %v", owned.Annotations)
	}
	if name, _ := controllerMakesKey(t, ctx, cp.Config, objs); name != "" {
		t.Errorf("with secretKey the controller still creates Secret %s", name)
	}
	w := wantFor(t)
	w.MemberlistKey = install.KeyFromInstall
	w.CABundleInjected = true
	if err := install.Check(fetch(t, ctx, cp.Config, objs), w); err != nil {
		t.Errorf("the release with secretKey breaks the install policy:\n%v", err)
	}

	// 3. A release that stops rendering the Secret, after
	//    kubectl annotate secret keeperlb-memberlist helm.sh/resource-policy=keep:
	//    Helm leaves it, and the controller keeps using it.
	cs, err := kubernetes.NewForConfig(cp.Config)
	if err != nil {
		t.Fatal(err)
	}
	annotate := func(value string) {
		t.Helper()
		v := "null"
		if value != "" {
			v = `"` + value + `"`
		}
		patch := []byte(`{"metadata":{"annotations":{"helm.sh/resource-policy":` + v + `}}}`)
		if _, err := cs.CoreV1().Secrets(namespace).Patch(ctx, install.MemberlistSecretName, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	annotate("keep")
	objs, err = helmUpgrade(t, ctx, cfg, nil, false)
	if err != nil {
		t.Fatalf("helm upgrade to the default values: %v", err)
	}
	if install.Find(objs, "Secret", install.MemberlistSecretName) != nil {
		t.Fatal("the default release still renders the Secret")
	}
	kept := liveSecret(t, ctx, cp.Config, install.MemberlistSecretName)
	if kept == nil || !reflect.DeepEqual(kept.Data, made.Data) {
		t.Fatalf("helm.sh/resource-policy: keep did not keep the key: %v", kept)
	}
	if _, created := controllerMakesKey(t, ctx, cp.Config, objs); created {
		t.Error("the controller replaced the kept key")
	}

	// 4. The same without the annotation: Helm deletes the Secret and the
	//    controller makes a new key (the upgrade caveat docs/install.md
	//    describes).
	if _, err := helmUpgrade(t, ctx, cfg, keyValues(current), false); err != nil {
		t.Fatalf("helm upgrade back to secretKey: %v", err)
	}
	annotate("")
	objs, err = helmUpgrade(t, ctx, cfg, nil, false)
	if err != nil {
		t.Fatalf("helm upgrade to the default values: %v", err)
	}
	if gone := liveSecret(t, ctx, cp.Config, install.MemberlistSecretName); gone != nil {
		t.Fatalf("without resource-policy keep Helm left the Secret no longer rendered (the doc says it deletes it): %v", gone.Annotations)
	}
	if _, created := controllerMakesKey(t, ctx, cp.Config, objs); !created {
		t.Fatal("the controller did not make a new key")
	}
	if renewed := liveSecret(t, ctx, cp.Config, install.MemberlistSecretName); bytes.Equal(renewed.Data[install.MemberlistSecretKey], made.Data[install.MemberlistSecretKey]) {
		t.Error("the new key equals the old one")
	}
}

// strictDryRun re-applies Helm's objects as a server-side dry run with
// strict field validation: Helm creates objects without it, and the API
// server would drop a misspelt field silently.
func strictDryRun(t *testing.T, ctx context.Context, cfg *rest.Config, objs []*unstructured.Unstructured) {
	t.Helper()
	applied, err := install.Apply(ctx, cfg, objs, install.ApplyOptions{DryRun: true, FieldManager: "strict-check"})
	if err != nil {
		t.Errorf("strict server-side dry run refused the Helm output: %v", err)
		return
	}
	if len(applied.Warnings) > 0 {
		t.Errorf("strict dry run warned:\n%s", strings.Join(applied.Warnings, "\n"))
	}
}

// TestHelmRenderedInstall follows docs/install.md's path for machines
// without helm: `go run ./hack/render helm charts/keeperlb > keeperlb.yaml`
// and `keeperlb apply -f namespace.yaml -f keeperlb.yaml`.
func TestHelmRenderedInstall(t *testing.T) {
	cp := startControlPlane(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ch, err := install.LoadChart(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	objs, manifest, err := install.RenderChart(ch, install.Release{Name: "keeperlb", Namespace: namespace})
	if err != nil {
		t.Fatal(err)
	}
	// The doc writes the rendered chart to a file; Helm leaves the
	// namespace to --create-namespace, so the doc creates it with a
	// one-object manifest.
	dir := t.TempDir()
	nsFile, chartFile := filepath.Join(dir, "namespace.yaml"), filepath.Join(dir, "keeperlb.yaml")
	if err := os.WriteFile(nsFile, []byte(fmt.Sprintf("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n", namespace)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(chartFile, []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd := cli.NewRoot(&out)
	cmd.SetArgs([]string{"apply", "-f", nsFile, "-f", chartFile, "--kubeconfig", cp.Kubeconfig})
	if err := cmd.ExecuteContext(ctx); err != nil {
		t.Fatalf("keeperlb apply refused the rendered chart: %v\n%s", err, out.String())
	}
	if err := install.Check(fetch(t, ctx, cp.Config, objs), wantFor(t)); err != nil {
		t.Errorf("the stored rendered chart breaks the install policy:\n%v", err)
	}
	strictDryRun(t, ctx, cp.Config, objs)
}

var (
	vwcResource = schema.GroupVersionResource{Group: "admissionregistration.k8s.io", Version: "v1", Resource: "validatingwebhookconfigurations"}
	crdResource = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
)

// injectCA does what the controller does at run time: it writes a CA
// bundle into every webhook of the configuration and into the BGPPeer
// conversion webhook, with an update of its own. It returns the bundle.
func injectCA(t *testing.T, ctx context.Context, cfg *rest.Config) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test-ca"}, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca := base64.StdEncoding.EncodeToString(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	update := metav1.UpdateOptions{FieldManager: "keeperlb-controller"}
	vwc, err := dyn.Resource(vwcResource).Get(ctx, install.WebhookConfigName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	whs, _, _ := unstructured.NestedSlice(vwc.Object, "webhooks")
	for _, wh := range whs {
		if err := unstructured.SetNestedField(wh.(map[string]any), ca, "clientConfig", "caBundle"); err != nil {
			t.Fatal(err)
		}
	}
	if err := unstructured.SetNestedSlice(vwc.Object, whs, "webhooks"); err != nil {
		t.Fatal(err)
	}
	if _, err := dyn.Resource(vwcResource).Update(ctx, vwc, update); err != nil {
		t.Fatalf("injecting the CA into the webhook configuration: %v", err)
	}
	crd, err := dyn.Resource(crdResource).Get(ctx, install.BGPPeerCRDName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := unstructured.SetNestedField(crd.Object, ca, "spec", "conversion", "webhook", "clientConfig", "caBundle"); err != nil {
		t.Fatal(err)
	}
	if _, err := dyn.Resource(crdResource).Update(ctx, crd, update); err != nil {
		t.Fatalf("injecting the CA into the BGPPeer CRD: %v", err)
	}
	return ca
}

// checkCA fails the test unless the injected CA bundle is still in place.
func checkCA(t *testing.T, ctx context.Context, cfg *rest.Config, ca string) {
	t.Helper()
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	vwc, err := dyn.Resource(vwcResource).Get(ctx, install.WebhookConfigName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	whs, _, _ := unstructured.NestedSlice(vwc.Object, "webhooks")
	for _, wh := range whs {
		got, _, _ := unstructured.NestedString(wh.(map[string]any), "clientConfig", "caBundle")
		if got != ca {
			t.Errorf("webhook %v lost the injected CA bundle", wh.(map[string]any)["name"])
		}
	}
	crd, err := dyn.Resource(crdResource).Get(ctx, install.BGPPeerCRDName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got, _, _ := unstructured.NestedString(crd.Object, "spec", "conversion", "webhook", "clientConfig", "caBundle"); got != ca {
		t.Error("the BGPPeer CRD lost the injected CA bundle")
	}
}
