package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/keeperlb/keeperlb/api/v1beta1"
	"github.com/keeperlb/keeperlb/examples"
	"github.com/keeperlb/keeperlb/internal/controlplane"
)

type demoOptions struct {
	controllerBin string
	keep          bool
}

func newDemoCmd(g *globals) *cobra.Command {
	o := demoOptions{}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run a local control plane and the controller, apply a MetalLB pool and watch Services get addresses",
		Long: "demo starts a real etcd and kube-apiserver (from $KEEPERLB_K8S_BIN, built by\n" +
			"hack/k8s-tools/build.sh), installs the metallb.io CRDs, starts keeperlb-controller,\n" +
			"applies examples/demo/pool.yaml and examples/demo/services.yaml, and shows what each\n" +
			"Service got, or why it is waiting. `make demo` runs it.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemo(cmd.Context(), g.out, o)
		},
	}
	cmd.Flags().StringVar(&o.controllerBin, "controller-bin", "", "keeperlb-controller binary (default: next to this binary)")
	cmd.Flags().BoolVar(&o.keep, "keep", false, "keep the lab running after the demo until interrupted, for kubectl or keeperlb --kubeconfig")
	return cmd
}

func runDemo(ctx context.Context, out io.Writer, o demoOptions) (err error) {
	step := func(format string, args ...any) { fmt.Fprintf(out, "\n==> "+format+"\n", args...) }
	if o.controllerBin == "" {
		self, err := os.Executable()
		if err != nil {
			return fmt.Errorf("finding keeperlb-controller: %w", err)
		}
		o.controllerBin = filepath.Join(filepath.Dir(self), "keeperlb-controller")
	}
	if _, err := os.Stat(o.controllerBin); err != nil {
		return fmt.Errorf("keeperlb-controller not found (build it with `make build`): %w", err)
	}
	dir, err := os.MkdirTemp("", "keeperlb-demo-")
	if err != nil {
		return fmt.Errorf("creating demo folder: %w", err)
	}
	defer func() {
		// Logs of a failed demo are what the user needs to report it.
		if err != nil || o.keep {
			fmt.Fprintf(out, "\nlogs kept in %s\n", dir)
			return
		}
		os.RemoveAll(dir)
	}()

	step("Starting a local control plane (etcd + kube-apiserver v1.37)")
	start := time.Now()
	cp, err := controlplane.Start(ctx, controlplane.Options{Dir: dir})
	if err != nil {
		return err
	}
	defer cp.Stop()
	if err := controlplane.InstallCRDs(ctx, cp.Config); err != nil {
		return err
	}
	c, err := newClient(cp.Config)
	if err != nil {
		return err
	}
	for _, ns := range []string{"metallb-system", "demo"} {
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			return fmt.Errorf("creating namespace %s: %w", ns, err)
		}
	}
	fmt.Fprintf(out, "API server %s ready in %s; metallb.io CRDs installed\n", cp.Config.Host, time.Since(start).Round(100*time.Millisecond))

	step("Starting keeperlb-controller")
	metricsAddr, stopController, err := startController(ctx, o.controllerBin, cp.Kubeconfig, dir)
	if err != nil {
		return err
	}
	defer stopController()
	fmt.Fprintf(out, "controller running (log: %s, metrics: http://%s/metrics)\n", filepath.Join(dir, "controller.log"), metricsAddr)

	objs, err := applyExample(ctx, out, c, "demo/pool.yaml", false)
	if err != nil {
		return err
	}
	if err := waitConfigValid(ctx, c); err != nil {
		return err
	}
	fmt.Fprintln(out, "the controller loaded the configuration (ConfigurationState \"controller\": Valid)")

	// One Service at a time, so that the story reads in order: each is
	// decided before the next arrives.
	if objs, err = applyExample(ctx, out, c, "demo/services.yaml", true); err != nil {
		return err
	}
	step("Creating the Services one by one")
	var rows []serviceRow
	for i := range objs {
		if err := apply(ctx, c, objs[i:i+1], "demo", out); err != nil {
			return err
		}
		if rows, err = waitRows(ctx, c, func(rows []serviceRow) bool { return settled(rows, i+1) }); err != nil {
			return err
		}
	}
	step("What each Service got (keeperlb services)")
	if err := printServices(out, rows); err != nil {
		return err
	}
	step("Why is demo/late pending? The Warning Events say (as `kubectl describe svc late -n demo` would):")
	if err := printEvents(ctx, out, c, "demo", "late"); err != nil {
		return err
	}

	step("Deleting demo/api: its address goes to demo/late, which was waiting for it")
	if err := c.Delete(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "demo", Name: "api"}}); err != nil {
		return fmt.Errorf("deleting demo/api: %w", err)
	}
	rows, err = waitRows(ctx, c, func(rows []serviceRow) bool {
		for _, r := range rows {
			if r.Name == "late" && r.State == "Allocated" {
				return settled(rows, 3)
			}
		}
		return false
	})
	if err != nil {
		return err
	}
	if err := printServices(out, rows); err != nil {
		return err
	}

	step("Pool usage (IPAddressPool status)")
	if err := waitPoolStatus(ctx, c); err != nil {
		return err
	}
	if err := printPools(ctx, out, c, "metallb-system"); err != nil {
		return err
	}
	step("Prometheus metrics, under MetalLB's names")
	if err := printMetrics(ctx, out, metricsAddr); err != nil {
		return err
	}

	if o.keep {
		step("The lab keeps running; press Ctrl-C to stop it")
		fmt.Fprintf(out, "  export KUBECONFIG=%s\n  keeperlb services\n  keeperlb status\n", cp.Kubeconfig)
		sig, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
		defer stop()
		<-sig.Done()
	}
	step("Done: stopping the controller and the control plane")
	return nil
}

