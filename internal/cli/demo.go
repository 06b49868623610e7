package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/keeperlb/keeperlb/api/v1beta1"
	"github.com/keeperlb/keeperlb/examples"
	"github.com/keeperlb/keeperlb/internal/controller"
	"github.com/keeperlb/keeperlb/internal/controlplane"
	"github.com/keeperlb/keeperlb/internal/lab"
	"github.com/keeperlb/keeperlb/internal/membership"
	"github.com/keeperlb/keeperlb/internal/speaker"
)

// The demo's fixed names and numbers.
const (
	demoNodes     = 3
	demoInstallNS = "metallb-system"
	demoAppNS     = "demo"
	demoService   = "web"
	demoPool      = "demo"
	demoPort      = 80
	// demoPollEvery is how often the client asks the VIP while the
	// announcing speaker is dead: the failover time is measured to
	// within this.
	demoPollEvery = 10 * time.Millisecond
	// demoMetricsPort is the metrics port of the controller (on the lab's
	// root address, unique per lab, so that demos never collide) and of
	// the speakers (on their node's address).
	demoMetricsPort = 7472
)

type demoOptions struct {
	controllerBin, speakerBin string
	// keep leaves the lab, the controller and the speakers running after
	// the command exits.
	keep bool
	// self is how the user ran keeperlb, for the commands the demo
	// suggests.
	self string
}

func newDemoCmd(g *globals) *cobra.Command {
	o := demoOptions{}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Show layer 2 and BGP mode on a 3-node lab: a Service's IP over ARP with failover, then over BGP with ECMP and BFD",
		Long: "demo builds a network-namespace lab on this machine (3 nodes and a client on a bridge,\n" +
			"a router with a far client behind it, a real kube-apiserver; see docs/lab.md), starts\n" +
			"keeperlb-controller and one keeperlb-speaker per node, applies examples/demo/pool.yaml\n" +
			"(an IPAddressPool and an L2Advertisement, MetalLB YAML) and creates\n" +
			"examples/demo/service.yaml with backends on every node.\n\n" +
			"Layer 2: the client reaches the Service's IP through the node the speakers elected,\n" +
			"which answers its ARP request. The demo kills that speaker with SIGKILL and measures\n" +
			"how long the client takes to be served by another node.\n\n" +
			"BGP: the demo starts FRR in the router and applies examples/demo/bgp.yaml (a BGPPeer\n" +
			"with BFD and a BGPAdvertisement of the same pool). Every node announces the same\n" +
			"Service's IP; the far client's connections spread over the nodes (ECMP). The demo cuts\n" +
			"one node off and measures how long BFD takes to remove it from the router's route.\n\n" +
			"It needs root and $KEEPERLB_K8S_BIN; `make demo` installs and builds everything, then\n" +
			"runs it. The lab is taken down at the end unless --keep is given.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// How the user runs this command again: by the path they
			// gave, else by name (keeperlb, or kubectl keeperlb).
			o.self = cmd.Root().DisplayName()
			if strings.Contains(os.Args[0], "/") {
				o.self = os.Args[0]
			}
			return runDemo(cmd.Context(), g.out, o)
		},
	}
	cmd.Flags().StringVar(&o.controllerBin, "controller-bin", "", "keeperlb-controller binary (default: next to this binary)")
	cmd.Flags().StringVar(&o.speakerBin, "speaker-bin", "", "keeperlb-speaker binary (default: next to this binary)")
	cmd.Flags().BoolVar(&o.keep, "keep", false, "leave the lab running afterwards (take it down with: keeperlb lab down NAME)")
	return cmd
}

// demoStep is one numbered step of the story.
type demoStep struct {
	// name tells which step failed.
	name string
	run  func(ctx context.Context, d *demoRun) error
}

// demoChapter is one part of the story. The lab is built once, for all
// chapters.
type demoChapter struct {
	// title names what the chapter shows, in the demo's first line; the
	// set-up chapter has none.
	title string
	steps []demoStep
	// router asks for the lab's router and far client.
	router bool
}

