package config

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sort"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/keeperlb/keeperlb/api/v1beta1"
)

// Pool returns the pool called name, or nil. Parse sorts Pools by name, so
// the lookup is a binary search; a Config assembled by hand with unsorted
// pools still works, through a slower scan.
func (c *Config) Pool(name string) *Pool {
	if c == nil {
		return nil
	}
	i := sort.Search(len(c.Pools), func(i int) bool {
		return c.Pools[i] == nil || c.Pools[i].Name >= name
	})
	if i < len(c.Pools) && c.Pools[i] != nil && c.Pools[i].Name == name {
		return c.Pools[i]
	}
	for _, p := range c.Pools {
		if p != nil && p.Name == name {
			return p
		}
	}
	return nil
}

// PoolOf returns the pool whose ranges hold ip, or nil. Parse keeps pools
// disjoint, so there is at most one. It is the one rule for the pool of an
// announced address, used by layer 2 and BGP alike: the
// metallb.io/ip-allocated-from-pool annotation is written on the Service,
// which a tenant may edit, so it never decides which advertisements (and
// so which nodes and interfaces) announce an address.
func (c *Config) PoolOf(ip netip.Addr) *Pool {
	if c == nil || !ip.IsValid() {
		return nil
	}
	ip = ip.Unmap()
	for _, p := range c.Pools {
		if p != nil && p.Holds(ip) {
			return p
		}
	}
	return nil
}

// Holds reports whether ip lies in one of the pool's ranges.
func (p *Pool) Holds(ip netip.Addr) bool {
	if p == nil {
		return false
	}
	// Ranges are sorted by first address: the last one starting at or
	// before ip is the only candidate.
	i := sort.Search(len(p.Ranges), func(i int) bool { return ip.Less(p.Ranges[i].First) }) - 1
	if i < 0 {
		return false
	}
	r := p.Ranges[i]
	return r.First.Is4() == ip.Is4() && r.First.Compare(ip) <= 0 && ip.Compare(r.Last) <= 0
}

// Families reports which address families the pool holds, which decides
// whether it can serve a single-stack or a dual-stack Service.
func (p *Pool) Families() (v4, v6 bool) {
	if p == nil {
		return false, false
	}
	for _, r := range p.Ranges {
		if r.First.Is4() {
			v4 = true
		} else {
			v6 = true
		}
	}
	return v4, v6
}

// Matches reports whether the pool's serviceAllocation admits a Service in
// namespace, with the given namespace and Service labels. The namespace
// part holds when no namespace restriction is given, the namespace is
// listed, or a namespace selector matches; the Service part holds when no
// Service selector is given or one matches; both must hold. A nil
// allocation restricts nothing.
func (a *ServiceAllocation) Matches(namespace string, namespaceLabels, serviceLabels map[string]string) bool {
	if !a.AdmitsNamespace(namespace, namespaceLabels) {
		return false
	}
	return a == nil || len(a.ServiceSelectors) == 0 || matchesAny(a.ServiceSelectors, serviceLabels)
}

// AdmitsNamespace is the namespace part of Matches alone: whether some
// Service of namespace, with the right labels, could use the pool. A
// pool that admits no Service of a namespace is reserved for others.
func (a *ServiceAllocation) AdmitsNamespace(namespace string, namespaceLabels map[string]string) bool {
	return a == nil || len(a.Namespaces) == 0 && len(a.NamespaceSelectors) == 0 ||
		slices.Contains(a.Namespaces, namespace) ||
		matchesAny(a.NamespaceSelectors, namespaceLabels)
}

// parsedPool is a Pool with what the cross-object rules need to say where
// an address came from.
type parsedPool struct {
	ref     objectRef
	pool    *Pool
	entries []poolEntry
}

// poolEntry is one valid spec.addresses entry.
type poolEntry struct {
	pool  *parsedPool
	index int
	text  string
	r     Range
}

// describe names the entry for a message about another entry.
func (e poolEntry) describe() string {
	return fmt.Sprintf("%q (%s spec.addresses[%d])", e.text, e.pool.ref, e.index)
}

// poolSet is the parsed pools, sorted by name, with an index for the
// advertisements that refer to them.
type poolSet struct {
	list   []*parsedPool
	byName map[string]*parsedPool
}

// parsePools parses every pool, then checks that no address belongs to two
// entries: an address in two pools would be handed out twice, and two
// overlapping entries of one pool would be counted twice in its size.
func (c *collector) parsePools(objs []*v1beta1.IPAddressPool) poolSet {
	set := poolSet{byName: make(map[string]*parsedPool)}
	for _, o := range uniqueByName(c, KindIPAddressPool, objs) {
		p := c.parsePool(o)
		set.list = append(set.list, p)
		set.byName[p.pool.Name] = p
	}
	c.checkOverlaps(set.list)
	return set
}

