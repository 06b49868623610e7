package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/keeperlb/keeperlb/internal/netns"
)

// ErrNoNeighbor is returned by Neighbor when the host has no usable entry.
var ErrNoNeighbor = errors.New("no neighbour entry")

// run runs a command with stdin and returns its stdout; the error carries
// the command line and stderr.
func run(ctx context.Context, stdin string, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

// ipBatch runs `ip -batch -` inside netns ns (root namespace when empty).
func ipBatch(ctx context.Context, ns string, lines []string) error {
	args := []string{"-batch", "-"}
	if ns != "" {
		args = append([]string{"-n", ns}, args...)
	}
	_, err := run(ctx, strings.Join(lines, "\n")+"\n", "ip", args...)
	return err
}

// nftIn loads an nft script inside netns ns.
func nftIn(ctx context.Context, ns, script string) error {
	_, err := run(ctx, script, "ip", "netns", "exec", ns, "nft", "-f", "-")
	return err
}

func notFound(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "No such file or directory") ||
		strings.Contains(err.Error(), "Cannot find device") ||
		strings.Contains(err.Error(), "does not exist"))
}

// deleteNetns removes a namespace; a missing one is not an error.
func deleteNetns(name string) error {
	if _, err := os.Stat(netns.Path(name)); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if _, err := run(context.Background(), "", "ip", "netns", "del", name); err != nil && !notFound(err) {
		return err
	}
	return nil
}

// deleteLink removes a link of the root namespace; a missing one is fine.
func deleteLink(name string) error {
	if _, err := net.InterfaceByName(name); err != nil {
		return nil
	}
	if _, err := run(context.Background(), "", "ip", "link", "del", name); err != nil && !notFound(err) {
		return err
	}
	return nil
}

