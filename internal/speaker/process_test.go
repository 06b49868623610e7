package speaker

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/rest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
)

// TestRunLeavesTheGlobalLoggerAlone runs a speaker until it waits for an API
// server that does not answer (past its set-up, before anything needs a
// network namespace) and checks that controller-runtime's global logger is
// still unset: it is process-wide, so only a main sets it (SetUpProcess).
// Nothing in this test binary sets it, so it must still be unset whichever
// test ran a speaker first.
func TestRunLeavesTheGlobalLoggerAlone(t *testing.T) {
	opts := DefaultOptions()
	opts.NodeName = "node1"
	opts.MetricsAddr, opts.HealthAddr = "0", "0"
	opts.Registry = prometheus.NewRegistry()
	opts.Liveness.Key = bytes.Repeat([]byte("k"), 32)
	var logs lockedLog
	log := slog.New(slog.NewTextHandler(&logs, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	// Port 1 on loopback: nothing listens, so the speaker waits.
	go func() { done <- Run(ctx, &rest.Config{Host: "https://127.0.0.1:1"}, opts, log) }()
	for !bytes.Contains(logs.Bytes(), []byte("waiting for the API server")) {
		select {
		case err := <-done:
			t.Fatalf("Run returned before waiting for the API server: %v\n%s", err, logs.Bytes())
		case <-ctx.Done():
			t.Fatalf("Run did not wait for the API server within 30s:\n%s", logs.Bytes())
		case <-time.After(20 * time.Millisecond):
		}
	}
	if ctrllog.Log.Enabled() {
		t.Error("Run set controller-runtime's global logger")
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}

// lockedLog is a log buffer that Run's goroutine writes while the test
// reads it.
type lockedLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// Bytes returns a copy of what was written so far.
func (l *lockedLog) Bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Clone(l.buf.Bytes())
}
