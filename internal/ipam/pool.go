package ipam

import (
	"net/netip"
	"sort"

	"github.com/keeperlb/keeperlb/internal/config"
)

// pool is the allocator's view of one config.Pool: per family, the
// assignable addresses numbered densely from 0 ("offsets"), and which of
// them are in use.
type pool struct {
	name  string
	cfg   *config.Pool
	space [2]*famSpace // indexed by Family; nil when the pool has none
	// services counts the Services holding addresses of the pool.
	services int
}

func (p *pool) family(f Family) *famSpace {
	if !f.valid() {
		return nil
	}
	return p.space[f]
}

// famSpace numbers the assignable addresses of one family of one pool.
// Offsets follow address order, so "lowest free offset" is "lowest free
// address", and a set of offsets is all the state a fill level needs.
type famSpace struct {
	fam    Family
	spans  []span // only spans with at least one assignable address
	total  u128
	used   offsetSet
	groups map[shareKey]*shareGroup
}

// span is one configured range. With avoidBuggyIPs the assignable
// addresses of an IPv4 range are not contiguous, but they are regular (254
// of every 256), so index<->address stays O(1) without splitting the range.
type span struct {
	first, last u128
	base        u128 // offset of the span's first assignable address
	n           u128 // assignable addresses in the span
	buggy       bool // skip IPv4 addresses ending in .0 and .255
}

// usableUpTo counts IPv4 addresses in [0, x] whose last byte is neither 0
// nor 255.
func usableUpTo(x uint64) uint64 {
	low := x & 0xff
	if low > 254 {
		low = 254
	}
	return (x>>8)*254 + low
}

// usableBefore counts such addresses in [0, x).
func usableBefore(x uint64) uint64 {
	if x == 0 {
		return 0
	}
	return usableUpTo(x - 1)
}

// unrankUsable returns the IPv4 address that is the r-th (from 0)
// address not ending in .0 or .255.
func unrankUsable(r uint64) uint64 { return (r/254)*256 + 1 + r%254 }

func newPool(cfg *config.Pool) *pool {
	p := &pool{name: cfg.Name, cfg: cfg}
	for _, r := range cfg.Ranges {
		if !r.First.IsValid() || !r.Last.IsValid() || r.First.Is4() != r.Last.Is4() || r.Last.Less(r.First) {
			continue // validated upstream; refuse to guess rather than panic
		}
		f := familyOf(r.First)
		fs := p.space[f]
		if fs == nil {
			fs = &famSpace{fam: f}
			p.space[f] = fs
		}
		s := span{first: addrToU128(r.First), last: addrToU128(r.Last)}
		s.buggy = f == IPv4 && cfg.AvoidBuggyIPs
		if s.buggy {
			s.n = u128From64(usableUpTo(s.last.lo) - usableBefore(s.first.lo))
		} else {
			s.n = s.last.sub(s.first).addSat(u128From64(1))
		}
		if s.n.isZero() {
			continue
		}
		fs.spans = append(fs.spans, s)
	}
	for _, fs := range p.space {
		if fs == nil {
			continue
		}
		sort.Slice(fs.spans, func(i, j int) bool { return fs.spans[i].first.less(fs.spans[j].first) })
		for i := range fs.spans {
			fs.spans[i].base = fs.total
			fs.total = fs.total.addSat(fs.spans[i].n)
		}
	}
	return p
}

// addrAt maps an offset below total to its address.
func (fs *famSpace) addrAt(off u128) netip.Addr {
	i := sort.Search(len(fs.spans), func(i int) bool { return off.less(fs.spans[i].base) }) - 1
	s := &fs.spans[i]
	local := off.sub(s.base)
	if s.buggy {
		return u128ToAddr(u128From64(unrankUsable(usableBefore(s.first.lo)+local.lo)), fs.fam)
	}
	return u128ToAddr(s.first.add(local), fs.fam)
}

// offsetOf maps an address to its offset; false when the address is not
// assignable in this space (outside every range, or excluded by
// avoidBuggyIPs).
func (fs *famSpace) offsetOf(a netip.Addr) (u128, bool) {
	if fs == nil || familyOf(a) != fs.fam {
		return u128{}, false
	}
	v := addrToU128(a)
	i := sort.Search(len(fs.spans), func(i int) bool { return v.less(fs.spans[i].first) }) - 1
	if i < 0 || fs.spans[i].last.less(v) {
		return u128{}, false
	}
	s := &fs.spans[i]
	var off u128
	if s.buggy {
		if low := v.lo & 0xff; low == 0 || low == 0xff {
			return u128{}, false
		}
		off = s.base.add(u128From64(usableUpTo(v.lo) - 1 - usableBefore(s.first.lo)))
	} else {
		off = s.base.add(v.sub(s.first))
	}
	// Only a range covering all of IPv6 reaches here: its size saturated
	// one short, so its very last address is not assignable.
	if !off.less(fs.total) {
		return u128{}, false
	}
	return off, true
}

// free reports whether the space has an address nobody holds.
func (fs *famSpace) free() bool {
	return fs != nil && u128From64(fs.used.len()).less(fs.total)
}

// rangeRef is one configured range in the allocator-wide index that finds
// the pool owning an address in O(log ranges).
type rangeRef struct {
	first, last u128
	pool        *pool
}

// buildRangeIndex includes ranges whose addresses are all excluded by
// avoidBuggyIPs, so that such an address is reported as excluded by its
// pool rather than as belonging to none.
func buildRangeIndex(pools []*pool) [2][]rangeRef {
	var idx [2][]rangeRef
	for _, p := range pools {
		for _, r := range p.cfg.Ranges {
			if !r.First.IsValid() || !r.Last.IsValid() || r.First.Is4() != r.Last.Is4() || r.Last.Less(r.First) {
				continue
			}
			f := familyOf(r.First)
			idx[f] = append(idx[f], rangeRef{first: addrToU128(r.First), last: addrToU128(r.Last), pool: p})
		}
	}
	for f := range idx {
		refs := idx[f]
		sort.Slice(refs, func(i, j int) bool {
			if c := refs[i].first.cmp(refs[j].first); c != 0 {
				return c < 0
			}
			return refs[i].pool.name < refs[j].pool.name
		})
	}
	return idx
}

// lookupPool returns the pool whose ranges contain a, or nil.
func lookupPool(idx *[2][]rangeRef, a netip.Addr) *pool {
	if !a.IsValid() {
		return nil
	}
	refs := idx[familyOf(a)]
	v := addrToU128(a)
	i := sort.Search(len(refs), func(i int) bool { return v.less(refs[i].first) }) - 1
	if i < 0 || refs[i].last.less(v) {
		return nil
	}
	return refs[i].pool
}