// demoChapters is the story in order: setting up, then one chapter per way
// of announcing. The lab, the client, the processes and the Service of the
// earlier chapters are in demoRun; the BGP chapter announces the layer 2
// chapter's Service over BGP too.
func demoChapters() []demoChapter {
	return []demoChapter{
		{steps: []demoStep{
			{"building the lab", demoBuildLab},
			{"starting KeeperLB", demoStartKeeperLB},
		}},
		{title: "layer 2 mode", steps: []demoStep{
			{"applying the layer 2 configuration", demoApplyL2Config},
			{"creating the Service", demoCreateService},
			{"reaching the Service", demoFirstCurl},
			{"failover", demoKillAnnouncer},
			{"reaching the Service after failover", demoCurlAfterFailover},
		}},
		demoBGPChapter(),
	}
}

// demoRun is what the steps share.
type demoRun struct {
	out    io.Writer
	opts   demoOptions
	router bool
	steps  int

	lab *lab.Lab
	// labName is set as soon as a lab exists, even when opening it failed.
	labName   string
	c         client.Client
	memberKey string
	// metricsToken is a ServiceAccount token allowed to get /metrics, as
	// a Prometheus in the cluster has: the endpoints are HTTPS and refuse
	// anyone else.
	metricsToken string
	procs        []*demoProc
	speakers     map[string]*demoProc

	vip netip.Addr
	// announcer is the node announcing vip at first, successor the one
	// after failover.
	announcer, successor string

	// frr is the router's FRR in the BGP chapter; busiest is the node that
	// served the most of the far client's requests, which the chapter cuts
	// off, and cut is that node while it is cut.
	frr     *lab.FRR
	busiest string
	cut     *lab.Host
}

func (d *demoRun) step(format string, args ...any) {
	d.steps++
	fmt.Fprintf(d.out, "\n%2d. %s\n", d.steps, fmt.Sprintf(format, args...))
}

func (d *demoRun) note(format string, args ...any) {
	fmt.Fprintf(d.out, "    %s\n", fmt.Sprintf(format, args...))
}

func runDemo(ctx context.Context, out io.Writer, o demoOptions) (err error) {
	if err := o.check(); err != nil {
		return err
	}
	d := &demoRun{out: out, opts: o, speakers: map[string]*demoProc{}}
	chapters := demoChapters()
	var titles []string
	for _, ch := range chapters {
		d.router = d.router || ch.router
		if ch.title != "" {
			titles = append(titles, ch.title)
		}
	}
	fmt.Fprintf(out, "KeeperLB demo: %s on a %d-node lab made of network namespaces on this machine\n",
		demoList(titles), demoNodes)
	defer func() { err = errors.Join(err, d.finish(ctx, err)) }()
	for _, ch := range chapters {
		for _, s := range ch.steps {
			if err := s.run(ctx, d); err != nil {
				return fmt.Errorf("demo step %d (%s): %w", d.steps, s.name, err)
			}
		}
	}
	return nil
}

