package lab

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"

	"github.com/keeperlb/keeperlb/internal/netns"
)

// Dialer returns a dial function whose connections start in h's namespace
// (the root namespace when h is nil): the socket is created there, so it
// routes and resolves neighbours as h does, while the caller keeps running
// here. Addresses must be IP literals (no name lookups in a namespace). Use
// it for HTTP clients, client-go's rest.Config.Dial, or benchmarks that
// open many connections without forking.
func (l *Lab) Dialer(h *Host) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, fmt.Errorf("dial from %s: %w", h.label(), err)
		}
		if _, err := netip.ParseAddr(host); err != nil {
			return nil, fmt.Errorf("dial from %s: %q is not an IP address", h.label(), host)
		}
		var d net.Dialer
		if h == nil {
			return d.DialContext(ctx, network, addr)
		}
		var c net.Conn
		// A literal address makes DialContext create and connect one
		// socket on this goroutine, hence in the namespace.
		err = netns.Do(h.Netns, func() error {
			var err error
			c, err = d.DialContext(ctx, network, addr)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("dial %s from %s: %w", addr, h.label(), err)
		}
		return c, nil
	}
}

// HTTPClient returns an HTTP client whose connections start in h's namespace,
// one new connection per request (as a fresh client would open).
func (l *Lab) HTTPClient(h *Host) *http.Client {
	return &http.Client{Transport: &http.Transport{DialContext: l.Dialer(h), DisableKeepAlives: true}}
}

// Curl sends GET http://vip:port/ from h (the root namespace when nil) and
// returns the name of the node whose backend answered.
func (l *Lab) Curl(ctx context.Context, from *Host, vip netip.Addr, port int) (string, error) {
	url := "http://" + net.JoinHostPort(vip.Unmap().String(), strconv.Itoa(port)) + "/"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	client := l.HTTPClient(from)
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("GET %s from %s: %w", url, from.label(), err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if err != nil {
		return "", fmt.Errorf("GET %s from %s: %w", url, from.label(), err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s from %s: %s", url, from.label(), resp.Status)
	}
	return strings.TrimSpace(string(body)), nil
}
