package bgp

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The FRR tests build, per test, a router namespace and a node namespace
// joined by a veth, run FRR's zebra, bgpd and bfdd as children in the
// router namespace, and run the speaker in a child process inside the node
// namespace (GoBGP opens sockets from its own goroutines, so it must live
// in a process that is already there). The child is this test binary,
// re-executed with helperEnv set; it applies the Desired states it reads
// on stdin and reports its sessions on stdout.

const (
	helperEnv = "KEEPERLB_BGP_HELPER"
	skipEnv   = "KEEPERLB_SKIP_LAB"
	frrDir    = "/usr/lib/frr"
)

// nsPattern matches the namespaces these tests create:
// kl-<owner pid>-<random>-b<role>.
var nsPattern = regexp.MustCompile(`^kl-(\d+)-[0-9a-f]+-b(rt|nd)$`)

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(helperMain())
	}
	reapLeftovers()
	os.Exit(m.Run())
}

// reapLeftovers deletes namespaces of this package's tests whose owning
// test process is gone, killing what still runs in them (FRR daemons and
// speakers those tests started).
func reapLeftovers() {
	if os.Geteuid() != 0 {
		return
	}
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		m := nsPattern.FindStringSubmatch(f[0])
		if m == nil {
			continue
		}
		pid, _ := strconv.Atoi(m[1])
		if pid == os.Getpid() || syscall.Kill(pid, 0) == nil {
			continue
		}
		killNamespace(f[0])
	}
}

