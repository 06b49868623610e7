package lab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/keeperlb/keeperlb/internal/controlplane"
)

// DefaultNodes is the number of nodes when Options.Nodes is zero.
const DefaultNodes = 3

// Options configures Up.
type Options struct {
	// Nodes is the number of node hosts, 1..MaxNodes; 0 means DefaultNodes.
	Nodes int
	// Router adds a router host on the bridge and, behind it on a link of
	// its own (the router's eth1), a far client. The router forwards but
	// runs no routing daemon: BGP tests start FRR in it.
	Router bool
	// K8sBin holds etcd and kube-apiserver; empty means $KEEPERLB_K8S_BIN.
	K8sBin string
	// NoControlPlane builds only the network (about 0.5 s instead of 5 s),
	// for tests that need no API server.
	NoControlPlane bool
	// Log receives progress messages; nil discards them.
	Log *slog.Logger
	// Keep leaves the lab folder (logs, kubeconfig) in place after Down.
	Keep bool

	// ownerLog is set by a detached owner (see UpDetached), and only
	// there: it also marks the lab as Detached.
	ownerLog string
}

// Host is one machine of the lab: a network namespace with one interface on
// the lab bridge (the far client's leads to the router instead).
type Host struct {
	// Name is node1..nodeN, client, router or far; for nodes it is also
	// the Kubernetes Node name.
	Name string
	// Netns is the network namespace, e.g. kl-lab3-node1.
	Netns string
	// IPv4 and IPv6 are the addresses on Interface.
	IPv4, IPv6 netip.Addr
	// MAC is Interface's hardware address.
	MAC net.HardwareAddr
	// Interface is always eth0.
	Interface string
}

// label names h in messages; nil is the root namespace.
func (h *Host) label() string {
	if h == nil {
		return "the root namespace"
	}
	return h.Name
}

// Lab is a running lab. Every address is in 198.18.0.0/15 or 2001:db8::/32;
// see the package documentation for the plan.
type Lab struct {
	// Name is kl-lab<Index>, the prefix of every namespace.
	Name  string
	Index int
	// Nodes are node1..nodeN; each runs an HTTP backend on port 8080 that
	// answers with the node's name.
	Nodes []*Host
	// Client is a plain host on the bridge.
	Client *Host
	// Router and Far are nil unless Options.Router was set.
	Router, Far *Host
	// HostIPv4 and HostIPv6 are the root namespace's addresses on the
	// bridge; the API server listens on HostIPv4.
	HostIPv4, HostIPv6 netip.Addr
	// Subnet4 and Subnet6 hold nodes, client, router and the root veth.
	Subnet4, Subnet6 netip.Prefix
	// L2Pool4 and L2Pool6 are for layer 2 VIPs, inside the subnets.
	L2Pool4, L2Pool6 netip.Prefix
	// BGPPool4 and BGPPool6 are for BGP VIPs, outside the subnets.
	BGPPool4, BGPPool6 netip.Prefix
	// FarSubnet4 and FarSubnet6 are the router-to-far-client link; nodes
	// and the client route them through the router. The router has
	// RouterFarIPv4/6 there, the far client Far.IPv4/6.
	FarSubnet4, FarSubnet6       netip.Prefix
	RouterFarIPv4, RouterFarIPv6 netip.Addr
	// ControlPlane is the lab's API server (nil with NoControlPlane). Its
	// Kubeconfig works from the root namespace and from every host.
	ControlPlane *controlplane.ControlPlane
	// Clientset talks to ControlPlane.
	Clientset kubernetes.Interface
	// Dir holds logs (<process>.log), the kubeconfig and the API server's
	// data.
	Dir string

	log   *slog.Logger
	owned bool
	state State

	mu       sync.Mutex
	sp       *spawner
	procs    []*Process
	down     bool
	tornDown bool
}

