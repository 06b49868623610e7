package bgp

import (
	"cmp"
	"fmt"
	"hash/fnv"
	"net/netip"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/keeperlb/keeperlb/internal/config"
)

// ExcludeLabel marks a Node that must never announce load-balancer
// addresses. Such a node keeps its sessions (so that removing the label
// brings its routes back at once) but advertises nothing.
const ExcludeLabel = "node.kubernetes.io/exclude-from-external-load-balancers"

// Dynamic ASN modes, as in BGPPeer spec.dynamicASN.
const (
	// DynamicInternal accepts a peer in the local AS (iBGP).
	DynamicInternal = "internal"
	// DynamicExternal accepts a peer in another AS (eBGP).
	DynamicExternal = "external"
)

// Node is what Plan needs of the node the speaker runs on.
type Node struct {
	// Name is the Node's name.
	Name string
	// Labels are the Node's labels, matched by peer and advertisement
	// nodeSelectors.
	Labels map[string]string
	// NetworkUnavailable is true when the Node's NetworkUnavailable
	// condition is True; such a node keeps its sessions but advertises
	// nothing, as with ExcludeLabel.
	NetworkUnavailable bool
	// Addresses are the node's own addresses, preferred first (the
	// InternalIPs of the Node's status). Plan takes the node's default
	// router ID from the first IPv4 one, and the next hop for prefixes of
	// the family a dual-stack session does not natively carry from the
	// first global unicast one of that family.
	Addresses []netip.Addr
}

// Service is what Plan needs of a LoadBalancer Service. The fields match
// those of election.Service, so that the speaker fills both from one view.
type Service struct {
	// Key is "namespace/name".
	Key string
	// IPs are the Service's load-balancer addresses.
	IPs []netip.Addr
	// Labels are the Service's labels, matched by serviceSelectors.
	Labels map[string]string
	// LocalTrafficPolicy is true for externalTrafficPolicy: Local: only
	// nodes with a serving endpoint of their own advertise.
	LocalTrafficPolicy bool
	// Serving is true when the Service has at least one serving endpoint
	// anywhere; without one nothing is advertised.
	Serving bool
	// ServingNodes names the nodes running at least one serving endpoint.
	ServingNodes []string
}

// Desired is everything the engine should be doing on this node. Plan
// builds it; Speaker.Apply makes it so. It is plain data (it marshals to
// JSON) and its slices are sorted, so two Desired values built from the
// same inputs are equal.
type Desired struct {
	// ASN is the node's BGP AS number, the myASN of the first selected
	// peer by name; 0 when no peer selects the node.
	ASN uint32
	// RouterID is the BGP identifier: the routerID the peers agree on, or
	// else the node's first IPv4 address, or else a number derived from the
	// node's name. Invalid when no peer selects the node.
	RouterID netip.Addr
	// Peers are the sessions to open, sorted by Name.
	Peers []PeerConfig
	// Paths are the prefixes to advertise, sorted by prefix.
	Paths []Path
	// Services says which Services this node advertises and to which
	// peers, sorted by Key; it feeds ServiceBGPStatus.
	Services []ServiceAdvert
}