// killNamespace kills every process in a namespace, then deletes it.
func killNamespace(ns string) {
	if out, err := exec.Command("ip", "netns", "pids", ns).Output(); err == nil {
		for _, p := range strings.Fields(string(out)) {
			if pid, err := strconv.Atoi(p); err == nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	_ = exec.Command("ip", "netns", "del", ns).Run()
}

// requireLab fails the test (or skips it when KEEPERLB_SKIP_LAB=1) when
// the machine cannot run the FRR lab.
func requireLab(t *testing.T) {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root (network namespaces)")
	}
	for _, c := range []string{"ip", "nft", "vtysh"} {
		if _, err := exec.LookPath(c); err != nil {
			missing = append(missing, c)
		}
	}
	for _, d := range []string{"zebra", "bgpd", "bfdd"} {
		if _, err := os.Stat(filepath.Join(frrDir, d)); err != nil {
			missing = append(missing, filepath.Join(frrDir, d))
		}
	}
	if _, err := user.Lookup("frr"); err != nil {
		missing = append(missing, "user frr")
	}
	if len(missing) == 0 {
		return
	}
	msg := "the FRR lab needs " + strings.Join(missing, ", ") + "; run `bash hack/lab-deps.sh` as root"
	if os.Getenv(skipEnv) == "1" {
		t.Skip(msg + " (skipped: " + skipEnv + "=1)")
	}
	t.Fatal(msg)
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// link is a router namespace and a node namespace joined by a veth, with
// addresses from the lab ranges: 198.18.K.0/24 and 2001:db8:K::/64 on the
// link, 198.19.K.0/24 and 2001:db8:K:1::/64 for Service addresses.
type link struct {
	t        *testing.T
	k        int
	rt, node string
	rtV4     netip.Addr
	rtV6     netip.Addr
	nodeV4   netip.Addr
	nodeV6   netip.Addr

	mu       sync.Mutex
	children []*exec.Cmd
}

// newLink creates the namespaces, registering their removal first.
func newLink(t *testing.T) *link {
	t.Helper()
	requireLab(t)
	n, err := rand.Int(rand.Reader, big.NewInt(51))
	if err != nil {
		t.Fatal(err)
	}
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	tag := fmt.Sprintf("kl-%d-%s", os.Getpid(), hex.EncodeToString(b[:]))
	l := &link{t: t, k: 200 + int(n.Int64()), rt: tag + "-brt", node: tag + "-bnd"}
	l.rtV4 = netip.MustParseAddr(fmt.Sprintf("198.18.%d.1", l.k))
	l.nodeV4 = netip.MustParseAddr(fmt.Sprintf("198.18.%d.11", l.k))
	l.rtV6 = netip.MustParseAddr(fmt.Sprintf("2001:db8:%d::1", l.k))
	l.nodeV6 = netip.MustParseAddr(fmt.Sprintf("2001:db8:%d::11", l.k))
	t.Cleanup(l.teardown)

	run(t, "ip", "netns", "add", l.rt)
	run(t, "ip", "netns", "add", l.node)
	run(t, "ip", "-n", l.rt, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", l.node)
	for _, side := range []struct {
		ns     string
		v4, v6 netip.Addr
	}{{l.rt, l.rtV4, l.rtV6}, {l.node, l.nodeV4, l.nodeV6}} {
		run(t, "ip", "-n", side.ns, "link", "set", "lo", "up")
		run(t, "ip", "-n", side.ns, "addr", "add", side.v4.String()+"/24", "dev", "eth0")
		run(t, "ip", "-n", side.ns, "addr", "add", side.v6.String()+"/64", "dev", "eth0", "nodad")
		run(t, "ip", "-n", side.ns, "link", "set", "eth0", "up")
	}
	return l
}

// vip returns the k-th Service address of a family.
func (l *link) vip(v6 bool, i int) netip.Addr {
	if v6 {
		return netip.MustParseAddr(fmt.Sprintf("2001:db8:%d:1::%d", l.k, i))
	}
	return netip.MustParseAddr(fmt.Sprintf("198.19.%d.%d", l.k, i))
}

// start runs a child process and tracks it for teardown.
func (l *link) start(cmd *exec.Cmd) error {
	if err := cmd.Start(); err != nil {
		return err
	}
	l.mu.Lock()
	l.children = append(l.children, cmd)
	l.mu.Unlock()
	return nil
}

// teardown stops the children (politely, then not), waits for them, and
// deletes the namespaces with whatever still runs there.
func (l *link) teardown() {
	l.mu.Lock()
	children := l.children
	l.children = nil
	l.mu.Unlock()
	for _, c := range children {
		if c.Process != nil {
			_ = c.Process.Signal(syscall.SIGTERM)
		}
	}
	for _, c := range children {
		done := make(chan struct{})
		go func() { _ = c.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(3 * time.Second):
			_ = c.Process.Kill()
			<-done
		}
	}
	killNamespace(l.node)
	killNamespace(l.rt)
}

// frr is FRR running in the router namespace.
type frr struct {
	l   *link
	dir string
}

// startFRR writes the daemons' configuration and starts zebra, bgpd and,
// when bfdConf is not empty, bfdd, then waits until bgpd answers.
func (l *link) startFRR(bgpdConf, bfdConf string) *frr {
	t := l.t
	t.Helper()
	u, err := user.Lookup("frr")
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	// FRR drops privileges to frr:frr and must write its sockets here, so
	// a 0700 t.TempDir() will not do.
	dir, err := os.MkdirTemp("", "kl-frr-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, f := range []string{"bgpd.log", "bfdd.log", "zebra.log"} {
				if b, err := os.ReadFile(filepath.Join(dir, f)); err == nil && len(b) > 0 {
					t.Logf("--- %s (last 3000 bytes)\n%s", f, tail(string(b), 3000))
				}
			}
		}
		os.RemoveAll(dir)
	})
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	f := &frr{l: l, dir: dir}
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, uid, gid); err != nil {
			t.Fatal(err)
		}
		return p
	}
	header := func(daemon string) string {
		return fmt.Sprintf("frr defaults traditional\nhostname rt\nlog file %s/%s.log\n!\n", dir, daemon)
	}
	daemons := []string{"zebra", "bgpd"}
	confs := map[string]string{"zebra": header("zebra"), "bgpd": header("bgpd") + bgpdConf}
	if bfdConf != "" {
		daemons = append(daemons, "bfdd")
		confs["bfdd"] = header("bfdd") + bfdConf
	}
	for _, d := range daemons {
		conf := write(d+".conf", confs[d])
		args := []string{"netns", "exec", l.rt, filepath.Join(frrDir, d), "--vty_socket", dir, "-z", dir + "/zserv.api",
			"-P", "0", "-u", "frr", "-g", "frr", "-f", conf, "-i", filepath.Join(dir, d+".pid")}
		if d == "bfdd" {
			args = append(args, "--bfdctl", dir+"/bfdd.sock")
		}
		cmd := exec.Command("ip", args...)
		out, err := os.Create(filepath.Join(dir, d+".out"))
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdout, cmd.Stderr = out, out
		if err := l.start(cmd); err != nil {
			t.Fatalf("starting %s: %v", d, err)
		}
		if d == "zebra" {
			eventually(t, "zebra socket", func() error {
				_, err := os.Stat(dir + "/zserv.api")
				return err
			})
		}
	}
	eventually(t, "FRR ready", func() error {
		_, err := f.vtysh("show bgp summary json")
		return err
	})
	return f
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}

