package layer2

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keeperlb/keeperlb/internal/netns"
	"github.com/keeperlb/keeperlb/internal/netns/netnstest"
)

// These tests run the Announcer against real Linux kernels: each "host" is a
// network namespace whose eth0 is a veth into a bridge namespace, and the
// client's own kernel does the ARP and NDP resolution, exactly as a router
// or another host would. Addresses come from 198.18.0.0/15 and
// 2001:db8::/32 only, with a random /24 per lab.

func TestMain(m *testing.M) {
	if os.Geteuid() == 0 {
		if reaped, err := netnstest.ReapOrphans(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		} else if len(reaped) > 0 {
			fmt.Fprintf(os.Stderr, "reaped orphaned lab namespaces: %v\n", reaped)
		}
	}
	os.Exit(m.Run())
}

// fastTakeover keeps the repeated bursts quick so tests take milliseconds.
var fastTakeover = Options{GratuitousRepeats: 3, GratuitousInterval: 50 * time.Millisecond}

type host struct {
	ns  string
	mac net.HardwareAddr
}

type lab struct {
	t      *testing.T
	k      int // third octet of this lab's addresses
	bridge string
	client host
	nodes  []host
}

func (l *lab) v4(last int) netip.Addr {
	return netip.AddrFrom4([4]byte{198, 18, byte(l.k), byte(last)})
}

func (l *lab) v6(last int) netip.Addr {
	return netip.MustParseAddr(fmt.Sprintf("2001:db8:%d::%d", l.k, last))
}

func (l *lab) mac(host int) net.HardwareAddr {
	return net.HardwareAddr{0x02, 0x00, 0xc6, 0x12, byte(l.k), byte(host)}
}

// newLab builds a bridge, a client (198.18.K.1, 2001:db8:K::1) and n nodes.
// Node 1 has addresses (.11); the others have none at all, not even IPv6
// link-local (IPv6 is off on their eth0), since the announcer must not need
// any.
func newLab(t *testing.T, nodes int) *lab {
	t.Helper()
	netnstest.Require(t)
	l := &lab{t: t, k: 200 + rand.IntN(51)}
	l.bridge = netnstest.New(t, netnstest.UniqueName("br"))
	netnstest.IP(t, "-n", l.bridge, "link", "add", "br0", "type", "bridge",
		"stp_state", "0", "forward_delay", "0", "mcast_snooping", "0")
	netnstest.IP(t, "-n", l.bridge, "link", "set", "br0", "up")

	l.client = l.addHost("c", "c", l.mac(1))
	netnstest.IP(t, "-n", l.client.ns, "addr", "add", l.v4(1).String()+"/24", "dev", "eth0")
	netnstest.IP(t, "-n", l.client.ns, "addr", "add", l.v6(1).String()+"/64", "dev", "eth0", "nodad")
	clientSysctls(t, l.client.ns)

	for i := 1; i <= nodes; i++ {
		n := l.addHost(fmt.Sprintf("n%d", i), fmt.Sprintf("n%d", i), l.mac(10+i))
		if i == 1 {
			netnstest.IP(t, "-n", n.ns, "addr", "add", l.v4(11).String()+"/24", "dev", "eth0")
			netnstest.IP(t, "-n", n.ns, "addr", "add", l.v6(11).String()+"/64", "dev", "eth0", "nodad")
		} else {
			netnstest.Sysctl(t, n.ns, "net.ipv6.conf.eth0.disable_ipv6", "1")
		}
		l.nodes = append(l.nodes, n)
	}
	return l
}

// addHost creates a namespace whose eth0 is a veth into the bridge.
func (l *lab) addHost(suffix, port string, mac net.HardwareAddr) host {
	t := l.t
	ns := netnstest.New(t, netnstest.UniqueName(suffix))
	netnstest.IP(t, "-n", l.bridge, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns)
	netnstest.IP(t, "-n", l.bridge, "link", "set", port, "master", "br0", "up")
	netnstest.Sysctl(t, ns, "net.ipv6.conf.eth0.accept_dad", "0")
	netnstest.IP(t, "-n", ns, "link", "set", "eth0", "address", mac.String(), "up")
	return host{ns: ns, mac: mac}
}