// check finds the binaries and tells what the machine lacks, before
// anything is built.
func (o *demoOptions) check() error {
	var problems []string
	if err := lab.CheckPrerequisites(); err != nil {
		problems = append(problems, err.Error())
	}
	if _, err := controlplane.BinDir(); err != nil {
		problems = append(problems, err.Error())
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding this binary: %w", err)
	}
	for _, b := range []struct {
		path *string
		name string
	}{{&o.controllerBin, "keeperlb-controller"}, {&o.speakerBin, "keeperlb-speaker"}} {
		if *b.path == "" {
			*b.path = filepath.Join(filepath.Dir(self), b.name)
		}
		abs, err := filepath.Abs(*b.path)
		if err == nil {
			*b.path = abs
		}
		if _, err := os.Stat(*b.path); err != nil {
			problems = append(problems, fmt.Sprintf("%s (build it with `make build`, or pass --%s): %v",
				b.name, strings.TrimPrefix(b.name, "keeperlb-")+"-bin", err))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("the demo cannot run here: %s. `make demo`, run as root, installs and builds everything it needs",
			strings.Join(problems, "; "))
	}
	return nil
}

// finish takes the lab down, or leaves it up for --keep, and says which.
func (d *demoRun) finish(ctx context.Context, failed error) error {
	if d.lab == nil {
		if d.labName != "" {
			return lab.Remove(d.labName, 30*time.Second, false, nil)
		}
		return nil
	}
	l := d.lab
	if d.opts.keep && (failed == nil || ctx.Err() == nil) {
		if failed != nil {
			fmt.Fprintf(d.out, "\nThe demo failed; lab %s stays up as --keep asked. Logs: %s\nRemove it with: %s lab down %s\n",
				l.Name, l.Dir, d.opts.self, l.Name)
			return nil
		}
		return d.keepLab()
	}
	if failed == nil {
		d.step("Taking the lab down (run the demo with --keep to explore the lab afterwards)")
	}
	for _, p := range d.procs {
		_ = p.kill()
	}
	if err := l.Down(); err != nil {
		return fmt.Errorf("taking lab %s down: %w", l.Name, err)
	}
	if failed != nil && ctx.Err() == nil {
		if !d.opts.keep {
			fmt.Fprintf(d.out, "\nThe demo failed; the logs of every process are kept in %s\n", l.Dir)
		}
		return nil
	}
	// Up was asked to keep the folder in case of failure; all went well,
	// or the user interrupted the demo.
	if strings.HasPrefix(filepath.Base(l.Dir), "keeperlb-"+l.Name+"-") {
		if err := os.RemoveAll(l.Dir); err != nil {
			return fmt.Errorf("removing %s: %w", l.Dir, err)
		}
	}
	if failed == nil {
		d.note("%s removed: namespaces, processes and logs", l.Name)
	}
	return nil
}

// keepLab restarts the speaker the demo killed, so that the lab left
// running is whole, and tells how to use it.
func (d *demoRun) keepLab() error {
	l := d.lab
	if d.cut != nil {
		if err := l.Heal(d.cut); err != nil {
			return err
		}
		d.cut = nil
	}
	if p := d.speakers[d.announcer]; p != nil && p.killed {
		d.step("Restarting the speaker on %s and leaving the lab running", d.announcer)
		if err := d.startSpeaker(l.Node(d.announcer)); err != nil {
			return err
		}
		d.note("every speaker computes the same owner, so %s takes %s back once its heartbeats arrive", d.announcer, d.vip)
	} else {
		d.step("Leaving the lab running")
	}
	self := d.opts.self
	fmt.Fprintf(d.out, `
Lab %[1]s keeps running, with keeperlb-controller and a keeperlb-speaker per node:
    ip netns exec %[2]s curl http://%[3]s/
    %[4]s --kubeconfig %[5]s status
    %[4]s lab status
    %[4]s lab down %[1]s          (removes everything)
`, l.Name, l.Client.Netns, d.vip, self, l.ControlPlane.Kubeconfig)
	if d.frr != nil {
		fmt.Fprintf(d.out, `and FRR in the router, with the far client behind it:
    ip netns exec %[1]s curl http://%[2]s/
    vtysh --vty_socket %[3]s -c 'show bgp summary'
    ip netns exec %[4]s ip route show %[2]s
`, l.Far.Netns, d.vip, d.frr.Dir, l.Router.Netns)
	}
	fmt.Fprintf(d.out, "kubeconfig: %s\nlogs:       %s\n", l.ControlPlane.Kubeconfig, l.Dir)
	return nil
}

// demoBuildLab builds the lab, connects to its API server and creates the
// Node objects and namespaces.
func demoBuildLab(ctx context.Context, d *demoRun) error {
	what := fmt.Sprintf("%d nodes and a client, each a network namespace on one bridge", demoNodes)
	if d.router {
		what += ", a router on the bridge with a far client behind it"
	}
	d.step("Building a lab: %s, and a real kube-apiserver", what)
	began := time.Now()
	opts := lab.Options{Nodes: demoNodes, Router: d.router}
	if d.opts.keep {
		// A background owner holds the lab after this command exits, as
		// for `keeperlb lab up`.
		st, err := lab.UpDetached(ctx, opts)
		if err != nil {
			return err
		}
		d.labName = st.Name
		if d.lab, err = lab.Load(st.Name); err != nil {
			return err
		}
	} else {
		// The folder survives Down so that a failed demo leaves its logs;
		// finish removes it after a success.
		opts.Keep = true
		l, err := lab.Up(ctx, opts)
		if err != nil {
			return err
		}
		d.lab, d.labName = l, l.Name
	}
	l := d.lab
	var hosts []string
	for _, n := range l.Nodes {
		hosts = append(hosts, fmt.Sprintf("%s %s", n.Name, n.IPv4))
	}
	d.note("%s is up in %s: %s, client %s", l.Name, time.Since(began).Round(100*time.Millisecond),
		strings.Join(hosts, ", "), l.Client.IPv4)
	if l.Router != nil {
		d.note("router %s, far client %s", l.Router.IPv4, l.Far.IPv4)
	}
	cfg := rest.CopyConfig(l.ControlPlane.Config)
	cfg.QPS, cfg.Burst = 100, 200
	c, err := newClient(cfg)
	if err != nil {
		return err
	}
	d.c = c
	for _, ns := range []string{demoInstallNS, demoAppNS} {
		err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating namespace %s: %w", ns, err)
		}
	}
	return l.ApplyNodes(ctx)
}

