package ipam

import (
	"maps"
	"net/netip"
	"slices"
)

// Ensure gives the Service the addresses its spec calls for, keeping what
// it already holds whenever that is still valid, and returns them. Calling
// it again with the same Service returns the same Assignment and changes
// nothing. The error is always an *Error, and after an error the Service
// holds nothing: its previous addresses, if any, are released.
func (a *Allocator) Ensure(s *Service) (Assignment, error) {
	if s == nil {
		return Assignment{}, errorf(ReasonInvalidRequest, "No Service was given to the allocator.")
	}
	rec, err := newRecord(s)
	if err == nil {
		rec.nsLabels = a.namespaceLabels(s.Namespace, s.NamespaceLabels)
		if len(s.RequestedIPs) > 0 {
			err = a.ensureRequested(s, rec)
		} else {
			err = a.ensureAuto(s, rec)
		}
	}
	if err != nil {
		a.Release(s.Key)
		return Assignment{}, err
	}
	return a.svcs[s.Key].assignment(), nil
}

// namespaceLabels returns a private copy of a namespace's labels, shared by
// every Service of the namespace while the labels stay the same: one copy
// per Service would be most of the allocator's memory in a large namespace.
func (a *Allocator) namespaceLabels(ns string, l map[string]string) map[string]string {
	if cur, ok := a.nsLabels[ns]; ok && maps.Equal(cur, l) {
		return cur
	}
	c := maps.Clone(l)
	a.nsLabels[ns] = c
	return c
}

// newRecord validates what can be judged from the Service alone and copies
// what the allocator keeps, so the caller's maps and slices are never
// aliased.
func newRecord(s *Service) (*svcRecord, *Error) {
	if s.Key == "" {
		return nil, errorf(ReasonInvalidRequest, "The Service has an empty key; the allocator needs \"namespace/name\".")
	}
	fams := s.Families
	if len(fams) == 0 || len(fams) > 2 || !fams[0].valid() || (len(fams) == 2 && (!fams[1].valid() || fams[0] == fams[1])) {
		return nil, errorf(ReasonInvalidRequest, "Service %s has ipFamilies %v; it needs one family or two different ones.", s.Key, fams)
	}
	var desired []Family
	switch s.Policy {
	case SingleStack:
		desired = familyList(fams[:1])
	case PreferDualStack:
		desired = familyList(fams)
	case RequireDualStack:
		if len(fams) != 2 {
			return nil, errorf(ReasonInvalidRequest, "Service %s has ipFamilyPolicy RequireDualStack but only %s in ipFamilies; list both IPv4 and IPv6.", s.Key, fams[0])
		}
		desired = familyList(fams)
	default:
		return nil, errorf(ReasonInvalidRequest, "Service %s has unknown ipFamilyPolicy %v.", s.Key, s.Policy)
	}
	return &svcRecord{
		key:        s.Key,
		namespace:  s.Namespace,
		labels:     maps.Clone(s.Labels),
		sharingKey: s.SharingKey,
		backendKey: s.BackendKey,
		ports:      normalizePorts(s.Ports),
		families:   desired,
		policy:     s.Policy,
		requested:  len(s.RequestedIPs) > 0,
	}, nil
}

// The four possible family lists are shared read-only values, which saves
// an allocation per Service.
var (
	famV4   = []Family{IPv4}
	famV6   = []Family{IPv6}
	famV4V6 = []Family{IPv4, IPv6}
	famV6V4 = []Family{IPv6, IPv4}
)

func familyList(fs []Family) []Family {
	switch {
	case len(fs) == 1 && fs[0] == IPv4:
		return famV4
	case len(fs) == 1:
		return famV6
	case fs[0] == IPv4:
		return famV4V6
	}
	return famV6V4
}

// sameSpec reports whether two records would be treated identically, so
// an unchanged Service can return early without touching any index.
func (r *svcRecord) sameSpec(o *svcRecord) bool {
	return r.namespace == o.namespace && r.sharingKey == o.sharingKey && r.backendKey == o.backendKey &&
		r.policy == o.policy && r.requested == o.requested && slices.Equal(r.families, o.families) &&
		slices.Equal(r.ports, o.ports) && maps.Equal(r.nsLabels, o.nsLabels) && maps.Equal(r.labels, o.labels)
}

// commit replaces whatever the Service held by ips from p, unless nothing
// at all changed.
func (a *Allocator) commit(rec *svcRecord, p *pool, ips []netip.Addr) {
	prev := a.svcs[rec.key]
	if prev != nil && prev.pool == p && slices.Equal(prev.ips, ips) && prev.sameSpec(rec) {
		return
	}
	if prev != nil {
		a.unregister(prev)
		delete(a.svcs, rec.key)
	}
	rec.pool = p
	rec.ips = ips
	a.register(rec)
}