// vtysh runs one vtysh command against this FRR.
func (f *frr) vtysh(cmd string) (string, error) {
	out, err := exec.Command("vtysh", "--vty_socket", f.dir, "-c", cmd).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("vtysh -c %q: %v: %s", cmd, err, out)
	}
	return string(out), nil
}

// json runs a vtysh command and decodes its JSON answer.
func (f *frr) json(cmd string, v any) error {
	out, err := f.vtysh(cmd)
	if err != nil {
		return err
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		return fmt.Errorf("vtysh -c %q: %v: %s", cmd, err, out)
	}
	return nil
}

// established reports whether FRR has the neighbor in state Established.
func (f *frr) established(neighbor netip.Addr) error {
	var n map[string]struct {
		BgpState string `json:"bgpState"`
	}
	if err := f.json("show bgp neighbors "+neighbor.String()+" json", &n); err != nil {
		return err
	}
	if st := n[neighbor.String()].BgpState; st != "Established" {
		return fmt.Errorf("FRR: neighbor %s is %q", neighbor, st)
	}
	return nil
}

// frrRoute is one path as FRR shows it.
type frrRoute struct {
	Valid     bool `json:"valid"`
	Stale     bool `json:"stale"`
	LocPrf    uint32
	Community *struct {
		String string `json:"string"`
	} `json:"community"`
	LargeCommunity *struct {
		String string `json:"string"`
	} `json:"largeCommunity"`
	Nexthops []struct {
		IP string `json:"ip"`
	} `json:"nexthops"`
}

// route returns FRR's paths for a prefix (none: not in the BGP table).
func (f *frr) route(p netip.Prefix) ([]frrRoute, error) {
	fam := "ipv4"
	if p.Addr().Is6() {
		fam = "ipv6"
	}
	var r struct {
		Paths []frrRoute `json:"paths"`
	}
	if err := f.json(fmt.Sprintf("show bgp %s unicast %s json", fam, p), &r); err != nil {
		return nil, err
	}
	return r.Paths, nil
}

// kernelRoute returns the router's kernel routes for exactly prefix, as
// `ip -j route` shows them (empty: none).
func (l *link) kernelRoute(p netip.Prefix) ([]map[string]any, error) {
	fam := "-4"
	if p.Addr().Is6() {
		fam = "-6"
	}
	out, err := exec.Command("ip", "-n", l.rt, "-j", fam, "route", "show", "exact", p.String()).Output()
	if err != nil {
		return nil, fmt.Errorf("ip route show %s: %v", p, err)
	}
	var routes []map[string]any
	if s := strings.TrimSpace(string(out)); s != "" {
		if err := json.Unmarshal([]byte(s), &routes); err != nil {
			return nil, fmt.Errorf("ip route show %s: %v: %s", p, err, s)
		}
	}
	return routes, nil
}

// inKernel is a check that the prefix is in the router's kernel table.
func (l *link) inKernel(p netip.Prefix) func() error {
	return func() error {
		r, err := l.kernelRoute(p)
		if err != nil {
			return err
		}
		if len(r) == 0 {
			return fmt.Errorf("%s is not in the router's kernel table", p)
		}
		return nil
	}
}

// notInKernel is a check that the prefix is not in the kernel table.
func (l *link) notInKernel(p netip.Prefix) func() error {
	return func() error {
		r, err := l.kernelRoute(p)
		if err != nil {
			return err
		}
		if len(r) != 0 {
			return fmt.Errorf("%s is still in the router's kernel table: %v", p, r)
		}
		return nil
	}
}

// waitFor polls check every 20 ms until it passes, failing the test after
// a generous deadline, and returns how long it took. The duration is
// reported, never asserted.
func waitFor(t *testing.T, what string, check func() error) time.Duration {
	t.Helper()
	start := time.Now()
	eventually(t, what, check)
	return time.Since(start)
}

// speakerChild is a Speaker running in a child process in the node
// namespace.
type speakerChild struct {
	t      *testing.T
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	seq    int
	acks   chan helperLine
	mu     sync.Mutex
	states []SessionState
	exited chan struct{}
	stderr *os.File
}

