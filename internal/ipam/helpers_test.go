package ipam

import (
	"errors"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/keeperlb/keeperlb/internal/config"
	"k8s.io/apimachinery/pkg/labels"
)

// mkPool builds a validated-looking pool from CIDRs and "a-b" ranges.
func mkPool(t testing.TB, name string, entries ...string) *config.Pool {
	t.Helper()
	p := &config.Pool{Name: name, AutoAssign: true}
	for _, e := range entries {
		if first, last, ok := strings.Cut(e, "-"); ok {
			p.Ranges = append(p.Ranges, config.Range{First: netip.MustParseAddr(first), Last: netip.MustParseAddr(last)})
			continue
		}
		pfx := netip.MustParsePrefix(e).Masked()
		p.Ranges = append(p.Ranges, config.Range{First: pfx.Addr(), Last: lastOf(pfx)})
	}
	slices.SortFunc(p.Ranges, func(x, y config.Range) int { return x.First.Compare(y.First) })
	return p
}

func lastOf(p netip.Prefix) netip.Addr {
	b := p.Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

func sel(t testing.TB, s string) labels.Selector {
	t.Helper()
	x, err := labels.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// svc builds a SingleStack Service in the namespace named by its key.
func svc(key string, fams ...Family) *Service {
	if len(fams) == 0 {
		fams = []Family{IPv4}
	}
	ns, _, _ := strings.Cut(key, "/")
	return &Service{Key: key, Namespace: ns, Families: fams}
}

func addrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

func tcp(ports ...int32) []Port {
	out := make([]Port, len(ports))
	for i, p := range ports {
		out[i] = Port{Protocol: "TCP", Port: p}
	}
	return out
}

func newAlloc(t testing.TB, pools ...*config.Pool) *Allocator {
	t.Helper()
	a := New()
	a.SetPools(pools)
	return a
}

func mustEnsure(t testing.TB, a *Allocator, s *Service) Assignment {
	t.Helper()
	got, err := a.Ensure(s)
	if err != nil {
		t.Fatalf("Ensure(%s): %v", s.Key, err)
	}
	return got
}

func ipStrings(ips []netip.Addr) string {
	s := make([]string, len(ips))
	for i, ip := range ips {
		s[i] = ip.String()
	}
	return strings.Join(s, ",")
}

// reasonOf returns the Reason of err, failing if it is not an *Error.
func reasonOf(t testing.TB, err error) Reason {
	t.Helper()
	if err == nil {
		return ""
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v is %T, not *Error", err, err)
	}
	if e.Message == "" || e.Error() != e.Message {
		t.Fatalf("error %#v has no usable message", e)
	}
	return e.Reason
}

// checkResult compares an Ensure outcome with an expected "pool:ip,ip" or
// reason, plus message fragments.
func checkResult(t testing.TB, got Assignment, err error, wantPool, wantIPs string, wantReason Reason, wantMsg ...string) {
	t.Helper()
	if r := reasonOf(t, err); r != wantReason {
		t.Fatalf("reason = %q (%v), want %q", r, err, wantReason)
	}
	if err != nil {
		for _, m := range wantMsg {
			if !strings.Contains(err.Error(), m) {
				t.Errorf("message %q does not mention %q", err.Error(), m)
			}
		}
		return
	}
	if got.Pool != wantPool || ipStrings(got.IPs) != wantIPs {
		t.Fatalf("got %s:%s, want %s:%s", got.Pool, ipStrings(got.IPs), wantPool, wantIPs)
	}
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

func itoa(i int) string { return strconv.Itoa(i) }
