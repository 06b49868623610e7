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

// buildDemoBinaries builds keeperlb, keeperlb-controller and
// keeperlb-speaker from this tree into dir, as `make build` does.
func buildDemoBinaries(t *testing.T, dir string) {
	t.Helper()
	cmd := exec.Command("go", "build", "-trimpath", "-o", dir+"/", "./cmd/keeperlb", "./cmd/keeperlb-controller", "./cmd/keeperlb-speaker")
	cmd.Dir = "../.."
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the binaries: %v\n%s", err, out)
	}
}

// runDemoBinary runs `keeperlb demo` from dir as `make demo` does (the
// binaries passed by flag) with extra flags, and returns its output.
func runDemoBinary(dir string, extra ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	args := append([]string{"demo",
		"--controller-bin", filepath.Join(dir, "keeperlb-controller"),
		"--speaker-bin", filepath.Join(dir, "keeperlb-speaker")}, extra...)
	cmd := exec.CommandContext(ctx, filepath.Join(dir, "keeperlb"), args...)
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
)

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
	out, err := runDemoBinary(bin)
	if name := demoLabRe.FindStringSubmatch(out); name != nil {
		t.Cleanup(func() { _ = lab.Remove(name[1], 30*time.Second, true, nil) })
	}
	if err != nil {
		t.Fatalf("keeperlb demo: %v\n%s", err, out)
	}
	t.Logf("keeperlb demo:\n%s", out)
	name, _, _, _ := demoStory(t, out)
	m := demoTakenDownRe.FindStringSubmatch(out)
	if m == nil || m[1] != name {
		t.Errorf("the demo should say it removed %s:\n%s", name, out)
	}
	if labExists(t, name) {
		t.Errorf("lab %s is still recorded after the demo", name)
	}
}

// testDemoKeep runs `keeperlb demo --keep` and checks that the lab outlives
// the command with KeeperLB still working in it: after the demo exits, a
// fresh ARP resolution from the client must still be answered by a speaker.
// Then `lab down` must remove everything, the detached processes included.
func testDemoKeep(t *testing.T, bin string) {
	out, err := runDemoBinary(bin, "--keep")
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
		t.Fatalf("keeperlb demo --keep: %v\n%s", err, out)
	}
	name, vip, _, _ := demoStory(t, out)
	for _, want := range []string{"lab down " + name, "ip netns exec " + name + "-client curl http://" + vip.String() + "/", "kubeconfig: "} {
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
	if err := lab.Remove(name, 30*time.Second, false, nil); err != nil {
		t.Fatalf("keeperlb lab down %s: %v", name, err)
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