// PeerConfig is one BGP session, from one BGPPeer. It is comparable with
// ==, which is how Apply tells a changed session from an unchanged one.
type PeerConfig struct {
	// Name is the BGPPeer's name.
	Name string
	// Address is the peer's address.
	Address netip.Addr
	// Port is the peer's TCP port.
	Port uint16
	// SourceAddress is the local address to connect from; invalid lets the
	// kernel choose (the node's address toward the peer).
	SourceAddress netip.Addr
	// LocalASN is the AS number presented to this peer: localASN when set,
	// else myASN.
	LocalASN uint32
	// PeerASN is the peer's AS number; 0 with DynamicASN, which accepts
	// whatever AS the peer announces.
	PeerASN uint32
	// DynamicASN is DynamicInternal, DynamicExternal or "".
	DynamicASN string
	// HoldTime is the proposed hold time, whole seconds; 0 means the
	// engine's default (90 s).
	HoldTime time.Duration
	// KeepaliveTime is the keepalive interval, whole seconds; 0 means a
	// third of the hold time.
	KeepaliveTime time.Duration
	// ConnectTime is the wait between connection attempts, whole seconds;
	// 0 means the engine's default.
	ConnectTime time.Duration
	// Password is the TCP-MD5 password, "" for none.
	Password string
	// EBGPMultiHop allows a peer that is not directly connected.
	EBGPMultiHop bool
	// GracefulRestart negotiates graceful restart, so that the peer keeps
	// this node's routes while its speaker restarts.
	GracefulRestart bool
	// BFD configures fast failure detection.
	BFD BFDConfig
	// IPv4 says whether the session carries IPv4 unicast prefixes.
	IPv4 bool
	// IPv6 says whether the session carries IPv6 unicast prefixes.
	IPv6 bool
	// NextHopIPv4 is the next hop for IPv4 prefixes when the session runs
	// over IPv6 (dualStackAddressFamily); invalid otherwise, where the
	// session's local address is used.
	NextHopIPv4 netip.Addr
	// NextHopIPv6 is the next hop for IPv6 prefixes when the session runs
	// over IPv4; invalid otherwise.
	NextHopIPv6 netip.Addr
}

// IBGP reports whether the session is internal: the peer is in the AS
// this node presents to it. Only internal sessions carry LOCAL_PREF.
func (p PeerConfig) IBGP() bool {
	if p.DynamicASN != "" {
		return p.DynamicASN == DynamicInternal
	}
	return p.PeerASN == p.LocalASN
}

// Carries reports whether the session carries prefixes of a's family.
func (p PeerConfig) Carries(a netip.Addr) bool {
	if a.Unmap().Is4() {
		return p.IPv4
	}
	return p.IPv6
}

// BFDConfig is the BFD part of a session, from a BFDProfile.
type BFDConfig struct {
	// Enabled turns BFD on for the session.
	Enabled bool
	// Profile names the BFDProfile, for messages.
	Profile string
	// ReceiveInterval is the slowest rate this node wants to receive at.
	ReceiveInterval time.Duration
	// TransmitInterval is the fastest rate this node sends at.
	TransmitInterval time.Duration
	// DetectMultiplier is how many packets may be lost before the session
	// is declared down.
	DetectMultiplier uint32
}

// Path is one prefix and how it goes to each peer.
type Path struct {
	// Prefix is the advertised prefix: a Service address, or its aggregate
	// when an advertisement sets aggregationLength.
	Prefix netip.Prefix
	// Routes say which peers get the prefix and with what attributes,
	// sorted by Peer; never empty.
	Routes []Route
}

// Route is what one peer receives for one prefix.
type Route struct {
	// Peer is the BGPPeer's name.
	Peer string
	// Communities are the union of the communities of every
	// advertisement that sends the prefix to this peer, standard first,
	// sorted, without repeats.
	Communities []config.Community
	// LocalPref is the LOCAL_PREF attribute, 0 for the engine's default
	// (100); only ever set on internal sessions.
	LocalPref uint32
}

// ServiceAdvert is one Service this node advertises.
type ServiceAdvert struct {
	// Key is the Service's "namespace/name".
	Key string
	// Prefixes are the prefixes that carry the Service's addresses, sorted.
	Prefixes []netip.Prefix
	// Peers are the BGPPeers that receive at least one of them, sorted.
	Peers []string
}

// Problem is a configuration field this node cannot honour, or a conflict
// it resolved in a documented way. The speaker reports it in
// ConfigurationState and as an Event on the object.
type Problem struct {
	// Kind is the object's kind, one of the config.Kind constants.
	Kind string
	// Name is the object's name (in the install namespace).
	Name string
	// Field is the JSON path of the field, such as "spec.vrf".
	Field string
	// Reason says what is not honoured and what happens instead.
	Reason string
}

// Error renders the problem as "Kind name: field: reason".
func (p Problem) Error() string {
	return fmt.Sprintf("%s %s: %s: %s", p.Kind, p.Name, p.Field, p.Reason)
}

