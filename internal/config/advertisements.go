package config

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/keeperlb/keeperlb/api/v1beta1"
)

// Default aggregation lengths: one host route per Service address.
const (
	defaultAggregationLength   = 32
	defaultAggregationLengthV6 = 128
)

// parseL2Advertisements parses every L2Advertisement. Pool names that do
// not exist are kept out of Pools without an error; see Parse.
func (c *collector) parseL2Advertisements(objs []*v1beta1.L2Advertisement, pools poolSet) []*L2Advertisement {
	var out []*L2Advertisement
	for _, o := range uniqueByName(c, KindL2Advertisement, objs) {
		ref := refOf(KindL2Advertisement, o)
		s := o.Spec
		c.distinct(ref, "spec.ipAddressPools", s.IPAddressPools)
		c.distinct(ref, "spec.interfaces", s.Interfaces)
		for i, name := range s.Interfaces {
			if name == "" {
				c.fail(ref, fmt.Sprintf("spec.interfaces[%d]", i), "interface name must not be empty")
			}
		}
		poolSels := c.selectors(ref, "spec.ipAddressPoolSelectors", s.IPAddressPoolSelectors)
		adv := &L2Advertisement{
			Name:             o.Name,
			Pools:            selectPools(s.IPAddressPools, poolSels, len(s.IPAddressPoolSelectors) > 0, pools),
			NodeSelectors:    c.selectors(ref, "spec.nodeSelectors", s.NodeSelectors),
			ServiceSelectors: c.selectors(ref, "spec.serviceSelectors", s.ServiceSelectors),
		}
		if len(s.Interfaces) > 0 {
			adv.Interfaces = slices.Clone(s.Interfaces)
		}
		out = append(out, adv)
	}
	return out
}

// parsedBGPAdv is a BGPAdvertisement with what the cross-object rules need.
type parsedBGPAdv struct {
	ref objectRef
	adv *BGPAdvertisement
	// identity is equal for two advertisements whose specs mean the same
	// thing, whatever the order of their lists and whether defaults were
	// written out.
	identity string
}

// parseBGPAdvertisements parses every BGPAdvertisement, then applies the
// rules that compare advertisements with each other. Pool and peer names
// that do not exist select nothing and are not an error; see Parse.
func (c *collector) parseBGPAdvertisements(objs []*v1beta1.BGPAdvertisement, pools poolSet, aliases map[string]alias) []*parsedBGPAdv {
	var out []*parsedBGPAdv
	for _, o := range uniqueByName(c, KindBGPAdvertisement, objs) {
		out = append(out, c.parseBGPAdvertisement(o, pools, aliases))
	}
	c.checkLocalPref(out)
	c.checkIdenticalBGPAdvs(out)
	return out
}

// parseBGPAdvertisement parses one BGPAdvertisement.
func (c *collector) parseBGPAdvertisement(o *v1beta1.BGPAdvertisement, pools poolSet, aliases map[string]alias) *parsedBGPAdv {
	ref := refOf(KindBGPAdvertisement, o)
	s := o.Spec
	aggV4, okV4 := c.aggregationLength(ref, "spec.aggregationLength", s.AggregationLength, defaultAggregationLength)
	aggV6, okV6 := c.aggregationLength(ref, "spec.aggregationLengthV6", s.AggregationLengthV6, defaultAggregationLengthV6)
	c.distinct(ref, "spec.ipAddressPools", s.IPAddressPools)
	c.distinct(ref, "spec.peers", s.Peers)
	poolSels := c.selectors(ref, "spec.ipAddressPoolSelectors", s.IPAddressPoolSelectors)
	adv := &BGPAdvertisement{
		Name:                o.Name,
		AggregationLength:   aggV4,
		AggregationLengthV6: aggV6,
		LocalPref:           s.LocalPref,
		Communities:         c.resolveCommunities(ref, s.Communities, aliases),
		Pools:               selectPools(s.IPAddressPools, poolSels, len(s.IPAddressPoolSelectors) > 0, pools),
		NodeSelectors:       c.selectors(ref, "spec.nodeSelectors", s.NodeSelectors),
		ServiceSelectors:    c.selectors(ref, "spec.serviceSelectors", s.ServiceSelectors),
	}
	if len(s.Peers) > 0 {
		adv.Peers = slices.Compact(slices.Sorted(slices.Values(s.Peers)))
	}
	// A Service selector picks single Services, but an aggregate route
	// covers addresses of other Services too, so the two cannot combine.
	if len(s.ServiceSelectors) > 0 && (aggV4 != defaultAggregationLength || aggV6 != defaultAggregationLengthV6) {
		c.fail(ref, "spec.serviceSelectors", "serviceSelectors can only be used with the default aggregationLength (%d) and aggregationLengthV6 (%d), not %d and %d",
			defaultAggregationLength, defaultAggregationLengthV6, aggV4, aggV6)
	}
	if okV4 {
		c.checkAggregation(ref, "spec.aggregationLength", aggV4, false, adv.Pools, pools)
	}
	if okV6 {
		c.checkAggregation(ref, "spec.aggregationLengthV6", aggV6, true, adv.Pools, pools)
	}

	poolNames := slices.Sorted(slices.Values(s.IPAddressPools))
	comms := make([]string, len(adv.Communities))
	for i, cm := range adv.Communities {
		comms[i] = cm.String()
	}
	identity := strings.Join([]string{
		fmt.Sprint(aggV4, aggV6, s.LocalPref),
		strings.Join(comms, ","),
		strings.Join(slices.Compact(poolNames), "\x01"),
		selectorKey(poolSels),
		selectorKey(adv.NodeSelectors),
		strings.Join(adv.Peers, "\x01"),
		selectorKey(adv.ServiceSelectors),
	}, "\x02")
	return &parsedBGPAdv{ref: ref, adv: adv, identity: identity}
}

