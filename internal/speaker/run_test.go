package speaker

import (
	"context"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/rest"
)

// TestRunRefusesAShortKey checks that a speaker with no heartbeat key, or a
// short one, does not start: anyone on the node network could forge its
// peers' liveness. The API server is never reached: the check comes first.
func TestRunRefusesAShortKey(t *testing.T) {
	for _, key := range []string{"", "abc", "fifteen-bytes!!"} {
		opts := DefaultOptions()
		opts.NodeName = "node1"
		opts.MetricsAddr, opts.HealthAddr = "0", "0"
		opts.Registry = prometheus.NewRegistry()
		opts.SkipNameValidation = true
		opts.Liveness.Key = []byte(key)
		if key == "" {
			opts.Liveness.Key = []byte{} // not nil: do not read the environment
		}
		err := Run(context.Background(), &rest.Config{Host: "https://127.0.0.1:1"}, opts, nil)
		if err == nil || !strings.Contains(err.Error(), MemberKeyEnv) || !strings.Contains(err.Error(), "at least 16") {
			t.Errorf("key %q: Run returned %v, want a refusal naming $%s", key, err, MemberKeyEnv)
		}
	}
}
