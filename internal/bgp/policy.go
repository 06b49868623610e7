package bgp

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	api "github.com/osrg/gobgp/v4/api"

	"github.com/keeperlb/keeperlb/internal/config"
)

// Names of the GoBGP objects the engine owns.
const (
	exportPolicyName = "keeperlb-export"
	importPolicyName = "keeperlb-import"
	statementPrefix  = "keeperlb-s"
	prefixSetPrefix  = "keeperlb-p"
	neighborSetName  = "keeperlb-n"
)

// treatment is how one peer receives one prefix, as a comparable key:
// absent (""), or "+" followed by the attributes. Two equal treatments
// produce the same UPDATE, so a prefix whose treatment is unchanged for a
// peer needs nothing sent to it.
type treatment string

// treatments maps each prefix in the RIB to its treatment per peer name.
type treatments map[netip.Prefix]map[string]treatment

// routeTreatment is the key of a route's attributes.
func routeTreatment(r Route) treatment {
	var b strings.Builder
	fmt.Fprintf(&b, "+lp=%d", r.LocalPref)
	for _, c := range r.Communities {
		b.WriteString(" ")
		b.WriteString(c.String())
	}
	return treatment(b.String())
}

// treatmentsOf indexes a Desired state's routes.
func treatmentsOf(d Desired) treatments {
	t := make(treatments, len(d.Paths))
	for _, p := range d.Paths {
		m := make(map[string]treatment, len(p.Routes))
		for _, r := range p.Routes {
			m[r.Peer] = routeTreatment(r)
		}
		t[p.Prefix] = m
	}
	return t
}

// peersToRefresh returns, sorted, the peers that must be sent the current
// policy's view again: an already advertised prefix (in the RIB before
// and after) whose treatment changed for a peer that was configured
// before and after. A policy change does not re-evaluate advertised
// routes, so such a peer would otherwise keep the old attributes, or keep
// a route it should lose. Prefixes entering or leaving the RIB need no
// refresh: their UPDATE is evaluated against the policy in force, and
// peers that are (re)configured receive everything on session start.
func peersToRefresh(before, after treatments, stable map[string]bool) []string {
	seen := make(map[string]bool)
	for prefix, old := range before {
		now, ok := after[prefix]
		if !ok {
			continue
		}
		for peer := range stable {
			if old[peer] != now[peer] {
				seen[peer] = true
			}
		}
	}
	return sortedKeys(seen, strings.Compare)
}

// exportPolicy is the engine's export policy as data, comparable with
// equal, from which the GoBGP structures are built.
type exportPolicy struct {
	// neighbors are the peer addresses, one neighbor set each, sorted.
	neighbors []netip.Addr
	// statements are in evaluation order; each matches one peer and one
	// prefix set and accepts with its actions.
	statements []policyStatement
}

// policyStatement sends a set of prefixes of one family to one peer with
// one set of attributes.
type policyStatement struct {
	peer        netip.Addr
	communities []config.Community
	localPref   uint32
	// nextHop is set when the prefixes' family differs from the session's.
	nextHop  netip.Addr
	prefixes []netip.Prefix
}

// equal reports whether two policies are the same.
func (p *exportPolicy) equal(o *exportPolicy) bool {
	if p == nil || o == nil {
		return p == o
	}
	return slices.Equal(p.neighbors, o.neighbors) && slices.EqualFunc(p.statements, o.statements, func(a, b policyStatement) bool {
		return a.peer == b.peer && a.localPref == b.localPref && a.nextHop == b.nextHop &&
			slices.Equal(a.communities, b.communities) && slices.Equal(a.prefixes, b.prefixes)
	})
}

