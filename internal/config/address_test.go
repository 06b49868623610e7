package config

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestParseAddressEntry(t *testing.T) {
	pfx := netip.MustParsePrefix
	addr := netip.MustParseAddr
	tests := []struct {
		in      string
		first   string
		last    string
		cidrs   []netip.Prefix
		wantErr string
	}{
		{in: "198.18.0.0/24", first: "198.18.0.0", last: "198.18.0.255", cidrs: []netip.Prefix{pfx("198.18.0.0/24")}},
		{in: "198.18.0.1/24", first: "198.18.0.0", last: "198.18.0.255", cidrs: []netip.Prefix{pfx("198.18.0.0/24")}},
		{in: " 198.18.0.7/32 ", first: "198.18.0.7", last: "198.18.0.7", cidrs: []netip.Prefix{pfx("198.18.0.7/32")}},
		{in: "2001:db8::/64", first: "2001:db8::", last: "2001:db8::ffff:ffff:ffff:ffff", cidrs: []netip.Prefix{pfx("2001:db8::/64")}},
		{in: "0.0.0.0/0", first: "0.0.0.0", last: "255.255.255.255", cidrs: []netip.Prefix{pfx("0.0.0.0/0")}},
		{in: "198.18.0.10-198.18.0.20", first: "198.18.0.10", last: "198.18.0.20", cidrs: []netip.Prefix{
			pfx("198.18.0.10/31"), pfx("198.18.0.12/30"), pfx("198.18.0.16/30"), pfx("198.18.0.20/32"),
		}},
		{in: "198.18.0.10 - 198.18.0.20", first: "198.18.0.10", last: "198.18.0.20", cidrs: []netip.Prefix{
			pfx("198.18.0.10/31"), pfx("198.18.0.12/30"), pfx("198.18.0.16/30"), pfx("198.18.0.20/32"),
		}},
		{in: "198.18.0.0-198.18.0.255", first: "198.18.0.0", last: "198.18.0.255", cidrs: []netip.Prefix{pfx("198.18.0.0/24")}},
		{in: "198.18.0.5-198.18.0.5", first: "198.18.0.5", last: "198.18.0.5", cidrs: []netip.Prefix{pfx("198.18.0.5/32")}},
		{in: "198.18.0.255-198.18.1.0", first: "198.18.0.255", last: "198.18.1.0", cidrs: []netip.Prefix{pfx("198.18.0.255/32"), pfx("198.18.1.0/32")}},
		{in: "0.0.0.0-255.255.255.255", first: "0.0.0.0", last: "255.255.255.255", cidrs: []netip.Prefix{pfx("0.0.0.0/0")}},
		{in: "255.255.255.254-255.255.255.255", first: "255.255.255.254", last: "255.255.255.255", cidrs: []netip.Prefix{pfx("255.255.255.254/31")}},
		{in: "::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", first: "::", last: "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", cidrs: []netip.Prefix{pfx("::/0")}},
		{in: "2001:db8::1-2001:db8::2", first: "2001:db8::1", last: "2001:db8::2", cidrs: []netip.Prefix{pfx("2001:db8::1/128"), pfx("2001:db8::2/128")}},

		{in: "198.18.0.0/33", wantErr: `"198.18.0.0/33" is neither a CIDR nor a range`},
		{in: "198.18.0.0/24/1", wantErr: "is neither a CIDR nor a range"},
		{in: "2001:db8::/129", wantErr: "is neither a CIDR nor a range"},
		{in: "", wantErr: `"" is neither a CIDR nor a range`},
		{in: "banana", wantErr: `"banana" is neither a CIDR nor a range`},
		{in: "198.18.0.1", wantErr: "for a single address write 198.18.0.1/32"},
		{in: "2001:db8::1", wantErr: "for a single address write 2001:db8::1/128"},
		{in: "198.18.0.1-", wantErr: `"" is not an IP address`},
		{in: "-198.18.0.1", wantErr: `"" is not an IP address`},
		{in: "a-b", wantErr: `"a" is not an IP address`},
		{in: "198.18.0.1-198.18.0.2-198.18.0.3", wantErr: `"198.18.0.2-198.18.0.3" is not an IP address`},
		{in: "198.18.0.20-198.18.0.10", wantErr: "range start 198.18.0.20 is after range end 198.18.0.10"},
		{in: "2001:db8::2-2001:db8::1", wantErr: "range start 2001:db8::2 is after range end 2001:db8::1"},
		{in: "198.18.0.1-2001:db8::1", wantErr: "mixes an IPv4 and an IPv6 address"},
		{in: "2001:db8::1-198.18.0.1", wantErr: "mixes an IPv4 and an IPv6 address"},
		{in: "::ffff:198.18.0.0/120", wantErr: "IPv4-mapped IPv6 addresses are not allowed"},
		{in: "::ffff:198.18.0.1-::ffff:198.18.0.9", wantErr: "IPv4-mapped IPv6 addresses are not allowed"},
		{in: "198.18.0.1-::ffff:198.18.0.9", wantErr: "IPv4-mapped IPv6 addresses are not allowed"},
		{in: "fe80::/64%eth0", wantErr: "IPv6 zones are not allowed"},
		{in: "fe80::1%eth0/64", wantErr: "IPv6 zones are not allowed"},
		{in: "fe80::1%eth0-fe80::2%eth0", wantErr: "IPv6 zones are not allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			r, cidrs, err := parseAddressEntry(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseAddressEntry(%q) error = %v, want one containing %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseAddressEntry(%q) unexpected error: %v", tt.in, err)
			}
			want := Range{First: addr(tt.first), Last: addr(tt.last)}
			if r != want {
				t.Errorf("range = %v-%v, want %v-%v", r.First, r.Last, want.First, want.Last)
			}
			if !slices.Equal(cidrs, tt.cidrs) {
				t.Errorf("cidrs = %v, want %v", cidrs, tt.cidrs)
			}
			checkEntryInvariants(t, tt.in, r, cidrs)
		})
	}
}

