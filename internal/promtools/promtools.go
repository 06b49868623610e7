// Package promtools finds the promtool and prometheus binaries that
// hack/prometheus-tools/build.sh builds from the Go module proxy, for the
// tests that check the alerting rules and run a real Prometheus.
package promtools

import (
	"fmt"
	"os"
	"path/filepath"
)

// BinDirEnv names the folder holding promtool and prometheus.
const BinDirEnv = "KEEPERLB_PROMETHEUS_BIN"

// RulesFile is the canonical alerting rules file, relative to the
// repository root.
const RulesFile = "charts/keeperlb/files/prometheus-rules.yaml"

// Binary returns the path of name (promtool or prometheus) in the folder
// $KEEPERLB_PROMETHEUS_BIN names, after checking that it is executable.
func Binary(name string) (string, error) {
	dir := os.Getenv(BinDirEnv)
	if dir == "" {
		return "", fmt.Errorf("$%s is not set: export %s=$(bash hack/prometheus-tools/build.sh)", BinDirEnv, BinDirEnv)
	}
	p := filepath.Join(dir, name)
	fi, err := os.Stat(p)
	if err != nil {
		return "", fmt.Errorf("$%s: %w (rebuild with bash hack/prometheus-tools/build.sh)", BinDirEnv, err)
	}
	if fi.Mode()&0o111 == 0 {
		return "", fmt.Errorf("$%s: %s is not executable", BinDirEnv, p)
	}
	return p, nil
}
