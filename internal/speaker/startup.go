package speaker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/connrotation"
)

// waitForAPIServer returns once the API server answers (GET /version), or
// with ctx's error. A speaker started while its node cannot reach the API
// server used to fail in manager.New (controller-runtime's REST mapper asks
// for discovery first) and exit, and the kubelet's back-off, doubling up to
// five minutes, then kept it down long after the API server was back.
// Meanwhile healthAddr (unless "0") answers /healthz, so the liveness probe
// does not restart it, and fails /readyz; it is closed before this returns,
// for the manager's own health server.
func waitForAPIServer(ctx context.Context, cfg *rest.Config, healthAddr string, every time.Duration, log *slog.Logger) error {
	pcfg := rest.CopyConfig(cfg)
	pcfg.Timeout = max(every, time.Second)
	d := connrotation.NewDialer((&net.Dialer{Timeout: pcfg.Timeout}).DialContext)
	pcfg.Dial = d.DialContext
	defer d.CloseAll()
	dc, err := discovery.NewDiscoveryClientForConfig(pcfg)
	if err != nil {
		return fmt.Errorf("creating the API server probe: %w", err)
	}
	_, err = dc.ServerVersion()
	d.CloseAll()
	if err == nil {
		return nil
	}
	log.Warn("waiting for the API server", "err", err)
	if healthAddr != "" && healthAddr != "0" {
		stop, err := serveWaiting(healthAddr, log)
		if err != nil {
			return err
		}
		defer stop()
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		_, err := dc.ServerVersion()
		// A new connection each time: one a network cut left hanging must
		// not outlast the cut.
		d.CloseAll()
		if err == nil {
			log.Info("the API server answers")
			return nil
		}
	}
}

// serveWaiting serves /healthz (ok) and /readyz (failing) on addr until
// the returned function is called, which returns once the port is free.
func serveWaiting(addr string, log *slog.Logger) (stop func(), err error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listening for health probes on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "waiting for the API server", http.StatusServiceUnavailable)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("health probe server failed", "err", err)
		}
	}()
	return func() {
		_ = srv.Close()
		<-done
	}, nil
}
