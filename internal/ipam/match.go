package ipam

import (
	"slices"
	"strings"
)

// poolAllows applies a pool's serviceAllocation to a Service; the rule
// itself lives in config so that the allocator and any other reader agree.
func poolAllows(p *pool, namespace string, nsLabels, svcLabels map[string]string) bool {
	return p.cfg.Allocation.Matches(namespace, nsLabels, svcLabels)
}

// autoAssignOrder fixes the order in which pools are tried for a Service
// that names none: pools with a serviceAllocation by priority (lower first,
// 0 after every positive value) then name, then pools without one by name.
// MetalLB leaves ties to map iteration; a total order makes the same
// cluster always get the same addresses.
func autoAssignOrder(byName []*pool) []*pool {
	var ranked, plain []*pool
	for _, p := range byName {
		switch {
		case !p.cfg.AutoAssign:
		case p.cfg.Allocation != nil:
			ranked = append(ranked, p)
		default:
			plain = append(plain, p)
		}
	}
	slices.SortStableFunc(ranked, func(x, y *pool) int {
		px, py := effectivePriority(x), effectivePriority(y)
		switch {
		case px < py:
			return -1
		case px > py:
			return 1
		}
		return strings.Compare(x.name, y.name)
	})
	return append(ranked, plain...)
}

// effectivePriority turns "0 means unset" into "after every set value";
// negative priorities are rejected by the CRD schema, but ranking them
// with the unset ones keeps the order total if one slips through.
func effectivePriority(p *pool) uint64 {
	if pr := p.cfg.Allocation.Priority; pr > 0 {
		return uint64(pr)
	}
	return ^uint64(0)
}
