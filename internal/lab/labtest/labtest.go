// Package labtest runs the network lab (internal/lab) inside Go tests.
//
// A test package that uses the lab has
//
//	func TestMain(m *testing.M) { labtest.Main(m) }
//
// and calls labtest.Up(t, opts), which fails the test with a clear message
// when the machine cannot run the lab (not root, commands or the
// kube-apiserver binaries missing), unless KEEPERLB_SKIP_LAB=1 turns that
// into a skip.
package labtest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/keeperlb/keeperlb/internal/controlplane"
	"github.com/keeperlb/keeperlb/internal/lab"
)

// SkipEnv turns "lab prerequisites missing" from a failure into a skip.
const SkipEnv = "KEEPERLB_SKIP_LAB"

// Main runs lab roles (RunRoleIfRequested), reaps labs left by dead test
// processes, then runs the tests.
func Main(m *testing.M) {
	lab.RunRoleIfRequested()
	if os.Geteuid() == 0 {
		if err := lab.Reap(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))); err != nil {
			fmt.Fprintln(os.Stderr, "reaping leftover labs:", err)
		}
	}
	os.Exit(m.Run())
}

// Require fails t (or skips it with KEEPERLB_SKIP_LAB=1) unless the lab can
// run here: root, ip, nft, ping, arping and every command in extra, and the
// control plane binaries when controlPlane is set.
func Require(t testing.TB, controlPlane bool, extra ...string) {
	t.Helper()
	var problems []string
	if err := lab.CheckPrerequisites(); err != nil {
		problems = append(problems, err.Error())
	}
	for _, c := range append([]string{"ping", "arping"}, extra...) {
		if _, err := exec.LookPath(c); err != nil {
			problems = append(problems, fmt.Sprintf("the %s command (run `bash hack/lab-deps.sh`)", c))
		}
	}
	if controlPlane {
		if _, err := controlplane.BinDir(); err != nil {
			problems = append(problems, err.Error())
		}
	}
	if len(problems) == 0 {
		return
	}
	msg := "network lab unavailable: " + strings.Join(problems, "; ")
	if os.Getenv(SkipEnv) == "1" {
		t.Skipf("%s (skipped: %s=1)", msg, SkipEnv)
	}
	t.Fatalf("%s; set %s=1 to skip lab tests", msg, SkipEnv)
}

// Up builds a lab for t and takes it down when t ends; if t failed, the tail
// of every log in the lab folder is printed first.
func Up(t testing.TB, opts lab.Options) *lab.Lab {
	t.Helper()
	Require(t, !opts.NoControlPlane)
	if opts.Log == nil {
		opts.Log = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	var l *lab.Lab
	t.Cleanup(func() {
		if l == nil {
			return
		}
		if t.Failed() {
			DumpLogs(t, l.Dir, 20)
		}
		if err := l.Down(); err != nil {
			t.Errorf("taking lab %s down: %v", l.Name, err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var err error
	if l, err = lab.Up(ctx, opts); err != nil {
		t.Fatal(err)
	}
	return l
}

// DumpLogs logs the last lines of every *.log file in dir.
func DumpLogs(t testing.TB, dir string, lines int) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	sort.Strings(files)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var all []string
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
		for sc.Scan() {
			all = append(all, sc.Text())
		}
		if len(all) > lines {
			all = all[len(all)-lines:]
		}
		t.Logf("--- %s (last %d lines) ---\n%s", f, len(all), strings.Join(all, "\n"))
	}
}

// testWriter sends log lines to t.Log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
