package lab

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// InTimeNamespace returns the start of a command line that runs the rest of
// it in a new time namespace (time_namespaces(7)) whose CLOCK_MONOTONIC and
// CLOCK_BOOTTIME read offset (whole seconds) more than the machine's: put it
// before argv in Start. The process's timers, tickers and durations run on
// those clocks; CLOCK_REALTIME, the wall clock, is not namespaced and stays
// the machine's. The kernel refuses an offset that would make a clock
// negative, so a negative one fails on a machine up for less than -offset.
func InTimeNamespace(offset time.Duration) []string {
	s := strconv.FormatInt(int64(offset/time.Second), 10)
	return []string{"unshare", "--time", "--monotonic=" + s, "--boottime=" + s, "--"}
}

// TimeOffsets returns the offsets of the time namespace that process pid
// is in (zero in the machine's own).
func TimeOffsets(pid int) (monotonic, boottime time.Duration, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/timens_offsets", pid))
	if err != nil {
		return 0, 0, err
	}
	return ParseTimeOffsets(b)
}

// ParseTimeOffsets reads /proc/PID/timens_offsets: one line per clock, its
// name (or its clock id, as the file may be written) then seconds and
// nanoseconds.
func ParseTimeOffsets(b []byte) (monotonic, boottime time.Duration, err error) {
	var seen [2]bool
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if len(f) != 3 {
			return 0, 0, fmt.Errorf("timens_offsets: line %q has %d fields, want 3", sc.Text(), len(f))
		}
		sec, err1 := strconv.ParseInt(f[1], 10, 64)
		nsec, err2 := strconv.ParseInt(f[2], 10, 64)
		if err1 != nil || err2 != nil || nsec < 0 || nsec >= int64(time.Second) {
			return 0, 0, fmt.Errorf("timens_offsets: line %q: bad offset", sc.Text())
		}
		d := time.Duration(sec)*time.Second + time.Duration(nsec)
		switch f[0] {
		case "monotonic", "1": // CLOCK_MONOTONIC
			monotonic, seen[0] = d, true
		case "boottime", "7": // CLOCK_BOOTTIME
			boottime, seen[1] = d, true
		default:
			return 0, 0, fmt.Errorf("timens_offsets: unknown clock %q", f[0])
		}
	}
	if err := sc.Err(); err != nil {
		return 0, 0, err
	}
	if !seen[0] || !seen[1] {
		return 0, 0, fmt.Errorf("timens_offsets: %q lacks the monotonic or the boottime clock", b)
	}
	return monotonic, boottime, nil
}
