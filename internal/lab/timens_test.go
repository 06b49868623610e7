package lab_test

import (
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keeperlb/keeperlb/internal/lab"
	"github.com/keeperlb/keeperlb/internal/lab/labtest"
)

func TestParseTimeOffsets(t *testing.T) {
	cases := []struct {
		in         string
		ok         bool
		mono, boot time.Duration
	}{
		{"monotonic        3600         0\nboottime         3600         0\n", true, time.Hour, time.Hour},
		{"monotonic 0 0\nboottime -7 500000000\n", true, 0, -7*time.Second + 500*time.Millisecond},
		{"1 2 0\n7 3 0\n", true, 2 * time.Second, 3 * time.Second},
		{"monotonic 1 0\n", false, 0, 0},
		{"monotonic 1 0\nboottime 1\n", false, 0, 0},
		{"monotonic 1 0\nrealtime 1 0\n", false, 0, 0},
		{"monotonic x 0\nboottime 1 0\n", false, 0, 0},
		{"monotonic 1 1000000000\nboottime 1 0\n", false, 0, 0},
	}
	for _, tc := range cases {
		mono, boot, err := lab.ParseTimeOffsets([]byte(tc.in))
		if (err == nil) != tc.ok || (tc.ok && (mono != tc.mono || boot != tc.boot)) {
			t.Errorf("%q: got %s, %s, %v; want %s, %s, ok %v", tc.in, mono, boot, err, tc.mono, tc.boot, tc.ok)
		}
	}
	if got, want := lab.InTimeNamespace(90*time.Minute), []string{"unshare", "--time", "--monotonic=5400", "--boottime=5400", "--"}; !slices.Equal(got, want) {
		t.Errorf("InTimeNamespace(90m) = %q, want %q", got, want)
	}
}

// TestInTimeNamespace runs a process in a time namespace an hour ahead:
// its offsets say so, and its boot-time clock (/proc/uptime) reads an hour
// more than this process's, while this process's own offsets are zero.
func TestInTimeNamespace(t *testing.T) {
	labtest.Require(t, false, "unshare")
	if mono, boot, err := lab.TimeOffsets(os.Getpid()); err != nil || mono != 0 || boot != 0 {
		t.Fatalf("this process's offsets: %s, %s, %v; want zero", mono, boot, err)
	}
	uptime := func(b []byte) time.Duration {
		t.Helper()
		s, _, _ := strings.Cut(string(b), " ")
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			t.Fatalf("parsing /proc/uptime %q: %v", b, err)
		}
		return time.Duration(f * float64(time.Second))
	}
	argv := append(lab.InTimeNamespace(time.Hour), "sh", "-c", "cat /proc/self/timens_offsets /proc/uptime")
	before, err := os.ReadFile("/proc/uptime")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%q: %v\n%s", argv, err, out)
	}
	after, err := os.ReadFile("/proc/uptime")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(out), "\n")
	if len(lines) < 3 {
		t.Fatalf("%q printed %q", argv, out)
	}
	mono, boot, err := lab.ParseTimeOffsets([]byte(lines[0] + lines[1]))
	if err != nil || mono != time.Hour || boot != time.Hour {
		t.Fatalf("offsets inside: %s, %s, %v; want 1h", mono, boot, err)
	}
	inside := uptime([]byte(lines[2]))
	if lo, hi := uptime(before)+time.Hour, uptime(after)+time.Hour; inside < lo-10*time.Millisecond || inside > hi+10*time.Millisecond {
		t.Fatalf("uptime inside %s, want between %s and %s", inside, lo, hi)
	}
}
