package ipam

import (
	"maps"
	"net/netip"
	"slices"
	"sort"

	"github.com/keeperlb/keeperlb/internal/config"
)

// Allocator hands out load-balancer addresses from pools. It is not safe
// for concurrent use: the controller serialises calls with its own mutex,
// which is cheaper than locking here on every step.
type Allocator struct {
	pools     map[string]*pool
	names     []string // sorted
	autoOrder []*pool  // autoAssign pools in candidate order
	ranges    [2][]rangeRef
	svcs      map[string]*svcRecord
	nsLabels  map[string]map[string]string // see namespaceLabels
}

// svcRecord is what the allocator remembers about a Service that holds
// addresses: enough to re-check the holding when pools change (SetPools
// gets no Service specs) and to check sharing against later Services.
type svcRecord struct {
	key        string
	namespace  string
	nsLabels   map[string]string
	labels     map[string]string
	sharingKey string
	backendKey string
	ports      []Port
	families   []Family
	policy     FamilyPolicy
	requested  bool // holding came from requested IPs: never upgraded
	pool       *pool
	ips        []netip.Addr // ordered as families
}

// New returns an allocator with no pools.
func New() *Allocator {
	return &Allocator{
		pools:    make(map[string]*pool),
		svcs:     make(map[string]*svcRecord),
		nsLabels: make(map[string]map[string]string),
	}
}

// Pools returns the pool names, sorted.
func (a *Allocator) Pools() []string { return slices.Clone(a.names) }

// Get returns what the Service holds.
func (a *Allocator) Get(key string) (Assignment, bool) {
	r := a.svcs[key]
	if r == nil {
		return Assignment{}, false
	}
	return r.assignment(), true
}

func (r *svcRecord) assignment() Assignment {
	return Assignment{Pool: r.pool.name, IPs: slices.Clone(r.ips)}
}

// Usage reports a pool's address counts in O(1): the counts of used
// offsets are tree sizes and pool sizes are computed once in SetPools.
func (a *Allocator) Usage(name string) (Usage, bool) {
	p := a.pools[name]
	if p == nil {
		return Usage{}, false
	}
	u := Usage{Services: uint64(p.services)}
	if fs := p.space[IPv4]; fs != nil {
		used := u128From64(fs.used.len())
		u.AssignedV4 = used.sat64()
		u.AvailableV4 = fs.total.sub(used).sat64()
	}
	if fs := p.space[IPv6]; fs != nil {
		used := u128From64(fs.used.len())
		u.AssignedV6 = used.sat64()
		u.AvailableV6 = fs.total.sub(used).sat64()
	}
	return u, true
}

// Release frees the Service's addresses; an address shared with other
// Services stays held by them.
func (a *Allocator) Release(key string) bool {
	r := a.svcs[key]
	if r == nil {
		return false
	}
	a.unregister(r)
	delete(a.svcs, key)
	return true
}

// SetPools installs a new pool set. Every held address that is still
// valid under it is kept, including across a pool rename; the others are
// dropped. It returns, sorted, the keys of Services whose holding was
// dropped, shrunk or renamed, and of PreferDualStack Services holding one
// family whose pool now has free addresses of the other, so the caller
// re-runs Ensure for exactly those.
func (a *Allocator) SetPools(cfgs []*config.Pool) []string {
	pools := make(map[string]*pool, len(cfgs))
	for _, c := range cfgs {
		if c == nil {
			continue
		}
		if _, dup := pools[c.Name]; dup {
			continue // validated upstream; first wins so the result is stable
		}
		pools[c.Name] = newPool(c)
	}
	names := slices.Sorted(maps.Keys(pools))
	ordered := make([]*pool, len(names))
	for i, n := range names {
		ordered[i] = pools[n]
	}
	a.pools = pools
	a.names = names
	a.autoOrder = autoAssignOrder(ordered)
	a.ranges = buildRangeIndex(ordered)

	// Rebuilding every index from the surviving holdings is O(n log n) but
	// needs no special case for pools that changed ranges, avoidBuggyIPs or
	// name, and configuration changes are rare next to Ensure calls.
	var affected []string
	keys := slices.Sorted(maps.Keys(a.svcs))
	for _, k := range keys {
		r := a.svcs[k]
		p, kept := a.survivors(r)
		if p == nil {
			delete(a.svcs, k)
			affected = append(affected, k)
			continue
		}
		if p.name != r.pool.name || len(kept) != len(r.ips) {
			affected = append(affected, k)
		}
		r.pool = p
		r.ips = kept
		a.register(r)
	}
	for _, k := range keys {
		r := a.svcs[k]
		if r != nil && r.policy == PreferDualStack && !r.requested && len(r.ips) < len(r.families) && a.couldUpgrade(r) {
			affected = append(affected, k)
		}
	}
	slices.Sort(affected)
	return slices.Compact(affected)
}