// applyExample prints an embedded example and, unless printOnly, applies it.
func applyExample(ctx context.Context, out io.Writer, c client.Client, name string, printOnly bool) ([]*unstructured.Unstructured, error) {
	raw, err := fs.ReadFile(examples.Demo, name)
	if err != nil {
		return nil, fmt.Errorf("reading example %s: %w", name, err)
	}
	fmt.Fprintf(out, "\n==> examples/%s\n%s\n", name, indent(string(raw)))
	objs, err := decodeAll(strings.NewReader(string(raw)))
	if err != nil {
		return nil, fmt.Errorf("examples/%s: %w", name, err)
	}
	if printOnly {
		return objs, nil
	}
	return objs, apply(ctx, c, objs, "metallb-system", out)
}

// waitConfigValid waits until the controller reports that it loaded the
// configuration.
func waitConfigValid(ctx context.Context, c client.Client) error {
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		cs := &v1beta1.ConfigurationState{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: "metallb-system", Name: "controller"}, cs); err != nil {
			return false, nil
		}
		return cs.Status.Result == v1beta1.ConfigurationResultValid, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for the controller to load the configuration (see its log): %w", err)
	}
	return nil
}

// startController runs keeperlb-controller as a real process against the
// lab, returning its metrics address and a function that stops it.
func startController(ctx context.Context, bin, kubeconfig, dir string) (string, func(), error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("finding a metrics port: %w", err)
	}
	metricsAddr := l.Addr().String()
	l.Close()
	logFile, err := os.Create(filepath.Join(dir, "controller.log"))
	if err != nil {
		return "", nil, fmt.Errorf("creating controller log: %w", err)
	}
	cmd := exec.CommandContext(ctx, bin,
		"--kubeconfig="+kubeconfig,
		"--namespace=metallb-system",
		"--metrics-bind-address="+metricsAddr,
		"--health-probe-bind-address=0",
	)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return "", nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
		logFile.Close()
		tail, _ := os.ReadFile(logFile.Name())
		return "", nil, fmt.Errorf("keeperlb-controller exited at start:\n%s", tail)
	case <-time.After(500 * time.Millisecond):
	}
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		logFile.Close()
	}
	return metricsAddr, stop, nil
}

// settled reports whether n Services exist and each has either addresses or
// a reason for having none.
func settled(rows []serviceRow, n int) bool {
	if len(rows) != n {
		return false
	}
	for _, r := range rows {
		if r.State == "Unknown" {
			return false
		}
	}
	return true
}

func waitRows(ctx context.Context, c client.Client, done func([]serviceRow) bool) ([]serviceRow, error) {
	var rows []serviceRow
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		var err error
		rows, err = serviceRows(ctx, c)
		return err == nil && done(rows), nil
	})
	if err != nil {
		return rows, fmt.Errorf("waiting for the controller (see its log): %w", err)
	}
	return rows, nil
}

// waitPoolStatus waits until the demo pool's status counts the addresses
// the Services hold; the controller writes it at most once a second.
func waitPoolStatus(ctx context.Context, c client.Client) error {
	return wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		rows, err := serviceRows(ctx, c)
		if err != nil {
			return false, nil
		}
		var v4, v6 int64
		for _, r := range rows {
			for _, ip := range r.IPs {
				if strings.Contains(ip, ":") {
					v6++
				} else {
					v4++
				}
			}
		}
		p := &v1beta1.IPAddressPool{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: "metallb-system", Name: "demo"}, p); err != nil {
			return false, nil
		}
		return p.Status.AssignedIPv4 == v4 && p.Status.AssignedIPv6 == v6, nil
	})
}

func printEvents(ctx context.Context, out io.Writer, c client.Client, ns, name string) error {
	var l corev1.EventList
	if err := c.List(ctx, &l, client.InNamespace(ns)); err != nil {
		return fmt.Errorf("listing events: %w", err)
	}
	for _, ev := range l.Items {
		if ev.InvolvedObject.Name == name {
			fmt.Fprintf(out, "  %s  %s  %s\n", ev.Type, ev.Reason, ev.Message)
		}
	}
	return nil
}

func printMetrics(ctx context.Context, out io.Writer, addr string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("scraping controller metrics: %w", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	found := false
	for sc.Scan() {
		if line := sc.Text(); strings.HasPrefix(line, "metallb_allocator_") {
			fmt.Fprintf(out, "  %s\n", line)
			found = true
		}
	}
	if !found {
		return errors.New("the controller exposes no metallb_allocator_ metrics")
	}
	return sc.Err()
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ")
}
