package main

import (
	"context"
	"testing"
	"time"
)

func TestCreatedTime(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		in   string
		want time.Time
		bad  bool
	}{
		{in: "1767323045", want: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)},
		{in: "2026-01-02T04:04:05+01:00", want: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)},
		{in: "yesterday", bad: true},
	} {
		got, err := createdTime(ctx, ".", tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("createdTime(%q) = %s, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("createdTime(%q) = %s, %v; want %s", tc.in, got, err, tc.want)
		}
	}
	// SOURCE_DATE_EPOCH wins over git.
	t.Setenv("SOURCE_DATE_EPOCH", "86400")
	if got, err := createdTime(ctx, ".", ""); err != nil || !got.Equal(time.Unix(86400, 0)) {
		t.Errorf("with SOURCE_DATE_EPOCH: %s, %v", got, err)
	}
}

// TestDefaultTagIsTheManifests: the default image tag is the chart's
// appVersion, which config/ and the chart reference (a test in
// internal/install keeps those two equal).
func TestDefaultTagIsTheManifests(t *testing.T) {
	v, err := chartAppVersion("../../charts/keeperlb/Chart.yaml")
	if err != nil || v == "" {
		t.Fatalf("appVersion %q, %v", v, err)
	}
	if _, err := chartAppVersion("../../go.mod"); err == nil {
		t.Error("a file without appVersion was accepted")
	}
}
