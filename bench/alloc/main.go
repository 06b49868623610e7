// Command alloc measures the controller on a real control plane and prints
// Markdown tables: the time to give a backlog of Services their addresses,
// against the raw API write limit measured in the same run; per-Service
// latency in steady state; the controller's memory; and whether a restart
// moved any address.
//
// Run it with `make bench-alloc`.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/keeperlb/keeperlb/api/v1beta1"
	"github.com/keeperlb/keeperlb/internal/controller"
	"github.com/keeperlb/keeperlb/internal/controlplane"
)

const (
	benchNS  = "bench"
	systemNS = "metallb-system"
	poolCIDR = "198.18.0.0/16"
	writers  = 4 // the baseline's parallel writers, fixed by the issue
)

type options struct {
	controllerBin string
	sizes         []int
	steady        int
	workers       int
	keepLogs      bool
	rounds        int
	pprofAddr     string
}

func main() {
	// The client logs through controller-runtime's logger, which warns
	// (with a stack trace) when nobody set it; the benchmark wants quiet.
	ctrllog.SetLogger(logr.Discard())
	o := options{}
	sizes := flag.String("sizes", "1000,10000", "backlog sizes, comma-separated")
	flag.StringVar(&o.controllerBin, "controller-bin", "bin/keeperlb-controller", "keeperlb-controller binary")
	flag.IntVar(&o.steady, "steady", 200, "Services created one by one for the steady-state latency")
	flag.IntVar(&o.workers, "workers", controller.DefaultOptions().Workers, "controller --workers")
	flag.BoolVar(&o.keepLogs, "keep-logs", false, "keep the control plane and controller logs")
	flag.StringVar(&o.pprofAddr, "pprof", "0", "controller --pprof-bind-address, to profile it during the run")
	flag.IntVar(&o.rounds, "rounds", 3, "rounds of baseline + controller per size; the best of each is compared")
	quick := flag.Bool("quick", false, "small run: sizes 200, steady 50")
	flag.Parse()
	for _, s := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			fmt.Fprintf(os.Stderr, "bad -sizes entry %q\n", s)
			os.Exit(2)
		}
		o.sizes = append(o.sizes, n)
	}
	if *quick {
		o.sizes, o.steady, o.rounds = []int{200}, 50, 1
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(context.Background(), o, log); err != nil {
		log.Error("benchmark failed", "err", err)
		os.Exit(1)
	}
}

type sizeResult struct {
	n                               int
	raws, klbs, cpus                []time.Duration
	rssKiB, hwmKiB                  int64
	steadyP50, steadyP99, steadyMax time.Duration
	checked, changed                int
	restartNewOK                    bool
	restartFirst                    time.Duration
}

func run(ctx context.Context, o options, log *slog.Logger) error {
	var results []sizeResult
	for _, n := range o.sizes {
		r, err := runSize(ctx, o, n, log)
		if err != nil {
			return fmt.Errorf("at N=%d: %w", n, err)
		}
		results = append(results, r)
	}
	printTables(o, results)
	return nil
}

