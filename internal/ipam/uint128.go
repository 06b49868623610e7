package ipam

import (
	"math"
	"math/bits"
	"net/netip"
)

// u128 is an unsigned 128-bit integer. IPv6 pools can hold more addresses
// than a uint64 can count (a /64 holds exactly 2^64), so offsets and sizes
// are kept in 128 bits and only narrowed, saturating, when reported.
type u128 struct {
	hi, lo uint64
}

var maxU128 = u128{math.MaxUint64, math.MaxUint64}

func u128From64(v uint64) u128 { return u128{lo: v} }

// addrToU128 reads an address as a number; IPv4 addresses use the low 32
// bits so that IPv4 arithmetic never touches the high word.
func addrToU128(a netip.Addr) u128 {
	if a.Is4() {
		b := a.As4()
		return u128{lo: uint64(b[0])<<24 | uint64(b[1])<<16 | uint64(b[2])<<8 | uint64(b[3])}
	}
	b := a.As16()
	var v u128
	for i := 0; i < 8; i++ {
		v.hi = v.hi<<8 | uint64(b[i])
		v.lo = v.lo<<8 | uint64(b[i+8])
	}
	return v
}

// u128ToAddr is the inverse of addrToU128 for the given family.
func u128ToAddr(v u128, f Family) netip.Addr {
	if f == IPv4 {
		x := uint32(v.lo)
		return netip.AddrFrom4([4]byte{byte(x >> 24), byte(x >> 16), byte(x >> 8), byte(x)})
	}
	var b [16]byte
	for i := 7; i >= 0; i-- {
		b[i] = byte(v.hi)
		b[i+8] = byte(v.lo)
		v.hi >>= 8
		v.lo >>= 8
	}
	return netip.AddrFrom16(b)
}

func (x u128) cmp(y u128) int {
	switch {
	case x.hi < y.hi:
		return -1
	case x.hi > y.hi:
		return 1
	case x.lo < y.lo:
		return -1
	case x.lo > y.lo:
		return 1
	}
	return 0
}

func (x u128) less(y u128) bool { return x.cmp(y) < 0 }

func (x u128) isZero() bool { return x.hi == 0 && x.lo == 0 }

// add wraps on overflow; callers that can overflow use addSat.
func (x u128) add(y u128) u128 {
	lo, c := bits.Add64(x.lo, y.lo, 0)
	hi, _ := bits.Add64(x.hi, y.hi, c)
	return u128{hi, lo}
}

// addSat exists because the only sum that can exceed 2^128-1 is the size
// of a range spanning the whole IPv6 space, and reporting it one short is
// better than wrapping to zero.
func (x u128) addSat(y u128) u128 {
	lo, c := bits.Add64(x.lo, y.lo, 0)
	hi, c2 := bits.Add64(x.hi, y.hi, c)
	if c2 != 0 {
		return maxU128
	}
	return u128{hi, lo}
}

// sub wraps on underflow; every caller subtracts a smaller value.
func (x u128) sub(y u128) u128 {
	lo, b := bits.Sub64(x.lo, y.lo, 0)
	hi, _ := bits.Sub64(x.hi, y.hi, b)
	return u128{hi, lo}
}

func (x u128) inc() u128 { return x.add(u128{lo: 1}) }

// sat64 narrows a count for the Usage report, where a /64 (2^64 addresses)
// must still read as "as many as can be counted" rather than zero.
func (x u128) sat64() uint64 {
	if x.hi != 0 {
		return math.MaxUint64
	}
	return x.lo
}