// newLab lays out lab k: names and addresses only, nothing is created.
func newLab(k, nodes int, router bool) *Lab {
	p := plan{k}
	host := func(name string, n int) *Host {
		return &Host{Name: name, Netns: p.netns(name), IPv4: p.host4(n), IPv6: p.host6(n), MAC: p.mac(0, n), Interface: "eth0"}
	}
	l := &Lab{
		Name: p.name(), Index: k,
		HostIPv4: p.host4(hostRoot), HostIPv6: p.host6(hostRoot),
		Subnet4: p.subnet4(), Subnet6: p.subnet6(),
		L2Pool4: p.l2Pool4(), L2Pool6: p.l2Pool6(),
		BGPPool4: p.bgpPool4(), BGPPool6: p.bgpPool6(),
		FarSubnet4: p.farSubnet4(), FarSubnet6: p.farSubnet6(),
	}
	for i := 1; i <= nodes; i++ {
		l.Nodes = append(l.Nodes, host("node"+strconv.Itoa(i), hostFirstNode+i-1))
	}
	l.Client = host("client", hostClient)
	if router {
		l.Router = host("router", hostRouter)
		l.Far = &Host{Name: "far", Netns: p.netns("far"), IPv4: p.far4(hostFarClient), IPv6: p.far6(hostFarClient),
			MAC: p.mac(1, hostFarClient), Interface: "eth0"}
		l.RouterFarIPv4, l.RouterFarIPv6 = p.far4(hostFarRouter), p.far6(hostFarRouter)
	}
	return l
}

// Plan returns the layout of lab index (1..MaxIndex) with the given nodes
// and router: names and addresses, as Up would assign them. Nothing is
// created and the result cannot run anything.
func Plan(index, nodes int, router bool) (*Lab, error) {
	if index < 1 || index > MaxIndex {
		return nil, fmt.Errorf("lab index must be 1..%d, got %d", MaxIndex, index)
	}
	if nodes < 1 || nodes > MaxNodes {
		return nil, fmt.Errorf("lab: Nodes must be 1..%d, got %d", MaxNodes, nodes)
	}
	l := newLab(index, nodes, router)
	l.log = slog.New(slog.DiscardHandler)
	l.down = true
	return l, nil
}

// Hosts returns every host: nodes, client, then router and far client.
func (l *Lab) Hosts() []*Host {
	hs := append([]*Host{}, l.Nodes...)
	hs = append(hs, l.Client)
	if l.Router != nil {
		hs = append(hs, l.Router, l.Far)
	}
	return hs
}

// Node returns the node called name, or nil.
func (l *Lab) Node(name string) *Host {
	for _, n := range l.Nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

func (l *Lab) isNode(h *Host) bool { return l.Node(h.Name) == h }

// bridgedHosts are the hosts with a port on the bridge.
func (l *Lab) bridgedHosts() []*Host {
	var hs []*Host
	for _, h := range l.Hosts() {
		if h != l.Far {
			hs = append(hs, h)
		}
	}
	return hs
}

func (l *Lab) onBridge(h *Host) bool { return h != l.Far }

// fillState records names, addresses and the folder before anything is
// created, so that a crash at any later point can be cleaned up.
func (l *Lab) fillState(s *State, dir string) {
	p := plan{l.Index}
	s.Name, s.Index, s.Dir = l.Name, l.Index, dir
	s.Netns = []string{p.netns("sw")}
	for _, h := range l.Hosts() {
		s.Netns = append(s.Netns, h.Netns)
	}
	s.RootLink = p.rootLink()
	s.HostIPv4, s.HostIPv6 = l.HostIPv4, l.HostIPv6
	s.Nodes, s.Client, s.Router, s.Far = l.Nodes, l.Client, l.Router, l.Far
}

// State returns the lab's recorded state.
func (l *Lab) State() State {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.state
}

// CheckPrerequisites tells what the lab is missing on this machine: root,
// and the ip and nft commands.
func CheckPrerequisites() error {
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root (network namespaces need CAP_SYS_ADMIN and CAP_NET_ADMIN)")
	}
	for _, c := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(c); err != nil {
			missing = append(missing, fmt.Sprintf("the %s command (run `bash hack/lab-deps.sh`)", c))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("the network lab needs %s", strings.Join(missing, " and "))
	}
	return nil
}

