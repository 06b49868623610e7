package config

import (
	"net/netip"
	"testing"
)

func TestPoolOf(t *testing.T) {
	r := func(a, b string) Range { return Range{First: netip.MustParseAddr(a), Last: netip.MustParseAddr(b)} }
	cfg := &Config{Pools: []*Pool{
		{Name: "a", Ranges: []Range{r("198.18.0.10", "198.18.0.20"), r("198.18.1.0", "198.18.1.255"), r("2001:db8::", "2001:db8::ff")}},
		{Name: "b", Ranges: []Range{r("198.18.0.21", "198.18.0.21")}},
	}}
	for ip, want := range map[string]string{
		"198.18.0.9": "", "198.18.0.10": "a", "198.18.0.20": "a", "198.18.0.21": "b", "198.18.0.22": "",
		"198.18.1.128": "a", "2001:db8::ff": "a", "2001:db8::100": "", "::ffff:198.18.0.15": "a",
		"0.0.0.0": "", "::": "",
	} {
		got := ""
		if p := cfg.PoolOf(netip.MustParseAddr(ip)); p != nil {
			got = p.Name
		}
		if got != want {
			t.Errorf("PoolOf(%s) = %q, want %q", ip, got, want)
		}
	}
	if (*Config)(nil).PoolOf(netip.MustParseAddr("198.18.0.10")) != nil {
		t.Error("a nil Config holds an address")
	}
}