// buildPolicy turns a Desired state into the export policy: for each peer
// (in name order) and each distinct (family, attributes) among its routes,
// one statement. Routes to peers absent from d.Peers are dropped.
func buildPolicy(d Desired) *exportPolicy {
	peers := make(map[string]PeerConfig, len(d.Peers))
	pol := &exportPolicy{}
	for _, pc := range d.Peers {
		peers[pc.Name] = pc
		pol.neighbors = append(pol.neighbors, pc.Address)
	}
	slices.SortFunc(pol.neighbors, netip.Addr.Compare)
	pol.neighbors = slices.Compact(pol.neighbors)

	type groupKey struct {
		peer string
		v4   bool
		attr treatment
	}
	groups := make(map[groupKey]*policyStatement)
	for _, p := range d.Paths {
		v4 := p.Prefix.Addr().Is4()
		for _, r := range p.Routes {
			pc, ok := peers[r.Peer]
			if !ok {
				continue
			}
			k := groupKey{peer: r.Peer, v4: v4, attr: routeTreatment(r)}
			st := groups[k]
			if st == nil {
				st = &policyStatement{peer: pc.Address, communities: r.Communities, localPref: r.LocalPref}
				switch {
				case v4 && pc.Address.Is6():
					st.nextHop = pc.NextHopIPv4
				case !v4 && pc.Address.Is4():
					st.nextHop = pc.NextHopIPv6
				}
				groups[k] = st
			}
			st.prefixes = append(st.prefixes, p.Prefix)
		}
	}
	keys := sortedKeys(groups, func(a, b groupKey) int {
		// IPv4 first, then by attributes: stable across calls.
		av, bv := 0, 0
		if !a.v4 {
			av = 1
		}
		if !b.v4 {
			bv = 1
		}
		return cmp.Or(strings.Compare(a.peer, b.peer), cmp.Compare(av, bv), strings.Compare(string(a.attr), string(b.attr)))
	})
	for _, k := range keys {
		st := groups[k]
		slices.SortFunc(st.prefixes, comparePrefixes)
		pol.statements = append(pol.statements, *st)
	}
	return pol
}

// importPolicy accepts the routes this node originates. The global import
// policy also applies to paths added locally, so rejecting everything by
// default (which keeps what routers send out of the RIB) needs this
// exception.
func importPolicy() *api.Policy {
	return &api.Policy{Name: importPolicyName, Statements: []*api.Statement{{
		Name:       importPolicyName + "-local",
		Conditions: &api.Conditions{RouteType: api.Conditions_ROUTE_TYPE_LOCAL},
		Actions:    &api.Actions{RouteAction: api.RouteAction_ROUTE_ACTION_ACCEPT},
	}}}
}

// apiPolicy renders the policy as GoBGP's defined sets and policy.
func (p *exportPolicy) apiPolicy() ([]*api.DefinedSet, *api.Policy) {
	var sets []*api.DefinedSet
	nbName := make(map[netip.Addr]string, len(p.neighbors))
	for i, a := range p.neighbors {
		name := fmt.Sprintf("%s%d", neighborSetName, i)
		nbName[a] = name
		sets = append(sets, &api.DefinedSet{
			DefinedType: api.DefinedType_DEFINED_TYPE_NEIGHBOR,
			Name:        name,
			List:        []string{netip.PrefixFrom(a, a.BitLen()).String()},
		})
	}
	pol := &api.Policy{Name: exportPolicyName}
	for i, st := range p.statements {
		setName := fmt.Sprintf("%s%d", prefixSetPrefix, i)
		ps := &api.DefinedSet{DefinedType: api.DefinedType_DEFINED_TYPE_PREFIX, Name: setName}
		for _, pr := range st.prefixes {
			bits := uint32(pr.Bits())
			ps.Prefixes = append(ps.Prefixes, &api.Prefix{IpPrefix: pr.String(), MaskLengthMin: bits, MaskLengthMax: bits})
		}
		sets = append(sets, ps)

		actions := &api.Actions{RouteAction: api.RouteAction_ROUTE_ACTION_ACCEPT}
		var std, large []string
		for _, c := range st.communities {
			if c.Large {
				large = append(large, fmt.Sprintf("%d:%d:%d", c.GlobalAdmin, c.LocalData1, c.LocalData2))
			} else {
				std = append(std, c.String())
			}
		}
		if len(std) > 0 {
			actions.Community = &api.CommunityAction{Type: api.CommunityAction_TYPE_ADD, Communities: std}
		}
		if len(large) > 0 {
			actions.LargeCommunity = &api.CommunityAction{Type: api.CommunityAction_TYPE_ADD, Communities: large}
		}
		if st.localPref != 0 {
			actions.LocalPref = &api.LocalPrefAction{Value: st.localPref}
		}
		if st.nextHop.IsValid() {
			actions.Nexthop = &api.NexthopAction{Address: st.nextHop.String()}
		}
		pol.Statements = append(pol.Statements, &api.Statement{
			Name: fmt.Sprintf("%s%d", statementPrefix, i),
			Conditions: &api.Conditions{
				NeighborSet: &api.MatchSet{Type: api.MatchSet_TYPE_ANY, Name: nbName[st.peer]},
				PrefixSet:   &api.MatchSet{Type: api.MatchSet_TYPE_ANY, Name: setName},
				// Only routes this node originates, never learned ones.
				RouteType: api.Conditions_ROUTE_TYPE_LOCAL,
			},
			Actions: actions,
		})
	}
	return sets, pol
}
