package speaker

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/rest"
)

// heldProxy forwards TCP connections to target, but only from the moment
// release is called: before, connections are accepted and hang, as over a
// link that is down.
type heldProxy struct {
	l       net.Listener
	target  string
	open    chan struct{}
	release func()
	mu      sync.Mutex
	conns   []net.Conn
}

func newHeldProxy(t *testing.T, target string) *heldProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &heldProxy{l: l, target: target, open: make(chan struct{})}
	var once sync.Once
	p.release = func() { once.Do(func() { close(p.open) }) }
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			p.conns = append(p.conns, c)
			p.mu.Unlock()
			go func() {
				<-p.open
				up, err := net.Dial("tcp", target)
				if err != nil {
					c.Close()
					return
				}
				p.mu.Lock()
				p.conns = append(p.conns, up)
				p.mu.Unlock()
				go func() { _, _ = io.Copy(up, c); up.Close() }()
				_, _ = io.Copy(c, up)
				c.Close()
			}()
		}
	}()
	t.Cleanup(func() {
		p.release()
		l.Close()
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, c := range p.conns {
			c.Close()
		}
	})
	return p
}

func httpStatus(u string) int {
	c := &http.Client{Timeout: time.Second}
	resp, err := c.Get(u)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	return resp.StatusCode
}

// A speaker started while the API server cannot be reached waits for it,
// live (so that the kubelet does not restart it) and not ready, and goes on
// once it answers, with the health port free for the manager. It used to
// fail in manager.New and exit into the kubelet's back-off.
func TestStartupWaitsForTheAPIServer(t *testing.T) {
	cfg := controlPlane(t)
	u, err := url.Parse(cfg.Host)
	if err != nil {
		t.Fatal(err)
	}
	proxy := newHeldProxy(t, u.Host)
	pcfg := rest.CopyConfig(cfg)
	pcfg.Host = "https://" + proxy.l.Addr().String()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	health := l.Addr().String()
	l.Close()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- waitForAPIServer(ctx, pcfg, health, 200*time.Millisecond, slog.New(slog.DiscardHandler))
	}()
	deadline := time.Now().Add(10 * time.Second)
	for httpStatus("http://"+health+"/healthz") != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("/healthz does not answer while the API server is unreachable")
		}
		time.Sleep(50 * time.Millisecond)
	}
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		select {
		case err := <-done:
			t.Fatalf("returned while the API server was unreachable: %v", err)
		default:
		}
		if s := httpStatus("http://" + health + "/healthz"); s != http.StatusOK {
			t.Fatalf("/healthz answered %d while waiting", s)
		}
		if s := httpStatus("http://" + health + "/readyz"); s == http.StatusOK {
			t.Fatal("/readyz succeeded while the API server was unreachable")
		}
	}

	proxy.release()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("after the API server came back: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("still waiting 5s after the API server came back")
	}
	// The port is free for the manager's health server.
	l, err = net.Listen("tcp", health)
	if err != nil {
		t.Fatalf("the health port is still held: %v", err)
	}
	l.Close()
}
