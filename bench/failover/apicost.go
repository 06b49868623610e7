package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"strconv"
	"strings"

	"k8s.io/client-go/rest"
)

// requestKey is one series of the API server's apiserver_request_total,
// reduced to what the cost table needs.
type requestKey struct {
	resource, subresource, verb, code string
}

// requestCounts are apiserver_request_total values of the resources the
// speakers write for status and Events.
type requestCounts map[requestKey]float64

// apiRequests reads apiserver_request_total from the API server's /metrics
// (the benchmark's client is an administrator). Only writes and single
// reads of servicel2statuses and events are kept: the benchmark itself
// only lists.
func (b *bench) apiRequests(ctx context.Context) (requestCounts, error) {
	cfg := rest.CopyConfig(b.lab.ControlPlane.Config)
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(cfg.Host, "/")+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("reading the API server's metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("reading the API server's metrics: %s: %s", resp.Status, body)
	}
	return parseRequestCounts(resp.Body)
}

// parseRequestCounts keeps the apiserver_request_total series of
// servicel2statuses and events whose verb is not a LIST or WATCH.
func parseRequestCounts(r io.Reader) (requestCounts, error) {
	out := requestCounts{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, "apiserver_request_total{")
		if !ok {
			continue
		}
		labels, value, ok := strings.Cut(rest, "} ")
		if !ok {
			continue
		}
		l := parseLabels(labels)
		if l["resource"] != "servicel2statuses" && l["resource"] != "events" {
			continue
		}
		if l["verb"] == "LIST" || l["verb"] == "WATCH" {
			continue
		}
		v, err := strconv.ParseFloat(strings.Fields(value)[0], 64)
		if err != nil {
			return nil, fmt.Errorf("parsing %q: %w", line, err)
		}
		out[requestKey{l["resource"], l["subresource"], l["verb"], l["code"]}] += v
	}
	return out, sc.Err()
}

// parseLabels parses a Prometheus text-format label set (without braces).
func parseLabels(s string) map[string]string {
	out := map[string]string{}
	for s != "" {
		name, rest, ok := strings.Cut(s, "=\"")
		if !ok {
			break
		}
		var val strings.Builder
		i := 0
		for ; i < len(rest); i++ {
			if rest[i] == '\\' && i+1 < len(rest) {
				i++
				val.WriteByte(rest[i])
				continue
			}
			if rest[i] == '"' {
				break
			}
			val.WriteByte(rest[i])
		}
		out[strings.TrimSpace(name)] = val.String()
		s = strings.TrimPrefix(rest[min(i+1, len(rest)):], ",")
	}
	return out
}

// apiCost is the requests spent over a span of the benchmark.
type apiCost struct {
	measured bool
	// creates, statusUpdates, deletes and gets are ServiceL2Status
	// requests; conflicts those of them answered 409; events the Event
	// writes (creates and series patches, by every component).
	creates, statusUpdates, deletes, gets, conflicts, events float64
}

func (c apiCost) total() float64 { return c.creates + c.statusUpdates + c.deletes + c.gets }

// since is the cost from before to now.
func (now requestCounts) since(before requestCounts) apiCost {
	c := apiCost{measured: true}
	for k, v := range now {
		d := v - before[k]
		if d <= 0 {
			continue
		}
		if k.resource == "events" {
			if k.verb == "POST" || k.verb == "PATCH" || k.verb == "PUT" {
				c.events += d
			}
			continue
		}
		switch {
		case k.verb == "POST":
			c.creates += d
		case k.verb == "PUT" && k.subresource == "status":
			c.statusUpdates += d
		case k.verb == "DELETE":
			c.deletes += d
		case k.verb == "GET":
			c.gets += d
		}
		if k.code == "409" {
			c.conflicts += d
		}
	}
	return c
}

// String is the cost as the tables print it.
func (c apiCost) String() string {
	if !c.measured {
		return "-"
	}
	return fmt.Sprintf("%.0f (create %.0f, status %.0f, delete %.0f, get %.0f; 409: %.0f) + %.0f Event writes",
		c.total(), c.creates, c.statusUpdates, c.deletes, c.gets, c.conflicts, c.events)
}

// costSince reads the counters and returns the cost since before; a
// failed read is logged and leaves the cost unmeasured.
func (b *bench) costSince(ctx context.Context, before requestCounts) apiCost {
	if before == nil {
		return apiCost{}
	}
	now, err := b.apiRequests(ctx)
	if err != nil {
		b.log.Warn("API request counts", "err", err)
		return apiCost{}
	}
	return now.since(before)
}

// requestsNow reads the counters, logging a failure (nil then).
func (b *bench) requestsNow(ctx context.Context) requestCounts {
	c, err := b.apiRequests(ctx)
	if err != nil {
		b.log.Warn("API request counts", "err", err)
		return nil
	}
	return maps.Clone(c)
}
