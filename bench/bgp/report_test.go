package main

import (
	"testing"
	"time"
)

// TestSummarize checks the nearest-rank percentiles the table reports.
func TestSummarize(t *testing.T) {
	var twenty []time.Duration
	for i := 20; i >= 1; i-- { // unsorted on purpose
		twenty = append(twenty, time.Duration(i)*time.Millisecond)
	}
	for _, c := range []struct {
		name          string
		in            []time.Duration
		p50, p99, max time.Duration
	}{
		{"none", nil, 0, 0, 0},
		{"one", []time.Duration{7}, 7, 7, 7},
		{"twenty: p99 is the slowest", twenty, 10 * time.Millisecond, 20 * time.Millisecond, 20 * time.Millisecond},
		{"two", []time.Duration{9, 1}, 1, 9, 9},
	} {
		s := summarize(c.in)
		if s.n != len(c.in) || s.p50 != c.p50 || s.p99 != c.p99 || s.max != c.max {
			t.Errorf("%s: %+v, want p50 %v p99 %v max %v", c.name, s, c.p50, c.p99, c.max)
		}
	}
	if twenty[0] != 20*time.Millisecond {
		t.Error("summarize sorted its input in place")
	}
}