func (a *Allocator) ensureRequested(s *Service, rec *svcRecord) *Error {
	var byFam [2]netip.Addr
	for _, ip := range s.RequestedIPs {
		if !ip.IsValid() || ip.Zone() != "" {
			return errorf(ReasonInvalidRequest, "Service %s requests %q, which is not a plain IP address.", s.Key, ip)
		}
		f := familyOf(ip)
		if !slices.Contains(s.Families, f) {
			return errorf(ReasonInvalidRequest, "Service %s requests %s, an %s address, but its ipFamilies are %v.", s.Key, ip, f, s.Families)
		}
		if !slices.Contains(rec.families, f) {
			return errorf(ReasonInvalidRequest, "Service %s is SingleStack %s but requests %s; request only an %s address or change ipFamilyPolicy.", s.Key, rec.families[0], ip, rec.families[0])
		}
		if byFam[f].IsValid() {
			return errorf(ReasonInvalidRequest, "Service %s requests two %s addresses (%s and %s); request at most one per family.", s.Key, f, byFam[f], ip)
		}
		byFam[f] = ip
	}
	if rec.policy == RequireDualStack && len(s.RequestedIPs) < 2 {
		return errorf(ReasonInvalidRequest, "Service %s is RequireDualStack but requests only %s; request one IPv4 and one IPv6 address.", s.Key, s.RequestedIPs[0])
	}
	var named *pool
	if s.Pool != "" {
		if named = a.pools[s.Pool]; named == nil {
			return a.unknownPool(s, rec)
		}
	}
	var p *pool
	ips := make([]netip.Addr, 0, len(s.RequestedIPs))
	for _, f := range rec.families {
		ip := byFam[f]
		if !ip.IsValid() {
			continue
		}
		q := lookupPool(&a.ranges, ip)
		switch {
		case q == nil:
			return errorf(ReasonIPNotInPool, "Service %s requests %s, which is in no IPAddressPool; add it to a pool or request another address.", s.Key, ip)
		case named != nil && q != named:
			return errorf(ReasonIPNotInPool, "Service %s requests %s from pool %q, but %s belongs to %s.", s.Key, ip, named.name, ip, poolRef(q, rec))
		case p != nil && q != p:
			return errorf(ReasonIPNotInPool, "Service %s requests %s (in %s) and %s (in %s); both addresses must come from one pool.", s.Key, ips[0], poolRef(p, rec), ip, poolRef(q, rec))
		}
		if _, ok := q.family(f).offsetOf(ip); !ok {
			if f == IPv4 && q.cfg.AvoidBuggyIPs {
				return errorf(ReasonIPNotInPool, "Service %s requests %s, but %s has avoidBuggyIPs set, which never hands out addresses ending in .0 or .255.", s.Key, ip, poolRef(q, rec))
			}
			return errorf(ReasonIPNotInPool, "Service %s requests %s, which %s cannot hand out (its size is not countable in 128 bits).", s.Key, ip, poolRef(q, rec))
		}
		p = q
		ips = append(ips, ip)
	}
	if reservedElsewhere(p, rec) {
		return errorf(ReasonPoolNotAllowed, "Service %s requests %s, which belongs to a pool reserved for other namespaces (its serviceAllocation does not admit namespace %q); request an address from a pool this namespace may use.", s.Key, joinAddrs(ips), s.Namespace)
	}
	if !poolAllows(p, rec.namespace, rec.nsLabels, rec.labels) {
		return errorf(ReasonPoolNotAllowed, "Service %s requests %s from pool %q, whose serviceAllocation does not select it (the Service's labels do not match its serviceSelectors).", s.Key, joinAddrs(ips), p.name)
	}
	for _, ip := range ips {
		if why := conflictWithHolders(rec, holdersOf(p, ip)); why != "" {
			return errorf(ReasonIPInUse, "Service %s requests %s, which is already in use and cannot be shared: %s.", s.Key, ip, why)
		}
	}
	a.commit(rec, p, ips)
	return nil
}

func (a *Allocator) ensureAuto(s *Service, rec *svcRecord) *Error {
	held := s.Current
	prev := a.svcs[s.Key]
	if prev != nil {
		held = prev.ips
	}
	if p, kept := a.keepable(rec, held, s.Pool); p != nil {
		if len(kept) == len(rec.families) {
			a.commit(rec, p, kept)
			return nil
		}
		// Release first so that a free address found for the missing family
		// is the lowest one once the Service's dropped addresses are back.
		if prev != nil {
			a.unregister(prev)
			delete(a.svcs, s.Key)
		}
		ips := make([]netip.Addr, 0, len(rec.families))
		complete := true
		for _, f := range rec.families {
			if ip := pickFamily(kept, f); ip.IsValid() {
				ips = append(ips, ip)
			} else if ip, ok := a.pick(p.family(f), rec); ok {
				ips = append(ips, ip)
			} else {
				complete = false
			}
		}
		if complete || rec.policy != RequireDualStack {
			a.commit(rec, p, ips)
			return nil
		}
	} else if prev != nil {
		a.unregister(prev)
		delete(a.svcs, s.Key)
	}
	p, ips, err := a.fresh(s, rec)
	if err != nil {
		return err
	}
	a.commit(rec, p, ips)
	return nil
}

func pickFamily(ips []netip.Addr, f Family) netip.Addr {
	for _, ip := range ips {
		if familyOf(ip) == f {
			return ip
		}
	}
	return netip.Addr{}
}

// keepable returns the held addresses that may stay, in family order,
// with their pool; nil when none may. Each address is judged on its own so
// that, say, a Service that became single-stack keeps its primary address.
// The primary family is judged first and its pool wins: a secondary
// address elsewhere is dropped and replaced from that pool.
func (a *Allocator) keepable(rec *svcRecord, held []netip.Addr, reqPool string) (*pool, []netip.Addr) {
	var p *pool
	var kept []netip.Addr
	for _, f := range rec.families {
		ip := pickFamily(held, f)
		if !ip.IsValid() || ip.Zone() != "" {
			continue
		}
		q := lookupPool(&a.ranges, ip)
		if q == nil || (p != nil && q != p) || (reqPool != "" && q.name != reqPool) {
			continue
		}
		if _, ok := q.family(f).offsetOf(ip); !ok {
			continue
		}
		if !poolAllows(q, rec.namespace, rec.nsLabels, rec.labels) {
			continue
		}
		if conflictWithHolders(rec, holdersOf(q, ip)) != "" {
			continue
		}
		p = q
		kept = append(kept, ip)
	}
	return p, kept
}
