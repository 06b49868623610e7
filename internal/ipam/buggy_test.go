package ipam

import (
	"fmt"
	"testing"
)

func TestAvoidBuggyIPs(t *testing.T) {
	cases := []struct {
		name      string
		entries   []string
		buggy     bool
		wantOrder []string // first allocations, in order
		wantTotal int
	}{
		{name: "/24 starts at .1", entries: []string{"10.0.0.0/24"}, buggy: true, wantOrder: []string{"10.0.0.1", "10.0.0.2"}, wantTotal: 254},
		{name: "/24 without the flag starts at .0", entries: []string{"10.0.0.0/24"}, wantOrder: []string{"10.0.0.0", "10.0.0.1"}, wantTotal: 256},
		{name: "range ending in .255", entries: []string{"10.0.0.250-10.0.0.255"}, buggy: true, wantOrder: []string{"10.0.0.250", "10.0.0.251", "10.0.0.252", "10.0.0.253", "10.0.0.254"}, wantTotal: 5},
		{name: "range across blocks", entries: []string{"10.0.0.253-10.0.2.1"}, buggy: true, wantOrder: []string{"10.0.0.253", "10.0.0.254", "10.0.1.1", "10.0.1.2"}, wantTotal: 2 + 254 + 1},
		{name: "range of only .255 and .0", entries: []string{"10.0.0.255-10.0.1.0", "10.0.5.5/32"}, buggy: true, wantOrder: []string{"10.0.5.5"}, wantTotal: 1},
		{name: "/16 skips every .0 and .255", entries: []string{"10.1.0.0/16"}, buggy: true, wantOrder: []string{"10.1.0.1"}, wantTotal: 256 * 254},
		{name: "IPv6 is unaffected", entries: []string{"fd00::/120"}, buggy: true, wantOrder: []string{"fd00::", "fd00::1"}, wantTotal: 256},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := mkPool(t, "p", tc.entries...)
			p.AvoidBuggyIPs = tc.buggy
			a := newAlloc(t, p)
			fam := IPv4
			if p.Ranges[0].First.Is6() {
				fam = IPv6
			}
			u, _ := a.Usage("p")
			if total := u.TotalV4() + u.TotalV6(); total != uint64(tc.wantTotal) {
				t.Fatalf("total = %d, want %d", total, tc.wantTotal)
			}
			seen := map[string]bool{}
			for i := 0; i < tc.wantTotal; i++ {
				got := mustEnsure(t, a, svc(fmt.Sprintf("ns/s%d", i), fam))
				ip := got.IPs[0]
				if i < len(tc.wantOrder) && ip.String() != tc.wantOrder[i] {
					t.Fatalf("allocation %d = %s, want %s", i, ip, tc.wantOrder[i])
				}
				if fam == IPv4 && tc.buggy {
					if last := ip.As4()[3]; last == 0 || last == 255 {
						t.Fatalf("handed out %s despite avoidBuggyIPs", ip)
					}
				}
				if seen[ip.String()] {
					t.Fatalf("%s handed out twice", ip)
				}
				seen[ip.String()] = true
			}
			_, err := a.Ensure(svc("ns/overflow", fam))
			if reasonOf(t, err) != ReasonPoolExhausted {
				t.Fatalf("after filling: %v", err)
			}
			if u, _ := a.Usage("p"); u.AvailableV4+u.AvailableV6 != 0 {
				t.Fatalf("usage when full: %+v", u)
			}
		})
	}
}

// TestOffsetArithmetic checks index<->address mapping against brute force
// on ranges chosen to hit block edges.
func TestOffsetArithmetic(t *testing.T) {
	for _, buggy := range []bool{false, true} {
		p := mkPool(t, "p", "10.0.0.0-10.0.0.0", "10.0.0.3-10.0.1.2", "10.0.2.255-10.0.4.0", "10.0.9.254-10.0.10.1")
		p.AvoidBuggyIPs = buggy
		fs := newPool(p).space[IPv4]
		var want []uint32
		for _, r := range p.Ranges {
			for v := addrToU128(r.First).lo; v <= addrToU128(r.Last).lo; v++ {
				if buggy && (v&0xff == 0 || v&0xff == 0xff) {
					continue
				}
				want = append(want, uint32(v))
			}
		}
		if fs.total != u128From64(uint64(len(want))) {
			t.Fatalf("buggy=%v total = %v, want %d", buggy, fs.total, len(want))
		}
		for i, v := range want {
			ip := u128ToAddr(u128From64(uint64(v)), IPv4)
			if got := fs.addrAt(u128From64(uint64(i))); got != ip {
				t.Fatalf("buggy=%v addrAt(%d) = %s, want %s", buggy, i, got, ip)
			}
			off, ok := fs.offsetOf(ip)
			if !ok || off != u128From64(uint64(i)) {
				t.Fatalf("buggy=%v offsetOf(%s) = %v,%v want %d", buggy, ip, off, ok, i)
			}
		}
		for _, s := range []string{"10.0.0.1", "10.0.1.3", "10.0.4.1", "9.255.255.255", "10.0.10.2"} {
			if _, ok := fs.offsetOf(u128ToAddr(addrToU128(mustAddr(s)), IPv4)); ok {
				t.Fatalf("buggy=%v offsetOf(%s) found an address outside the ranges", buggy, s)
			}
		}
	}
}
