package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/keeperlb/keeperlb/api/v1beta1"
	"github.com/keeperlb/keeperlb/internal/lab"
	"github.com/keeperlb/keeperlb/internal/speaker"
)

const (
	installNS = "metallb-system"
	appNS     = "bench"
	memberKey = "bench-failover-heartbeat-key"
	// annotationIPs requests a specific address (MetalLB's annotation).
	annotationIPs = "metallb.io/loadBalancerIPs"
)

// bench is one lab with the controller and a speaker on every node.
type bench struct {
	o     options
	log   *slog.Logger
	lab   *lab.Lab
	c     client.Client
	neigh *neighbours
	// skipStatus makes waitStable ignore ServiceL2Status objects: with
	// a thousand Services they lag the data plane by a minute or more.
	skipStatus bool
	// rec records the ARP frames from the VIPs that reach the client
	// while the failover trials run (nil otherwise).
	rec      *arpWatch
	ctrl     *lab.Process
	speakers map[string]*lab.Process
	// logs lists every speaker log, for the warning scan at the end.
	logs  []string
	gen   int
	nodes []string
}

// newBench starts the controller and the speakers, and applies a pool (both
// of the lab's layer 2 ranges) and an L2Advertisement.
func newBench(ctx context.Context, o options, l *lab.Lab, log *slog.Logger) (*bench, error) {
	scheme, err := speaker.NewScheme()
	if err != nil {
		return nil, err
	}
	cfg := rest.CopyConfig(l.ControlPlane.Config)
	cfg.QPS, cfg.Burst = -1, 0 // the benchmark creates 1,000 Services; no client-side limit
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, err
	}
	nb, err := openNeighbours(l.Client)
	if err != nil {
		return nil, err
	}
	b := &bench{o: o, log: log, lab: l, c: c, neigh: nb, speakers: map[string]*lab.Process{}}
	for _, n := range l.Nodes {
		b.nodes = append(b.nodes, n.Name)
	}
	for _, ns := range []string{installNS, appNS} {
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil && !apierrors.IsAlreadyExists(err) {
			return nil, fmt.Errorf("creating namespace %s: %w", ns, err)
		}
	}
	if err := l.ApplyNodes(ctx); err != nil {
		return nil, err
	}
	b.ctrl, err = l.Start(nil, "controller", []string{
		b.o.controllerBin, "--kubeconfig=" + l.ControlPlane.Kubeconfig,
		"--metrics-bind-address=0", "--health-probe-bind-address=0", "--disable-webhook",
	}, nil)
	if err != nil {
		return nil, err
	}
	for _, n := range b.nodes {
		if _, err := b.startSpeaker(n); err != nil {
			return nil, err
		}
	}
	pool := &v1beta1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Namespace: installNS, Name: "pool"},
		Spec: v1beta1.IPAddressPoolSpec{Addresses: []string{l.L2Pool4.String(), l.L2Pool6.String()}}}
	if err := c.Create(ctx, pool); err != nil {
		return nil, fmt.Errorf("creating the IPAddressPool: %w", err)
	}
	adv := &v1beta1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Namespace: installNS, Name: "l2"}}
	if err := c.Create(ctx, adv); err != nil {
		return nil, fmt.Errorf("creating the L2Advertisement: %w", err)
	}
	return b, nil
}

func (b *bench) close() { b.neigh.close() }

// startSpeaker runs a new speaker process on node, with the default liveness
// timers unless -speaker-flags says otherwise.
func (b *bench) startSpeaker(node string) (*lab.Process, error) {
	b.gen++
	argv := append([]string{
		b.o.speakerBin, "--node-name=" + node, "--kubeconfig=" + b.lab.ControlPlane.Kubeconfig,
	}, b.o.speakerFlags...)
	p, err := b.lab.Start(b.lab.Node(node), fmt.Sprintf("speaker-%s-%d", node, b.gen), argv,
		[]string{speaker.MemberKeyEnv + "=" + memberKey})
	if err != nil {
		return nil, err
	}
	b.speakers[node] = p
	b.logs = append(b.logs, p.Log)
	return p, nil
}

// waitSpeakerReady waits until the speaker's log says its liveness detector
// is ready (it has known its peers for one timeout and may announce).
func (b *bench) waitSpeakerReady(ctx context.Context, p *lab.Process, timeout time.Duration) error {
	return poll(ctx, timeout, 20*time.Millisecond, func() error {
		if p.Exited() {
			return fmt.Errorf("speaker %s exited: %v", p.Name, p.Wait())
		}
		data, err := os.ReadFile(p.Log)
		if err != nil {
			return err
		}
		if !bytes.Contains(data, []byte(`"msg":"membership: ready"`)) {
			return fmt.Errorf("speaker %s not ready yet", p.Name)
		}
		return nil
	})
}

// stopSpeaker ends a speaker with SIGTERM (as the kubelet would), or SIGKILL
// after 5 s.
func (b *bench) stopSpeaker(node string) error {
	p := b.speakers[node]
	if p == nil {
		return nil
	}
	delete(b.speakers, node)
	if err := p.Stop(); err != nil {
		var exit interface{ ExitCode() int }
		if errors.As(err, &exit) {
			return nil // ended by a signal or with a status: it is gone either way
		}
		return err
	}
	return nil
}

// vip is one failover target: a Service whose IPv4 address is owned by
// owner while every node is alive.
type vip struct {
	service string
	ip      netip.Addr
	owner   string
}