// survivors re-checks a holding against the current pools using only
// what was remembered from the Service's last Ensure. Like Ensure, it
// judges each address on its own and lets the first survivor's pool decide
// for the rest, so a dual-stack Service whose IPv6 range disappeared keeps
// its IPv4 address reserved until the controller runs Ensure again.
func (a *Allocator) survivors(r *svcRecord) (*pool, []netip.Addr) {
	var p *pool
	var kept []netip.Addr
	for _, ip := range r.ips {
		q := lookupPool(&a.ranges, ip)
		if q == nil || (p != nil && q != p) {
			continue
		}
		if _, ok := q.family(familyOf(ip)).offsetOf(ip); !ok {
			continue
		}
		if !poolAllows(q, r.namespace, r.nsLabels, r.labels) {
			continue
		}
		p = q
		kept = append(kept, ip)
	}
	return p, kept
}

func (a *Allocator) couldUpgrade(r *svcRecord) bool {
	for _, f := range r.families {
		if holdsFamily(r.ips, f) {
			continue
		}
		fs := r.pool.family(f)
		if fs.free() {
			return true
		}
		if fs != nil {
			if _, ok := joinable(fs, r); ok {
				return true
			}
		}
	}
	return false
}

func holdsFamily(ips []netip.Addr, f Family) bool {
	for _, ip := range ips {
		if familyOf(ip) == f {
			return true
		}
	}
	return false
}

// register makes r a holder of r.ips in r.pool. Callers have checked that
// every address is assignable in the pool and shareable with its holders.
func (a *Allocator) register(r *svcRecord) {
	a.svcs[r.key] = r
	r.pool.services++
	for _, ip := range r.ips {
		fs := r.pool.family(familyOf(ip))
		off, _ := fs.offsetOf(ip)
		n, created := fs.used.insert(off)
		if created && r.sharingKey != "" {
			fs.group(shareKey{r.sharingKey, r.backendKey}, true).addOffset(off)
		}
		i := sort.Search(len(n.holders), func(i int) bool { return n.holders[i].key >= r.key })
		if i < len(n.holders) && n.holders[i].key == r.key {
			continue
		}
		n.holders = slices.Insert(n.holders, i, r)
		if r.sharingKey != "" {
			fs.group(shareKey{r.sharingKey, r.backendKey}, true).addPorts(r.ports)
		}
	}
}

// unregister removes r as a holder of its addresses, freeing those that
// nobody else holds. r stays in a.svcs; callers decide its fate.
func (a *Allocator) unregister(r *svcRecord) {
	r.pool.services--
	for _, ip := range r.ips {
		fs := r.pool.family(familyOf(ip))
		off, ok := fs.offsetOf(ip)
		if !ok {
			continue
		}
		n := fs.used.find(off)
		if n == nil {
			continue
		}
		i := slices.Index(n.holders, r)
		if i < 0 {
			continue
		}
		n.holders = slices.Delete(n.holders, i, i+1)
		k := shareKey{r.sharingKey, r.backendKey}
		var g *shareGroup
		if r.sharingKey != "" {
			if g = fs.group(k, false); g != nil {
				g.removePorts(r.ports)
			}
		}
		if len(n.holders) > 0 {
			continue
		}
		fs.used.remove(off)
		if g != nil {
			g.removeOffset(off)
			if len(g.offs) == 0 {
				delete(fs.groups, k)
			}
		}
	}
}

// holdersOf returns the node of a held address of pool p, or nil when
// nobody holds it (or it is not assignable there).
func holdersOf(p *pool, ip netip.Addr) *treapNode {
	fs := p.family(familyOf(ip))
	off, ok := fs.offsetOf(ip)
	if !ok {
		return nil
	}
	return fs.used.find(off)
}
