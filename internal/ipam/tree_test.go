package ipam

import (
	"math/rand/v2"
	"net/netip"
	"testing"
)

func TestOffsetSetAgainstMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	var s offsetSet
	ref := map[uint64]bool{}
	const space = 300
	for step := range 20000 {
		k := rng.Uint64N(space)
		if rng.IntN(3) == 0 {
			if got, want := s.remove(u128From64(k)), ref[k]; got != want {
				t.Fatalf("step %d remove(%d) = %v, want %v", step, k, got, want)
			}
			delete(ref, k)
		} else {
			if _, got := s.insert(u128From64(k)); got != !ref[k] {
				t.Fatalf("step %d insert(%d) created = %v, want %v", step, k, got, !ref[k])
			}
			ref[k] = true
		}
		if s.len() != uint64(len(ref)) {
			t.Fatalf("step %d len %d, want %d", step, s.len(), len(ref))
		}
		var want uint64
		for ref[want] {
			want++
		}
		got, ok := s.firstFree(u128From64(space))
		if got != u128From64(want) || ok != (want < space) {
			t.Fatalf("step %d firstFree = %v,%v want %d", step, got, ok, want)
		}
	}
}

func TestOffsetSetHighOffsets(t *testing.T) {
	var s offsetSet
	base := u128{hi: 1 << 40}
	limit := base.add(u128From64(3))
	for i := range uint64(3) {
		s.insert(u128From64(i))
	}
	if got, ok := s.firstFree(limit); got != u128From64(3) || !ok {
		t.Fatalf("firstFree = %v %v", got, ok)
	}
	s.insert(base)
	if !s.has(base) || s.has(base.inc()) {
		t.Fatal("has is wrong above 2^64")
	}
	if got, ok := s.firstFree(u128From64(3)); got != u128From64(3) || ok {
		t.Fatalf("full set below limit: %v %v", got, ok)
	}
}

func TestU128(t *testing.T) {
	for _, s := range []string{"0.0.0.0", "10.1.2.3", "255.255.255.255", "::", "2001:db8::1", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "fd00:0:0:1::"} {
		a := netip.MustParseAddr(s)
		if got := u128ToAddr(addrToU128(a), familyOf(a)); got != a {
			t.Errorf("round trip %s -> %s", a, got)
		}
	}
	x := u128{lo: ^uint64(0)}
	if got := x.inc(); got != (u128{hi: 1}) {
		t.Fatalf("carry: %v", got)
	}
	if got := (u128{hi: 1}).sub(u128From64(1)); got != x {
		t.Fatalf("borrow: %v", got)
	}
	if got := maxU128.addSat(u128From64(1)); got != maxU128 {
		t.Fatalf("addSat: %v", got)
	}
	if (u128{hi: 1}).sat64() != ^uint64(0) || u128From64(5).sat64() != 5 {
		t.Fatal("sat64")
	}
	if !(u128{hi: 1}).less(u128{hi: 1, lo: 1}) || (u128{hi: 2}).less(u128{hi: 1, lo: 9}) {
		t.Fatal("less")
	}
}

func TestWholeIPv6Space(t *testing.T) {
	// A range covering every IPv6 address cannot be counted in 128 bits;
	// it must still work, one address short, without panicking.
	a := newAlloc(t, mkPool(t, "all", "::/0"))
	u, _ := a.Usage("all")
	if u.AvailableV6 != ^uint64(0) {
		t.Fatalf("usage %+v", u)
	}
	checkResult(t, mustEnsure(t, a, svc("ns/x", IPv6)), nil, "all", "::", "")
	r := svc("ns/y", IPv6)
	r.RequestedIPs = addrs("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe")
	checkResult(t, mustEnsure(t, a, r), nil, "all", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", "")
	r.RequestedIPs = addrs("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")
	if _, err := a.Ensure(r); reasonOf(t, err) != ReasonIPNotInPool {
		t.Fatalf("last address: %v", err)
	}
}
