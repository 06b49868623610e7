package ipam

import "net/netip"

// pick chooses an address of fs for rec: a compatible shared address
// first, otherwise the lowest free one.
func (a *Allocator) pick(fs *famSpace, rec *svcRecord) (netip.Addr, bool) {
	if fs == nil {
		return netip.Addr{}, false
	}
	if ip, ok := joinable(fs, rec); ok {
		return ip, true
	}
	off, ok := fs.used.firstFree(fs.total)
	if !ok {
		return netip.Addr{}, false
	}
	return fs.addrAt(off), true
}

func (a *Allocator) pickAll(p *pool, rec *svcRecord, fams []Family) ([]netip.Addr, bool) {
	ips := make([]netip.Addr, 0, len(fams))
	for _, f := range fams {
		ip, ok := a.pick(p.family(f), rec)
		if !ok {
			return nil, false
		}
		ips = append(ips, ip)
	}
	return ips, true
}

// candidates lists the pools a fresh allocation may draw from, in the
// order they are tried.
func (a *Allocator) candidates(s *Service, rec *svcRecord) ([]*pool, *Error) {
	if s.Pool != "" {
		p := a.pools[s.Pool]
		if p == nil {
			return nil, a.unknownPool(s, rec)
		}
		if !poolAllows(p, rec.namespace, rec.nsLabels, rec.labels) {
			return nil, errorf(ReasonPoolNotAllowed, "Service %s asks for pool %q, whose serviceAllocation does not select it (namespace %q or the Service's labels do not match).", s.Key, p.name, s.Namespace)
		}
		return []*pool{p}, nil
	}
	var out []*pool
	for _, p := range a.autoOrder {
		if poolAllows(p, rec.namespace, rec.nsLabels, rec.labels) {
			out = append(out, p)
		}
	}
	return out, nil
}

func (a *Allocator) fresh(s *Service, rec *svcRecord) (*pool, []netip.Addr, *Error) {
	cands, err := a.candidates(s, rec)
	if err != nil {
		return nil, nil, err
	}
	fams := rec.families
	for _, p := range cands {
		if ips, ok := a.pickAll(p, rec, fams); ok {
			return p, ips, nil
		}
	}
	if len(fams) == 2 && rec.policy == PreferDualStack {
		fams = fams[:1]
		for _, p := range cands {
			if ips, ok := a.pickAll(p, rec, fams); ok {
				return p, ips, nil
			}
		}
	}
	return nil, nil, a.noAddress(s, rec, cands, fams)
}