// Up builds a lab: namespaces, bridge, veths, addresses, a backend on every
// node and, unless Options.NoControlPlane, a kube-apiserver on HostIPv4 with
// the metallb.io CRDs installed. On error everything created is removed.
// The calling process owns the lab: its children die with it, and Reap
// removes the rest.
func Up(ctx context.Context, opts Options) (_ *Lab, err error) {
	if err := CheckPrerequisites(); err != nil {
		return nil, err
	}
	if os.Getenv(envRole) != "" {
		return nil, errors.New("lab.Up called inside a lab role process: main (or TestMain) must call lab.RunRoleIfRequested first")
	}
	nodes := opts.Nodes
	if nodes == 0 {
		nodes = DefaultNodes
	}
	if nodes < 1 || nodes > MaxNodes {
		return nil, fmt.Errorf("lab: Nodes must be 1..%d, got %d", MaxNodes, nodes)
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	self, err := roleExecutable(ctx)
	if err != nil {
		return nil, err
	}
	pid := os.Getpid()
	start, err := processStart(pid)
	if err != nil {
		return nil, fmt.Errorf("lab: reading own start time: %w", err)
	}
	var suffix [4]byte
	if _, err := rand.Read(suffix[:]); err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	began := time.Now()
	st := &State{OwnerPID: pid, OwnerStart: start, Created: began.UTC(), Keep: opts.Keep,
		Detached: opts.ownerLog != "", OwnerLog: opts.ownerLog}
	var l *Lab
	if err := reserve(st, func(k int) {
		l = newLab(k, nodes, opts.Router)
		dir := filepath.Join(os.TempDir(), fmt.Sprintf("keeperlb-%s-%d-%s", l.Name, pid, hex.EncodeToString(suffix[:])))
		l.fillState(st, dir)
	}, log); err != nil {
		return nil, err
	}
	l.log, l.owned, l.state, l.Dir = log, true, *st, st.Dir
	defer func() {
		if err != nil {
			if derr := l.Down(); derr != nil {
				err = errors.Join(err, derr)
			}
			err = fmt.Errorf("lab %s: %w", l.Name, err)
		}
	}()
	if err := os.MkdirAll(l.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating lab folder: %w", err)
	}
	if err := l.buildNetwork(ctx); err != nil {
		return nil, err
	}
	log.Debug("lab network ready", "lab", l.Name, "took", time.Since(began).Round(time.Millisecond))
	backends := make([]*Process, 0, len(l.Nodes))
	for _, n := range l.Nodes {
		p, err := l.Start(n, "backend-"+n.Name, []string{self}, []string{
			envRole + "=" + roleBackend, envBackendName + "=" + n.Name, envBackendAddr + "=:" + strconv.Itoa(BackendPort),
		})
		if err != nil {
			return nil, err
		}
		backends = append(backends, p)
	}
	if !opts.NoControlPlane {
		if err := l.startControlPlane(ctx, opts.K8sBin); err != nil {
			return nil, err
		}
	}
	for i, n := range l.Nodes {
		if err := waitListening(ctx, backends[i], n); err != nil {
			return nil, err
		}
	}
	l.mu.Lock()
	l.state.Ready = true
	if l.ControlPlane != nil {
		l.state.APIServer, l.state.Kubeconfig = l.ControlPlane.Config.Host, l.ControlPlane.Kubeconfig
	}
	st2 := l.state
	l.mu.Unlock()
	if err := writeState(&st2); err != nil {
		return nil, err
	}
	log.Info("lab up", "lab", l.Name, "nodes", len(l.Nodes), "router", l.Router != nil, "api", st2.APIServer, "took", time.Since(began).Round(time.Millisecond))
	return l, nil
}

// startControlPlane runs etcd and kube-apiserver (forked from the spawner
// thread, see spawner) and installs the CRDs.
func (l *Lab) startControlPlane(ctx context.Context, bin string) error {
	l.mu.Lock()
	if l.sp == nil {
		l.sp = newSpawner()
	}
	sp := l.sp
	l.mu.Unlock()
	var cp *controlplane.ControlPlane
	var err error
	sp.do(func() {
		cp, err = controlplane.Start(ctx, controlplane.Options{BinDir: bin, Dir: l.Dir, Logger: l.log, BindAddress: l.HostIPv4})
	})
	if err != nil {
		return fmt.Errorf("starting the control plane: %w", err)
	}
	l.ControlPlane = cp
	fast := fastConfig(cp.Config)
	if err := controlplane.InstallCRDs(ctx, fast); err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(fast)
	if err != nil {
		return fmt.Errorf("building a clientset: %w", err)
	}
	l.Clientset = cs
	return nil
}

// fastConfig lifts client-go's default client-side rate limit (5 requests
// per second), which would make a handful of Node updates take seconds.
func fastConfig(cfg *rest.Config) *rest.Config {
	c := rest.CopyConfig(cfg)
	c.QPS, c.Burst = 500, 1000
	return c
}

// waitListening waits until a node's backend accepts connections on both
// addresses, from the root namespace.
func waitListening(ctx context.Context, p *Process, n *Host) error {
	deadline := time.Now().Add(10 * time.Second)
	for _, ip := range []netip.Addr{n.IPv4, n.IPv6} {
		addr := netip.AddrPortFrom(ip, BackendPort).String()
		for {
			var d net.Dialer
			dctx, cancel := context.WithTimeout(ctx, time.Second)
			c, err := d.DialContext(dctx, "tcp", addr)
			cancel()
			if err == nil {
				c.Close()
				break
			}
			if p.Exited() {
				return fmt.Errorf("backend on %s exited: %v (see %s)", n.Name, p.Wait(), p.Log)
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				return fmt.Errorf("backend on %s not listening on %s: %w (see %s)", n.Name, addr, err, p.Log)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return nil
}

// Down removes the lab: it kills every process of the lab (those in its
// namespaces, those started with Start, the API server), deletes the
// namespaces and the root veth, the folder (unless Keep) and the state. It
// works on a half-built lab and is idempotent. On a lab opened with Load it
// asks a detached owner to do it, and refuses when the owner is another
// live process (see Remove).
func (l *Lab) Down() error {
	if !l.owned {
		l.stopOwn()
		return Remove(l.Name, 30*time.Second, false, l.log)
	}
	l.mu.Lock()
	if l.tornDown {
		l.mu.Unlock()
		return nil
	}
	l.down = true
	procs := append([]*Process{}, l.procs...)
	sp := l.sp
	l.sp = nil
	st := l.state
	l.mu.Unlock()

	for _, p := range procs {
		_ = p.Signal(syscall.SIGKILL)
	}
	for _, p := range procs {
		<-p.done
	}
	// Everything in the namespaces and the API server, without the grace
	// period: the lab's data is thrown away anyway.
	killLabProcesses(&st, l.log)
	if l.ControlPlane != nil {
		l.ControlPlane.Stop()
	}
	if sp != nil {
		sp.stop()
	}
	if err := teardown(&st, l.log); err != nil {
		return err
	}
	l.mu.Lock()
	l.tornDown = true
	l.mu.Unlock()
	l.log.Info("lab down", "lab", l.Name)
	return nil
}

// stopOwn kills the processes this Lab value started and ends its spawner.
func (l *Lab) stopOwn() {
	l.mu.Lock()
	l.down = true
	procs := append([]*Process{}, l.procs...)
	sp := l.sp
	l.sp = nil
	l.mu.Unlock()
	for _, p := range procs {
		_ = p.Kill()
	}
	if sp != nil {
		sp.stop()
	}
}

// Load opens a ready lab recorded by another process (or this one), for the
// CLI and tools. The result can run commands, Start processes and talk to
// the API server; its Down asks the owner to remove the lab.
func Load(name string) (*Lab, error) {
	s, err := readState(statePath(name))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("no lab named %q (see `keeperlb lab status`)", name)
	}
	if err != nil {
		return nil, err
	}
	if !s.Alive() {
		return nil, fmt.Errorf("lab %s: its owner (pid %d) is gone; remove it with `keeperlb lab down %s`", name, s.OwnerPID, name)
	}
	if !s.Ready {
		return nil, fmt.Errorf("lab %s is still being built by pid %d", name, s.OwnerPID)
	}
	l := newLab(s.Index, len(s.Nodes), s.Router != nil)
	l.log, l.state, l.Dir = slog.New(slog.DiscardHandler), *s, s.Dir
	if s.Kubeconfig != "" {
		cfg, err := clientcmd.BuildConfigFromFlags("", s.Kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("lab %s: %w", name, err)
		}
		l.ControlPlane = &controlplane.ControlPlane{Config: cfg, Kubeconfig: s.Kubeconfig, Dir: s.Dir}
		if l.Clientset, err = kubernetes.NewForConfig(fastConfig(cfg)); err != nil {
			return nil, fmt.Errorf("lab %s: building a clientset: %w", name, err)
		}
	}
	return l, nil
}
