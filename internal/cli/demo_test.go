package cli

import (
	"bytes"
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keeperlb/keeperlb/examples"
	"github.com/keeperlb/keeperlb/internal/lab"
	"github.com/keeperlb/keeperlb/internal/lab/labtest"
)

// buildDemoBinaries builds keeperlb, kubectl-keeperlb, keeperlb-controller
// and keeperlb-speaker from this tree into dir, as `make build` does.
func buildDemoBinaries(t *testing.T, dir string) {
	t.Helper()
	cmd := exec.Command("go", "build", "-trimpath", "-o", dir+"/", "./cmd/keeperlb", "./cmd/kubectl-keeperlb", "./cmd/keeperlb-controller", "./cmd/keeperlb-speaker")
	cmd.Dir = "../.."
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the binaries: %v\n%s", err, out)
	}
}

// runDemoBinary runs `demo` with the CLI binary cli (keeperlb or
// kubectl-keeperlb) from dir as `make demo` does (the binaries passed by
// flag) with extra flags, and returns its output.
func runDemoBinary(dir, cli string, extra ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	args := append([]string{"demo",
		"--controller-bin", filepath.Join(dir, "keeperlb-controller"),
		"--speaker-bin", filepath.Join(dir, "keeperlb-speaker")}, extra...)
	cmd := exec.CommandContext(ctx, filepath.Join(dir, cli), args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

var (
	demoLabRe       = regexp.MustCompile(`(kl-lab\d+) is up in `)
	demoIPRe        = regexp.MustCompile(`it got (198\.18\.\d+\.\d+) \(pool demo: 1 of 64 IPv4 addresses in use\)`)
	demoElectedRe   = regexp.MustCompile(`the speakers elected (node\d) to announce it \(its ServiceL2Status says node (node\d), interface eth0\)`)
	demoFirstRe     = regexp.MustCompile(`ARP: the client's kernel resolved (\S+) to \S+, the MAC address of (node\d)\n\s+HTTP 200: served by (node\d)`)
	demoFailoverRe  = regexp.MustCompile(`failover in (\d+) ms: from the kill to the first request answered by another node, (node\d)`)
	demoAfterRe     = regexp.MustCompile(`ARP: (\S+) is now at \S+, the MAC address of (node\d) .*\n\s+HTTP 200: served by (node\d); the ServiceL2Status now says node (node\d)`)
	demoKilledRe    = regexp.MustCompile(`Killing the speaker on (node\d) \(SIGKILL\)`)
	demoTakenDownRe = regexp.MustCompile(`(kl-lab\d+) removed: namespaces, processes and logs`)

	demoSessionsRe = regexp.MustCompile(`every node's BGPSessionState says Established, BFD Up .*\n\s+and FRR agrees: 3 BGP sessions established, 3 BFD sessions up`)
	demoRouteRe    = regexp.MustCompile(`router\$ ip route show (\S+)/32\n\s+\S+ .*proto bgp.*\n((?:\s+nexthop via \S+ .*\n)+)`)
	demoHopRe      = regexp.MustCompile(`nexthop via (\S+) `)
	demoSpreadRe   = regexp.MustCompile(`asks http://(\S+)/ 30 times, each on a new connection\n\s+HTTP 200 every time; served by (.*)\n`)
	demoCutRe      = regexp.MustCompile(`Cutting (node\d) off the network`)
	demoBGPFailRe  = regexp.MustCompile(`BGP failover in (\d+) ms: from the cut to (node\d)'s next hop leaving the router's route`)
	demoAfterCutRe = regexp.MustCompile(`the far client asks 30 more times: served by (.*)\n`)
	demoBackRe     = regexp.MustCompile(`(node\d) is back in the router's route after`)
)

// demoCountsOf parses "node1 11, node2 9, node3 10".
func demoCountsOf(t *testing.T, s string) map[string]int {
	t.Helper()
	got := map[string]int{}
	for _, part := range strings.Split(s, ", ") {
		name, n, ok := strings.Cut(part, " ")
		c, err := strconv.Atoi(n)
		if !ok || err != nil {
			t.Fatalf("request counts %q: bad part %q", s, part)
		}
		got[name] = c
	}
	return got
}

// demoBGPStory checks the BGP chapter: sessions and BFD up, the router's
// kernel route over the 3 nodes, the far client's requests reaching every
// node, the cut node leaving the route well before any BGP timer could
// remove it, and coming back.
func demoBGPStory(t *testing.T, out string, vip netip.Addr) {
	t.Helper()
	if demoSessionsRe.FindString(out) == "" {
		t.Errorf("no established sessions with BFD up in the output:\n%s", out)
	}
	m := demoRouteRe.FindStringSubmatch(out)
	if m == nil || m[1] != vip.String() {
		t.Fatalf("no router route for %s with next hops in the output (%q):\n%s", vip, m, out)
	}
	if hops := demoHopRe.FindAllStringSubmatch(m[2], -1); len(hops) != 3 {
		t.Errorf("the router's route to %s has %d next hops, want 3 (one per node):\n%s", vip, len(hops), m[2])
	}
	if m = demoSpreadRe.FindStringSubmatch(out); m == nil || m[1] != vip.String() {
		t.Fatalf("no far-client spread for %s in the output (%q):\n%s", vip, m, out)
	}
	spread := demoCountsOf(t, m[2])
	busiest, sum := "", 0
	for _, n := range []string{"node1", "node2", "node3"} {
		if spread[n] == 0 {
			t.Errorf("ECMP: no request reached %s: %v", n, spread)
		}
		if busiest == "" || spread[n] > spread[busiest] {
			busiest = n
		}
		sum += spread[n]
	}
	if sum != 30 || len(spread) != 3 {
		t.Errorf("counts %v: want 30 requests over node1..node3", spread)
	}
	if m = demoCutRe.FindStringSubmatch(out); m == nil || m[1] != busiest {
		t.Errorf("the demo should cut %s, which served the most requests (%v; %q)", busiest, spread, m)
	}
	if m = demoBGPFailRe.FindStringSubmatch(out); m == nil || m[2] != busiest {
		t.Fatalf("no BGP failover line for %s in the output (%q):\n%s", busiest, m, out)
	}
	// BFD declares the node down after 3 x 300 ms; the hold time is 90 s.
	// Five seconds leaves room for a loaded machine and still tells BFD
	// from any BGP timer.
	if ms, _ := strconv.Atoi(m[1]); ms <= 0 || ms > 5000 {
		t.Errorf("BGP failover took %s ms; BFD at 3 x 300 ms should take about 1 s", m[1])
	}
	if m = demoAfterCutRe.FindStringSubmatch(out); m == nil {
		t.Fatalf("no far-client requests after the cut in the output:\n%s", out)
	}
	after := demoCountsOf(t, m[1])
	if after[busiest] != 0 || len(after) == 0 {
		t.Errorf("after cutting %s the far client was served by %v", busiest, after)
	}
	if m = demoBackRe.FindStringSubmatch(out); m == nil || m[1] != busiest {
		t.Errorf("%s should be back in the route at the end (%q):\n%s", busiest, m, out)
	}
}

// demoStory checks the story the demo tells and returns the lab, the VIP,
// the first announcer and the one after failover.
func demoStory(t *testing.T, out string) (labName string, vip netip.Addr, first, next string) {
	t.Helper()
	m := demoLabRe.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no lab in the output:\n%s", out)
	}
	labName = m[1]
	if m = demoIPRe.FindStringSubmatch(out); m == nil {
		t.Fatalf("no assigned IP and pool usage in the output:\n%s", out)
	}
	vip = netip.MustParseAddr(m[1])
	if l, err := lab.Plan(labIndex(t, labName), 3, false); err != nil || !l.L2Pool4.Contains(vip) {
		t.Errorf("%s got %s, outside its layer 2 pool (%v)", labName, vip, err)
	}
	if m = demoElectedRe.FindStringSubmatch(out); m == nil || m[1] != m[2] {
		t.Fatalf("no announcing node from ServiceL2Status in the output (%q):\n%s", m, out)
	}
	first = m[1]
	if m = demoFirstRe.FindStringSubmatch(out); m == nil || m[1] != vip.String() || m[2] != first || m[3] != first {
		t.Errorf("the first request should resolve %s to %s and be served by it (%q):\n%s", vip, first, m, out)
	}
	if m = demoKilledRe.FindStringSubmatch(out); m == nil || m[1] != first {
		t.Errorf("the demo should kill %s's speaker (%q)", first, m)
	}
	if m = demoFailoverRe.FindStringSubmatch(out); m == nil {
		t.Fatalf("no failover line in the output:\n%s", out)
	}
	next = m[2]
	if next == first {
		t.Errorf("failover reports %s, the node whose speaker was killed", next)
	}
	if m = demoAfterRe.FindStringSubmatch(out); m == nil || m[1] != vip.String() || m[2] != next || m[3] != next || m[4] != next {
		t.Errorf("after failover the ARP entry, the answer and ServiceL2Status should all name %s (%q):\n%s", next, m, out)
	}
	return labName, vip, first, next
}

func labIndex(t *testing.T, name string) int {
	t.Helper()
	k, err := strconv.Atoi(strings.TrimPrefix(name, "kl-lab"))
	if err != nil {
		t.Fatalf("lab name %q: %v", name, err)
	}
	return k
}

func labExists(t *testing.T, name string) bool {
	t.Helper()
	states, err := lab.List()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range states {
		if s.Name == name {
			return true
		}
	}
	return false
}

// TestDemo runs `keeperlb demo` end to end, as `make demo` does: the real
// binaries built from this tree, a real lab, the client's kernel resolving
// the VIP with ARP. It needs root and the lab's tools (it fails saying so,
// unless KEEPERLB_SKIP_LAB=1).
func TestDemo(t *testing.T) {
	labtest.Require(t, true)
	bin := t.TempDir()
	buildDemoBinaries(t, bin)
	t.Run("story", func(t *testing.T) { testDemoStory(t, bin) })
	t.Run("keep", func(t *testing.T) { testDemoKeep(t, bin) })
}

// testDemoStory checks the story (address, announcing node, failover to
// another node) and that nothing is left behind.
func testDemoStory(t *testing.T, bin string) {
	out, err := runDemoBinary(bin, "keeperlb")
	if name := demoLabRe.FindStringSubmatch(out); name != nil {
		t.Cleanup(func() { _ = lab.Remove(name[1], 30*time.Second, true, nil) })
	}
	if err != nil {
		t.Fatalf("keeperlb demo: %v\n%s", err, out)
	}
	t.Logf("keeperlb demo:\n%s", out)
	name, vip, _, _ := demoStory(t, out)
	demoBGPStory(t, out, vip)
	m := demoTakenDownRe.FindStringSubmatch(out)
	if m == nil || m[1] != name {
		t.Errorf("the demo should say it removed %s:\n%s", name, out)
	}
	if labExists(t, name) {
		t.Errorf("lab %s is still recorded after the demo", name)
	}
}

// testDemoKeep runs `kubectl keeperlb demo --keep` (the plugin binary, which
// must run the lab's roles too: the kept lab's owner is that binary) and
// checks that the lab outlives the command with KeeperLB still working in
// it: after the demo exits, a fresh ARP resolution from the client must
// still be answered by a speaker. Then `kubectl keeperlb lab down` must
// remove everything, the detached processes included.
func testDemoKeep(t *testing.T, bin string) {
	out, err := runDemoBinary(bin, "kubectl-keeperlb", "--keep")
	m := demoLabRe.FindStringSubmatch(out)
	if m != nil {
		t.Cleanup(func() {
			if labExists(t, m[1]) {
				if err := lab.Remove(m[1], 30*time.Second, true, nil); err != nil {
					t.Errorf("removing %s: %v", m[1], err)
				}
			}
		})
	}
	if err != nil {
		t.Fatalf("kubectl keeperlb demo --keep: %v\n%s", err, out)
	}
	name, vip, _, _ := demoStory(t, out)
	demoBGPStory(t, out, vip)
	for _, want := range []string{"lab down " + name, "ip netns exec " + name + "-client curl http://" + vip.String() + "/",
		"ip netns exec " + name + "-far curl http://" + vip.String() + "/", "vtysh --vty_socket ", "kubeconfig: "} {
		if !strings.Contains(out, want) {
			t.Errorf("the --keep instructions lack %q:\n%s", want, out)
		}
	}
	l, err := lab.Load(name)
	if err != nil {
		t.Fatalf("the kept lab: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Without a neighbour entry the client must ask ARP again, and only a
	// live speaker answers for the VIP.
	var node string
	for {
		if err := l.FlushNeighbor(ctx, l.Client, vip); err != nil {
			t.Fatal(err)
		}
		cctx, ccancel := context.WithTimeout(ctx, 2*time.Second)
		node, err = l.Curl(cctx, l.Client, vip, 80)
		ccancel()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("after the demo exited, the client cannot reach %s: %v", vip, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("after the demo exited, %s is served by %s", vip, node)
	// FRR outlives the command too: the far client still gets through the
	// router.
	for {
		cctx, ccancel := context.WithTimeout(ctx, 2*time.Second)
		node, err = l.Curl(cctx, l.Far, vip, 80)
		ccancel()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("after the demo exited, the far client cannot reach %s through the router: %v", vip, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("after the demo exited, the far client reaches %s through the router, served by %s", vip, node)
	if out, err := exec.Command(filepath.Join(bin, "kubectl-keeperlb"), "lab", "down", name).CombinedOutput(); err != nil {
		t.Fatalf("kubectl keeperlb lab down %s: %v\n%s", name, err, out)
	}
	if labExists(t, name) {
		t.Errorf("lab %s is still recorded after lab down", name)
	}
	if out, err := exec.Command("pgrep", "-f", l.Dir).Output(); err == nil {
		t.Errorf("processes of %s survive lab down: %s", name, out)
	}
}

// TestDemoPoolManifest checks how the demo adapts examples/demo/pool.yaml
// to its lab, and that it refuses an example it cannot adapt.
func TestDemoPoolManifest(t *testing.T) {
	raw, err := examples.Demo.ReadFile("demo/pool.yaml")
	if err != nil {
		t.Fatal(err)
	}
	l7, err := lab.Plan(7, 3, false)
	if err != nil {
		t.Fatal(err)
	}
	text, objs, err := demoPoolManifest(raw, l7.L2Pool4)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text, "- 198.18.7.128/26") || strings.Contains(text, "198.18.1.") || strings.Contains(text, "#") {
		t.Errorf("shown YAML should hold lab 7's range and no comments:\n%s", text)
	}
	var kinds []string
	for _, o := range objs {
		kinds = append(kinds, o.GetKind()+"/"+o.GetNamespace()+"/"+o.GetName())
	}
	if got := strings.Join(kinds, " "); got != "IPAddressPool/metallb-system/demo L2Advertisement/metallb-system/demo" {
		t.Errorf("objects = %s", got)
	}

	for name, bad := range map[string]string{
		"other range": strings.ReplaceAll(string(raw), "198.18.1.128/26", "198.18.50.0/24"),
		"no pool":     "apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: demo}\n",
		"two ranges":  strings.ReplaceAll(string(raw), "- 198.18.1.128/26", "- 198.18.1.128/26\n  - 2001:db8:1::1:0/112"),
		"not yaml":    "apiVersion: [",
	} {
		if _, _, err := demoPoolManifest([]byte(bad), l7.L2Pool4); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestDemoList(t *testing.T) {
	for _, c := range []struct {
		in   []string
		want string
	}{
		{nil, ""},
		{[]string{"node1"}, "node1"},
		{[]string{"node1", "node2"}, "node1 and node2"},
		{[]string{"node1", "node2", "node3"}, "node1, node2 and node3"},
	} {
		if got := demoList(c.in); got != c.want {
			t.Errorf("demoList(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestDemoBGPManifest checks how the demo adapts examples/demo/bgp.yaml to
// its lab's router, and that it refuses an example it cannot adapt.
func TestDemoBGPManifest(t *testing.T) {
	raw, err := examples.Demo.ReadFile("demo/bgp.yaml")
	if err != nil {
		t.Fatal(err)
	}
	l7, err := lab.Plan(7, 3, true)
	if err != nil {
		t.Fatal(err)
	}
	text, objs, err := demoBGPManifest(raw, l7.Router.IPv4)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text, "peerAddress: 198.18.7.1\n") || strings.Contains(text, "198.18.1.") || strings.Contains(text, "#") {
		t.Errorf("shown YAML should hold lab 7's router and no comments:\n%s", text)
	}
	var kinds []string
	for _, o := range objs {
		kinds = append(kinds, o.GetAPIVersion()+" "+o.GetKind()+"/"+o.GetNamespace()+"/"+o.GetName())
	}
	want := "metallb.io/v1beta1 BFDProfile/metallb-system/fast, metallb.io/v1beta2 BGPPeer/metallb-system/router, metallb.io/v1beta1 BGPAdvertisement/metallb-system/demo"
	if got := strings.Join(kinds, ", "); got != want {
		t.Errorf("objects = %s\nwant      %s", got, want)
	}

	for name, bad := range map[string]string{
		"other router": strings.ReplaceAll(string(raw), "peerAddress: 198.18.1.1", "peerAddress: 198.18.50.1"),
		"no peer":      "apiVersion: metallb.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {name: demo}\n",
		"renamed peer": strings.ReplaceAll(string(raw), "name: router", "name: tor"),
		"not yaml":     "apiVersion: [",
	} {
		if _, _, err := demoBGPManifest([]byte(bad), l7.Router.IPv4); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestDemoCounts(t *testing.T) {
	got := demoCounts(map[string]int{"node3": 7, "node1": 13, "node2": 10})
	if got != "node1 13, node2 10, node3 7" {
		t.Errorf("demoCounts = %q", got)
	}
	if back := demoCountsOf(t, got); back["node1"] != 13 || back["node2"] != 10 || back["node3"] != 7 || len(back) != 3 {
		t.Errorf("demoCountsOf(%q) = %v", got, back)
	}
}
