package lab_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/keeperlb/keeperlb/internal/lab"
	"github.com/keeperlb/keeperlb/internal/lab/labtest"
)

func TestMain(m *testing.M) { labtest.Main(m) }

func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// ping reports whether one echo from h to ip gets an answer within a second.
func ping(l *lab.Lab, h *lab.Host, ip string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, err := l.Exec(ctx, h, "ping", "-n", "-c", "1", "-W", "1", ip)
	return err
}

func mustPing(t *testing.T, l *lab.Lab, h *lab.Host, ips ...string) {
	t.Helper()
	for _, ip := range ips {
		if err := ping(l, h, ip); err != nil {
			t.Errorf("%s cannot ping %s: %v", h.Name, ip, err)
		}
	}
}

// TestLab runs one lab with a control plane and a router and checks every
// capability on it.
func TestLab(t *testing.T) {
	l := labtest.Up(t, lab.Options{Nodes: 3, Router: true})
	n1, n2, n3 := l.Nodes[0], l.Nodes[1], l.Nodes[2]

	t.Run("state", func(t *testing.T) {
		states, err := lab.List()
		if err != nil {
			t.Fatal(err)
		}
		var found *lab.State
		for i := range states {
			if states[i].Name == l.Name {
				found = &states[i]
			}
		}
		if found == nil {
			t.Fatalf("lab %s not in List: %+v", l.Name, states)
		}
		if !found.Alive() || !found.Ready || found.OwnerPID != os.Getpid() || found.Kubeconfig != l.ControlPlane.Kubeconfig {
			t.Fatalf("recorded state %+v", *found)
		}
		if len(found.Nodes) != 3 || found.Nodes[1].MAC.String() != n2.MAC.String() || found.Far.IPv4 != l.Far.IPv4 {
			t.Fatalf("recorded hosts %+v", found.Nodes)
		}
		loaded, err := lab.Load(l.Name)
		if err != nil {
			t.Fatal(err)
		}
		if loaded.Nodes[2].IPv6 != n3.IPv6 || loaded.Clientset == nil {
			t.Fatalf("Load gave %+v", loaded)
		}
		if _, err := loaded.Clientset.CoreV1().Namespaces().Get(testCtx(t, 10*time.Second), "default", metav1.GetOptions{}); err != nil {
			t.Fatalf("the loaded lab's clientset: %v", err)
		}
	})

	t.Run("ping", func(t *testing.T) {
		mustPing(t, l, l.Client, n1.IPv4.String(), n1.IPv6.String(), n3.IPv4.String(), l.HostIPv4.String(), l.HostIPv6.String())
		mustPing(t, l, n2, l.Client.IPv4.String(), l.Client.IPv6.String(), l.Router.IPv4.String())
		// Through the router, both ways: needs forwarding on the router
		// and the far-subnet routes on the nodes.
		mustPing(t, l, l.Far, l.RouterFarIPv4.String(), n1.IPv4.String(), n1.IPv6.String())
		mustPing(t, l, n3, l.Far.IPv4.String(), l.Far.IPv6.String())
	})

	t.Run("sysctls", func(t *testing.T) {
		for _, c := range []struct {
			h     *lab.Host
			key   string
			value string
		}{
			{l.Router, "net/ipv4/ip_forward", "1"},
			{l.Router, "net/ipv4/conf/eth0/send_redirects", "0"},
			{l.Router, "net/ipv4/fib_multipath_hash_policy", "1"},
			{l.Router, "net/ipv6/conf/all/forwarding", "1"},
			{n1, "net/ipv4/ip_forward", "0"},
			{n1, "net/ipv4/conf/eth0/arp_ignore", "1"},
			{n1, "net/ipv4/conf/eth0/arp_announce", "2"},
			{l.Client, "net/ipv4/conf/all/accept_redirects", "0"},
			{l.Client, "net/ipv4/conf/eth0/arp_accept", "0"},
			{l.Client, "net/ipv6/conf/eth0/accept_ra", "0"},
		} {
			out, err := l.Exec(testCtx(t, 5*time.Second), c.h, "cat", "/proc/sys/"+c.key)
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.TrimSpace(string(out)); got != c.value {
				t.Errorf("%s: %s = %s, want %s", c.h.Name, c.key, got, c.value)
			}
		}
	})

	t.Run("apiserver from a node", func(t *testing.T) {
		// The kubeconfig file as a process in the node would use it, with
		// the connection made inside the node's namespace.
		cfg, err := clientcmd.BuildConfigFromFlags("", l.ControlPlane.Kubeconfig)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Dial = l.Dialer(n2)
		cs, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cs.CoreV1().Namespaces().Get(testCtx(t, 10*time.Second), "default", metav1.GetOptions{}); err != nil {
			t.Fatalf("API server unreachable from %s: %v", n2.Name, err)
		}
		// The dialer really works inside the namespace: 127.0.0.1:8080
		// there is the node's own backend.
		if got, err := l.Curl(testCtx(t, 5*time.Second), n2, netip.MustParseAddr("127.0.0.1"), lab.BackendPort); err != nil || got != n2.Name {
			t.Errorf("127.0.0.1:8080 from %s answered %q, %v", n2.Name, got, err)
		}
		// The far client reaches it through the router, and the answer
		// comes back the same way, not out of the root's default route.
		cfg.Dial = l.Dialer(l.Far)
		if cs, err = kubernetes.NewForConfig(cfg); err != nil {
			t.Fatal(err)
		}
		if _, err := cs.CoreV1().Namespaces().Get(testCtx(t, 10*time.Second), "default", metav1.GetOptions{}); err != nil {
			t.Fatalf("API server unreachable from the far client: %v", err)
		}
	})

	t.Run("nodes", func(t *testing.T) {
		ctx := testCtx(t, 30*time.Second)
		if err := l.ApplyNodes(ctx); err != nil {
			t.Fatal(err)
		}
		if err := l.ApplyNodes(ctx); err != nil {
			t.Fatalf("second ApplyNodes: %v", err)
		}
		node, err := l.Clientset.CoreV1().Nodes().Get(ctx, n2.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var internal []string
		for _, a := range node.Status.Addresses {
			if a.Type == corev1.NodeInternalIP {
				internal = append(internal, a.Address)
			}
		}
		if strings.Join(internal, ",") != n2.IPv4.String()+","+n2.IPv6.String() {
			t.Errorf("InternalIPs %v", internal)
		}
		if node.Labels[corev1.LabelHostname] != n2.Name {
			t.Errorf("labels %v", node.Labels)
		}
		if got := condition(node, corev1.NodeReady); got != corev1.ConditionTrue {
			t.Errorf("Ready = %q", got)
		}
		if err := l.SetNodeCondition(ctx, n2.Name, corev1.NodeReady, corev1.ConditionFalse); err != nil {
			t.Fatal(err)
		}
		if err := l.SetNodeCondition(ctx, n2.Name, corev1.NodeNetworkUnavailable, corev1.ConditionTrue); err != nil {
			t.Fatal(err)
		}
		if err := l.SetNodeLabel(ctx, n2.Name, "example.com/zone", "a"); err != nil {
			t.Fatal(err)
		}
		node, err = l.Clientset.CoreV1().Nodes().Get(ctx, n2.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if condition(node, corev1.NodeReady) != corev1.ConditionFalse || condition(node, corev1.NodeNetworkUnavailable) != corev1.ConditionTrue {
			t.Errorf("conditions %+v", node.Status.Conditions)
		}
		if node.Labels["example.com/zone"] != "a" {
			t.Errorf("labels %v", node.Labels)
		}
		if err := l.SetNodeLabel(ctx, n2.Name, "example.com/zone", ""); err != nil {
			t.Fatal(err)
		}
		// ApplyNodes restores Ready but keeps the other condition.
		if err := l.ApplyNodes(ctx); err != nil {
			t.Fatal(err)
		}
		node, err = l.Clientset.CoreV1().Nodes().Get(ctx, n2.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := node.Labels["example.com/zone"]; ok {
			t.Errorf("label not removed: %v", node.Labels)
		}
		if condition(node, corev1.NodeReady) != corev1.ConditionTrue || condition(node, corev1.NodeNetworkUnavailable) != corev1.ConditionTrue {
			t.Errorf("conditions after ApplyNodes %+v", node.Status.Conditions)
		}
	})

	t.Run("endpoints", func(t *testing.T) {
		ctx := testCtx(t, 30*time.Second)
		if err := l.SetEndpoints(ctx, "default", "web", 80, map[string]bool{n3.Name: true, n1.Name: false}); err != nil {
			t.Fatal(err)
		}
		slices, err := l.Clientset.DiscoveryV1().EndpointSlices("default").List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=web"})
		if err != nil {
			t.Fatal(err)
		}
		if len(slices.Items) != 2 {
			t.Fatalf("%d slices, want 2", len(slices.Items))
		}
		for _, s := range slices.Items {
			want4 := s.AddressType == discoveryv1.AddressTypeIPv4
			if len(s.Endpoints) != 2 || *s.Ports[0].Port != 80 {
				t.Fatalf("slice %s: %+v", s.Name, s)
			}
			first, second := s.Endpoints[0], s.Endpoints[1]
			wantAddr := n1.IPv6.String()
			if want4 {
				wantAddr = n1.IPv4.String()
			}
			if *first.NodeName != n1.Name || first.Addresses[0] != wantAddr || *first.Conditions.Ready || *first.Conditions.Serving {
				t.Errorf("slice %s endpoint %+v", s.Name, first)
			}
			if *second.NodeName != n3.Name || !*second.Conditions.Ready || !*second.Conditions.Serving {
				t.Errorf("slice %s endpoint %+v", s.Name, second)
			}
		}
		if err := l.SetEndpoints(ctx, "default", "web", 80, map[string]bool{n2.Name: true}); err != nil {
			t.Fatal(err)
		}
		s, err := l.Clientset.DiscoveryV1().EndpointSlices("default").Get(ctx, "web-lab-ipv4", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(s.Endpoints) != 1 || *s.Endpoints[0].NodeName != n2.Name || s.Endpoints[0].Addresses[0] != n2.IPv4.String() {
			t.Errorf("updated slice %+v", s.Endpoints)
		}
		if err := l.SetEndpoints(ctx, "default", "web", 80, map[string]bool{"node9": true}); err == nil || !strings.Contains(err.Error(), "node9") {
			t.Errorf("unknown node: err = %v", err)
		}
		if err := l.DeleteEndpoints(ctx, "default", "web"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("expose", func(t *testing.T) {
		ctx := testCtx(t, 30*time.Second)
		vip4 := l.L2Pool4.Addr().Next()
		vip6 := l.L2Pool6.Addr().Next()
		for _, vip := range []netip.Addr{vip4, vip6} {
			if err := l.Expose(ctx, vip, 80); err != nil {
				t.Fatal(err)
			}
			// Nobody announces the VIP, so the client only reaches a
			// node through a static neighbour entry.
			for _, n := range []*lab.Host{n2, n3} {
				if err := l.SetNeighbor(ctx, l.Client, vip, n.MAC); err != nil {
					t.Fatal(err)
				}
				got, err := l.Curl(ctx, l.Client, vip, 80)
				if err != nil {
					t.Fatalf("curl %s via %s: %v", vip, n.Name, err)
				}
				if got != n.Name {
					t.Errorf("curl %s with the neighbour entry on %s answered by %q", vip, n.Name, got)
				}
				mac, err := l.Neighbor(ctx, l.Client, vip)
				if err != nil || mac.String() != n.MAC.String() {
					t.Errorf("Neighbor(%s) = %v, %v; want %s", vip, mac, err, n.MAC)
				}
			}
			// A port that is not exposed is not forwarded: the node drops
			// it, so only a timeout tells.
			short, cancel := context.WithTimeout(ctx, 700*time.Millisecond)
			if got, err := l.Curl(short, l.Client, vip, 81); err == nil {
				t.Errorf("port 81 answered by %s", got)
			}
			cancel()
			if err := l.Unexpose(ctx, vip, 80); err != nil {
				t.Fatal(err)
			}
			if err := l.Unexpose(ctx, vip, 80); err != nil {
				t.Fatalf("second Unexpose: %v", err)
			}
			short, cancel = context.WithTimeout(ctx, 700*time.Millisecond)
			if got, err := l.Curl(short, l.Client, vip, 80); err == nil {
				t.Errorf("after Unexpose, %s answered by %s", vip, got)
			}
			cancel()
			if err := l.FlushNeighbor(ctx, l.Client, vip); err != nil {
				t.Fatal(err)
			}
			if _, err := l.Neighbor(ctx, l.Client, vip); !errors.Is(err, lab.ErrNoNeighbor) {
				t.Errorf("after FlushNeighbor: %v", err)
			}
		}
	})

	t.Run("neighbor", func(t *testing.T) {
		ctx := testCtx(t, 10*time.Second)
		mustPing(t, l, l.Client, n1.IPv4.String(), n1.IPv6.String())
		for _, ip := range []netip.Addr{n1.IPv4, n1.IPv6} {
			mac, err := l.Neighbor(ctx, l.Client, ip)
			if err != nil {
				t.Fatal(err)
			}
			if mac.String() != n1.MAC.String() {
				t.Errorf("client's entry for %s: %s, want %s", ip, mac, n1.MAC)
			}
		}
		if _, err := l.Neighbor(ctx, l.Client, l.L2Pool4.Addr().Next().Next().Next()); !errors.Is(err, lab.ErrNoNeighbor) {
			t.Errorf("Neighbor of an unused address: %v", err)
		}
	})

	t.Run("cut and heal", func(t *testing.T) {
		ctx := testCtx(t, 30*time.Second)
		mustPing(t, l, l.Client, n1.IPv4.String())
		if err := l.Cut(n1); err != nil {
			t.Fatal(err)
		}
		if err := l.Cut(n1); err != nil {
			t.Fatalf("second Cut: %v", err)
		}
		if err := ping(l, l.Client, n1.IPv4.String()); err == nil {
			t.Error("client pings a cut node")
		}
		if err := ping(l, n1, l.Client.IPv6.String()); err == nil {
			t.Error("a cut node pings the client")
		}
		// ARP does not go through the inet hooks: the switch must drop it.
		if _, err := l.Exec(ctx, l.Client, "arping", "-c", "1", "-w", "1", "-I", "eth0", n1.IPv4.String()); err == nil {
			t.Error("a cut node answers ARP")
		}
		short, cancel := context.WithTimeout(ctx, 700*time.Millisecond)
		if got, err := l.Curl(short, l.Client, n1.IPv4, lab.BackendPort); err == nil {
			t.Errorf("a cut node's backend answers: %q", got)
		}
		cancel()
		mustPing(t, l, l.Client, n2.IPv4.String())
		if err := l.Heal(n1); err != nil {
			t.Fatal(err)
		}
		if err := l.Heal(n1); err != nil {
			t.Fatalf("second Heal: %v", err)
		}
		mustPing(t, l, l.Client, n1.IPv4.String(), n1.IPv6.String())
		if got, err := l.Curl(ctx, l.Client, n1.IPv4, lab.BackendPort); err != nil || got != n1.Name {
			t.Errorf("after Heal: %q, %v", got, err)
		}
	})

	t.Run("start", func(t *testing.T) {
		p, err := l.Start(n3, "sleeper", []string{"sleep", "60"}, []string{"FOO=bar"})
		if err != nil {
			t.Fatal(err)
		}
		// `ip netns exec` switches namespace before it execs the command.
		deadline := time.Now().Add(5 * time.Second)
		for !inNetns(t, n3.Netns, p.PID) {
			if time.Now().After(deadline) {
				t.Fatalf("pid %d not in %s", p.PID, n3.Netns)
			}
			time.Sleep(5 * time.Millisecond)
		}
		for !strings.Contains(procCmdline(p.PID), "sleep") && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", p.PID))
		if err != nil || !strings.Contains(string(env), "\x00FOO=bar\x00") {
			t.Errorf("environment of the process lacks FOO=bar (%v)", err)
		}
		if err := p.Kill(); err != nil {
			t.Fatal(err)
		}
		if !p.Exited() || alive(p.PID) {
			t.Errorf("pid %d still there after Kill", p.PID)
		}
		p, err = l.Start(nil, "root-sleeper", []string{"sleep", "60"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Stop(); err != nil {
			t.Errorf("Stop of a process that exits on SIGTERM: %v", err)
		}
		if _, err := os.Stat(filepath.Join(l.Dir, "root-sleeper.log")); err != nil {
			t.Error(err)
		}
		if _, err := l.Start(n1, "../x", []string{"true"}, nil); err == nil {
			t.Error("a process name with a slash was accepted")
		}

		// A detached process leads a session of its own (TestDemo's
		// --keep case checks that it outlives its starter); Kill still
		// reaches it.
		p, err = l.StartDetached(n3, "detached", []string{"sleep", "60"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if sid, err := unix.Getsid(p.PID); err != nil || sid != p.PID {
			t.Errorf("detached pid %d: session %d (%v), want its own", p.PID, sid, err)
		}
		if err := p.Kill(); err != nil {
			t.Fatal(err)
		}
		if alive(p.PID) {
			t.Errorf("detached pid %d still there after Kill", p.PID)
		}
	})
}

func condition(n *corev1.Node, t corev1.NodeConditionType) corev1.ConditionStatus {
	for _, c := range n.Status.Conditions {
		if c.Type == t {
			return c.Status
		}
	}
	return ""
}

func inNetns(t *testing.T, ns string, pid int) bool {
	t.Helper()
	out, err := runCmd("ip", "netns", "pids", ns)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Contains(" "+strings.Join(strings.Fields(out), " ")+" ", " "+strconv.Itoa(pid)+" ")
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	return i < 0 || i+2 >= len(b) || b[i+2] != 'Z'
}

// leftovers lists what of a lab's state still exists.
func leftovers(t *testing.T, s lab.State, pids []int) []string {
	t.Helper()
	var left []string
	for _, ns := range s.Netns {
		if _, err := os.Stat(filepath.Join("/run/netns", ns)); err == nil {
			left = append(left, "netns "+ns)
		}
	}
	if _, err := net.InterfaceByName(s.RootLink); err == nil {
		left = append(left, "link "+s.RootLink)
	}
	for _, pid := range pids {
		if alive(pid) {
			left = append(left, "pid "+strconv.Itoa(pid))
		}
	}
	if _, err := os.Stat(s.Dir); err == nil {
		left = append(left, "dir "+s.Dir)
	}
	if _, err := os.Stat(filepath.Join(lab.StateDir, s.Name+".json")); err == nil {
		left = append(left, "state "+s.Name)
	}
	return left
}

// labPids lists the processes in a lab's namespaces.
func labPids(t *testing.T, s lab.State) []int {
	t.Helper()
	var pids []int
	for _, ns := range s.Netns {
		out, err := runCmd("ip", "netns", "pids", ns)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range strings.Fields(out) {
			pid, err := strconv.Atoi(f)
			if err != nil {
				t.Fatal(err)
			}
			pids = append(pids, pid)
		}
	}
	return pids
}

func TestDownLeavesNothing(t *testing.T) {
	labtest.Require(t, false)
	l, err := lab.Up(testCtx(t, time.Minute), lab.Options{Nodes: 2, NoControlPlane: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Down() })
	s := l.State()
	pids := labPids(t, s)
	if len(pids) != 2 {
		t.Fatalf("%d processes in the lab, want the 2 backends", len(pids))
	}
	p, err := l.Start(nil, "root-proc", []string{"sleep", "60"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	pids = append(pids, p.PID)
	if left := leftovers(t, s, nil); len(left) != len(s.Netns)+3 {
		t.Fatalf("before Down, found only %v", left)
	}
	if err := l.Down(); err != nil {
		t.Fatal(err)
	}
	if left := leftovers(t, s, pids); len(left) > 0 {
		t.Fatalf("left behind by Down: %v", left)
	}
	if err := l.Down(); err != nil {
		t.Fatalf("second Down: %v", err)
	}
	if _, err := l.Start(nil, "late", []string{"true"}, nil); err == nil {
		t.Error("Start after Down succeeded")
	}
}

func TestFailedUpLeavesNothing(t *testing.T) {
	labtest.Require(t, false)
	// A control plane folder without binaries fails after the network is
	// built.
	_, err := lab.Up(testCtx(t, time.Minute), lab.Options{Nodes: 1, K8sBin: t.TempDir()})
	if err == nil {
		t.Fatal("Up without binaries succeeded")
	}
	m := regexp.MustCompile(`^lab (kl-lab[0-9]+): `).FindStringSubmatch(err.Error())
	if m == nil {
		t.Fatalf("error does not name the lab: %v", err)
	}
	name := m[1]
	for _, suffix := range []string{"sw", "node1", "client"} {
		if _, err := os.Stat("/run/netns/" + name + "-" + suffix); err == nil {
			// Another process may have taken the index since; only a lab
			// we own would be a leftover of ours.
			if l, lerr := lab.Load(name); lerr == nil && l.State().OwnerPID == os.Getpid() {
				t.Errorf("netns %s-%s left behind", name, suffix)
			}
		}
	}
	for _, s := range mustList(t) {
		if s.Name == name && s.OwnerPID == os.Getpid() {
			t.Errorf("state of %s left behind", name)
		}
	}
	if _, err := net.InterfaceByName(name + "-host"); err == nil {
		if s, ok := findState(t, name); !ok || s.OwnerPID == os.Getpid() {
			t.Errorf("link %s-host left behind", name)
		}
	}
}

func mustList(t *testing.T) []lab.State {
	t.Helper()
	states, err := lab.List()
	if err != nil {
		t.Fatal(err)
	}
	return states
}

func findState(t *testing.T, name string) (lab.State, bool) {
	for _, s := range mustList(t) {
		if s.Name == name {
			return s, true
		}
	}
	return lab.State{}, false
}

func TestParallelLabs(t *testing.T) {
	labtest.Require(t, false)
	labs := make([]*lab.Lab, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i := range labs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			labs[i], errs[i] = lab.Up(context.Background(), lab.Options{Nodes: 1, NoControlPlane: true})
		}()
	}
	wg.Wait()
	for i, l := range labs {
		if l != nil {
			t.Cleanup(func() {
				if err := l.Down(); err != nil {
					t.Error(err)
				}
			})
		}
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
	}
	a, b := labs[0], labs[1]
	if a.Index == b.Index || a.Name == b.Name {
		t.Fatalf("two labs share index %d", a.Index)
	}
	var pw sync.WaitGroup
	for _, l := range labs {
		pw.Add(1)
		go func() {
			defer pw.Done()
			if err := ping(l, l.Client, l.Nodes[0].IPv4.String()); err != nil {
				t.Errorf("%s: %v", l.Name, err)
			}
			if got, err := l.Curl(context.Background(), l.Client, l.Nodes[0].IPv6, lab.BackendPort); err != nil || got != "node1" {
				t.Errorf("%s: backend answered %q, %v", l.Name, got, err)
			}
		}()
	}
	pw.Wait()
	// The labs cannot see each other.
	if err := ping(a, a.Client, b.Nodes[0].IPv4.String()); err == nil {
		t.Errorf("%s's client reaches %s's node", a.Name, b.Name)
	}
}

func TestReapDeadOwner(t *testing.T) {
	labtest.Require(t, false)
	ctx := testCtx(t, time.Minute)
	s, err := lab.UpDetached(ctx, lab.Options{Nodes: 1, NoControlPlane: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lab.Remove(s.Name, 10*time.Second, false, nil) })
	if !s.Alive() || !s.Ready || s.OwnerPID == os.Getpid() {
		t.Fatalf("detached lab state %+v", s)
	}
	l, err := lab.Load(s.Name)
	if err != nil {
		t.Fatal(err)
	}
	// The detached owner's backend serves; the root namespace reaches it.
	if got, err := l.Curl(ctx, nil, l.Nodes[0].IPv4, lab.BackendPort); err != nil || got != "node1" {
		t.Fatalf("backend of the detached lab: %q, %v", got, err)
	}
	pids := append(labPids(t, *s), s.OwnerPID)
	// The owner dies without cleaning up.
	if err := syscall.Kill(s.OwnerPID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.Alive() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if s.Alive() {
		t.Fatal("owner still alive after SIGKILL")
	}
	if _, err := lab.Load(s.Name); err == nil || !strings.Contains(err.Error(), "gone") {
		t.Errorf("Load of a dead lab: %v", err)
	}
	if left := leftovers(t, *s, nil); len(left) == 0 {
		t.Fatal("nothing left to reap: the test proves nothing")
	}
	if err := lab.Reap(nil); err != nil {
		t.Fatal(err)
	}
	if left := leftovers(t, *s, pids); len(left) > 0 {
		t.Fatalf("left behind by Reap: %v", left)
	}
}

func TestRemoveLiveDetached(t *testing.T) {
	labtest.Require(t, false)
	s, err := lab.UpDetached(testCtx(t, time.Minute), lab.Options{Nodes: 1, NoControlPlane: true})
	if err != nil {
		t.Fatal(err)
	}
	pids := append(labPids(t, *s), s.OwnerPID)
	if err := lab.Remove(s.Name, 20*time.Second, false, nil); err != nil {
		t.Fatal(err)
	}
	// The owner took the lab down itself (Remove returned once the state
	// was gone), then exited.
	deadline := time.Now().Add(5 * time.Second)
	for alive(s.OwnerPID) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if left := leftovers(t, *s, pids); len(left) > 0 {
		t.Fatalf("left behind by Remove: %v", left)
	}
	if err := lab.Remove(s.Name, time.Second, false, nil); err == nil {
		t.Error("Remove of a removed lab succeeded")
	}
}

func runCmd(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		return "", fmt.Errorf("%s %v: %w", name, args, err)
	}
	return string(out), nil
}

func procCmdline(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return string(b)
}

func TestRemoveRefusesALabInUse(t *testing.T) {
	labtest.Require(t, false)
	l, err := lab.Up(testCtx(t, time.Minute), lab.Options{Nodes: 1, NoControlPlane: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Down() })
	// Another live process (standing for a running test) owns the lab.
	other := exec.Command("sleep", "60")
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = other.Process.Kill(); _ = other.Wait() })
	if err := lab.SetOwnerForTest(l.Name, other.Process.Pid, false); err != nil {
		t.Fatal(err)
	}
	s := l.State()
	err = lab.Remove(l.Name, time.Second, false, nil)
	if !errors.Is(err, lab.ErrInUse) {
		t.Fatalf("Remove of a lab in use: %v", err)
	}
	if left := leftovers(t, s, nil); len(left) != len(s.Netns)+3 {
		t.Fatalf("Remove without force touched the lab: only %v left", left)
	}
	pids := labPids(t, s)
	if err := lab.Remove(l.Name, time.Second, true, nil); err != nil {
		t.Fatal(err)
	}
	if left := leftovers(t, s, pids); len(left) > 0 {
		t.Fatalf("left behind by a forced Remove: %v", left)
	}
	if !alive(other.Process.Pid) {
		t.Error("a forced Remove killed the owner")
	}
	if err := l.Down(); err != nil {
		t.Errorf("Down after a forced Remove: %v", err)
	}
}