// runSize measures one backlog size on a fresh control plane.
func runSize(ctx context.Context, o options, n int, log *slog.Logger) (sizeResult, error) {
	res := sizeResult{n: n}
	dir, err := os.MkdirTemp("", "keeperlb-bench-")
	if err != nil {
		return res, err
	}
	if o.keepLogs {
		log.Info("keeping logs", "dir", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	cp, err := controlplane.Start(ctx, controlplane.Options{Dir: dir, Logger: log})
	if err != nil {
		return res, err
	}
	defer cp.Stop()
	if err := controlplane.InstallCRDs(ctx, cp.Config); err != nil {
		return res, err
	}
	cfg := rest.CopyConfig(cp.Config)
	cfg.QPS = -1 // no client-side limit: the API server is what we measure
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return res, err
	}
	for _, ns := range []string{benchNS, systemNS} {
		if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			return res, err
		}
	}
	if err := createPool(ctx, cfg); err != nil {
		return res, err
	}

	// The backlog is created once: creating a Service costs the API server
	// far more than a status write (ClusterIP allocation). Each round runs
	// the baseline and then the controller on it, clearing the statuses in
	// between; the best round of each is compared, because a shared 2-core
	// machine makes single runs vary by ±20%.
	names := serviceNames("s", n)
	log.Info("creating backlog", "n", n)
	if err := createServices(ctx, cs, names); err != nil {
		return res, err
	}
	var (
		w    *watcher
		ctrl *controllerProc
	)
	for round := 1; round <= o.rounds; round++ {
		raw, err := rawWrite(ctx, cs, names)
		if err != nil {
			return res, err
		}
		res.raws = append(res.raws, raw)
		log.Info("raw writer done", "n", n, "round", round, "took", raw)
		if err := clearStatus(ctx, cs, names); err != nil {
			return res, err
		}

		if w, err = newWatcher(ctx, cs); err != nil {
			return res, err
		}
		if ctrl, err = startController(o, cp.Kubeconfig, dir); err != nil {
			return res, err
		}
		if err := w.waitCount(ctx, n, 10*time.Minute); err != nil {
			ctrl.stop()
			return res, fmt.Errorf("controller backlog: %w (log %s)", err, ctrl.logPath)
		}
		took, cpu := time.Since(ctrl.started), ctrl.cpu()
		res.klbs, res.cpus = append(res.klbs, took), append(res.cpus, cpu)
		log.Info("controller backlog done", "n", n, "round", round, "took", took, "cpu", cpu)
		if round == o.rounds {
			break
		}
		ctrl.stop()
		w.stop()
		if err := clearStatus(ctx, cs, names); err != nil {
			return res, err
		}
	}
	defer w.stop()
	defer ctrl.stop()
	res.rssKiB, res.hwmKiB = ctrl.memory()

	// Steady state: one Service at a time.
	lat := make([]time.Duration, 0, o.steady)
	for i, name := range serviceNames("steady", o.steady) {
		t0 := time.Now()
		if err := createServices(ctx, cs, []string{name}); err != nil {
			return res, err
		}
		if err := w.waitCount(ctx, n+i+1, time.Minute); err != nil {
			return res, fmt.Errorf("steady state: %w", err)
		}
		lat = append(lat, w.seen(name).Sub(t0))
	}
	slices.Sort(lat)
	res.steadyP50, res.steadyP99, res.steadyMax = pct(lat, 50), pct(lat, 99), lat[len(lat)-1]
	if rss, hwm := ctrl.memory(); rss > res.rssKiB {
		res.rssKiB, res.hwmKiB = rss, hwm
	}

	// Restart: holes, a stopped controller, new Services meanwhile.
	before := w.snapshot()
	for i := 0; i < n; i += 10 {
		if err := cs.CoreV1().Services(benchNS).Delete(ctx, names[i], metav1.DeleteOptions{}); err != nil {
			return res, err
		}
		delete(before, names[i])
	}
	ctrl.stop()
	newNames := serviceNames("after-restart", 10)
	if err := createServices(ctx, cs, newNames); err != nil {
		return res, err
	}
	ctrl2, err := startController(o, cp.Kubeconfig, dir)
	if err != nil {
		return res, err
	}
	defer ctrl2.stop()
	want := len(before) + len(newNames)
	if err := w.waitCount(ctx, want, 2*time.Minute); err != nil {
		return res, fmt.Errorf("after restart: %w (log %s)", err, ctrl2.logPath)
	}
	res.restartFirst = w.seen(newNames[0]).Sub(ctrl2.started)
	after := w.snapshot()
	used := map[string]string{}
	for name, ip := range before {
		res.checked++
		if after[name] != ip {
			res.changed++
		}
		used[ip] = name
	}
	res.restartNewOK = true
	for _, name := range newNames {
		if holder, dup := used[after[name]]; dup || after[name] == "" {
			log.Error("new service got a held address", "service", name, "ip", after[name], "holder", holder)
			res.restartNewOK = false
		}
		used[after[name]] = name
	}
	return res, nil
}

func serviceNames(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%05d", prefix, i)
	}
	return out
}

