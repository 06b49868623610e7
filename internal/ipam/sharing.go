package ipam

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// shareKey groups the addresses that a Service with a given sharing key
// and backend key could join: both must be equal for sharing, so no other
// address is worth looking at.
type shareKey struct {
	sharing, backend string
}

// shareGroup lists, for one famSpace, the offsets of addresses whose
// holders carry one shareKey, lowest first, and how many of those
// addresses already carry each port. The port counts let a Service whose
// port is taken on every address of the group skip the scan altogether,
// which keeps the "everyone shares one key on TCP/80" pattern from turning
// into a linear scan per allocation. Groups are small in practice, so a
// sorted slice beats a tree here.
type shareGroup struct {
	offs  []u128
	ports map[Port]int
}

// conflict explains why two Services cannot share an address, or returns
// "" when they can. The explanation is shown to the owner of s (in an Event
// and a condition on s), so it names nothing of another namespace: the
// holder's allow-shared-ip key is the only credential for sharing, and a
// Service in another namespace that learnt it could join the address. The
// holder is named only when it lives in the same namespace as s, and its
// key never; the message still says what to change. Across namespaces
// every refusal reads the same, whatever the reason: distinct messages for
// "wrong key" and "right key, but a port clashes" would let a tenant test
// guesses of another namespace's key.
func conflict(s, h *svcRecord) string {
	holder := "Service " + h.key
	if h.namespace != s.namespace {
		switch {
		case s.sharingKey == "":
			return "this Service does not allow sharing (it has no allow-shared-ip annotation) and the address is held by a Service in another namespace"
		case h.sharingKey != s.sharingKey || h.backendKey != s.backendKey || overlaps(s.ports, h.ports):
			return "the address is held by a Service in another namespace that cannot share it with this one: sharing needs the same allow-shared-ip key, the same backends (externalTrafficPolicy and pod selector) and no port in common"
		}
		return ""
	}
	switch {
	case h.sharingKey == "":
		return holder + " holds it and does not allow sharing (it has no allow-shared-ip annotation)"
	case s.sharingKey == "":
		return "this Service does not allow sharing (it has no allow-shared-ip annotation) and the address is held by " + holder
	case s.sharingKey != h.sharingKey:
		return fmt.Sprintf("%s holds it with an allow-shared-ip key other than this Service's %q", holder, s.sharingKey)
	case s.backendKey != h.backendKey:
		return holder + " selects different backends (externalTrafficPolicy or pod selector differs), so the address cannot be announced for both"
	}
	if p, ok := firstOverlap(s.ports, h.ports); ok {
		return fmt.Sprintf("both this Service and %s use port %s", holder, p)
	}
	return ""
}

func overlaps(a, b []Port) bool {
	_, ok := firstOverlap(a, b)
	return ok
}

// firstOverlap walks two sorted port lists in step.
func firstOverlap(a, b []Port) (Port, bool) {
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		switch c := comparePort(a[i], b[j]); {
		case c == 0:
			return a[i], true
		case c < 0:
			i++
		default:
			j++
		}
	}
	return Port{}, false
}

func comparePort(x, y Port) int {
	if c := strings.Compare(x.Protocol, y.Protocol); c != 0 {
		return c
	}
	switch {
	case x.Port < y.Port:
		return -1
	case x.Port > y.Port:
		return 1
	}
	return 0
}

// normalizePorts sorts and de-duplicates, so overlap checks are a merge and
// a repeated port does not count twice in a group's port counts.
func normalizePorts(ps []Port) []Port {
	if len(ps) == 0 {
		return nil
	}
	out := slices.Clone(ps)
	slices.SortFunc(out, comparePort)
	return slices.CompactFunc(out, func(x, y Port) bool { return comparePort(x, y) == 0 })
}

// conflictWithHolders checks s against every holder of n other than s
// itself (the lowest key first, so the message is deterministic).
func conflictWithHolders(s *svcRecord, n *treapNode) string {
	if n == nil {
		return ""
	}
	for _, h := range n.holders {
		if h.key == s.key {
			continue
		}
		if why := conflict(s, h); why != "" {
			return why
		}
	}
	return ""
}

func (fs *famSpace) group(k shareKey, create bool) *shareGroup {
	g := fs.groups[k]
	if g == nil && create {
		if fs.groups == nil {
			fs.groups = make(map[shareKey]*shareGroup)
		}
		g = &shareGroup{ports: make(map[Port]int)}
		fs.groups[k] = g
	}
	return g
}

func (g *shareGroup) addOffset(off u128) {
	i, found := slices.BinarySearchFunc(g.offs, off, u128.cmp)
	if !found {
		g.offs = slices.Insert(g.offs, i, off)
	}
}

func (g *shareGroup) removeOffset(off u128) {
	if i, found := slices.BinarySearchFunc(g.offs, off, u128.cmp); found {
		g.offs = slices.Delete(g.offs, i, i+1)
	}
}

func (g *shareGroup) addPorts(ps []Port) {
	for _, p := range ps {
		g.ports[p]++
	}
}

func (g *shareGroup) removePorts(ps []Port) {
	for _, p := range ps {
		if g.ports[p] <= 1 {
			delete(g.ports, p)
		} else {
			g.ports[p]--
		}
	}
}

// joinable finds the lowest address in fs already shared under s's keys
// whose holders all accept s, so that Services meant to share converge on
// one address instead of each taking a fresh one.
func joinable(fs *famSpace, s *svcRecord) (netip.Addr, bool) {
	if s.sharingKey == "" {
		return netip.Addr{}, false
	}
	g := fs.groups[shareKey{s.sharingKey, s.backendKey}]
	if g == nil || len(g.offs) == 0 {
		return netip.Addr{}, false
	}
	for _, p := range s.ports {
		if g.ports[p] >= len(g.offs) {
			return netip.Addr{}, false
		}
	}
	for _, off := range g.offs {
		if conflictWithHolders(s, fs.used.find(off)) == "" {
			return fs.addrAt(off), true
		}
	}
	return netip.Addr{}, false
}