// aggregationLength applies the default and the family's bounds; ok is
// false when the value is out of bounds, so that later rules do not pile
// more errors onto the same field.
func (c *collector) aggregationLength(ref objectRef, field string, v *int32, limit int) (int, bool) {
	if v == nil {
		return limit, true
	}
	if *v < 0 || int(*v) > limit {
		c.fail(ref, field, "%d is out of range: must be from 0 to %d", *v, limit)
		return int(*v), false
	}
	return int(*v), true
}

// checkAggregation reports an aggregation length shorter than the widest
// prefix of a selected pool: the aggregate route would then claim addresses
// that are not in the pool and may belong to someone else.
func (c *collector) checkAggregation(ref objectRef, field string, length int, v6 bool, selected []string, pools poolSet) {
	for _, name := range selected {
		p := pools.byName[name]
		if p == nil {
			continue
		}
		var widest netip.Prefix
		for _, cidr := range p.pool.CIDRs {
			if cidr.Addr().Is6() == v6 && (!widest.IsValid() || cidr.Bits() < widest.Bits()) {
				widest = cidr
			}
		}
		if widest.IsValid() && length < widest.Bits() {
			c.fail(ref, field, "%d is shorter than the prefix %s of %s; the aggregate route would announce addresses outside the pool (use at least %d)",
				length, widest, p.ref, widest.Bits())
		}
	}
}

// resolveCommunities turns community values and alias names into
// communities, sorted. Two entries that resolve to the same community are
// duplicates even when spelled differently (an alias and its value).
func (c *collector) resolveCommunities(ref objectRef, in []string, aliases map[string]alias) []Community {
	var out []Community
	seen := make(map[Community]int, len(in))
	for i, s := range in {
		field := fmt.Sprintf("spec.communities[%d]", i)
		var v Community
		if a, ok := aliases[s]; ok {
			if !a.valid {
				continue // Reported on the Community object that defines it.
			}
			v = a.value
		} else {
			parsed, err := ParseCommunity(s)
			if err != nil {
				c.fail(ref, field, "%q is not the name of an alias defined in a Community object, and not a community value: %v", s, err)
				continue
			}
			v = parsed
		}
		if j, dup := seen[v]; dup {
			c.fail(ref, field, "%q is community %s, already listed at spec.communities[%d]", s, v, j)
			continue
		}
		seen[v] = i
		out = append(out, v)
	}
	slices.SortFunc(out, Community.Compare)
	return out
}

// checkLocalPref reports advertisements that would announce the same
// prefixes of a pool, to the same peers from the same nodes, with different
// LOCAL_PREF values: the route cannot carry both. Advertisements that
// differ in aggregation, peers or nodes announce different routes or
// announce them to different sessions, so they may differ.
func (c *collector) checkLocalPref(advs []*parsedBGPAdv) {
	type groupKey struct{ pool, shape string }
	groups := make(map[groupKey][]*parsedBGPAdv)
	var order []groupKey
	for _, a := range advs {
		shape := strings.Join([]string{
			fmt.Sprint(a.adv.AggregationLength, a.adv.AggregationLengthV6),
			strings.Join(a.adv.Peers, "\x01"),
			selectorKey(a.adv.NodeSelectors),
		}, "\x02")
		for _, pool := range a.adv.Pools {
			key := groupKey{pool: pool, shape: shape}
			if _, seen := groups[key]; !seen {
				order = append(order, key)
			}
			groups[key] = append(groups[key], a)
		}
	}
	const why = "; advertisements of one pool with the same aggregation lengths, peers and node selectors must agree on localPref"
	for _, key := range order {
		g := groups[key]
		first := g[0]
		for _, other := range g[1:] {
			if other.adv.LocalPref == first.adv.LocalPref {
				continue
			}
			c.conflict(other.ref, "spec.localPref", first.ref, "spec.localPref",
				fmt.Sprintf("localPref %d for IPAddressPool %q conflicts with localPref %d of %s%s",
					other.adv.LocalPref, key.pool, first.adv.LocalPref, first.ref, why),
				fmt.Sprintf("localPref %d for IPAddressPool %q conflicts with localPref %d of %s%s",
					first.adv.LocalPref, key.pool, other.adv.LocalPref, other.ref, why))
		}
	}
}

// checkIdenticalBGPAdvs reports advertisements that say the same thing:
// one of them is a leftover, and keeping both hides which one the user
// meant to edit.
func (c *collector) checkIdenticalBGPAdvs(advs []*parsedBGPAdv) {
	first := make(map[string]*parsedBGPAdv, len(advs))
	for _, a := range advs {
		f, seen := first[a.identity]
		if !seen {
			first[a.identity] = a
			continue
		}
		c.conflict(a.ref, "spec", f.ref, "spec", "identical to "+f.ref.String(), "identical to "+a.ref.String())
	}
}
