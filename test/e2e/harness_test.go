// Package e2e runs KeeperLB end to end on the network-namespace lab
// (internal/lab): a real API server, the real controller and one real
// speaker process per node namespace, and the client's kernel as the ARP/NDP
// client. Nothing is mocked; every assertion is about what a client on the
// network sees, or what a user reads with kubectl.
package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/keeperlb/keeperlb/api/v1beta1"
	"github.com/keeperlb/keeperlb/internal/lab"
	"github.com/keeperlb/keeperlb/internal/lab/labtest"
	"github.com/keeperlb/keeperlb/internal/speaker"
)

func TestMain(m *testing.M) {
	// The test's own client logs through controller-runtime, which warns
	// with a stack trace when no logger is set.
	ctrllog.SetLogger(logr.Discard())
	labtest.Main(m)
}

const (
	installNS = "metallb-system"
	appNS     = "shop"
	memberKey = "e2e-heartbeat-key"
)

// binaries builds the controller and speaker once per test binary.
var binaries = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "keeperlb-e2e-bin-")
	if err != nil {
		return "", err
	}
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	cmd := exec.Command("go", "build", "-o", dir+"/", "./cmd/keeperlb-controller", "./cmd/keeperlb-speaker")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building binaries: %v\n%s", err, out)
	}
	return dir, nil
})

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	return filepath.Dir(strings.TrimSpace(string(out))), nil
}

// env is one lab with KeeperLB running in it.
type env struct {
	t        *testing.T
	lab      *lab.Lab
	c        client.Client
	bin      string
	ctrl     *lab.Process
	speakers map[string]*lab.Process
	restarts int
	// metricsToken may get /metrics, as a Prometheus in the cluster may:
	// the speakers serve HTTPS and refuse anyone else.
	metricsToken string
	// speakerWrap is put before the speaker's command line on a node
	// (lab.InTimeNamespace, for one), for the speakers started from then on.
	speakerWrap map[string][]string
	// controllerArgs are extra controller flags.
	controllerArgs []string
}

// envOptions tune newEnv.
type envOptions struct {
	nodes int
	// router adds the lab's router and far client (BGP tests run FRR in
	// the router).
	router bool
	// speakerArgs are extra speaker flags.
	speakerArgs []string
	// noSpeakers leaves the speakers to the test, which starts them
	// itself with startSpeaker.
	noSpeakers bool
	// controllerArgs are extra controller flags; later flags win, so
	// they can override the defaults (--metrics-bind-address=0, ...).
	controllerArgs []string
}

// newEnv brings up a lab, the controller and a speaker on every node.
func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	l := labtest.Up(t, lab.Options{Nodes: o.nodes, Router: o.router})
	bin, err := binaries()
	if err != nil {
		t.Fatal(err)
	}
	scheme, err := speaker.NewScheme()
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(l.ControlPlane.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, lab: l, c: c, bin: bin, speakers: map[string]*lab.Process{}, controllerArgs: o.controllerArgs}
	ctx := t.Context()
	for _, ns := range []string{installNS, appNS} {
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	if err := l.ApplyNodes(ctx); err != nil {
		t.Fatal(err)
	}
	if e.metricsToken, err = l.MetricsReader(ctx, "monitoring", "prometheus"); err != nil {
		t.Fatal(err)
	}
	e.startController()
	if o.noSpeakers {
		return e
	}
	for _, n := range l.Nodes {
		e.startSpeaker(n.Name, o.speakerArgs...)
	}
	// Tests assert steady states: the owner the election gives with every
	// speaker alive. Until every speaker sees every other, a Service could
	// be announced by a node that then hands it over.
	e.waitMembers()
	return e
}

// waitMembers waits until every running speaker reports, in its metrics
// (keeperlb_speaker_live_members), that it sees all running speakers alive.
func (e *env) waitMembers() {
	e.t.Helper()
	eventually(e.t, 30*time.Second, func() error {
		for _, n := range e.lab.Nodes {
			if _, ok := e.speakers[n.Name]; !ok {
				continue
			}
			got, err := e.liveMembers(n.Name)
			if err != nil {
				return err
			}
			if got != len(e.speakers) {
				return fmt.Errorf("the speaker on %s sees %d live speakers, want %d", n.Name, got, len(e.speakers))
			}
		}
		return nil
	})
}

// liveMembers scrapes a speaker's count of live speakers.
func (e *env) liveMembers(node string) (int, error) {
	return e.metricValue(node, "keeperlb_speaker_live_members")
}

// metricValue scrapes one unlabelled series of a speaker, as an integer.
func (e *env) metricValue(node, name string) (int, error) {
	body, err := e.scrape(node)
	if err != nil {
		return 0, err
	}
	v, err := lab.MetricValue(body, name)
	if err != nil {
		return 0, fmt.Errorf("the speaker on %s: %w", node, err)
	}
	return int(v), nil
}