// demoStartKeeperLB runs the controller in the root namespace and a speaker
// in every node's namespace, as the Deployment and the DaemonSet (host
// network) would.
func demoStartKeeperLB(ctx context.Context, d *demoRun) error {
	l := d.lab
	d.step("Starting keeperlb-controller (root namespace) and a keeperlb-speaker on %s", demoList(demoNodeNames(l)))
	var key [16]byte
	if _, err := rand.Read(key[:]); err != nil {
		return fmt.Errorf("making the speakers' heartbeat key: %w", err)
	}
	d.memberKey = hex.EncodeToString(key[:])
	metrics := netip.AddrPortFrom(l.HostIPv4, demoMetricsPort)
	if _, err := d.start(nil, "controller", []string{d.opts.controllerBin,
		"--kubeconfig=" + l.ControlPlane.Kubeconfig,
		"--namespace=" + demoInstallNS,
		"--metrics-bind-address=" + metrics.String(),
		"--health-probe-bind-address=0",
		// The lab has no admission path to a webhook; config.Parse
		// still validates everything the controller loads.
		"--disable-webhook",
	}, nil); err != nil {
		return err
	}
	for _, n := range l.Nodes {
		if err := d.startSpeaker(n); err != nil {
			return err
		}
	}
	// A binary that cannot start says so at once: catch that here rather
	// than as a timeout later.
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(300 * time.Millisecond):
	}
	if err := d.alive(); err != nil {
		return err
	}
	// A speaker that finds no live peer when it starts announces
	// everything itself, and hands over as the others come up. Waiting
	// until they all see each other keeps that start-up churn out of the
	// story.
	began := time.Now()
	if err := d.waitAllLive(ctx); err != nil {
		return err
	}
	// The speakers run with the default liveness timers.
	lv := membership.DefaultOptions("")
	d.note("each speaker sees all %d alive after %s (authenticated UDP heartbeats every %s, dead after %s of silence)",
		len(l.Nodes), time.Since(began).Round(10*time.Millisecond), lv.Interval, lv.Timeout)
	d.note("the logs of every process are in %s", l.Dir)
	return nil
}