// parsePool parses one pool; invalid entries are reported and left out.
func (c *collector) parsePool(o *v1beta1.IPAddressPool) *parsedPool {
	ref := refOf(KindIPAddressPool, o)
	pp := &parsedPool{ref: ref, pool: &Pool{
		Name:          o.Name,
		Labels:        maps.Clone(o.Labels),
		AutoAssign:    o.Spec.AutoAssign == nil || *o.Spec.AutoAssign,
		AvoidBuggyIPs: o.Spec.AvoidBuggyIPs,
	}}
	if len(o.Spec.Addresses) == 0 {
		c.fail(ref, "spec.addresses", "no addresses: a pool needs at least one CIDR or range")
	}
	for i, text := range o.Spec.Addresses {
		r, cidrs, err := parseAddressEntry(text)
		if err != nil {
			c.fail(ref, fmt.Sprintf("spec.addresses[%d]", i), "%v", err)
			continue
		}
		if what := reserved(r); what != "" {
			c.fail(ref, fmt.Sprintf("spec.addresses[%d]", i), "%q contains %s, which can never be a load-balancer address", text, what)
			continue
		}
		pp.entries = append(pp.entries, poolEntry{pool: pp, index: i, text: text, r: r})
		pp.pool.Ranges = append(pp.pool.Ranges, r)
		pp.pool.CIDRs = append(pp.pool.CIDRs, cidrs...)
	}
	slices.SortFunc(pp.pool.Ranges, func(a, b Range) int {
		if c := a.First.Compare(b.First); c != 0 {
			return c
		}
		return a.Last.Compare(b.Last)
	})
	slices.SortFunc(pp.pool.CIDRs, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	pp.pool.Allocation = c.parseAllocation(ref, o.Spec.ServiceAllocation)
	return pp
}

// parseAllocation parses a pool's serviceAllocation.
func (c *collector) parseAllocation(ref objectRef, a *v1beta1.ServiceAllocation) *ServiceAllocation {
	if a == nil {
		return nil
	}
	const field = "spec.serviceAllocation"
	if a.Priority < 0 {
		c.fail(ref, field+".priority", "priority %d is negative; use 1 for the first pool tried, or 0 for no priority", a.Priority)
	}
	for i, ns := range a.Namespaces {
		if ns == "" {
			c.fail(ref, fmt.Sprintf("%s.namespaces[%d]", field, i), "namespace name must not be empty")
		}
	}
	c.distinct(ref, field+".namespaces", a.Namespaces)
	out := &ServiceAllocation{
		Priority:           a.Priority,
		NamespaceSelectors: c.selectors(ref, field+".namespaceSelectors", a.NamespaceSelectors),
		ServiceSelectors:   c.selectors(ref, field+".serviceSelectors", a.ServiceSelectors),
	}
	if len(a.Namespaces) > 0 {
		out.Namespaces = slices.Clone(a.Namespaces)
	}
	return out
}

// checkOverlaps reports every entry that shares an address with an entry
// seen before it, within one pool or across pools, on both objects so that
// each gets an Event. Sorting by first address makes one pass enough: an
// entry overlaps some earlier entry exactly when it starts at or before the
// highest end seen so far, and the entry holding that end is then one it
// overlaps. Addresses of different families never compare as overlapping
// because netip orders every IPv4 address before every IPv6 address.
func (c *collector) checkOverlaps(pools []*parsedPool) {
	var all []poolEntry
	for _, p := range pools {
		all = append(all, p.entries...)
	}
	slices.SortStableFunc(all, func(a, b poolEntry) int { return a.r.First.Compare(b.r.First) })
	var widest *poolEntry
	for i := range all {
		e := &all[i]
		if widest != nil && e.r.First.Compare(widest.r.Last) <= 0 {
			c.conflict(e.pool.ref, fmt.Sprintf("spec.addresses[%d]", e.index), widest.pool.ref, fmt.Sprintf("spec.addresses[%d]", widest.index),
				fmt.Sprintf("%q overlaps %s", e.text, widest.describe()), fmt.Sprintf("%q overlaps %s", widest.text, e.describe()))
		}
		if widest == nil || e.r.Last.Compare(widest.r.Last) > 0 {
			widest = e
		}
	}
}

// poolHasFamily reports whether a pool holds addresses of the given family,
// for rules that only apply to one family.
func poolHasFamily(p *Pool, v6 bool) bool {
	v4ok, v6ok := p.Families()
	if v6 {
		return v6ok
	}
	return v4ok
}

// selectPools returns the names of the pools an advertisement selects, in
// pool order (sorted, without repeats). Names of pools that do not exist
// select nothing and are not an error; see Parse.
func selectPools(names []string, sels []labels.Selector, selectorsGiven bool, pools poolSet) []string {
	all := len(names) == 0 && !selectorsGiven
	var out []string
	for _, p := range pools.list {
		if all || slices.Contains(names, p.pool.Name) || matchesAny(sels, p.pool.Labels) {
			out = append(out, p.pool.Name)
		}
	}
	return out
}