// netnsPids lists the processes inside a namespace.
func netnsPids(name string) []int {
	if _, err := os.Stat(netns.Path(name)); err != nil {
		return nil
	}
	out, err := run(context.Background(), "", "ip", "netns", "pids", name)
	if err != nil {
		return nil
	}
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// sysctl is one setting, as a path under /proc/sys.
type sysctl struct{ key, value string }

// writeSysctls applies settings in order inside namespace ns (the caller's
// own namespace when ns is empty). Keys in optional may be missing (the
// bridge-nf-call ones exist only while br_netfilter is loaded).
func writeSysctls(ns string, settings []sysctl, optional map[string]bool) error {
	apply := func() error {
		for _, s := range settings {
			path := filepath.Join("/proc/sys", s.key)
			if err := os.WriteFile(path, []byte(s.value), 0o644); err != nil {
				if optional[s.key] && errors.Is(err, os.ErrNotExist) {
					continue
				}
				return fmt.Errorf("sysctl %s=%s: %w", s.key, s.value, err)
			}
		}
		return nil
	}
	if ns == "" {
		return apply()
	}
	if err := netns.Do(ns, apply); err != nil {
		return fmt.Errorf("in %s: %w", ns, err)
	}
	return nil
}

// hostSysctls are the settings of a host's namespace. New namespaces inherit
// IPv4 conf/all and conf/default from the root namespace, so everything the
// lab relies on is set explicitly.
func hostSysctls(ifaces []string, router bool) []sysctl {
	var s []sysctl
	v4all := func(key, value string) {
		for _, dev := range append([]string{"all", "default"}, ifaces...) {
			s = append(s, sysctl{"net/ipv4/conf/" + dev + "/" + key, value})
		}
	}
	v6all := func(key, value string) {
		for _, dev := range append([]string{"all", "default"}, ifaces...) {
			s = append(s, sysctl{"net/ipv6/conf/" + dev + "/" + key, value})
		}
	}
	// Forwarding first: switching it rewrites per-device settings.
	if router {
		s = append(s, sysctl{"net/ipv4/ip_forward", "1"}, sysctl{"net/ipv6/conf/all/forwarding", "1"},
			sysctl{"net/ipv4/fib_multipath_hash_policy", "1"}, sysctl{"net/ipv6/fib_multipath_hash_policy", "1"})
		v4all("send_redirects", "0")
	} else {
		s = append(s, sysctl{"net/ipv4/ip_forward", "0"}, sysctl{"net/ipv6/conf/all/forwarding", "0"})
	}
	// Redirects would let one host rewrite another's routes behind a test's back.
	v4all("accept_redirects", "0")
	v6all("accept_redirects", "0")
	// Strict reverse-path filtering drops legitimate asymmetric paths (ECMP, DNAT).
	v4all("rp_filter", "0")
	// Answer ARP only for addresses of the asking interface, from the best
	// local source: a VIP on lo must not be announced by the kernel.
	v4all("arp_ignore", "1")
	v4all("arp_announce", "2")
	// Gratuitous ARP updates only existing entries, as on a default host.
	v4all("arp_accept", "0")
	// Addresses are static: no duplicate detection delay, no autoconfiguration.
	v6all("accept_dad", "0")
	v6all("accept_ra", "0")
	return s
}

// switchSysctls are the bridge namespace's: the bridge does not call
// netfilter and neither it nor its ports take part in IPv6.
var switchOptional = map[string]bool{
	"net/bridge/bridge-nf-call-iptables":  true,
	"net/bridge/bridge-nf-call-ip6tables": true,
	"net/bridge/bridge-nf-call-arptables": true,
}

func switchSysctls() []sysctl {
	return []sysctl{
		{"net/bridge/bridge-nf-call-iptables", "0"},
		{"net/bridge/bridge-nf-call-ip6tables", "0"},
		{"net/bridge/bridge-nf-call-arptables", "0"},
		{"net/ipv6/conf/default/disable_ipv6", "1"},
		{"net/ipv6/conf/all/disable_ipv6", "1"},
	}
}

// port is the bridge port of a host in the switch namespace.
func port(h *Host) string { return "p-" + h.Name }

// lbTable is the kube-proxy stand-in on every node: a VIP:port -> node:8080
// DNAT through maps, so that Expose and Unexpose are single element updates.
const lbTable = `table inet kl_lb {
	map vip4 { type ipv4_addr . inet_service : ipv4_addr . inet_service; }
	map vip6 { type ipv6_addr . inet_service : ipv6_addr . inet_service; }
	chain pre {
		type nat hook prerouting priority dstnat; policy accept;
		dnat ip to ip daddr . tcp dport map @vip4
		dnat ip6 to ip6 daddr . tcp dport map @vip6
	}
}
`

// BackendPort is where every node's HTTP backend listens.
const BackendPort = 8080

// buildNetwork creates the namespaces, the bridge, every veth, the addresses,
// routes and sysctls, and the nft tables the lab uses later.
func (l *Lab) buildNetwork(ctx context.Context) error {
	p := plan{l.Index}
	sw := p.netns("sw")
	for _, ns := range l.state.Netns {
		if _, err := run(ctx, "", "ip", "netns", "add", ns); err != nil {
			return err
		}
	}
	if err := writeSysctls(sw, switchSysctls(), switchOptional); err != nil {
		return err
	}
	bridged := l.bridgedHosts()
	lines := []string{
		"link set lo up",
		"link add br0 type bridge stp_state 0 forward_delay 0 mcast_snooping 0",
		"link set br0 up",
	}
	for _, h := range bridged {
		lines = append(lines,
			fmt.Sprintf("link add %s type veth peer name %s address %s netns %s", port(h), h.Interface, h.MAC, h.Netns),
			fmt.Sprintf("link set %s master br0 up", port(h)))
	}
	if err := ipBatch(ctx, sw, lines); err != nil {
		return err
	}
	// The root namespace's way in, for the test process, the controller and
	// the API server.
	if _, err := run(ctx, "", "ip", "link", "add", l.state.RootLink, "address", p.mac(0, hostRoot).String(),
		"type", "veth", "peer", "name", "p-host", "netns", sw); err != nil {
		return err
	}
	if err := ipBatch(ctx, sw, []string{"link set p-host master br0 up"}); err != nil {
		return err
	}
	if l.Router != nil {
		if err := ipBatch(ctx, l.Router.Netns, []string{fmt.Sprintf("link add eth1 address %s type veth peer name eth0 address %s netns %s",
			p.mac(1, hostFarRouter), p.mac(1, hostFarClient), l.Far.Netns)}); err != nil {
			return err
		}
	}
	// Hosts are independent; configuring them at once hides the cost of
	// the ip and nft processes.
	hosts := l.Hosts()
	errs := make([]error, len(hosts))
	var wg sync.WaitGroup
	for i, h := range hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = l.configureHost(ctx, h)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	// Root side: only settings of our own veth, never the root's all/default.
	link := l.state.RootLink
	if err := writeSysctls("", []sysctl{
		{"net/ipv6/conf/" + link + "/accept_dad", "0"},
		{"net/ipv6/conf/" + link + "/accept_ra", "0"},
		{"net/ipv4/conf/" + link + "/accept_redirects", "0"},
		{"net/ipv6/conf/" + link + "/accept_redirects", "0"},
		// The root namespace may forward (Docker hosts do); never for the lab.
		{"net/ipv4/conf/" + link + "/forwarding", "0"},
	}, nil); err != nil {
		return err
	}
	lines = []string{
		fmt.Sprintf("addr add %s/24 dev %s", l.HostIPv4, link),
		fmt.Sprintf("addr add %s/64 dev %s nodad", l.HostIPv6, link),
		fmt.Sprintf("link set %s up", link),
	}
	// Every lab prefix outside the subnet gets a route into the lab, so that
	// the root namespace never sends lab traffic (a reply to the far
	// client, a test's request to a BGP VIP) out of its default route. With
	// a router they go through it; without one they end at the bridge.
	for _, pfx := range []netip.Prefix{l.FarSubnet4, l.FarSubnet6, l.BGPPool4, l.BGPPool6} {
		switch {
		case l.Router != nil && pfx.Addr().Is4():
			lines = append(lines, fmt.Sprintf("route add %s via %s dev %s", pfx, l.Router.IPv4, link))
		case l.Router != nil:
			lines = append(lines, fmt.Sprintf("route add %s via %s dev %s", pfx, l.Router.IPv6, link))
		default:
			lines = append(lines, fmt.Sprintf("route add %s dev %s", pfx, link))
		}
	}
	return ipBatch(ctx, "", lines)
}

// configureHost sets one host's sysctls, addresses and routes.
func (l *Lab) configureHost(ctx context.Context, h *Host) error {
	p := plan{l.Index}
	isRouter := h == l.Router
	ifaces := []string{"eth0"}
	if isRouter {
		ifaces = append(ifaces, "eth1")
	}
	if err := writeSysctls(h.Netns, hostSysctls(ifaces, isRouter), nil); err != nil {
		return err
	}
	bits4, bits6 := 24, 64
	lines := []string{
		"link set lo up",
		fmt.Sprintf("addr add %s/%d dev eth0", h.IPv4, bits4),
		fmt.Sprintf("addr add %s/%d dev eth0 nodad", h.IPv6, bits6),
		"link set eth0 up",
	}
	switch {
	case isRouter:
		lines = append(lines,
			fmt.Sprintf("addr add %s/24 dev eth1", p.far4(hostFarRouter)),
			fmt.Sprintf("addr add %s/64 dev eth1 nodad", p.far6(hostFarRouter)),
			"link set eth1 up")
	case h == l.Far:
		// The far client's only link leads to the router.
		lines = append(lines,
			fmt.Sprintf("route add default via %s", p.far4(hostFarRouter)),
			fmt.Sprintf("route add default via %s", p.far6(hostFarRouter)))
	case l.Router != nil:
		// Nodes and client answer the far client through the router.
		lines = append(lines,
			fmt.Sprintf("route add %s via %s", l.FarSubnet4, l.Router.IPv4),
			fmt.Sprintf("route add %s via %s", l.FarSubnet6, l.Router.IPv6))
	}
	if err := ipBatch(ctx, h.Netns, lines); err != nil {
		return err
	}
	if l.isNode(h) {
		if err := nftIn(ctx, h.Netns, lbTable); err != nil {
			return err
		}
	}
	return nil
}

// Exec runs a command inside h's namespace (the root namespace when h is nil)
// and returns its combined output; the error includes the output.
func (l *Lab) Exec(ctx context.Context, h *Host, args ...string) ([]byte, error) {
	if len(args) == 0 {
		return nil, errors.New("exec: no command")
	}
	var cmd *exec.Cmd
	if h == nil {
		cmd = exec.CommandContext(ctx, args[0], args[1:]...)
	} else {
		cmd = exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", h.Netns}, args...)...)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%s: %s: %w: %s", h.label(), strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return out, nil
}

// Cut isolates h as if its cable were pulled: drops in h's namespace (an inet
// table on input and output at priority -300, loopback spared) and, because
// raw ARP/NDP sockets bypass those hooks, drops of every frame to or from h's
// bridge port in the switch. Cutting twice is the same as once.
func (l *Lab) Cut(h *Host) error {
	ctx := context.Background()
	script := `table inet kl_cut {}
flush table inet kl_cut
table inet kl_cut {
	chain cutin { type filter hook input priority -300; policy accept; iifname != "lo" drop; }
	chain cutout { type filter hook output priority -300; policy accept; oifname != "lo" drop; }
}
`
	if err := nftIn(ctx, h.Netns, script); err != nil {
		return fmt.Errorf("cutting %s: %w", h.Name, err)
	}
	if l.onBridge(h) {
		t := "kl_cut_" + h.Name
		script := fmt.Sprintf(`table bridge %[1]s {}
flush table bridge %[1]s
table bridge %[1]s {
	chain cutfwd { type filter hook forward priority -300; policy accept; iifname %[2]q drop; oifname %[2]q drop; }
}
`, t, port(h))
		if err := nftIn(ctx, plan{l.Index}.netns("sw"), script); err != nil {
			return fmt.Errorf("cutting %s at the switch: %w", h.Name, err)
		}
	}
	return nil
}

// Heal undoes Cut; healing a host that is not cut does nothing.
func (l *Lab) Heal(h *Host) error {
	ctx := context.Background()
	if _, err := run(ctx, "", "ip", "netns", "exec", h.Netns, "nft", "delete", "table", "inet", "kl_cut"); err != nil && !notFound(err) {
		return fmt.Errorf("healing %s: %w", h.Name, err)
	}
	if l.onBridge(h) {
		if _, err := run(ctx, "", "ip", "netns", "exec", plan{l.Index}.netns("sw"), "nft", "delete", "table", "bridge", "kl_cut_"+h.Name); err != nil && !notFound(err) {
			return fmt.Errorf("healing %s at the switch: %w", h.Name, err)
		}
	}
	return nil
}

// Expose makes every node forward vip:port to its own backend
// (node IP:8080), standing in for kube-proxy. The kernel does not answer ARP
// or NDP for the VIP, so traffic reaches a node only through whoever
// announces it (the speaker, or a static neighbour entry in a test).
func (l *Lab) Expose(ctx context.Context, vip netip.Addr, port int) error {
	return l.exposeOp(ctx, "add", vip, port)
}

// Unexpose removes what Expose added; a VIP that is not exposed is fine.
func (l *Lab) Unexpose(ctx context.Context, vip netip.Addr, port int) error {
	return l.exposeOp(ctx, "delete", vip, port)
}

func (l *Lab) exposeOp(ctx context.Context, op string, vip netip.Addr, port int) error {
	if !vip.IsValid() || port <= 0 || port > 65535 {
		return fmt.Errorf("expose: invalid VIP %v port %d", vip, port)
	}
	vip = vip.Unmap()
	for _, n := range l.Nodes {
		set, target := "vip4", n.IPv4
		if vip.Is6() {
			set, target = "vip6", n.IPv6
		}
		elem := fmt.Sprintf("{ %s . %d : %s . %d }", vip, port, target, BackendPort)
		if op == "delete" {
			elem = fmt.Sprintf("{ %s . %d }", vip, port)
		}
		_, err := run(ctx, "", "ip", "netns", "exec", n.Netns, "nft", op, "element", "inet", "kl_lb", set, elem)
		if err != nil && !(op == "delete" && notFound(err)) {
			return fmt.Errorf("%s %s:%d on %s: %w", op, vip, port, n.Name, err)
		}
	}
	return nil
}

type neighJSON struct {
	Dst    string   `json:"dst"`
	LLAddr string   `json:"lladdr"`
	State  []string `json:"state"`
}

// Neighbor returns the link-layer address in h's neighbour table for ip on
// its eth0, or an error wrapping ErrNoNeighbor when there is none (or it is
// INCOMPLETE/FAILED).
func (l *Lab) Neighbor(ctx context.Context, h *Host, ip netip.Addr) (net.HardwareAddr, error) {
	out, err := run(ctx, "", "ip", "-n", h.Netns, "-j", "neigh", "show", "to", ip.Unmap().String(), "dev", h.Interface)
	if err != nil {
		return nil, err
	}
	var entries []neighJSON
	if len(bytes.TrimSpace(out)) > 0 {
		if err := json.Unmarshal(out, &entries); err != nil {
			return nil, fmt.Errorf("parsing ip neigh output %q: %w", out, err)
		}
	}
	for _, e := range entries {
		if e.LLAddr == "" {
			continue
		}
		mac, err := net.ParseMAC(e.LLAddr)
		if err != nil {
			return nil, fmt.Errorf("neighbour %s on %s: %w", ip, h.Name, err)
		}
		return mac, nil
	}
	return nil, fmt.Errorf("%s on %s: %w", ip, h.Name, ErrNoNeighbor)
}

// SetNeighbor installs a permanent neighbour entry ip -> mac on h's eth0,
// e.g. to send a client's VIP traffic to a chosen node.
func (l *Lab) SetNeighbor(ctx context.Context, h *Host, ip netip.Addr, mac net.HardwareAddr) error {
	_, err := run(ctx, "", "ip", "-n", h.Netns, "neigh", "replace", ip.Unmap().String(), "lladdr", mac.String(), "dev", h.Interface, "nud", "permanent")
	return err
}

// FlushNeighbor removes h's neighbour entry for ip, if any, so that the next
// packet resolves it afresh.
func (l *Lab) FlushNeighbor(ctx context.Context, h *Host, ip netip.Addr) error {
	_, err := run(ctx, "", "ip", "-n", h.Netns, "neigh", "del", ip.Unmap().String(), "dev", h.Interface)
	if notFound(err) {
		return nil
	}
	return err
}