// scrape reads a speaker's metrics endpoint (the default :7472, in its
// node's namespace) the way Prometheus does: HTTPS, with a token allowed
// to get /metrics.
func (e *env) scrape(node string) (string, error) {
	h := e.lab.Node(node)
	ctx, cancel := context.WithTimeout(e.t.Context(), 2*time.Second)
	defer cancel()
	body, err := e.lab.Scrape(ctx, h, netip.AddrPortFrom(h.IPv4, 7472), e.metricsToken)
	if err != nil {
		return "", fmt.Errorf("scraping the speaker on %s: %w", node, err)
	}
	return body, nil
}

func (e *env) startController() {
	e.t.Helper()
	p, err := e.lab.Start(nil, fmt.Sprintf("controller-%d", e.restarts), append([]string{
		filepath.Join(e.bin, "keeperlb-controller"),
		"--kubeconfig=" + e.lab.ControlPlane.Kubeconfig,
		"--metrics-bind-address=0", "--health-probe-bind-address=0", "--disable-webhook",
	}, e.controllerArgs...), nil)
	if err != nil {
		e.t.Fatal(err)
	}
	e.restarts++
	e.ctrl = p
}

func (e *env) startSpeaker(node string, extra ...string) *lab.Process {
	e.t.Helper()
	return e.startSpeakerEnv(node, []string{speaker.MemberKeyEnv + "=" + memberKey}, extra...)
}

// startSpeakerEnv starts a speaker with the given environment (the
// heartbeat keys) instead of the default key.
func (e *env) startSpeakerEnv(node string, environ []string, extra ...string) *lab.Process {
	e.t.Helper()
	args := append([]string{
		filepath.Join(e.bin, "keeperlb-speaker"),
		"--node-name=" + node,
		"--kubeconfig=" + e.lab.ControlPlane.Kubeconfig,
		"--health-probe-bind-address=0",
	}, extra...)
	p, err := e.lab.Start(e.lab.Node(node), fmt.Sprintf("speaker-%s-%d", node, e.restarts), append(slices.Clone(e.speakerWrap[node]), args...), environ)
	if err != nil {
		e.t.Fatal(err)
	}
	e.restarts++
	e.speakers[node] = p
	return p
}

// applyL2 creates an IPAddressPool "pool" and an L2Advertisement "l2".
func (e *env) applyL2(addresses []string, mod func(*v1beta1.L2Advertisement)) {
	e.t.Helper()
	ctx := e.t.Context()
	pool := &v1beta1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Namespace: installNS, Name: "pool"},
		Spec: v1beta1.IPAddressPoolSpec{Addresses: addresses}}
	if err := e.c.Create(ctx, pool); err != nil {
		e.t.Fatal(err)
	}
	adv := &v1beta1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Namespace: installNS, Name: "l2"}}
	if mod != nil {
		mod(adv)
	}
	if err := e.c.Create(ctx, adv); err != nil {
		e.t.Fatal(err)
	}
}

// defaultPool is the lab's layer 2 range, both families.
func (e *env) defaultPool() []string {
	return []string{e.lab.L2Pool4.String(), e.lab.L2Pool6.String()}
}

// createService makes a LoadBalancer Service on port 80 with endpoints on
// the given nodes (all serving), and returns it once it has its IPs.
func (e *env) createService(name string, endpoints []string, mod func(*corev1.Service)) []netip.Addr {
	e.t.Helper()
	ctx := e.t.Context()
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: appNS, Name: name},
		Spec: corev1.ServiceSpec{
			Type:                          corev1.ServiceTypeLoadBalancer,
			AllocateLoadBalancerNodePorts: new(false),
			Ports:                         []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(lab.BackendPort), Protocol: corev1.ProtocolTCP}},
		},
	}
	if mod != nil {
		mod(svc)
	}
	if err := e.c.Create(ctx, svc); err != nil {
		e.t.Fatal(err)
	}
	e.setEndpoints(name, endpoints...)
	return e.waitIPs(name)
}

func (e *env) setEndpoints(name string, nodes ...string) {
	e.t.Helper()
	m := map[string]bool{}
	for _, n := range nodes {
		m[n] = true
	}
	if err := e.lab.SetEndpoints(e.t.Context(), appNS, name, lab.BackendPort, m); err != nil {
		e.t.Fatal(err)
	}
}

// waitIPs waits for the Service's ingress IPs and exposes them on port 80.
func (e *env) waitIPs(name string) []netip.Addr {
	e.t.Helper()
	var ips []netip.Addr
	eventually(e.t, 30*time.Second, func() error {
		var svc corev1.Service
		if err := e.c.Get(e.t.Context(), client.ObjectKey{Namespace: appNS, Name: name}, &svc); err != nil {
			return err
		}
		ips = nil
		for _, in := range svc.Status.LoadBalancer.Ingress {
			if ip, err := netip.ParseAddr(in.IP); err == nil {
				ips = append(ips, ip)
			}
		}
		if len(ips) == 0 {
			return fmt.Errorf("service %s has no IP yet", name)
		}
		return nil
	})
	for _, ip := range ips {
		if err := e.lab.Expose(e.t.Context(), ip, 80); err != nil {
			e.t.Fatal(err)
		}
	}
	return ips
}