// Plan computes what this node advertises to whom. It is pure and
// deterministic: the same inputs give an equal Desired and the same
// Problems, in the same order. A nil cfg plans nothing.
//
// The rules, from the BGPPeer and BGPAdvertisement contract:
//   - a peer is used when its nodeSelectors match the node (none: every node);
//   - nothing is advertised from a node labelled ExcludeLabel or whose
//     network is unavailable, and nothing for a Service without a serving
//     endpoint; with externalTrafficPolicy Local, only from nodes running one;
//   - an advertisement applies to an address when it selects the address's
//     pool, its serviceSelectors match the Service and its nodeSelectors
//     match the node; it sends the address, masked to aggregationLength
//     (V6), to its peers (none: every peer) whose session carries the family;
//   - advertisements sending one prefix to one peer union their
//     communities; localPref applies to internal sessions only, and when
//     two differ the highest wins and the others are reported.
func Plan(cfg *config.Config, node Node, services []Service) (Desired, []Problem) {
	var pl planner
	if cfg == nil {
		return Desired{}, nil
	}
	peers := pl.peers(cfg, node)
	d := Desired{Peers: peers}
	if len(peers) > 0 {
		d.ASN, d.RouterID = pl.identity(cfg, node, peers)
	}
	if len(peers) > 0 && eligible(node) {
		d.Paths, d.Services = pl.paths(cfg, node, peers, services)
	}
	return d, pl.result()
}

// planner accumulates problems while Plan runs.
type planner struct {
	problems []Problem
}

func (pl *planner) report(kind, name, field, format string, args ...any) {
	pl.problems = append(pl.problems, Problem{Kind: kind, Name: name, Field: field, Reason: fmt.Sprintf(format, args...)})
}

// result returns the problems sorted and without repeats (one BFDProfile
// used by several peers is reported once).
func (pl *planner) result() []Problem {
	if len(pl.problems) == 0 {
		return nil
	}
	out := slices.Clone(pl.problems)
	slices.SortFunc(out, func(a, b Problem) int {
		return cmp.Or(strings.Compare(a.Kind, b.Kind), strings.Compare(a.Name, b.Name),
			strings.Compare(a.Field, b.Field), strings.Compare(a.Reason, b.Reason))
	})
	return slices.Compact(out)
}

// eligible reports whether the node may advertise anything at all.
func eligible(n Node) bool {
	if n.NetworkUnavailable {
		return false
	}
	_, excluded := n.Labels[ExcludeLabel]
	return !excluded
}

// selects reports whether a list of selectors admits a label set; an empty
// list admits everything, as everywhere in MetalLB's API.
func selects(sels []labels.Selector, set map[string]string) bool {
	if len(sels) == 0 {
		return true
	}
	for _, s := range sels {
		if s != nil && s.Matches(labels.Set(set)) {
			return true
		}
	}
	return false
}

// peers returns the sessions of the peers that select the node, sorted by
// name, reporting the fields that cannot be honoured.
func (pl *planner) peers(cfg *config.Config, node Node) []PeerConfig {
	var out []PeerConfig
	byAddr := make(map[netip.Addr]string)
	// Parse sorts peers by name; sorting again keeps the order (and which
	// of two conflicting peers wins) a property of Plan alone.
	sorted := slices.SortedStableFunc(slices.Values(cfg.Peers), func(a, b *config.Peer) int { return strings.Compare(a.Name, b.Name) })
	for _, p := range sorted {
		if !selects(p.NodeSelectors, node.Labels) {
			continue
		}
		const kind = config.KindBGPPeer
		if p.VRF != "" {
			pl.report(kind, p.Name, "spec.vrf", "VRF %q is not supported: the session is not opened, because its routes would land in the default VRF", p.VRF)
			continue
		}
		if p.Interface != "" || !p.Addr.IsValid() {
			pl.report(kind, p.Name, "spec.interface", "unnumbered sessions (interface %q) are not supported: the session is not opened; set peerAddress", p.Interface)
			continue
		}
		addr := p.Addr.Unmap()
		if other, dup := byAddr[addr]; dup {
			pl.report(kind, p.Name, "spec.peerAddress", "%s is also the address of BGPPeer %s, which this node already peers with; only one session per address is opened", addr, other)
			continue
		}
		byAddr[addr] = p.Name

		pc := PeerConfig{
			Name:            p.Name,
			Address:         addr,
			Port:            p.Port,
			SourceAddress:   p.SourceAddr.Unmap(),
			LocalASN:        cmp.Or(p.LocalASN, p.MyASN),
			PeerASN:         p.PeerASN,
			DynamicASN:      p.DynamicASN,
			Password:        p.Password,
			EBGPMultiHop:    p.EBGPMultiHop,
			GracefulRestart: p.EnableGracefulRestart,
		}
		if pc.Port == 0 {
			pc.Port = 179
		}
		if pc.DynamicASN != "" {
			pc.PeerASN = 0
		}
		pc.HoldTime = pl.seconds(p.Name, "spec.holdTime", p.HoldTime)
		pc.KeepaliveTime = pl.seconds(p.Name, "spec.keepaliveTime", p.KeepaliveTime)
		pc.ConnectTime = pl.seconds(p.Name, "spec.connectTime", p.ConnectTime)
		if p.HoldTime != nil && *p.HoldTime == 0 {
			pl.report(kind, p.Name, "spec.holdTime", "a hold time of 0 (no keepalives) is not supported by the BGP engine; the default of 90s is proposed instead")
			pc.KeepaliveTime = 0
		}
		pc.BFD = pl.bfd(cfg, p)
		pl.families(&pc, p, node)
		out = append(out, pc)
	}
	return out
}

