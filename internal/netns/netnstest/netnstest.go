// Package netnstest builds throwaway network namespaces for tests.
//
// Every namespace is named kl-<pid>-<random>-<suffix>, where pid is the test
// process: names never collide between parallel test binaries, and a later
// run can tell a leftover from a crashed run (its pid is gone) from one that
// belongs to a test still running (ReapOrphans). Deletion is registered with
// t.Cleanup before the namespace is created, so a test that fails half way
// still removes everything it made.
//
// Tests that need these namespaces call Require first: without root or the
// `ip` command they fail, unless KEEPERLB_SKIP_LAB=1 asks to skip them.
package netnstest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/keeperlb/keeperlb/internal/netns"
)

// SkipEnv is the variable that turns "lab prerequisites missing" from a
// failure into a skip.
const SkipEnv = "KEEPERLB_SKIP_LAB"

// Require fails t (or skips it when KEEPERLB_SKIP_LAB=1) unless the process
// runs as root and every command in cmds, plus `ip`, is on PATH.
func Require(t testing.TB, cmds ...string) {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root (network namespaces need CAP_SYS_ADMIN and CAP_NET_ADMIN)")
	}
	for _, c := range append([]string{"ip"}, cmds...) {
		if _, err := exec.LookPath(c); err != nil {
			missing = append(missing, fmt.Sprintf("command %q (run `bash hack/lab-deps.sh`)", c))
		}
	}
	if len(missing) == 0 {
		return
	}
	msg := "network lab unavailable: missing " + strings.Join(missing, ", ")
	if os.Getenv(SkipEnv) == "1" {
		t.Skipf("%s; skipped because %s=1", msg, SkipEnv)
	}
	t.Fatalf("%s; set %s=1 to skip lab tests", msg, SkipEnv)
}

// UniqueName returns a fresh namespace name kl-<pid>-<random>-<suffix>.
func UniqueName(suffix string) string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("kl-%d-%s-%s", os.Getpid(), hex.EncodeToString(b[:]), suffix)
}

// New creates a network namespace called name (see UniqueName) with its
// loopback up, and deletes it when the test ends.
func New(t testing.TB, name string) string {
	t.Helper()
	t.Cleanup(func() {
		if err := Delete(name); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	IP(t, "netns", "add", name)
	IP(t, "-n", name, "link", "set", "lo", "up")
	return name
}

// IP runs `ip args...` and fails the test if it fails; it returns stdout.
func IP(t testing.TB, args ...string) string {
	t.Helper()
	out, err := Run("ip", args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Run runs a command and returns its stdout; the error carries stderr.
func Run(name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// Sysctl sets a sysctl (dotted key, e.g. net.ipv4.conf.eth0.arp_accept)
// inside namespace ns.
func Sysctl(t testing.TB, ns, key, value string) {
	t.Helper()
	path := filepath.Join("/proc/sys", strings.ReplaceAll(key, ".", "/"))
	err := netns.Do(ns, func() error { return os.WriteFile(path, []byte(value), 0o644) })
	if err != nil {
		t.Fatalf("sysctl %s=%s in %s: %v", key, value, ns, err)
	}
}

// Delete kills every process inside the namespace and deletes it. A
// namespace that is already gone is not an error.
func Delete(name string) error {
	if _, err := os.Stat(netns.Path(name)); os.IsNotExist(err) {
		return nil
	}
	out, _ := Run("ip", "netns", "pids", name)
	for _, f := range strings.Fields(out) {
		if pid, err := strconv.Atoi(f); err == nil && pid != os.Getpid() {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	if _, err := Run("ip", "netns", "del", name); err != nil {
		return fmt.Errorf("delete namespace %s: %w", name, err)
	}
	return nil
}

var labName = regexp.MustCompile(`^kl-([0-9]+)-`)

// ReapOrphans deletes lab namespaces (kl-<pid>-...) whose creating process
// no longer exists, left behind by killed test runs. It returns their names.
func ReapOrphans() ([]string, error) {
	entries, err := os.ReadDir(netns.Dir)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", netns.Dir, err)
	}
	var reaped []string
	var errs []error
	for _, e := range entries {
		m := labName.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		pid, err := strconv.Atoi(m[1])
		if err != nil || processAlive(pid) {
			continue
		}
		if err := Delete(e.Name()); err != nil {
			errs = append(errs, err)
			continue
		}
		reaped = append(reaped, e.Name())
	}
	if len(errs) > 0 {
		return reaped, fmt.Errorf("reap orphaned namespaces: %v", errs)
	}
	return reaped, nil
}

func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || err == syscall.EPERM
}