// createServices creates LoadBalancer Services with 8 parallel writers. Node
// ports are off: 10,000 Services would exhaust the node port range.
func createServices(ctx context.Context, cs *kubernetes.Clientset, names []string) error {
	var done atomic.Int64
	start := time.Now()
	return parallel(8, names, func(name string) error {
		if d := done.Add(1); d%2000 == 0 {
			fmt.Fprintf(os.Stderr, "  created %d/%d Services (%.0f/s)\n", d, len(names), float64(d)/time.Since(start).Seconds())
		}
		s := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: benchNS, Name: name},
			Spec: corev1.ServiceSpec{
				Type:                          corev1.ServiceTypeLoadBalancer,
				AllocateLoadBalancerNodePorts: new(false),
				Selector:                      map[string]string{"app": name},
				Ports:                         []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080), Protocol: corev1.ProtocolTCP}},
			},
		}
		_, err := cs.CoreV1().Services(benchNS).Create(ctx, s, metav1.CreateOptions{})
		return err
	})
}

// rawWrite is the baseline: a trivial writer that puts the next address
// into each Service's status with 4 parallel writers, timed until a watcher
// has seen every address, as the controller is.
func rawWrite(ctx context.Context, cs *kubernetes.Clientset, names []string) (time.Duration, error) {
	w, err := newWatcher(ctx, cs)
	if err != nil {
		return 0, err
	}
	defer w.stop()
	base := netip.MustParsePrefix(poolCIDR).Addr()
	ips := make(map[string]string, len(names))
	ip := base
	for _, n := range names {
		ips[n] = ip.String()
		ip = ip.Next()
	}
	start := time.Now()
	err = parallel(writers, names, func(name string) error {
		body := fmt.Sprintf(`{"status":{"loadBalancer":{"ingress":[{"ip":%q}]}}}`, ips[name])
		_, err := cs.CoreV1().Services(benchNS).Patch(ctx, name, types.MergePatchType, []byte(body), metav1.PatchOptions{}, "status")
		return err
	})
	if err != nil {
		return 0, err
	}
	if err := w.waitCount(ctx, len(names), 10*time.Minute); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// clearStatus removes what the previous writer put in (addresses, the pool
// annotation, the condition), so that every round starts from the same
// backlog.
func clearStatus(ctx context.Context, cs *kubernetes.Clientset, names []string) error {
	return parallel(writers, names, func(name string) error {
		_, err := cs.CoreV1().Services(benchNS).Patch(ctx, name, types.MergePatchType,
			[]byte(`{"metadata":{"annotations":null},"status":{"loadBalancer":{"ingress":null},"conditions":null}}`), metav1.PatchOptions{}, "status")
		return err
	})
}

func parallel(workers int, items []string, f func(string) error) error {
	ch := make(chan string)
	var wg sync.WaitGroup
	var firstErr atomic.Value
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := range ch {
				if firstErr.Load() != nil {
					continue // fail fast: drain without work
				}
				if err := f(it); err != nil && !apierrors.IsAlreadyExists(err) {
					firstErr.CompareAndSwap(nil, fmt.Errorf("%s: %w", it, err))
				}
			}
		}()
	}
	for _, it := range items {
		ch <- it
	}
	close(ch)
	wg.Wait()
	if err, ok := firstErr.Load().(error); ok {
		return err
	}
	return nil
}

func createPool(ctx context.Context, cfg *rest.Config) error {
	scheme, err := controller.NewScheme()
	if err != nil {
		return err
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return err
	}
	return c.Create(ctx, &v1beta1.IPAddressPool{
		ObjectMeta: metav1.ObjectMeta{Namespace: systemNS, Name: "bench"},
		Spec:       v1beta1.IPAddressPoolSpec{Addresses: []string{poolCIDR}},
	})
}

// watcher follows the bench namespace and records when each Service was
// first seen with an address.
type watcher struct {
	mu     sync.Mutex
	first  map[string]time.Time
	ip     map[string]string
	cond   *sync.Cond
	cancel context.CancelFunc
}

