package config

import (
	"fmt"
	"net/netip"
	"strings"
)

// parseAddressEntry parses one IPAddressPool address entry: a CIDR, or an
// inclusive range "first-last" of one family. It returns the entry as a
// range and as the shortest list of prefixes that covers exactly the same
// addresses, sorted. The returned error's text is a complete reason that
// quotes the entry, ready for a FieldError.
//
// A CIDR with host bits set (198.18.0.1/24) is accepted and masked, because
// existing MetalLB manifests rely on that. Zones and IPv4-mapped IPv6
// addresses are refused: neither can be announced, and a mapped address
// would let the same IPv4 address hide in two pools under two spellings.
func parseAddressEntry(s string) (Range, []netip.Prefix, error) {
	text := strings.TrimSpace(s)
	if strings.Contains(text, "%") {
		return Range{}, nil, fmt.Errorf("%q: IPv6 zones are not allowed in pool addresses", s)
	}
	if strings.Contains(text, "/") {
		return parseCIDREntry(s, text)
	}
	lo, hi, isRange := strings.Cut(text, "-")
	if !isRange {
		if a, err := netip.ParseAddr(text); err == nil {
			return Range{}, nil, fmt.Errorf("%q is neither a CIDR nor a range (for a single address write %s/%d)", s, a, a.BitLen())
		}
		return Range{}, nil, fmt.Errorf("%q is neither a CIDR nor a range", s)
	}
	return parseRangeEntry(s, strings.TrimSpace(lo), strings.TrimSpace(hi))
}

// parseCIDREntry parses the CIDR form of an address entry; s is the entry
// as written, for messages.
func parseCIDREntry(s, text string) (Range, []netip.Prefix, error) {
	p, err := netip.ParsePrefix(text)
	if err != nil {
		return Range{}, nil, fmt.Errorf("%q is neither a CIDR nor a range", s)
	}
	if p.Addr().Is4In6() {
		return Range{}, nil, fmt.Errorf("%q: IPv4-mapped IPv6 addresses are not allowed; write the IPv4 CIDR instead", s)
	}
	p = p.Masked()
	return Range{First: p.Addr(), Last: lastAddr(p)}, []netip.Prefix{p}, nil
}

// parseRangeEntry parses the "first-last" form of an address entry.
func parseRangeEntry(s, lo, hi string) (Range, []netip.Prefix, error) {
	first, err := netip.ParseAddr(lo)
	if err != nil {
		return Range{}, nil, fmt.Errorf("%q is neither a CIDR nor a range: %q is not an IP address", s, lo)
	}
	last, err := netip.ParseAddr(hi)
	if err != nil {
		return Range{}, nil, fmt.Errorf("%q is neither a CIDR nor a range: %q is not an IP address", s, hi)
	}
	if first.Is4In6() || last.Is4In6() {
		return Range{}, nil, fmt.Errorf("%q: IPv4-mapped IPv6 addresses are not allowed; write the IPv4 range instead", s)
	}
	if first.Is4() != last.Is4() {
		return Range{}, nil, fmt.Errorf("%q mixes an IPv4 and an IPv6 address; a range must stay within one family", s)
	}
	if first.Compare(last) > 0 {
		return Range{}, nil, fmt.Errorf("%q: range start %s is after range end %s", s, first, last)
	}
	return Range{First: first, Last: last}, rangePrefixes(first, last), nil
}

// rangePrefixes splits the inclusive range [first, last] into the fewest
// prefixes that cover it exactly, in address order. Each step takes the
// widest prefix that starts at first and ends no later than last, which is
// optimal for contiguous ranges. first and last must be valid, of one
// family, with first <= last.
func rangePrefixes(first, last netip.Addr) []netip.Prefix {
	var out []netip.Prefix
	for {
		p := widestPrefixAt(first, last)
		out = append(out, p)
		end := lastAddr(p)
		if end.Compare(last) >= 0 {
			return out
		}
		// end < last, so end is not the family's highest address and
		// Next is valid.
		first = end.Next()
	}
}

// widestPrefixAt returns the shortest prefix whose first address is first
// and whose last address is at most last.
func widestPrefixAt(first, last netip.Addr) netip.Prefix {
	for bits := 0; bits < first.BitLen(); bits++ {
		p := netip.PrefixFrom(first, bits)
		if p.Masked().Addr() == first && lastAddr(p).Compare(last) <= 0 {
			return p
		}
	}
	return netip.PrefixFrom(first, first.BitLen())
}

// lastAddr returns the highest address of p, or the zero Addr for an
// invalid prefix.
func lastAddr(p netip.Prefix) netip.Addr {
	if !p.IsValid() {
		return netip.Addr{}
	}
	a := p.Addr()
	b := a.As16()
	host := p.Bits()
	if a.Is4() {
		host += 96 // As16 puts an IPv4 address in the last four bytes.
	}
	for i := host; i < 128; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	out := netip.AddrFrom16(b)
	if a.Is4() {
		out = out.Unmap()
	}
	return out
}

// The reserved blocks that can never be a load-balancer address or a BGP
// peer: announcing one would hijack the nodes' own loopback or multicast
// traffic, or answer for "any address" or "every host".
var reservedBlocks = []struct {
	prefix netip.Prefix
	what   string
}{
	{netip.MustParsePrefix("0.0.0.0/32"), "the unspecified address 0.0.0.0"},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback addresses (127.0.0.0/8)"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast addresses (224.0.0.0/4)"},
	{netip.MustParsePrefix("255.255.255.255/32"), "the broadcast address 255.255.255.255"},
	{netip.MustParsePrefix("::/128"), "the unspecified address ::"},
	{netip.MustParsePrefix("::1/128"), "the loopback address ::1"},
	{netip.MustParsePrefix("ff00::/8"), "multicast addresses (ff00::/8)"},
}

// reserved returns what reserved block the range [first, last] reaches
// into, or "" when it reaches none.
func reserved(r Range) string {
	for _, b := range reservedBlocks {
		lo, hi := b.prefix.Addr(), lastAddr(b.prefix)
		if r.First.Is4() == lo.Is4() && r.First.Compare(hi) <= 0 && lo.Compare(r.Last) <= 0 {
			return b.what
		}
	}
	return ""
}