// helperLine is one line of the child's output.
type helperLine struct {
	Ack      int            `json:"ack,omitempty"`
	Error    string         `json:"error,omitempty"`
	Sessions []SessionState `json:"sessions,omitempty"`
	Report   bool           `json:"report,omitempty"`
}

// startSpeaker starts a speaker child in the node namespace.
func (l *link) startSpeaker() *speakerChild {
	t := l.t
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", l.node, exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := os.CreateTemp("", "kl-speaker-*.log")
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = stderr
	c := &speakerChild{t: t, cmd: cmd, stdin: stdin, acks: make(chan helperLine, 16), exited: make(chan struct{}), stderr: stderr}
	t.Cleanup(func() {
		if t.Failed() {
			if b, err := os.ReadFile(stderr.Name()); err == nil {
				t.Logf("--- speaker log (last 4000 bytes)\n%s", tail(string(b), 4000))
			}
		}
		stderr.Close()
		os.Remove(stderr.Name())
	})
	if err := l.start(cmd); err != nil {
		t.Fatalf("starting the speaker child: %v", err)
	}
	go func() {
		defer close(c.exited)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var hl helperLine
			if err := json.Unmarshal(sc.Bytes(), &hl); err != nil {
				continue // test framework noise
			}
			if hl.Report {
				c.mu.Lock()
				c.states = hl.Sessions
				c.mu.Unlock()
				continue
			}
			c.acks <- hl
		}
	}()
	return c
}

// apply sends a Desired state and waits until the child applied it.
func (c *speakerChild) apply(d Desired) {
	c.t.Helper()
	c.seq++
	b, err := json.Marshal(d)
	if err != nil {
		c.t.Fatal(err)
	}
	if _, err := c.stdin.Write(append(b, '\n')); err != nil {
		c.t.Fatalf("sending a Desired state to the speaker: %v", err)
	}
	select {
	case hl := <-c.acks:
		if hl.Ack != c.seq {
			c.t.Fatalf("speaker acknowledged %d, want %d", hl.Ack, c.seq)
		}
		if hl.Error != "" {
			c.t.Fatalf("speaker: Apply: %s", hl.Error)
		}
	case <-c.exited:
		c.t.Fatal("the speaker child exited")
	case <-time.After(30 * time.Second):
		c.t.Fatal("the speaker did not acknowledge a Desired state")
	}
}

// session returns the latest reported state of a peer's session.
func (c *speakerChild) session(peer string) SessionState {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.states {
		if s.Peer == peer {
			return s
		}
	}
	return SessionState{}
}

// close ends the child the polite way: its stdin closes, it calls
// Speaker.Close and exits.
func (c *speakerChild) close() {
	c.t.Helper()
	_ = c.stdin.Close()
	select {
	case <-c.exited:
	case <-time.After(30 * time.Second):
		c.t.Fatal("the speaker child did not exit after Close")
	}
	if err := c.cmd.Wait(); err != nil {
		c.t.Fatalf("the speaker child: %v", err)
	}
}

// kill ends the child abruptly, as a crash or an OOM kill would.
func (c *speakerChild) kill() {
	_ = c.cmd.Process.Kill()
	<-c.exited
	_ = c.cmd.Wait()
}

// helperMain is the child: apply each Desired read from stdin, report
// sessions every 50 ms. It runs until stdin closes or it is killed.
func helperMain() int {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	sp, err := New(log, nil, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var out sync.Mutex
	emit := func(v helperLine) {
		b, _ := json.Marshal(v)
		out.Lock()
		os.Stdout.Write(append(b, '\n'))
		out.Unlock()
	}
	go func() {
		for {
			time.Sleep(50 * time.Millisecond)
			emit(helperLine{Report: true, Sessions: sp.Sessions()})
		}
	}()
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	seq := 0
	for sc.Scan() {
		seq++
		var d Desired
		hl := helperLine{Ack: seq}
		if err := json.Unmarshal(sc.Bytes(), &d); err != nil {
			hl.Error = err.Error()
		} else if err := sp.Apply(context.Background(), d); err != nil {
			hl.Error = err.Error()
		}
		emit(hl)
	}
	if err := sp.Close(); err != nil && !errors.Is(err, io.EOF) {
		fmt.Fprintln(os.Stderr, err)
	}
	return 0
}
