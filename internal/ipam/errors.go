package ipam

import (
	"fmt"
	"net/netip"
	"strings"
)

// Reason classifies why Ensure could not give a Service addresses. The
// values are CamelCase so they can go straight into an Event reason or a
// condition reason.
type Reason string

const (
	// ReasonInvalidRequest means the Service asks for something contradictory,
	// such as two requested IPs of one family or an IP of a family the
	// Service does not have.
	ReasonInvalidRequest Reason = "InvalidRequest"
	// ReasonUnknownPool means the requested pool does not exist.
	ReasonUnknownPool Reason = "UnknownPool"
	// ReasonPoolNotAllowed means the requested pool's serviceAllocation does
	// not select the Service.
	ReasonPoolNotAllowed Reason = "PoolNotAllowed"
	// ReasonIPNotInPool means a requested IP is in no pool, not in the requested
	// pool, in a different pool from the other requested IP, or excluded by
	// avoidBuggyIPs.
	ReasonIPNotInPool Reason = "IPNotInPool"
	// ReasonIPInUse means a requested IP is held by a Service it cannot be shared
	// with.
	ReasonIPInUse Reason = "IPInUse"
	// ReasonNoMatchingPool means no pool the Service may use has the address
	// families it needs.
	ReasonNoMatchingPool Reason = "NoMatchingPool"
	// ReasonPoolExhausted means pools with the needed families exist but have no
	// free address of them.
	ReasonPoolExhausted Reason = "PoolExhausted"
)

// Error is the only error type Ensure returns.
type Error struct {
	// Reason is the machine-readable class of the failure.
	Reason Reason
	// Message is a sentence a user can act on; it names the pools and IPs
	// involved, and other Services only of the Service's own namespace. It
	// goes to the Service's owner, so it names no pool reserved for other
	// namespaces, and no sharing key but the Service's own.
	Message string
}

// Error returns the message alone, because it is already a full sentence
// and the reason is carried separately.
func (e *Error) Error() string { return e.Message }

func errorf(r Reason, format string, args ...any) *Error {
	return &Error{Reason: r, Message: fmt.Sprintf(format, args...)}
}

// The messages below go to the Service's owner (in an Event and in its
// condition), who may be a tenant. They name a pool only when its
// serviceAllocation admits the Service's namespace, or when the Service
// named it itself: a pool reserved for other namespaces is usually named
// after them, so listing it would tell a tenant which other tenants there
// are, and would help with nothing, since the tenant cannot use it.

// reservedElsewhere reports whether p's serviceAllocation admits no
// Service of rec's namespace.
func reservedElsewhere(p *pool, rec *svcRecord) bool {
	return !p.cfg.Allocation.AdmitsNamespace(rec.namespace, rec.nsLabels)
}

// poolRef names p in a message to rec's owner: `pool "name"`, or, for a
// pool reserved for other namespaces, no name.
func poolRef(p *pool, rec *svcRecord) string {
	if reservedElsewhere(p, rec) {
		return "a pool reserved for other namespaces"
	}
	return fmt.Sprintf("pool %q", p.name)
}

func (a *Allocator) unknownPool(s *Service, rec *svcRecord) *Error {
	var usable []string
	for _, n := range a.names {
		if !reservedElsewhere(a.pools[n], rec) {
			usable = append(usable, n)
		}
	}
	known := "there are no pools"
	switch {
	case len(usable) > 0:
		known = "pools its namespace may use: " + strings.Join(usable, ", ")
	case len(a.names) > 0:
		known = fmt.Sprintf("no pool admits namespace %q", s.Namespace)
	}
	return errorf(ReasonUnknownPool, "Service %s asks for pool %q, which does not exist (%s).", s.Key, s.Pool, known)
}

// noAddress explains a failed fresh allocation: either no usable pool has
// the families at all, or the ones that do are full.
func (a *Allocator) noAddress(s *Service, rec *svcRecord, cands []*pool, fams []Family) *Error {
	var withFams []string
	for _, p := range cands {
		if hasFamilies(p, fams) {
			withFams = append(withFams, p.name)
		}
	}
	what := familiesPhrase(fams)
	if len(withFams) > 0 {
		return errorf(ReasonPoolExhausted, "Service %s needs %s but pool(s) %s have no free address left; free addresses or add ranges to them.", s.Key, what, strings.Join(withFams, ", "))
	}
	var b strings.Builder
	if s.Pool != "" {
		fmt.Fprintf(&b, "Service %s asks for pool %q, which has no %s.", s.Key, s.Pool, what)
		return &Error{Reason: ReasonNoMatchingPool, Message: b.String()}
	}
	fmt.Fprintf(&b, "No IPAddressPool that Service %s (namespace %q) may use has %s", s.Key, s.Namespace, what)
	if len(cands) > 0 {
		names := make([]string, len(cands))
		for i, p := range cands {
			names[i] = p.name
		}
		fmt.Fprintf(&b, " (pools considered: %s)", strings.Join(names, ", "))
	}
	b.WriteString(".")
	var manual, excluded []string
	reserved := 0
	for _, n := range a.names {
		p := a.pools[n]
		if !hasFamilies(p, fams) {
			continue
		}
		switch {
		case reservedElsewhere(p, rec):
			reserved++
		case !poolAllows(p, rec.namespace, rec.nsLabels, rec.labels):
			excluded = append(excluded, n)
		case !p.cfg.AutoAssign:
			manual = append(manual, n)
		}
	}
	if len(manual) > 0 {
		fmt.Fprintf(&b, " Pools with autoAssign: false are only used when named in the metallb.io/address-pool annotation: %s.", strings.Join(manual, ", "))
	}
	if len(excluded) > 0 {
		fmt.Fprintf(&b, " The serviceAllocation of pool(s) %s does not select this Service's labels.", strings.Join(excluded, ", "))
	}
	if reserved > 0 {
		fmt.Fprintf(&b, " %d pool(s) with %s are reserved for other namespaces by their serviceAllocation.", reserved, what)
	}
	return &Error{Reason: ReasonNoMatchingPool, Message: b.String()}
}

func hasFamilies(p *pool, fams []Family) bool {
	for _, f := range fams {
		if p.family(f) == nil {
			return false
		}
	}
	return true
}

func familiesPhrase(fams []Family) string {
	if len(fams) == 2 {
		return "both IPv4 and IPv6 addresses from one pool"
	}
	return fams[0].String() + " addresses"
}

func joinAddrs(ips []netip.Addr) string {
	s := make([]string, len(ips))
	for i, ip := range ips {
		s[i] = ip.String()
	}
	return strings.Join(s, " and ")
}