// clientSysctls pins what the tests rely on instead of inheriting it: no
// unsolicited entries are created (arp_accept=0, accept_untracked_na=0),
// gratuitous ARP and unsolicited NA are not dropped, and a failed
// resolution gives up after about 300 ms instead of 3 s.
func clientSysctls(t *testing.T, ns string) {
	for _, kv := range [][2]string{
		{"net.ipv4.conf.all.arp_accept", "0"},
		{"net.ipv4.conf.eth0.arp_accept", "0"},
		{"net.ipv4.conf.all.drop_gratuitous_arp", "0"},
		{"net.ipv4.conf.eth0.drop_gratuitous_arp", "0"},
		{"net.ipv6.conf.eth0.drop_unsolicited_na", "0"},
		{"net.ipv6.conf.eth0.accept_untracked_na", "0"},
		{"net.ipv4.neigh.eth0.retrans_time_ms", "100"},
		{"net.ipv6.neigh.eth0.retrans_time_ms", "100"},
	} {
		netnstest.Sysctl(t, ns, kv[0], kv[1])
	}
}

// testLog sends the announcer's log to the test log and keeps it for
// assertions.
type testLog struct {
	t  *testing.T
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *testLog) Write(p []byte) (int, error) {
	w.mu.Lock()
	w.b.Write(p)
	w.mu.Unlock()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func (w *testLog) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

type node struct {
	*Announcer
	reg *prometheus.Registry
	log *testLog
}

// announcer starts an Announcer inside namespace ns, as the speaker runs in
// its node's namespace, and closes it when the test ends.
func announcer(t *testing.T, ns string, opts Options) *node {
	t.Helper()
	n := &node{reg: prometheus.NewRegistry(), log: &testLog{t: t}}
	logger := slog.New(slog.NewTextHandler(n.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	err := netns.Do(ns, func() error {
		var err error
		n.Announcer, err = New(logger, n.reg, opts)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Errorf("close announcer: %v", err)
		}
	})
	return n
}

func (n *node) set(t *testing.T, owned ...Announcement) {
	t.Helper()
	if err := n.Set(owned); err != nil {
		t.Fatal(err)
	}
}

// counter reads metallb_layer2_<name>{ip}.
func (n *node) counter(t *testing.T, name string, ip netip.Addr) float64 {
	t.Helper()
	mfs, err := n.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "metallb_layer2_"+name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "ip" && lp.GetValue() == ip.String() {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

func on(ip netip.Addr, ifs ...string) Announcement {
	if len(ifs) == 0 {
		ifs = []string{"eth0"}
	}
	return Announcement{IP: ip, Interfaces: ifs}
}

// poke makes the kernel of ns resolve ip on its own, by sending one UDP
// datagram to it (port 9, discard): the datagram waits for the neighbour
// entry while the kernel sends ARP requests or neighbor solicitations.
func poke(t *testing.T, ns string, ip netip.Addr) {
	t.Helper()
	err := netns.Do(ns, func() error {
		c, err := net.Dial("udp", netip.AddrPortFrom(ip, 9).String())
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write([]byte{0})
		return err
	})
	if err != nil {
		t.Fatalf("send to %v from %s: %v", ip, ns, err)
	}
}

type neighbour struct {
	Lladdr string   `json:"lladdr"`
	State  []string `json:"state"`
}

func (n neighbour) String() string {
	if n.State == nil {
		return "no entry"
	}
	return fmt.Sprintf("%s %v", n.Lladdr, n.State)
}

// neigh reads the kernel's neighbour entry for ip on eth0 of ns.
func neigh(t *testing.T, ns string, ip netip.Addr) neighbour {
	t.Helper()
	out := netnstest.IP(t, "-j", "-n", ns, "neigh", "show", "to", ip.String(), "dev", "eth0")
	var ns2 []neighbour
	if strings.TrimSpace(out) != "" {
		if err := json.Unmarshal([]byte(out), &ns2); err != nil {
			t.Fatalf("parse ip neigh output %q: %v", out, err)
		}
	}
	if len(ns2) == 0 {
		return neighbour{}
	}
	return ns2[0]
}

// waitNeigh polls the neighbour entry until done says so, and fails the
// test after 5 s with the last entry seen.
func waitNeigh(t *testing.T, ns string, ip netip.Addr, what string, done func(neighbour) bool) neighbour {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := neigh(t, ns, ip)
		if done(n) {
			return n
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: neighbour entry of %v in %s is %v after 5s", what, ip, ns, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// resolved waits for the client's kernel to settle ip and requires the
// answer to be mac.
func resolvesTo(t *testing.T, ns string, ip netip.Addr, mac net.HardwareAddr) {
	t.Helper()
	poke(t, ns, ip)
	n := waitNeigh(t, ns, ip, "resolve", settled)
	if n.Lladdr != mac.String() {
		t.Fatalf("%s resolved %v to %v, want %v", ns, ip, n, mac)
	}
}

// unanswered asks the kernel of ns to resolve ip and requires it to fail.
func unanswered(t *testing.T, ns string, ip netip.Addr) {
	t.Helper()
	poke(t, ns, ip)
	n := waitNeigh(t, ns, ip, "resolve", settled)
	if !slices.Contains(n.State, "FAILED") || n.Lladdr != "" {
		t.Fatalf("%s resolved %v to %v, want no answer (FAILED)", ns, ip, n)
	}
}

// settled is true once the kernel has finished resolving: anything but no
// entry or INCOMPLETE.
func settled(n neighbour) bool {
	return n.State != nil && !slices.Contains(n.State, "INCOMPLETE")
}

func TestLabAnswersOwnedIPs(t *testing.T) {
	t.Parallel()
	l := newLab(t, 2)
	for _, nodeIdx := range []int{0, 1} {
		t.Run(fmt.Sprintf("node%d", nodeIdx+1), func(t *testing.T) {
			n := announcer(t, l.nodes[nodeIdx].ns, fastTakeover)
			vip4, vip6 := l.v4(100+nodeIdx), l.v6(100+nodeIdx)
			other4, other6 := l.v4(110+nodeIdx), l.v6(110+nodeIdx)
			n.set(t, on(vip4), on(vip6))

			resolvesTo(t, l.client.ns, vip4, l.nodes[nodeIdx].mac)
			resolvesTo(t, l.client.ns, vip6, l.nodes[nodeIdx].mac)
			unanswered(t, l.client.ns, other4)
			unanswered(t, l.client.ns, other6)

			for _, ip := range []netip.Addr{vip4, vip6} {
				if got := n.counter(t, "requests_received", ip); got < 1 {
					t.Errorf("requests_received{ip=%v} = %v, want >= 1", ip, got)
				}
				if got := n.counter(t, "responses_sent", ip); got < 1 {
					t.Errorf("responses_sent{ip=%v} = %v, want >= 1", ip, got)
				}
			}
			for _, ip := range []netip.Addr{other4, other6} {
				if got := n.counter(t, "requests_received", ip); got != 0 {
					t.Errorf("requests_received{ip=%v} = %v for an IP not owned, want no series", ip, got)
				}
			}
		})
	}
}

// Independent checks with the standard tools: arping and ndisc6 read the
// answer themselves, and arping -D sees the VIP defended against a
// duplicate address probe.
func TestLabTools(t *testing.T) {
	t.Parallel()
	netnstest.Require(t, "arping", "ndisc6")
	l := newLab(t, 1)
	n := announcer(t, l.nodes[0].ns, fastTakeover)
	vip4, vip6 := l.v4(100), l.v6(100)
	n.set(t, on(vip4), on(vip6))

	out, err := netnstest.Run("ip", "netns", "exec", l.client.ns, "arping", "-c", "1", "-w", "2", "-I", "eth0", vip4.String())
	if err != nil || !strings.Contains(strings.ToUpper(out), strings.ToUpper(l.nodes[0].mac.String())) {
		t.Errorf("arping: %v\n%s", err, out)
	}
	out, err = netnstest.Run("ip", "netns", "exec", l.client.ns, "ndisc6", "-1", "-r", "3", "-w", "500", vip6.String(), "eth0")
	if err != nil || !strings.Contains(strings.ToUpper(out), strings.ToUpper(l.nodes[0].mac.String())) {
		t.Errorf("ndisc6: %v\n%s", err, out)
	}
	// arping -D exits 1 when somebody answers the probe for the address.
	out, err = netnstest.Run("ip", "netns", "exec", l.client.ns, "arping", "-D", "-c", "2", "-w", "2", "-I", "eth0", vip4.String())
	if err == nil {
		t.Errorf("arping -D found %v free; the announcer must defend it\n%s", vip4, out)
	}
	out, err = netnstest.Run("ip", "netns", "exec", l.client.ns, "arping", "-D", "-c", "2", "-w", "1", "-I", "eth0", l.v4(120).String())
	if err != nil {
		t.Errorf("arping -D found %v taken, but nobody owns it: %v\n%s", l.v4(120), err, out)
	}
}

// A client configuring an owned IPv6 VIP on itself fails duplicate address
// detection, because the announcer answers the DAD probe.
func TestLabDefendsAgainstIPv6DAD(t *testing.T) {
	t.Parallel()
	l := newLab(t, 1)
	n := announcer(t, l.nodes[0].ns, fastTakeover)
	vip6 := l.v6(100)
	n.set(t, on(vip6))
	netnstest.Sysctl(t, l.client.ns, "net.ipv6.conf.eth0.accept_dad", "1")
	netnstest.Sysctl(t, l.client.ns, "net.ipv6.conf.eth0.dad_transmits", "1")
	netnstest.IP(t, "-n", l.client.ns, "addr", "add", vip6.String()+"/64", "dev", "eth0")
	deadline := time.Now().Add(5 * time.Second)
	for {
		out := netnstest.IP(t, "-n", l.client.ns, "-6", "addr", "show", "dev", "eth0")
		if strings.Contains(out, "dadfailed") {
			break
		}
		if !strings.Contains(out, "tentative") || time.Now().After(deadline) {
			t.Fatalf("client's DAD for %v did not fail:\n%s", vip6, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestLabStopsAnsweringRemovedIPs(t *testing.T) {
	t.Parallel()
	l := newLab(t, 1)
	n := announcer(t, l.nodes[0].ns, fastTakeover)
	keep4, gone4, gone6 := l.v4(100), l.v4(101), l.v6(101)
	n.set(t, on(keep4), on(gone4), on(gone6))
	resolvesTo(t, l.client.ns, gone4, l.nodes[0].mac)
	resolvesTo(t, l.client.ns, gone6, l.nodes[0].mac)

	n.set(t, on(keep4))
	asked := n.counter(t, "requests_received", gone4)
	netnstest.IP(t, "-n", l.client.ns, "neigh", "flush", "dev", "eth0")
	unanswered(t, l.client.ns, gone4)
	unanswered(t, l.client.ns, gone6)
	resolvesTo(t, l.client.ns, keep4, l.nodes[0].mac)
	if got := n.counter(t, "requests_received", gone4); got != asked {
		t.Errorf("requests_received{ip=%v} went from %v to %v after the IP was removed", gone4, asked, got)
	}

	// Empty set: nothing is answered, all sockets closed.
	n.set(t)
	netnstest.IP(t, "-n", l.client.ns, "neigh", "flush", "dev", "eth0")
	unanswered(t, l.client.ns, keep4)
}

// The failover that matters: node 1 owned the VIPs and the client talked to
// it; node 2 takes over, and the client's existing entries switch to node
// 2's MAC from the gratuitous announcements alone, without the client
// asking (node 2 receives no request for them).
func TestLabTakeover(t *testing.T) {
	t.Parallel()
	l := newLab(t, 2)
	n1 := announcer(t, l.nodes[0].ns, fastTakeover)
	n2 := announcer(t, l.nodes[1].ns, fastTakeover)
	vip4, vip6 := l.v4(100), l.v6(100)
	n1.set(t, on(vip4), on(vip6))
	resolvesTo(t, l.client.ns, vip4, l.nodes[0].mac)
	resolvesTo(t, l.client.ns, vip6, l.nodes[0].mac)

	n1.set(t)
	n1Sent := n1.counter(t, "gratuitous_sent", vip4)
	n2.set(t, on(vip4), on(vip6))
	for _, ip := range []netip.Addr{vip4, vip6} {
		got := waitNeigh(t, l.client.ns, ip, "takeover", func(n neighbour) bool { return n.Lladdr == l.nodes[1].mac.String() })
		t.Logf("client entry for %v after takeover: %v", ip, got)
		if asked := n2.counter(t, "requests_received", ip); asked != 0 {
			t.Errorf("node 2 was asked for %v %v times; the switch must come from its announcements", ip, asked)
		}
	}

	// Three bursts: a request and a reply each for IPv4, one advertisement
	// each for IPv6; then no more (no refresh configured).
	waitCounter(t, n2, "gratuitous_sent", vip4, 6)
	waitCounter(t, n2, "gratuitous_sent", vip6, 3)
	time.Sleep(4 * fastTakeover.GratuitousInterval)
	if got := n2.counter(t, "gratuitous_sent", vip4); got != 6 {
		t.Errorf("gratuitous_sent{ip=%v} = %v after the bursts, want 6", vip4, got)
	}
	if got := n2.counter(t, "gratuitous_sent", vip6); got != 3 {
		t.Errorf("gratuitous_sent{ip=%v} = %v after the bursts, want 3", vip6, got)
	}
	// Node 1's repeats still pending when it lost the VIPs were cancelled:
	// one more would take the clients back to it.
	if got := n1.counter(t, "gratuitous_sent", vip4); got != n1Sent || got < 2 {
		t.Errorf("node 1 gratuitous_sent{ip=%v} went from %v to %v after it gave the VIP up", vip4, n1Sent, got)
	}
}

// Reannounce sends a fresh takeover burst for IPs already owned: after a
// partition heals, the node that kept an IP must pull back a client that
// another node's announcements moved away meanwhile.
func TestLabReannounce(t *testing.T) {
	t.Parallel()
	l := newLab(t, 2)
	n1 := announcer(t, l.nodes[0].ns, fastTakeover)
	n2 := announcer(t, l.nodes[1].ns, fastTakeover)
	vip := l.v4(101)
	n1.set(t, on(vip))
	resolvesTo(t, l.client.ns, vip, l.nodes[0].mac)
	// Node 2 takes the VIP over while node 1 keeps it (a partition).
	n2.set(t, on(vip))
	waitNeigh(t, l.client.ns, vip, "node 2's takeover", func(n neighbour) bool { return n.Lladdr == l.nodes[1].mac.String() })
	waitCounter(t, n1, "gratuitous_sent", vip, 6)
	// Healed: node 2 gives it up, node 1 says again that it owns it.
	n2.set(t)
	// Past the client's ARP locktime (1 s), which ignores a new owner
	// announced within a second of the last update.
	time.Sleep(1200 * time.Millisecond)
	if err := n1.Reannounce(); err != nil {
		t.Fatal(err)
	}
	waitNeigh(t, l.client.ns, vip, "node 1's reannouncement", func(n neighbour) bool { return n.Lladdr == l.nodes[0].mac.String() })
	waitCounter(t, n1, "gratuitous_sent", vip, 12)
}

// An isolated node sends one burst per takeover and drops the repeats
// still due: it may be the node that is cut off, whose repeats would reach
// the clients only after the heal, pulling them away from the real owners.
func TestLabIsolated(t *testing.T) {
	t.Parallel()
	l := newLab(t, 1)
	slow := Options{GratuitousRepeats: 3, GratuitousInterval: 300 * time.Millisecond}
	n := announcer(t, l.nodes[0].ns, slow)
	a, b, c := l.v4(102), l.v4(103), l.v4(104)
	n.set(t, on(a))
	// One burst is a request and a reply; two repeats are due for a.
	if got := n.counter(t, "gratuitous_sent", a); got != 2 {
		t.Fatalf("gratuitous_sent{ip=%v} = %v after the takeover, want 2", a, got)
	}
	if err := n.SetIsolated(true); err != nil {
		t.Fatal(err)
	}
	n.set(t, on(a), on(b))
	time.Sleep(4 * slow.GratuitousInterval)
	for _, ip := range []netip.Addr{a, b} {
		if got := n.counter(t, "gratuitous_sent", ip); got != 2 {
			t.Errorf("isolated: gratuitous_sent{ip=%v} = %v, want 2 (one burst, no repeats)", ip, got)
		}
	}
	// Peers heard again: takeovers repeat as usual.
	if err := n.SetIsolated(false); err != nil {
		t.Fatal(err)
	}
	n.set(t, on(a), on(b), on(c))
	waitCounter(t, n, "gratuitous_sent", c, 6)
	for _, ip := range []netip.Addr{a, b} {
		if got := n.counter(t, "gratuitous_sent", ip); got != 2 {
			t.Errorf("gratuitous_sent{ip=%v} = %v after isolation ended, want still 2", ip, got)
		}
	}
}

func waitCounter(t *testing.T, n *node, name string, ip netip.Addr, want float64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for n.counter(t, name, ip) != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s{ip=%v} = %v after 5s, want %v", name, ip, n.counter(t, name, ip), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// addSide gives node 1 a second interface, eth1, on a separate segment
// shared with a second client (198.19.K.1). Neither node interface there
// has an address.
func (l *lab) addSide(t *testing.T) host {
	side := host{ns: netnstest.New(t, netnstest.UniqueName("x")), mac: l.mac(21)}
	netnstest.IP(t, "-n", l.nodes[0].ns, "link", "add", "eth1", "type", "veth", "peer", "name", "eth0", "netns", side.ns)
	netnstest.Sysctl(t, side.ns, "net.ipv6.conf.eth0.accept_dad", "0")
	netnstest.IP(t, "-n", side.ns, "link", "set", "eth0", "address", side.mac.String(), "up")
	netnstest.IP(t, "-n", side.ns, "addr", "add", fmt.Sprintf("198.19.%d.1/24", l.k), "dev", "eth0")
	clientSysctls(t, side.ns)
	netnstest.IP(t, "-n", l.nodes[0].ns, "link", "set", "eth1", "address", l.mac(31).String(), "up")
	return side
}

// Interface selection on a real namespace: with the advertisement naming
// eth1 only, the VIP is answered there and not on eth0.
func TestLabAllowedInterfaces(t *testing.T) {
	t.Parallel()
	l := newLab(t, 1)
	side := l.addSide(t)
	var all, allowed []string
	err := netns.Do(l.nodes[0].ns, func() error {
		ifs, err := SystemInterfaces()
		all, allowed = Eligible(ifs, nil), Eligible(ifs, []string{"eth1"})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(all, []string{"eth0", "eth1"}) || !slices.Equal(allowed, []string{"eth1"}) {
		t.Fatalf("Eligible = %v by default, %v with [eth1]; want [eth0 eth1] and [eth1]", all, allowed)
	}
	n := announcer(t, l.nodes[0].ns, fastTakeover)
	vip := netip.MustParseAddr(fmt.Sprintf("198.19.%d.100", l.k))
	onLab := l.v4(100)
	n.set(t, on(vip, allowed...), on(onLab, allowed...))
	resolvesTo(t, side.ns, vip, l.mac(31))
	netnstest.IP(t, "-n", l.client.ns, "route", "add", fmt.Sprintf("198.19.%d.0/24", l.k), "dev", "eth0")
	unanswered(t, l.client.ns, vip)
	unanswered(t, l.client.ns, onLab)
}

// SystemInterfaces reads the calling thread's namespace, with masters,
// NOARP and down interfaces as the kernel reports them.
func TestLabSystemInterfaces(t *testing.T) {
	t.Parallel()
	netnstest.Require(t)
	ns := netnstest.New(t, netnstest.UniqueName("if"))
	for _, args := range [][]string{
		{"link", "add", "eth0", "type", "veth", "peer", "name", "veth-a"},
		{"link", "add", "p0", "type", "veth", "peer", "name", "veth-b"},
		{"link", "add", "na0", "type", "veth", "peer", "name", "veth-c"},
		{"link", "add", "dn0", "type", "veth", "peer", "name", "veth-d"},
		{"link", "add", "br0", "type", "bridge"},
		{"link", "set", "p0", "master", "br0"},
		{"link", "set", "na0", "arp", "off"},
	} {
		netnstest.IP(t, append([]string{"-n", ns}, args...)...)
	}
	for _, name := range []string{"eth0", "veth-a", "p0", "veth-b", "na0", "veth-c", "veth-d", "br0"} {
		netnstest.IP(t, "-n", ns, "link", "set", name, "up")
	}
	var ifs []Interface
	if err := netns.Do(ns, func() error {
		var err error
		ifs, err = SystemInterfaces()
		return err
	}); err != nil {
		t.Fatal(err)
	}
	byName := map[string]Interface{}
	for _, i := range ifs {
		byName[i.Name] = i
	}
	if len(ifs) != 10 {
		t.Errorf("SystemInterfaces found %d interfaces, want 10: %+v", len(ifs), ifs)
	}
	if i := byName["lo"]; !i.Loopback || !i.Up {
		t.Errorf("lo = %+v", i)
	}
	if i := byName["p0"]; i.Master != "br0" {
		t.Errorf("p0 = %+v, want master br0", i)
	}
	if i := byName["na0"]; !i.NoARP {
		t.Errorf("na0 = %+v, want NoARP", i)
	}
	if i := byName["dn0"]; i.Up {
		t.Errorf("dn0 = %+v, want down", i)
	}
	if i := byName["eth0"]; !i.Up || len(i.MAC) != 6 || i.Master != "" {
		t.Errorf("eth0 = %+v", i)
	}
	got := Eligible(ifs, nil)
	slices.Sort(got)
	if !slices.Equal(got, []string{"br0", "eth0"}) {
		t.Errorf("Eligible = %v, want [br0 eth0]", got)
	}
	if got := Eligible(ifs, []string{"veth-a", "p0", "na0", "dn0", "missing"}); !slices.Equal(got, []string{"veth-a"}) {
		t.Errorf("Eligible with a list = %v, want [veth-a]", got)
	}
}

// An interface that disappears is logged and retried, and answered on again
// once it is back; one that goes down and up is announced again.
func TestLabInterfaceRemovedAndBack(t *testing.T) {
	t.Parallel()
	l := newLab(t, 1)
	side := l.addSide(t)
	n := announcer(t, l.nodes[0].ns, fastTakeover)
	vip := netip.MustParseAddr(fmt.Sprintf("198.19.%d.100", l.k))
	n.set(t, on(vip, "eth1"), on(l.v4(100), "eth0"))
	resolvesTo(t, side.ns, vip, l.mac(31))
	waitCounter(t, n, "gratuitous_sent", vip, 6)

	netnstest.IP(t, "-n", l.nodes[0].ns, "link", "del", "eth1")
	waitLog(t, n.log, `(socket failed; reopening|reopening interface)" interface=eth1`)
	// eth0 keeps working meanwhile.
	resolvesTo(t, l.client.ns, l.v4(100), l.nodes[0].mac)

	// Back, with a new MAC: answered with the new one, and announced anew.
	side = l.addSide2(t, side)
	waitLog(t, n.log, `"interface usable again" interface=eth1`)
	resolvesTo(t, side.ns, vip, l.mac(32))
	waitCounter(t, n, "gratuitous_sent", vip, 12)

	// Down and up: the switch may have forgotten us, so announce again.
	netnstest.IP(t, "-n", l.nodes[0].ns, "link", "set", "eth0", "down")
	waitLog(t, n.log, `(socket failed; reopening|reopening interface)" interface=eth0`)
	netnstest.IP(t, "-n", l.nodes[0].ns, "link", "set", "eth0", "up")
	waitLog(t, n.log, `"interface usable again" interface=eth0`)
	waitCounter(t, n, "gratuitous_sent", l.v4(100), 12)
	netnstest.IP(t, "-n", l.client.ns, "neigh", "flush", "dev", "eth0")
	resolvesTo(t, l.client.ns, l.v4(100), l.nodes[0].mac)
}

// addSide2 re-creates node 1's eth1 into the same side namespace, with MAC
// .32.
func (l *lab) addSide2(t *testing.T, side host) host {
	netnstest.IP(t, "-n", l.nodes[0].ns, "link", "add", "eth1", "type", "veth", "peer", "name", "eth0", "netns", side.ns)
	netnstest.IP(t, "-n", side.ns, "link", "set", "eth0", "address", side.mac.String(), "up")
	netnstest.IP(t, "-n", side.ns, "addr", "add", fmt.Sprintf("198.19.%d.1/24", l.k), "dev", "eth0")
	clientSysctls(t, side.ns)
	netnstest.IP(t, "-n", l.nodes[0].ns, "link", "set", "eth1", "address", l.mac(32).String(), "up")
	return side
}

func waitLog(t *testing.T, log *testLog, pattern string) {
	t.Helper()
	re := regexp.MustCompile(pattern)
	deadline := time.Now().Add(5 * time.Second)
	for !re.MatchString(log.String()) {
		if time.Now().After(deadline) {
			t.Fatalf("log never matched %q", pattern)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Refresh re-announces owned IPs periodically after the takeover bursts.
func TestLabRefresh(t *testing.T) {
	t.Parallel()
	l := newLab(t, 1)
	n := announcer(t, l.nodes[0].ns, Options{GratuitousRepeats: 1, GratuitousInterval: time.Second, Refresh: 50 * time.Millisecond})
	vip := l.v4(100)
	n.set(t, on(vip))
	// The takeover burst and at least three refreshes.
	deadline := time.Now().Add(5 * time.Second)
	for n.counter(t, "gratuitous_sent", vip) < 8 {
		if time.Now().After(deadline) {
			t.Fatalf("gratuitous_sent{ip=%v} = %v after 5s, want >= 8", vip, n.counter(t, "gratuitous_sent", vip))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Each owned IPv6 address's solicited-node group is joined at the link
// layer (a NIC with multicast filtering would drop the solicitations
// otherwise) and left when no owned IP needs it any more; two IPs whose low
// 24 bits agree share one group.
func TestLabSolicitedNodeGroups(t *testing.T) {
	t.Parallel()
	netnstest.Require(t)
	ns := netnstest.New(t, netnstest.UniqueName("mc"))
	netnstest.IP(t, "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", "peer0")
	netnstest.Sysctl(t, ns, "net.ipv6.conf.eth0.disable_ipv6", "1")
	netnstest.IP(t, "-n", ns, "link", "set", "eth0", "up")
	k := 200 + rand.IntN(51)
	a := netip.MustParseAddr(fmt.Sprintf("2001:db8:%d::100", k))
	b := netip.MustParseAddr(fmt.Sprintf("2001:db8:%d:1::100", k))
	c := netip.MustParseAddr(fmt.Sprintf("2001:db8:%d::101", k))
	groups := func() string { return netnstest.IP(t, "-n", ns, "maddr", "show", "dev", "eth0") }
	const g100, g101 = "33:33:ff:00:01:00", "33:33:ff:00:01:01"

	n := announcer(t, ns, fastTakeover)
	n.set(t, on(a), on(b), on(c), on(netip.MustParseAddr("198.18.0.100")))
	if out := groups(); !strings.Contains(out, g100) || !strings.Contains(out, g101) {
		t.Fatalf("after owning %v, %v, %v the link groups are:\n%s", a, b, c, out)
	}
	n.set(t, on(b))
	if out := groups(); !strings.Contains(out, g100) || strings.Contains(out, g101) {
		t.Fatalf("after owning only %v the link groups are:\n%s", b, out)
	}
	n.set(t)
	if out := groups(); strings.Contains(out, g100) {
		t.Fatalf("after owning nothing the link groups are:\n%s", out)
	}
}