// createService creates a LoadBalancer Service on port 80 (no node ports)
// with serving endpoints on every node; mod adjusts it.
func (b *bench) createService(ctx context.Context, name string, mod func(*corev1.Service)) error {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: appNS, Name: name},
		Spec: corev1.ServiceSpec{
			Type:                          corev1.ServiceTypeLoadBalancer,
			AllocateLoadBalancerNodePorts: new(false),
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP,
				TargetPort: intstr.FromInt32(lab.BackendPort)}},
		},
	}
	if mod != nil {
		mod(svc)
	}
	if err := b.c.Create(ctx, svc); err != nil {
		return fmt.Errorf("creating Service %s: %w", name, err)
	}
	all := map[string]bool{}
	for _, n := range b.nodes {
		all[n] = true
	}
	return b.lab.SetEndpoints(ctx, appNS, name, lab.BackendPort, all)
}

// serviceIP waits until the controller has given the Service its address.
func (b *bench) serviceIP(ctx context.Context, name string) (netip.Addr, error) {
	var ip netip.Addr
	err := poll(ctx, 30*time.Second, 50*time.Millisecond, func() error {
		var svc corev1.Service
		if err := b.c.Get(ctx, client.ObjectKey{Namespace: appNS, Name: name}, &svc); err != nil {
			return err
		}
		for _, in := range svc.Status.LoadBalancer.Ingress {
			if a, err := netip.ParseAddr(in.IP); err == nil {
				ip = a
				return nil
			}
		}
		return fmt.Errorf("no address yet for Service %s", name)
	})
	return ip, err
}

// announcers returns the nodes that the ServiceL2Status objects of a Service
// name, sorted.
func (b *bench) announcers(ctx context.Context, service string) ([]string, error) {
	var list v1beta1.ServiceL2StatusList
	if err := b.c.List(ctx, &list, client.InNamespace(installNS),
		client.MatchingLabels{speaker.LabelServiceName: service, speaker.LabelServiceNamespace: appNS}); err != nil {
		return nil, err
	}
	var out []string
	for _, s := range list.Items {
		out = append(out, s.Status.Node)
	}
	slices.Sort(out)
	return out, nil
}

// clientOnOwner checks that the client's neighbour entry for v.ip points at
// v.owner's MAC and that a new HTTP connection is answered by v.owner.
func (b *bench) clientOnOwner(ctx context.Context, v vip) error {
	rctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	node, err := b.lab.Curl(rctx, b.lab.Client, v.ip, 80)
	if err != nil {
		return err
	}
	if node != v.owner {
		return fmt.Errorf("%s answered by %s, want %s", v.ip, node, v.owner)
	}
	mac, err := b.neigh.lookup(v.ip)
	if err != nil {
		return err
	}
	if got := b.nodeOfMAC(mac); mac == nil || got != v.owner {
		return fmt.Errorf("client's entry for %s is %v (%s), want %s", v.ip, mac, got, v.owner)
	}
	return nil
}

// waitStable waits until the client reaches v's owner (clientOnOwner) and
// (unless skipStatus) only the owner's ServiceL2Status exists.
func (b *bench) waitStable(ctx context.Context, v vip, timeout time.Duration) error {
	return poll(ctx, timeout, 50*time.Millisecond, func() error {
		if err := b.clientOnOwner(ctx, v); err != nil {
			return err
		}
		if b.skipStatus {
			return nil
		}
		got, err := b.announcers(ctx, v.service)
		if err != nil {
			return err
		}
		if !slices.Equal(got, []string{v.owner}) {
			return fmt.Errorf("ServiceL2Status of %s names %v, want %s", v.service, got, v.owner)
		}
		return nil
	})
}

// speakerWarnings returns the distinct WARN/ERROR messages of every speaker
// log of the run, with counts, for the notes.
func (b *bench) speakerWarnings() []string {
	counts := map[string]int{}
	for _, path := range b.logs {
		data, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n") {
			if !strings.Contains(line, `"level":"WARN"`) && !strings.Contains(line, `"level":"ERROR"`) {
				continue
			}
			msg := line
			if i := strings.Index(line, `"msg":"`); i >= 0 {
				msg = line[i+7:]
				if j := strings.Index(msg, `"`); j >= 0 {
					msg = msg[:j]
				}
			}
			counts[msg]++
		}
	}
	var out []string
	for _, msg := range slices.Sorted(maps.Keys(counts)) {
		out = append(out, fmt.Sprintf("%s (%d×)", msg, counts[msg]))
	}
	return out
}

// speakerPID returns the PID of the speaker itself. lab.Start runs
// `ip netns exec NS speaker`, which execs the speaker in place, so the PID is
// normally the speaker's; this checks /proc/PID/comm rather than assume it,
// and falls back to the only child if ip did fork.
func speakerPID(p *lab.Process) (int, error) {
	comm := func(pid int) string {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		return strings.TrimSpace(string(b))
	}
	// comm is truncated to 15 bytes: "keeperlb-speake".
	want := filepath.Base(speakerName)[:15]
	if comm(p.PID) == want {
		return p.PID, nil
	}
	kids, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", p.PID, p.PID))
	for _, f := range strings.Fields(string(kids)) {
		var pid int
		if _, err := fmt.Sscan(f, &pid); err == nil && comm(pid) == want {
			return pid, nil
		}
	}
	return 0, fmt.Errorf("process %d (%s) is %q, not the speaker, and has no speaker child", p.PID, p.Name, comm(p.PID))
}

const speakerName = "keeperlb-speaker"

// poll runs fn every interval until it succeeds, timeout passes (returning
// fn's last error) or ctx ends.
func poll(ctx context.Context, timeout, interval time.Duration, fn func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := fn()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %s: %w", timeout, err)
		}
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), err)
		case <-time.After(interval):
		}
	}
}
