package layer2

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestOptionsDefaults(t *testing.T) {
	got, err := Options{}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if got != (Options{GratuitousRepeats: 3, GratuitousInterval: 1100 * time.Millisecond}) {
		t.Errorf("defaults = %+v", got)
	}
	keep := Options{GratuitousRepeats: 1, GratuitousInterval: time.Second, Refresh: time.Minute}
	if got, _ := keep.withDefaults(); got != keep {
		t.Errorf("withDefaults changed explicit options: %+v", got)
	}
	for _, bad := range []struct {
		o     Options
		field string
	}{
		{Options{GratuitousRepeats: -1}, "GratuitousRepeats"},
		{Options{GratuitousInterval: -time.Second}, "GratuitousInterval"},
		{Options{Refresh: -time.Second}, "Refresh"},
	} {
		if _, err := New(nil, nil, bad.o); err == nil || !strings.Contains(err.Error(), bad.field) {
			t.Errorf("New(%+v) error %v does not name %s", bad.o, err, bad.field)
		}
	}
}

func TestSetRejectsBadInput(t *testing.T) {
	a, err := New(nil, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ip := netip.MustParseAddr("198.18.0.10")
	for _, tt := range []struct {
		name string
		in   []Announcement
		want string
	}{
		{"zero IP", []Announcement{{Interfaces: []string{"eth0"}}}, "announcement 0: no IP"},
		{"unspecified", []Announcement{{IP: netip.IPv6Unspecified(), Interfaces: []string{"eth0"}}}, "not a unicast address"},
		{"multicast", []Announcement{{IP: netip.MustParseAddr("ff02::1"), Interfaces: []string{"eth0"}}}, "not a unicast address"},
		{"loopback", []Announcement{{IP: netip.MustParseAddr("127.0.0.1"), Interfaces: []string{"eth0"}}}, "not a unicast address"},
		{"broadcast", []Announcement{{IP: netip.MustParseAddr("255.255.255.255"), Interfaces: []string{"eth0"}}}, "not a unicast address"},
		{"empty interface", []Announcement{{IP: ip, Interfaces: []string{""}}}, `interface "": empty name`},
		{"long interface", []Announcement{{IP: ip, Interfaces: []string{"abcdefghijklmnop"}}}, "longer than 15"},
		{"slash", []Announcement{{IP: ip, Interfaces: []string{"a/b"}}}, "contains"},
		{"dot", []Announcement{{IP: ip, Interfaces: []string{".."}}}, "reserved"},
	} {
		err := a.Set(tt.in)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Set error %v, want it to say %q", tt.name, err, tt.want)
		}
	}
}

func TestNormalize(t *testing.T) {
	got, err := normalize([]Announcement{
		{IP: netip.MustParseAddr("::ffff:198.18.0.1"), Interfaces: []string{"eth0", "eth1"}},
		{IP: netip.MustParseAddr("198.18.0.1"), Interfaces: []string{"eth0"}},
		{IP: netip.MustParseAddr("2001:db8::1%eth0"), Interfaces: []string{"eth1"}},
		{IP: netip.MustParseAddr("2001:db8::2")},
	})
	if err != nil {
		t.Fatal(err)
	}
	v4, v6 := netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("2001:db8::1")
	if len(got) != 2 || len(got["eth0"]) != 1 || len(got["eth1"]) != 2 {
		t.Fatalf("normalize = %v", got)
	}
	if _, ok := got["eth0"][v4]; !ok {
		t.Errorf("IPv4-mapped address not unmapped: %v", got)
	}
	if _, ok := got["eth1"][v6]; !ok {
		t.Errorf("zone not dropped: %v", got)
	}
}

// An interface that does not exist is not an error of Set: it is logged and
// retried, since interfaces come and go independently of the speaker.
func TestSetMissingInterfaceIsRetried(t *testing.T) {
	a, err := New(nil, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ip := netip.MustParseAddr("198.18.0.10")
	if err := a.Set([]Announcement{{IP: ip, Interfaces: []string{"kl-missing0"}}}); err != nil {
		t.Fatalf("Set with a missing interface: %v", err)
	}
	a.mu.Lock()
	l := a.links["kl-missing0"]
	if l == nil || l.socks != nil || l.failure == "" || l.retryAt.IsZero() {
		t.Errorf("missing interface state = %+v, want a recorded failure and a retry time", l)
	}
	a.mu.Unlock()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := a.Set(nil); !errors.Is(err, ErrClosed) {
		t.Errorf("Set after Close = %v, want ErrClosed", err)
	}
}

func TestMetricsRegistration(t *testing.T) {
	reg := prometheus.NewRegistry()
	a1, err := New(nil, reg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer a1.Close()
	// A second announcer on the same registry shares the counters.
	a2, err := New(nil, reg, Options{})
	if err != nil {
		t.Fatalf("second New on the same registry: %v", err)
	}
	defer a2.Close()
	a1.m.gratuitous.WithLabelValues("198.18.0.1").Inc()
	a2.m.gratuitous.WithLabelValues("198.18.0.1").Inc()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, mf := range mfs {
		if mf.GetName() == "metallb_layer2_gratuitous_sent" {
			found = true
			if v := mf.GetMetric()[0].GetCounter().GetValue(); v != 2 {
				t.Errorf("shared counter = %v, want 2", v)
			}
		}
	}
	if !found {
		t.Error("metallb_layer2_gratuitous_sent not registered")
	}

	// A different collector under the same name is a real conflict.
	reg2 := prometheus.NewRegistry()
	reg2.MustRegister(prometheus.NewGauge(prometheus.GaugeOpts{Name: "metallb_layer2_requests_received", Help: "x"}))
	if _, err := New(nil, reg2, Options{}); err == nil {
		t.Error("New registered over a conflicting collector")
	}
}