// seconds converts an optional timer to whole seconds, the unit of BGP and
// of the engine, reporting a value that had to be rounded.
func (pl *planner) seconds(peer, field string, d *time.Duration) time.Duration {
	if d == nil {
		return 0
	}
	r := d.Round(time.Second)
	if r == 0 && *d > 0 {
		r = time.Second
	}
	if r != *d {
		pl.report(config.KindBGPPeer, peer, field, "%s is not a whole number of seconds, which is all BGP can carry; %s is used", *d, r)
	}
	return r
}

// bfd turns the peer's BFD profile into session settings, reporting what
// GoBGP's BFD (RFC 5880/5881, single hop, asynchronous mode) cannot do.
func (pl *planner) bfd(cfg *config.Config, p *config.Peer) BFDConfig {
	if p.BFDProfile == "" {
		return BFDConfig{}
	}
	var prof *config.BFDProfile
	for _, b := range cfg.BFDProfiles {
		if b.Name == p.BFDProfile {
			prof = b
			break
		}
	}
	if prof == nil {
		pl.report(config.KindBGPPeer, p.Name, "spec.bfdProfile", "BFDProfile %q does not exist; the session runs without BFD", p.BFDProfile)
		return BFDConfig{}
	}
	if p.EBGPMultiHop {
		pl.report(config.KindBGPPeer, p.Name, "spec.bfdProfile", "multi-hop BFD (RFC 5883) is not supported and this peer uses ebgpMultiHop; the session runs without BFD")
		return BFDConfig{}
	}
	const kind = config.KindBFDProfile
	if prof.EchoMode {
		pl.report(kind, prof.Name, "spec.echoMode", "BFD echo mode is not supported; peers using this profile run asynchronous BFD only")
	}
	if prof.PassiveMode {
		pl.report(kind, prof.Name, "spec.passiveMode", "BFD passive mode is not supported; peers using this profile start BFD actively")
	}
	if prof.MinimumTTL != 0 {
		pl.report(kind, prof.Name, "spec.minimumTtl", "minimumTtl %d is not enforced: it applies to multi-hop BFD, which is not supported; single-hop packets are sent with TTL 255", prof.MinimumTTL)
	}
	return BFDConfig{
		Enabled:          true,
		Profile:          prof.Name,
		ReceiveInterval:  time.Duration(prof.ReceiveInterval) * time.Millisecond,
		TransmitInterval: time.Duration(prof.TransmitInterval) * time.Millisecond,
		DetectMultiplier: prof.DetectMultiplier,
	}
}