func TestLastAddr(t *testing.T) {
	tests := []struct{ prefix, want string }{
		{"198.18.0.0/24", "198.18.0.255"},
		{"198.18.0.0/32", "198.18.0.0"},
		{"0.0.0.0/0", "255.255.255.255"},
		{"10.0.0.0/9", "10.127.255.255"},
		{"2001:db8::/64", "2001:db8::ffff:ffff:ffff:ffff"},
		{"2001:db8::/127", "2001:db8::1"},
	}
	for _, tt := range tests {
		if got := lastAddr(netip.MustParsePrefix(tt.prefix)); got != netip.MustParseAddr(tt.want) {
			t.Errorf("lastAddr(%s) = %v, want %s", tt.prefix, got, tt.want)
		}
	}
	if got := lastAddr(netip.Prefix{}); got.IsValid() {
		t.Errorf("lastAddr(invalid) = %v, want the zero Addr", got)
	}
}

// checkEntryInvariants asserts what every successful parse must satisfy:
// one family, first <= last, and prefixes that are masked, in order, and
// cover exactly [first, last] without gaps or overlaps.
func checkEntryInvariants(t *testing.T, in string, r Range, cidrs []netip.Prefix) {
	t.Helper()
	if !r.First.IsValid() || !r.Last.IsValid() {
		t.Fatalf("%q: invalid range bounds %v-%v", in, r.First, r.Last)
	}
	if r.First.Is4() != r.Last.Is4() || r.First.Is4In6() || r.Last.Is4In6() || r.First.Zone() != "" || r.Last.Zone() != "" {
		t.Fatalf("%q: range %v-%v is not a plain single-family range", in, r.First, r.Last)
	}
	if r.First.Compare(r.Last) > 0 {
		t.Fatalf("%q: range start %v after end %v", in, r.First, r.Last)
	}
	if len(cidrs) == 0 {
		t.Fatalf("%q: no prefixes", in)
	}
	if len(cidrs) > 2*r.First.BitLen() {
		t.Fatalf("%q: %d prefixes, more than a minimal cover can need", in, len(cidrs))
	}
	next := r.First
	for i, p := range cidrs {
		if p != p.Masked() {
			t.Fatalf("%q: prefix %d (%v) is not masked", in, i, p)
		}
		if p.Addr() != next {
			t.Fatalf("%q: prefix %d (%v) starts at %v, want %v", in, i, p, p.Addr(), next)
		}
		end := lastAddr(p)
		if i == len(cidrs)-1 {
			if end != r.Last {
				t.Fatalf("%q: prefixes end at %v, want %v", in, end, r.Last)
			}
			break
		}
		// Minimality: a prefix and its successor must not be mergeable
		// into their common parent.
		if n := cidrs[i+1]; n.Bits() == p.Bits() && p.Bits() > 0 {
			parent, _ := p.Addr().Prefix(p.Bits() - 1)
			if parent.Addr() == p.Addr() {
				t.Fatalf("%q: prefixes %v and %v should have been merged into %v", in, p, n, parent)
			}
		}
		next = end.Next()
	}
}

func FuzzParseAddressEntry(f *testing.F) {
	for _, s := range []string{
		"198.18.0.0/24", "198.18.0.1/24", "2001:db8::/64", "198.18.0.10-198.18.0.20",
		"198.18.0.10 - 198.18.0.20", "::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "198.18.0.0/33",
		"::ffff:1.2.3.4/128", "fe80::1%eth0/64", "1.2.3.4-::1", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, cidrs, err := parseAddressEntry(s)
		if err != nil {
			if r != (Range{}) || cidrs != nil {
				t.Fatalf("%q: error %v came with a result", s, err)
			}
			if !strings.Contains(err.Error(), strconvQuote(s)) {
				t.Fatalf("%q: error %q does not quote the entry", s, err)
			}
			return
		}
		checkEntryInvariants(t, s, r, cidrs)
		// A CIDR entry must come back as itself, masked.
		if strings.Contains(s, "/") {
			if len(cidrs) != 1 {
				t.Fatalf("%q: a CIDR gave %d prefixes", s, len(cidrs))
			}
		}
		// The canonical text of every prefix must parse back to itself.
		for _, p := range cidrs {
			r2, c2, err := parseAddressEntry(p.String())
			if err != nil || len(c2) != 1 || c2[0] != p || r2.First != p.Addr() {
				t.Fatalf("%q: prefix %v does not round-trip: %v %v %v", s, p, r2, c2, err)
			}
		}
	})
}

// strconvQuote quotes like the %q verb, which the error messages use.
func strconvQuote(s string) string { return fmt.Sprintf("%q", s) }