// waitAllLive waits until every speaker sees every speaker alive.
func (d *demoRun) waitAllLive(ctx context.Context) error {
	if d.metricsToken == "" {
		tok, err := d.lab.MetricsReader(ctx, "monitoring", "prometheus")
		if err != nil {
			return err
		}
		d.metricsToken = tok
	}
	for _, n := range d.lab.Nodes {
		addr := netip.AddrPortFrom(n.IPv4, demoMetricsPort)
		err := d.waitFor(ctx, 30*time.Second, "waiting for the speaker on "+n.Name+" to see every speaker alive", func(ctx context.Context) (bool, error) {
			ctx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			body, err := d.lab.Scrape(ctx, nil, addr, d.metricsToken)
			if err != nil {
				return false, err
			}
			live, err := lab.MetricValue(body, "keeperlb_speaker_live_members")
			return err == nil && int(live) == len(d.lab.Nodes), err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func (d *demoRun) startSpeaker(n *lab.Host) error {
	p, err := d.start(n, "speaker-"+n.Name, []string{d.opts.speakerBin,
		"--node-name=" + n.Name,
		"--kubeconfig=" + d.lab.ControlPlane.Kubeconfig,
		"--namespace=" + demoInstallNS,
		"--metrics-bind-address=" + netip.AddrPortFrom(n.IPv4, demoMetricsPort).String(),
		"--health-probe-bind-address=0",
	}, []string{speaker.MemberKeyEnv + "=" + d.memberKey})
	if err != nil {
		return err
	}
	d.speakers[n.Name] = p
	return nil
}

// demoApplyL2Config applies the pool and the L2Advertisement and waits until
// the controller has loaded them.
func demoApplyL2Config(ctx context.Context, d *demoRun) error {
	raw, err := fs.ReadFile(examples.Demo, "demo/pool.yaml")
	if err != nil {
		return fmt.Errorf("reading examples/demo/pool.yaml: %w", err)
	}
	text, objs, err := demoPoolManifest(raw, d.lab.L2Pool4)
	if err != nil {
		return fmt.Errorf("examples/demo/pool.yaml: %w", err)
	}
	d.step("Applying a MetalLB configuration, examples/demo/pool.yaml with this lab's range:")
	fmt.Fprintln(d.out, demoIndent(text, "      "))
	if err := apply(ctx, d.c, objs, demoInstallNS, io.Discard); err != nil {
		return err
	}
	err = d.waitFor(ctx, 30*time.Second, "waiting for the controller to load the configuration", func(ctx context.Context) (bool, error) {
		cs := &v1beta1.ConfigurationState{}
		if err := d.c.Get(ctx, client.ObjectKey{Namespace: demoInstallNS, Name: controller.ConfigurationStateName}, cs); err != nil {
			return false, err
		}
		if cs.Status.Result != v1beta1.ConfigurationResultValid {
			return false, fmt.Errorf("ConfigurationState %q is %q: %s", cs.Name, cs.Status.Result, cs.Status.ErrorSummary)
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	d.note("keeperlb-controller loaded it: ConfigurationState %q is %s", controller.ConfigurationStateName, v1beta1.ConfigurationResultValid)
	return nil
}

// demoPoolManifest puts pool in place of lab 1's layer 2 range, which the
// example lists so that it is valid as it stands, and returns the text to
// show (comments dropped) and the objects to apply. It fails unless the
// result has exactly one IPAddressPool holding exactly pool.
func demoPoolManifest(raw []byte, pool netip.Prefix) (string, []*unstructured.Unstructured, error) {
	ref, err := lab.Plan(1, 1, false)
	if err != nil {
		return "", nil, err
	}
	text, objs, err := demoManifest(raw, func(line string) string {
		return strings.ReplaceAll(line, ref.L2Pool4.String(), pool.String())
	})
	if err != nil {
		return "", nil, err
	}
	var pools []string
	for _, u := range objs {
		if u.GetKind() != "IPAddressPool" {
			continue
		}
		addrs, _, err := unstructured.NestedStringSlice(u.Object, "spec", "addresses")
		if err != nil {
			return "", nil, fmt.Errorf("IPAddressPool %s: spec.addresses: %w", u.GetName(), err)
		}
		if !slices.Equal(addrs, []string{pool.String()}) {
			return "", nil, fmt.Errorf("IPAddressPool %s: spec.addresses must be [%s] (lab 1's layer 2 range, which the demo replaces with its lab's), got %v",
				u.GetName(), ref.L2Pool4, addrs)
		}
		pools = append(pools, u.GetName())
	}
	if len(pools) != 1 || pools[0] != demoPool {
		return "", nil, fmt.Errorf("want one IPAddressPool named %q, got %v", demoPool, pools)
	}
	return text, objs, nil
}

// demoManifest drops the comment lines of an example manifest, passes the
// others through edit (which puts in the lab's addresses), and returns the
// text to show and the objects to apply.
func demoManifest(raw []byte, edit func(line string) string) (string, []*unstructured.Unstructured, error) {
	var lines []string
	for _, line := range strings.Split(string(raw), "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			lines = append(lines, edit(line))
		}
	}
	text := strings.TrimSpace(strings.Join(lines, "\n"))
	objs, err := decodeAll(strings.NewReader(text))
	if err != nil {
		return "", nil, err
	}
	return text, objs, nil
}

// demoCreateService creates the Service and its endpoints, then shows the
// address it got, the pool's usage and the node announcing it.
func demoCreateService(ctx context.Context, d *demoRun) error {
	l := d.lab
	nodes := demoNodeNames(l)
	d.step("Creating Service %s/%s (examples/demo/service.yaml: type LoadBalancer, port %d) with backends on %s",
		demoAppNS, demoService, demoPort, demoList(nodes))
	raw, err := fs.ReadFile(examples.Demo, "demo/service.yaml")
	if err != nil {
		return fmt.Errorf("reading examples/demo/service.yaml: %w", err)
	}
	objs, err := decodeAll(strings.NewReader(string(raw)))
	if err != nil {
		return fmt.Errorf("examples/demo/service.yaml: %w", err)
	}
	if err := apply(ctx, d.c, objs, demoAppNS, io.Discard); err != nil {
		return err
	}
	// No kubelet or EndpointSlice controller in the lab: the endpoints are
	// written as they would be for one ready pod per node.
	endpoints := map[string]bool{}
	for _, n := range nodes {
		endpoints[n] = true
	}
	if err := l.SetEndpoints(ctx, demoAppNS, demoService, lab.BackendPort, endpoints); err != nil {
		return err
	}
	svc := &corev1.Service{}
	err = d.waitFor(ctx, 30*time.Second, "waiting for the Service's address", func(ctx context.Context) (bool, error) {
		if err := d.c.Get(ctx, client.ObjectKey{Namespace: demoAppNS, Name: demoService}, svc); err != nil {
			return false, err
		}
		for _, in := range svc.Status.LoadBalancer.Ingress {
			if ip, err := netip.ParseAddr(in.IP); err == nil && ip.Is4() {
				d.vip = ip
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return err
	}
	// The lab's stand-in for kube-proxy: VIP:80 -> node:8080 on every node.
	if err := l.Expose(ctx, d.vip, demoPort); err != nil {
		return err
	}
	pool := &v1beta1.IPAddressPool{}
	err = d.waitFor(ctx, 30*time.Second, "waiting for the pool's status", func(ctx context.Context) (bool, error) {
		if err := d.c.Get(ctx, client.ObjectKey{Namespace: demoInstallNS, Name: demoPool}, pool); err != nil {
			return false, err
		}
		return pool.Status.AssignedIPv4 == 1, nil
	})
	if err != nil {
		return err
	}
	d.note("it got %s (pool %s: %d of %d IPv4 addresses in use)", d.vip, demoPool,
		pool.Status.AssignedIPv4, pool.Status.AssignedIPv4+pool.Status.AvailableIPv4)
	st, err := d.waitAnnouncer(ctx, func(string) bool { return true })
	if err != nil {
		return err
	}
	d.announcer = st.Status.Node
	var ifs []string
	for _, i := range st.Status.Interfaces {
		ifs = append(ifs, i.Name)
	}
	d.note("the speakers elected %s to announce it (its ServiceL2Status says node %s, interface %s)",
		d.announcer, st.Status.Node, strings.Join(ifs, ","))
	return nil
}

// demoFirstCurl shows the client reaching the VIP through the elected node.
func demoFirstCurl(ctx context.Context, d *demoRun) error {
	d.step("The client (%s) asks http://%s/", d.lab.Client.IPv4, d.vip)
	var node string
	err := d.waitFor(ctx, 20*time.Second, "waiting for the client to reach "+d.vip.String(), func(ctx context.Context) (bool, error) {
		var err error
		node, err = d.curl(ctx, time.Second)
		return err == nil, err
	})
	if err != nil {
		return err
	}
	mac, owner, err := d.neighbour(ctx)
	if err != nil {
		return err
	}
	d.note("ARP: the client's kernel resolved %s to %s, the MAC address of %s", d.vip, mac, owner)
	d.note("HTTP 200: served by %s", node)
	if node != d.announcer || owner != d.announcer {
		return fmt.Errorf("ServiceL2Status names %s, but the client's ARP entry points at %s and %s served it", d.announcer, owner, node)
	}
	return nil
}

// demoKillAnnouncer kills the announcing speaker and measures the time until
// the client is served by another node.
func demoKillAnnouncer(ctx context.Context, d *demoRun) error {
	old := d.announcer
	d.step("Killing the speaker on %s (SIGKILL) while the client asks every %d ms", old, demoPollEvery.Milliseconds())
	p := d.speakers[old]
	killed := time.Now()
	if err := p.kill(); err != nil {
		return err
	}
	// The old node's backend and DNAT rule still work: only its speaker
	// died. Requests reach it until the client's ARP entry moves, so only
	// an answer from another node ends the wait.
	var stale, failed int
	deadline := killed.Add(30 * time.Second)
	for {
		began := time.Now()
		node, err := d.curl(ctx, 250*time.Millisecond)
		switch {
		case err == nil && node != old:
			d.successor = node
			took := time.Since(killed)
			d.note("failover in %d ms: from the kill to the first request answered by another node, %s",
				took.Milliseconds(), node)
			d.note("(until then %d requests still went to %s, whose backend is up, and %d went unanswered)", stale, old, failed)
			return nil
		case err == nil:
			stale++
		case ctx.Err() != nil:
			return ctx.Err()
		default:
			failed++
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no other node answered %s within 30 s of the kill (%d requests went to %s, %d failed); see the speakers' logs in %s",
				d.vip, stale, old, failed, d.lab.Dir)
		}
		if wait := demoPollEvery - time.Since(began); wait > 0 {
			time.Sleep(wait)
		}
	}
}

// demoCurlAfterFailover shows the next request, the client's new ARP entry
// and the new ServiceL2Status.
func demoCurlAfterFailover(ctx context.Context, d *demoRun) error {
	d.step("The client asks http://%s/ again", d.vip)
	node, err := d.curl(ctx, 2*time.Second)
	if err != nil {
		return err
	}
	mac, owner, err := d.neighbour(ctx)
	if err != nil {
		return err
	}
	d.note("ARP: %s is now at %s, the MAC address of %s (its gratuitous ARP updated the client)", d.vip, mac, owner)
	st, err := d.waitAnnouncer(ctx, func(n string) bool { return n != d.announcer })
	if err != nil {
		return err
	}
	d.note("HTTP 200: served by %s; the ServiceL2Status now says node %s", node, st.Status.Node)
	if node != d.successor || owner != d.successor || st.Status.Node != d.successor {
		return fmt.Errorf("after failover to %s, the client's ARP entry points at %s, %s served it and ServiceL2Status names %s",
			d.successor, owner, node, st.Status.Node)
	}
	return nil
}

// curl asks the VIP from the client and returns the node that answered.
func (d *demoRun) curl(ctx context.Context, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return d.lab.Curl(ctx, d.lab.Client, d.vip, demoPort)
}

// neighbour returns the client's ARP entry for the VIP and the node whose
// MAC address it is.
func (d *demoRun) neighbour(ctx context.Context) (string, string, error) {
	mac, err := d.lab.Neighbor(ctx, d.lab.Client, d.vip)
	if err != nil {
		return "", "", fmt.Errorf("reading the client's ARP entry: %w", err)
	}
	for _, n := range d.lab.Nodes {
		if n.MAC.String() == mac.String() {
			return mac.String(), n.Name, nil
		}
	}
	return mac.String(), "no node", nil
}

// waitAnnouncer waits until exactly one ServiceL2Status names a node for the
// demo Service and ok accepts it.
func (d *demoRun) waitAnnouncer(ctx context.Context, ok func(node string) bool) (*v1beta1.ServiceL2Status, error) {
	var found *v1beta1.ServiceL2Status
	err := d.waitFor(ctx, 20*time.Second, "waiting for a speaker to announce the Service", func(ctx context.Context) (bool, error) {
		var list v1beta1.ServiceL2StatusList
		if err := d.c.List(ctx, &list, client.InNamespace(demoInstallNS)); err != nil {
			return false, err
		}
		var mine []*v1beta1.ServiceL2Status
		for i := range list.Items {
			s := &list.Items[i]
			if s.Status.ServiceNamespace == demoAppNS && s.Status.ServiceName == demoService && s.Status.Node != "" {
				mine = append(mine, s)
			}
		}
		if len(mine) != 1 || !ok(mine[0].Status.Node) {
			var nodes []string
			for _, s := range mine {
				nodes = append(nodes, s.Status.Node)
			}
			return false, fmt.Errorf("ServiceL2Status objects name %v", nodes)
		}
		found = mine[0]
		return true, nil
	})
	return found, err
}

// waitFor polls cond until it holds, failing early when a KeeperLB process
// died and with cond's last error after timeout.
func (d *demoRun) waitFor(ctx context.Context, timeout time.Duration, what string, cond func(context.Context) (bool, error)) error {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		ok, err := cond(ctx)
		if ok {
			return nil
		}
		if err != nil {
			last = err
		}
		if err := d.alive(); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not done after %s (last: %v); see the logs in %s", what, timeout, last, d.lab.Dir)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// demoProc is a KeeperLB process of the demo.
type demoProc struct {
	name, log string
	kill      func() error
	exited    func() bool
	// killed is set when the demo killed it on purpose.
	killed bool
}

// alive fails when a process the demo did not kill has exited.
func (d *demoRun) alive() error {
	for _, p := range d.procs {
		if !p.killed && p.exited() {
			return fmt.Errorf("%s exited; see %s", p.name, p.log)
		}
	}
	return nil
}

// start runs a KeeperLB process in host h (the root namespace when nil),
// logging to <lab dir>/<name>.log. Without --keep it is the lab's: it dies
// with this command. With --keep it must outlive this command, so it runs
// detached; `keeperlb lab down` still finds and kills it: a speaker runs
// inside the lab's namespaces, and the controller carries the lab's name in
// its environment.
func (d *demoRun) start(h *lab.Host, name string, argv, env []string) (*demoProc, error) {
	start := d.lab.Start
	if d.opts.keep {
		start = d.lab.StartDetached
	}
	lp, err := start(h, name, argv, env)
	if err != nil {
		return nil, err
	}
	p := &demoProc{name: name, log: lp.Log, kill: lp.Kill, exited: lp.Exited}
	d.procs = append(d.procs, p)
	orig := p.kill
	p.kill = func() error { p.killed = true; return orig() }
	return p, nil
}

func demoNodeNames(l *lab.Lab) []string {
	var names []string
	for _, n := range l.Nodes {
		names = append(names, n.Name)
	}
	return names
}

// demoList writes "a, b and c".
func demoList(items []string) string {
	if len(items) < 2 {
		return strings.Join(items, "")
	}
	return strings.Join(items[:len(items)-1], ", ") + " and " + items[len(items)-1]
}

func demoIndent(s, prefix string) string {
	return prefix + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n"+prefix)
}