// families decides which address families the session carries. As in
// MetalLB, a session carries its own family unless dualStackAddressFamily
// asks for both; the other family's next hop is then the node's address
// of that family, since the session's local address cannot serve.
func (pl *planner) families(pc *PeerConfig, p *config.Peer, node Node) {
	v4 := pc.Address.Is4()
	pc.IPv4, pc.IPv6 = v4, !v4
	if !p.DualStackAddressFamily {
		return
	}
	if p.DisableMP {
		pl.report(config.KindBGPPeer, p.Name, "spec.disableMP", "disableMP and dualStackAddressFamily are both set; disableMP wins and the session carries only its own address family")
		return
	}
	other := nodeAddress(node, !v4)
	if !other.IsValid() {
		fam := "IPv6"
		if !v4 {
			fam = "IPv4"
		}
		pl.report(config.KindBGPPeer, p.Name, "spec.dualStackAddressFamily", "node %s has no global %s address to use as the next hop; the session carries only its own address family", node.Name, fam)
		return
	}
	if v4 {
		pc.IPv6, pc.NextHopIPv6 = true, other
	} else {
		pc.IPv4, pc.NextHopIPv4 = true, other
	}
}

// nodeAddress returns the node's first global unicast address of a family.
func nodeAddress(node Node, v4 bool) netip.Addr {
	for _, a := range node.Addresses {
		a = a.Unmap()
		if a.Is4() == v4 && a.IsGlobalUnicast() {
			return a
		}
	}
	return netip.Addr{}
}