func newWatcher(ctx context.Context, cs *kubernetes.Clientset) (*watcher, error) {
	ctx, cancel := context.WithCancel(ctx)
	w := &watcher{first: map[string]time.Time{}, ip: map[string]string{}, cancel: cancel}
	w.cond = sync.NewCond(&w.mu)
	l, err := cs.CoreV1().Services(benchNS).List(ctx, metav1.ListOptions{})
	if err != nil {
		cancel()
		return nil, err
	}
	for i := range l.Items {
		w.observe(&l.Items[i])
	}
	wi, err := cs.CoreV1().Services(benchNS).Watch(ctx, metav1.ListOptions{ResourceVersion: l.ResourceVersion})
	if err != nil {
		cancel()
		return nil, err
	}
	go func() {
		defer wi.Stop()
		for ev := range wi.ResultChan() {
			s, ok := ev.Object.(*corev1.Service)
			if !ok {
				continue
			}
			if ev.Type == watch.Deleted {
				w.mu.Lock()
				delete(w.first, s.Name)
				delete(w.ip, s.Name)
				w.mu.Unlock()
				continue
			}
			w.observe(s)
		}
		w.mu.Lock()
		w.cond.Broadcast()
		w.mu.Unlock()
	}()
	return w, nil
}

func (w *watcher) observe(s *corev1.Service) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(s.Status.LoadBalancer.Ingress) == 0 {
		delete(w.first, s.Name)
		delete(w.ip, s.Name)
		return
	}
	if _, ok := w.first[s.Name]; !ok {
		w.first[s.Name] = time.Now()
	}
	w.ip[s.Name] = s.Status.LoadBalancer.Ingress[0].IP
	w.cond.Broadcast()
}

// waitCount waits until at least n Services have an address.
func (w *watcher) waitCount(ctx context.Context, n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	t := time.AfterFunc(timeout, func() { w.mu.Lock(); w.cond.Broadcast(); w.mu.Unlock() })
	defer t.Stop()
	w.mu.Lock()
	defer w.mu.Unlock()
	for len(w.first) < n {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%d of %d Services have an address after %s", len(w.first), n, timeout)
		}
		w.cond.Wait()
	}
	return nil
}

func (w *watcher) seen(name string) time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.first[name]
}

func (w *watcher) snapshot() map[string]string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[string]string, len(w.ip))
	for k, v := range w.ip {
		out[k] = v
	}
	return out
}

func (w *watcher) stop() { w.cancel() }

// controllerProc is keeperlb-controller running as a real process.
type controllerProc struct {
	cmd     *exec.Cmd
	started time.Time
	logPath string
	done    chan struct{}
	once    sync.Once
}

func startController(o options, kubeconfig, dir string) (*controllerProc, error) {
	logPath := fmt.Sprintf("%s/controller-%d.log", dir, time.Now().UnixNano())
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(o.controllerBin,
		"--kubeconfig="+kubeconfig,
		"--namespace="+systemNS,
		"--metrics-bind-address=0",
		// No admission webhook: nothing here registers it, and the benchmark
		// measures allocation only.
		"--disable-webhook",
		"--health-probe-bind-address=0",
		"--workers="+strconv.Itoa(o.workers),
		"--pprof-bind-address="+o.pprofAddr,
	)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p := &controllerProc{cmd: cmd, logPath: logPath, done: make(chan struct{})}
	p.started = time.Now()
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("starting %s: %w", o.controllerBin, err)
	}
	go func() { _ = cmd.Wait(); f.Close(); close(p.done) }()
	return p, nil
}

// stop sends SIGTERM, as the kubelet does, and waits.
func (p *controllerProc) stop() {
	p.once.Do(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(20 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
}

// cpu returns the CPU time the process has used.
func (p *controllerProc) cpu() time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses and may hold
	// spaces; utime and stime are the 12th and 13th of them, in ticks.
	rest := string(b[strings.LastIndexByte(string(b), ')')+2:])
	f := strings.Fields(rest)
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100
}

// memory returns the process's resident set and its peak, in KiB. It also
// logs the anonymous/file split: file pages are the binary's code and are
// shared, the anonymous ones are what the Services cost.
func (p *controllerProc) memory() (rss, hwm int64) {
	defer func() {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "RssAnon") || strings.HasPrefix(l, "RssFile") {
				fmt.Fprintf(os.Stderr, "  controller %s\n", strings.Join(strings.Fields(l), " "))
			}
		}
	}()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(fields[1], 10, 64)
		switch fields[0] {
		case "VmRSS:":
			rss = v
		case "VmHWM:":
			hwm = v
		}
	}
	return rss, hwm
}

