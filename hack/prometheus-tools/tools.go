//go:build tools

// Package tools pins the commands this module builds (promtool and the
// Prometheus server), so that go.sum lists everything they import.
package tools

import (
	_ "github.com/prometheus/prometheus/cmd/prometheus"
	_ "github.com/prometheus/prometheus/cmd/promtool"
)