// identity returns the node's AS and router ID. Peers sharing a node must
// agree on both (config.Parse checks it when it knows the nodes); should
// they not, the first peer by name wins and the others are reported. A
// different myASN still works, as a per-session local AS.
func (pl *planner) identity(cfg *config.Config, node Node, peers []PeerConfig) (uint32, netip.Addr) {
	byName := make(map[string]*config.Peer, len(cfg.Peers))
	for _, p := range cfg.Peers {
		byName[p.Name] = p
	}
	first := byName[peers[0].Name]
	asn := first.MyASN
	var id netip.Addr
	var idFrom string
	for _, pc := range peers {
		p := byName[pc.Name]
		if !p.RouterID.IsValid() {
			continue
		}
		switch {
		case !id.IsValid():
			id, idFrom = p.RouterID, p.Name
		case p.RouterID != id:
			pl.report(config.KindBGPPeer, p.Name, "spec.routerID", "routerID %s differs from %s of BGPPeer %s, which also peers from node %s; a node has one router ID, and %s is used",
				p.RouterID, id, idFrom, node.Name, id)
		}
	}
	if id.IsValid() {
		return asn, id
	}
	if a := nodeAddress(node, true); a.IsValid() {
		return asn, a
	}
	// An IPv6-only node still needs a 32-bit identifier; a hash of its
	// name is stable across restarts and differs between nodes.
	h := fnv.New32a()
	h.Write([]byte(node.Name))
	v := h.Sum32()
	if v == 0 {
		v = 1
	}
	return asn, netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// routeKey identifies one prefix toward one peer while paths are built.
type routeKey struct {
	prefix netip.Prefix
	peer   string
}

// routeAcc accumulates what the advertisements say about one routeKey.
type routeAcc struct {
	communities []config.Community
	// prefs maps each proposed localPref to the advertisements proposing it.
	prefs map[uint32][]string
}

// paths computes the prefixes and their routes.
func (pl *planner) paths(cfg *config.Config, node Node, peers []PeerConfig, services []Service) ([]Path, []ServiceAdvert) {
	routes := make(map[routeKey]*routeAcc)
	type svcAcc struct {
		prefixes []netip.Prefix
		peers    []string
	}
	svcs := make(map[string]*svcAcc)

	for _, svc := range services {
		if !svc.Serving {
			continue
		}
		if svc.LocalTrafficPolicy && !slices.Contains(svc.ServingNodes, node.Name) {
			continue
		}
		for _, ip := range svc.IPs {
			ip = ip.Unmap()
			pool := cfg.PoolOf(ip)
			if pool == nil {
				continue
			}
			for _, adv := range cfg.BGPAdvertisements {
				if !slices.Contains(adv.Pools, pool.Name) || !selects(adv.ServiceSelectors, svc.Labels) || !selects(adv.NodeSelectors, node.Labels) {
					continue
				}
				bits := adv.AggregationLength
				if ip.Is6() {
					bits = adv.AggregationLengthV6
				}
				prefix, err := ip.Prefix(bits)
				if err != nil {
					continue // Parse bounds the lengths; nothing to send.
				}
				for _, pc := range peers {
					if len(adv.Peers) > 0 && !slices.Contains(adv.Peers, pc.Name) {
						continue
					}
					if !pc.Carries(ip) {
						continue
					}
					k := routeKey{prefix: prefix, peer: pc.Name}
					acc := routes[k]
					if acc == nil {
						acc = &routeAcc{}
						routes[k] = acc
					}
					acc.communities = append(acc.communities, adv.Communities...)
					if pc.IBGP() && adv.LocalPref != 0 {
						if acc.prefs == nil {
							acc.prefs = make(map[uint32][]string)
						}
						acc.prefs[adv.LocalPref] = append(acc.prefs[adv.LocalPref], adv.Name)
					}
					sa := svcs[svc.Key]
					if sa == nil {
						sa = &svcAcc{}
						svcs[svc.Key] = sa
					}
					sa.prefixes = append(sa.prefixes, prefix)
					sa.peers = append(sa.peers, pc.Name)
				}
			}
		}
	}

	byPrefix := make(map[netip.Prefix][]Route)
	for _, k := range sortedKeys(routes, compareRouteKeys) {
		acc := routes[k]
		r := Route{Peer: k.peer, Communities: sortCommunities(acc.communities), LocalPref: pl.localPref(k, acc)}
		byPrefix[k.prefix] = append(byPrefix[k.prefix], r)
	}
	var paths []Path
	for _, p := range sortedKeys(byPrefix, comparePrefixes) {
		paths = append(paths, Path{Prefix: p, Routes: byPrefix[p]})
	}
	var adverts []ServiceAdvert
	for _, key := range sortedKeys(svcs, strings.Compare) {
		sa := svcs[key]
		slices.SortFunc(sa.prefixes, comparePrefixes)
		adverts = append(adverts, ServiceAdvert{
			Key:      key,
			Prefixes: slices.Compact(sa.prefixes),
			Peers:    slices.Compact(slices.Sorted(slices.Values(sa.peers))),
		})
	}
	return paths, adverts
}

// localPref resolves the LOCAL_PREF of one route: the single proposed
// value, or the highest of several, reporting the advertisements whose
// lower value lost. Parse rejects most such conflicts; those left come
// from advertisements that differ in peers or node selectors and still
// overlap on this node, or from aggregates spanning two pools.
func (pl *planner) localPref(k routeKey, acc *routeAcc) uint32 {
	if len(acc.prefs) == 0 {
		return 0
	}
	values := slices.Sorted(func(yield func(uint32) bool) {
		for v := range acc.prefs {
			if !yield(v) {
				return
			}
		}
	})
	best := values[len(values)-1]
	winner := slices.Min(acc.prefs[best])
	for _, v := range values[:len(values)-1] {
		for _, adv := range acc.prefs[v] {
			pl.report(config.KindBGPAdvertisement, adv, "spec.localPref", "localPref %d for %s to BGPPeer %s conflicts with localPref %d of BGPAdvertisement %s; the highest, %d, is used",
				v, k.prefix, k.peer, best, winner, best)
		}
	}
	return best
}

// sortCommunities returns the communities sorted without repeats; nil for
// none, so that routes compare equal whatever built them.
func sortCommunities(in []config.Community) []config.Community {
	if len(in) == 0 {
		return nil
	}
	out := slices.Clone(in)
	slices.SortFunc(out, config.Community.Compare)
	return slices.Compact(out)
}

func comparePrefixes(a, b netip.Prefix) int {
	return cmp.Or(a.Addr().Compare(b.Addr()), cmp.Compare(a.Bits(), b.Bits()))
}

func compareRouteKeys(a, b routeKey) int {
	return cmp.Or(comparePrefixes(a.prefix, b.prefix), strings.Compare(a.peer, b.peer))
}

// sortedKeys returns a map's keys in the given order, so that nothing
// downstream depends on map iteration.
func sortedKeys[K comparable, V any](m map[K]V, compare func(a, b K) int) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, compare)
	return keys
}