func pct(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p + 99) / 100
	if i < 1 {
		i = 1
	}
	return sorted[i-1]
}

func printTables(o options, rs []sizeResult) {
	fmt.Printf("## Controller allocation benchmark\n\n%s\n", machine())
	fmt.Printf("Control plane: kube-apiserver and etcd v1.37.2 on loopback, fresh per size. Controller: a real keeperlb-controller process, --workers=%d, leader election on.\n\n", o.workers)
	fmt.Println("### Backlog: N Services exist before the controller starts")
	fmt.Println()
	fmt.Printf("Baseline: a trivial writer putting the next address into each status with %d parallel writers, on the same API server in the same run. Both are timed until a watcher has seen every address; KeeperLB's time includes process start, leader election and cache sync.\n\n", writers)
	fmt.Println("| N | raw write limit, each round | KeeperLB, each round | KeeperLB CPU | best KeeperLB / best raw | target |")
	fmt.Println("|---:|---|---|---|---:|---|")
	for _, r := range rs {
		raw, klb := slices.Min(r.raws), slices.Min(r.klbs)
		ratio := klb.Seconds() / raw.Seconds()
		target := "-" // the targets are set for 1,000 and 10,000 Services
		if r.n >= 1000 {
			target = "≤ 1.30× " + verdict(ratio <= 1.30)
		}
		fmt.Printf("| %d | %s | %s | %s | %.2f× | %s |\n", r.n, durs(r.raws), durs(r.klbs), durs(r.cpus), ratio, target)
	}
	fmt.Println("\n### Steady state: Services created one by one while the controller runs")
	fmt.Println()
	fmt.Println("Latency from the create call to the address seen by a watcher.")
	fmt.Println()
	fmt.Println("| backlog N | Services | p50 | p99 | max |")
	fmt.Println("|---:|---:|---:|---:|---:|")
	for _, r := range rs {
		fmt.Printf("| %d | %d | %s | %s | %s |\n", r.n, o.steady, ms(r.steadyP50), ms(r.steadyP99), ms(r.steadyMax))
	}
	fmt.Println("\n### Controller memory and restart")
	fmt.Println()
	fmt.Println("| N | RSS after backlog + steady | peak RSS (VmHWM) | target | restart: IPs checked | changed | new Services unique | restart to first new IP |")
	fmt.Println("|---:|---:|---:|---|---:|---:|---|---:|")
	for _, r := range rs {
		target := "-"
		if r.n >= 10000 {
			target = "< 60 MiB " + verdict(r.rssKiB < 60*1024)
		}
		fmt.Printf("| %d | %.1f MiB | %.1f MiB | %s | %d | %d %s | %v | %s |\n", r.n, float64(r.rssKiB)/1024, float64(r.hwmKiB)/1024, target,
			r.checked, r.changed, verdict(r.changed == 0), r.restartNewOK, r.restartFirst.Round(10*time.Millisecond))
	}
}

func durs(ds []time.Duration) string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = d.Round(10 * time.Millisecond).String()
	}
	return strings.Join(parts, ", ")
}

func verdict(ok bool) string {
	if ok {
		return "(met)"
	}
	return "(MISSED)"
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				model = strings.TrimSpace(strings.SplitN(l, ":", 2)[1])
				break
			}
		}
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		mem = strings.Fields(strings.SplitN(string(b), "\n", 2)[0])[1] + " kB RAM"
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return fmt.Sprintf("Machine: %s, %d CPUs, %s, Linux %s, %s, %s/%s.\n", model, runtime.NumCPU(), mem,
		strings.TrimSpace(string(kernel)), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