// announcers returns the nodes whose ServiceL2Status says they announce
// the Service, sorted.
func (e *env) announcers(name string) ([]string, error) {
	var list v1beta1.ServiceL2StatusList
	if err := e.c.List(e.t.Context(), &list, client.InNamespace(installNS),
		client.MatchingLabels{speaker.LabelServiceName: name, speaker.LabelServiceNamespace: appNS}); err != nil {
		return nil, err
	}
	var out []string
	for _, s := range list.Items {
		out = append(out, s.Status.Node)
	}
	slices.Sort(out)
	return out, nil
}

// waitAnnouncer waits until exactly one ServiceL2Status names a node
// accepted by ok, and returns it.
func (e *env) waitAnnouncer(name string, ok func(string) bool) string {
	e.t.Helper()
	var node string
	eventually(e.t, 20*time.Second, func() error {
		got, err := e.announcers(name)
		if err != nil {
			return err
		}
		if len(got) != 1 || got[0] == "" || !ok(got[0]) {
			return fmt.Errorf("ServiceL2Status nodes of %s = %v", name, got)
		}
		node = got[0]
		return nil
	})
	return node
}

// webOnOwner is the most common start: the lab's pool and an
// L2Advertisement, a Service "web" with an endpoint on every node, and the
// client reaching its IPv4 address through the node its ServiceL2Status
// names. It returns that address and node.
func (e *env) webOnOwner() (netip.Addr, string) {
	e.t.Helper()
	e.applyL2(e.defaultPool(), nil)
	ip := pick(e.createService("web", []string{"node1", "node2", "node3"}, nil), true)
	owner := e.waitAnnouncer("web", anyNode)
	e.waitCurl(ip, func(n string) bool { return n == owner })
	return ip, owner
}

func anyNode(string) bool { return true }

func not(node string) func(string) bool { return func(n string) bool { return n != node } }

// curl asks the VIP from the client and returns the answering node.
func (e *env) curl(ip netip.Addr) (string, error) {
	ctx, cancel := context.WithTimeout(e.t.Context(), 2*time.Second)
	defer cancel()
	return e.lab.Curl(ctx, e.lab.Client, ip, 80)
}

// waitCurl waits until the client's request to ip is answered by a node
// accepted by ok.
func (e *env) waitCurl(ip netip.Addr, ok func(string) bool) string {
	e.t.Helper()
	var node string
	eventually(e.t, 20*time.Second, func() error {
		n, err := e.curl(ip)
		if err != nil {
			return err
		}
		if !ok(n) {
			return fmt.Errorf("answered by %s", n)
		}
		node = n
		return nil
	})
	return node
}

var arpingReply = regexp.MustCompile(`\[([0-9A-Fa-f:]{17})\]`)

// arpAnswerers broadcasts two ARP requests for ip from the client, a
// second apart, and returns the distinct MAC addresses that answered,
// sorted: the direct view of who announces an IPv4 address. (-b keeps
// arping broadcasting; by default it unicasts to the first answerer, which
// would hide a second one.)
func (e *env) arpAnswerers(ip netip.Addr) []string {
	e.t.Helper()
	out, err := e.lab.Exec(e.t.Context(), e.lab.Client, "arping", "-b", "-c", "2", "-w", "2", "-I", "eth0", ip.String())
	var ee *exec.ExitError
	if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 1) && !strings.Contains(err.Error(), "exit status 1") {
		// Exit status 1 means nobody answered; anything else is broken.
		e.t.Fatalf("arping: %v\n%s", err, out)
	}
	var macs []string
	for _, m := range arpingReply.FindAllSubmatch(out, -1) {
		macs = append(macs, strings.ToLower(string(m[1])))
	}
	slices.Sort(macs)
	return slices.Compact(macs)
}

// nodeOfMAC names the node with that MAC, or returns the MAC itself.
func (e *env) nodeOfMAC(mac string) string {
	for _, n := range e.lab.Nodes {
		if strings.EqualFold(n.MAC.String(), mac) {
			return n.Name
		}
	}
	return mac
}

// neighborNode returns the node that the client's neighbour entry for ip
// points at ("" when there is none).
func (e *env) neighborNode(ip netip.Addr) string {
	mac, err := e.lab.Neighbor(e.t.Context(), e.lab.Client, ip)
	if err != nil {
		return ""
	}
	return e.nodeOfMAC(mac.String())
}

// eventually retries fn until it succeeds or timeout passes.
func eventually(t testing.TB, timeout time.Duration, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for {
		if err = fn(); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %v", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// never fails if fn returns an error at any point during d.
func never(t testing.TB, d time.Duration, what string, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if err := fn(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
