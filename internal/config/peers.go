package config

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/keeperlb/keeperlb/api/v1beta2"
)

// Peer defaults and limits.
const (
	defaultBGPPort = 179
	// minHoldTime is the shortest non-zero hold time RFC 4271 allows.
	minHoldTime = 3 * time.Second
	// maxBGPTimer is the largest value a 16-bit count of seconds can carry
	// in the OPEN message, and the CRD's limit on connectTime.
	maxBGPTimer = 65535 * time.Second
	// passwordKey is the key of a basic-auth Secret holding the password.
	passwordKey = "password"
	// maxMD5Password is Linux's TCP_MD5SIG_MAXKEYLEN.
	maxMD5Password = 80
)

// peerContext is what the peer rules need from the other kinds.
type peerContext struct {
	secrets  []corev1.Secret
	nodes    []corev1.Node
	profiles bfdSet
	advs     []*parsedBGPAdv
	pools    poolSet
}

// parsedPeer is a Peer with what the cross-object rules need.
type parsedPeer struct {
	ref  objectRef
	peer *Peer
	// allNodes is true when the spec has no nodeSelectors, even if some
	// selectors failed to convert and peer.NodeSelectors is short.
	allNodes bool
	// badRouterID is true when routerID is set but invalid (and reported);
	// comparing it with other peers' would only add noise.
	badRouterID bool
	// identity is equal for peers whose specs are equal once defaults are
	// applied.
	identity string
}

// secretKey locates a Secret.
type secretKey struct{ namespace, name string }

// parsePeers parses every BGPPeer, then applies the rules that relate
// peers to each other and to the advertisements.
func (c *collector) parsePeers(objs []*v1beta2.BGPPeer, ctx peerContext) []*parsedPeer {
	secrets := make(map[secretKey]*corev1.Secret, len(ctx.secrets))
	for i := range ctx.secrets {
		s := &ctx.secrets[i]
		k := secretKey{s.Namespace, s.Name}
		if _, dup := secrets[k]; !dup {
			secrets[k] = s
		}
	}
	var out []*parsedPeer
	for _, o := range uniqueByName(c, KindBGPPeer, objs) {
		out = append(out, c.parsePeer(o, secrets, ctx.profiles))
	}
	c.checkIdenticalPeers(out)
	c.checkPeerAddresses(out)
	c.checkSharedNodes(out, ctx.nodes)
	c.checkEchoMode(out, ctx)
	return out
}

// parsePeer parses one BGPPeer and applies the rules that concern it alone.
func (c *collector) parsePeer(o *v1beta2.BGPPeer, secrets map[secretKey]*corev1.Secret, profiles bfdSet) *parsedPeer {
	ref := refOf(KindBGPPeer, o)
	s := o.Spec
	p := &Peer{
		Name:                   o.Name,
		MyASN:                  s.MyASN,
		PeerASN:                s.PeerASN,
		DynamicASN:             string(s.DynamicASN),
		LocalASN:               s.LocalASN,
		Interface:              s.Interface,
		Port:                   s.PeerPort,
		NodeSelectors:          c.selectors(ref, "spec.nodeSelectors", s.NodeSelectors),
		Password:               s.Password,
		BFDProfile:             s.BFDProfile,
		EBGPMultiHop:           s.EBGPMultiHop,
		VRF:                    s.VRF,
		EnableGracefulRestart:  s.EnableGracefulRestart,
		DisableMP:              s.DisableMP,
		DualStackAddressFamily: s.DualStackAddressFamily,
	}
	if p.Port == 0 {
		p.Port = defaultBGPPort
	}

	c.checkASNs(ref, s)
	switch {
	case s.PeerAddress != "" && s.Interface != "":
		c.fail(ref, "spec.peerAddress", "peerAddress and interface are mutually exclusive: set peerAddress for a numbered session or interface for an unnumbered one")
	case s.PeerAddress == "" && s.Interface == "":
		c.fail(ref, "spec.peerAddress", "one of peerAddress and interface is required")
	}
	if s.PeerAddress != "" {
		p.Addr = c.address(ref, "spec.peerAddress", s.PeerAddress)
		if p.Addr.IsValid() {
			if what := reserved(Range{First: p.Addr, Last: p.Addr}); what != "" {
				c.fail(ref, "spec.peerAddress", "%s is reserved (%s) and can never be a BGP peer", p.Addr, what)
			}
		}
	}
	if s.SourceAddress != "" {
		p.SourceAddr = c.address(ref, "spec.sourceAddress", s.SourceAddress)
	}
	badRouterID := false
	if s.RouterID != "" {
		id := c.address(ref, "spec.routerID", s.RouterID)
		switch {
		case !id.IsValid():
			badRouterID = true
		case !id.Is4():
			c.fail(ref, "spec.routerID", "%q is not an IPv4 address; a BGP router ID is a 32-bit number written as one", s.RouterID)
			badRouterID = true
		case id.IsUnspecified():
			c.fail(ref, "spec.routerID", "0.0.0.0 is not a valid BGP router ID")
			badRouterID = true
		default:
			p.RouterID = id
		}
	}

	c.checkTimers(ref, s, p)
	p.Password = c.password(ref, o, secrets)
	if len(p.Password) > maxMD5Password {
		// The kernel refuses a longer TCP-MD5 key (TCP_MD5SIG_MAXKEYLEN),
		// and the session would silently never come up.
		field := "spec.password"
		if s.PasswordSecret.Name != "" {
			field = "spec.passwordSecret.name"
		}
		c.fail(ref, field, "the password has %d bytes; TCP-MD5 keys are at most %d bytes", len(p.Password), maxMD5Password)
	}
	if s.BFDProfile != "" && profiles.byName[s.BFDProfile] == nil {
		c.fail(ref, "spec.bfdProfile", "BFDProfile %q does not exist", s.BFDProfile)
	}

	norm := s
	norm.PeerPort = p.Port
	identity, err := json.Marshal(norm)
	if err != nil {
		// Cannot happen for this type; a unique identity keeps the rule
		// from firing on a peer it cannot judge.
		identity = []byte("\x00" + o.Namespace + "/" + o.Name)
	}
	return &parsedPeer{ref: ref, peer: p, allNodes: len(s.NodeSelectors) == 0, badRouterID: badRouterID, identity: string(identity)}
}

// checkASNs applies the AS number rules.
func (c *collector) checkASNs(ref objectRef, s v1beta2.BGPPeerSpec) {
	if s.MyASN == 0 {
		c.fail(ref, "spec.myASN", "myASN is required and must not be 0")
	}
	switch {
	case s.PeerASN != 0 && s.DynamicASN != "":
		c.fail(ref, "spec.peerASN", "peerASN and dynamicASN are mutually exclusive: set peerASN for a known AS or dynamicASN to accept any")
	case s.PeerASN == 0 && s.DynamicASN == "":
		c.fail(ref, "spec.peerASN", "one of peerASN and dynamicASN is required")
	}
	if s.DynamicASN != "" && s.DynamicASN != v1beta2.InternalASNMode && s.DynamicASN != v1beta2.ExternalASNMode {
		c.fail(ref, "spec.dynamicASN", "%q is not a dynamicASN mode: must be %q or %q", s.DynamicASN, v1beta2.InternalASNMode, v1beta2.ExternalASNMode)
	}
	// The AS presented to the peer is localASN when set (local-as), so
	// that is what makes a session iBGP.
	local := s.MyASN
	if s.LocalASN != 0 {
		local = s.LocalASN
	}
	ibgp := s.DynamicASN == v1beta2.InternalASNMode || (s.PeerASN != 0 && s.PeerASN == local)
	if s.EBGPMultiHop && ibgp {
		c.fail(ref, "spec.ebgpMultiHop", "ebgpMultiHop applies only to eBGP, and this session is iBGP (the peer is in AS %d, the local AS); iBGP peers need no multi-hop setting", local)
	}
}

// address parses a peer's address field. Zones and IPv4-mapped addresses
// are refused: a zone belongs in the interface field (unnumbered
// sessions), and a mapped address would hide an IPv4 session behind an
// IPv6 spelling from the duplicate-address rule.
func (c *collector) address(ref objectRef, field, text string) netip.Addr {
	a, err := netip.ParseAddr(text)
	switch {
	case err != nil:
		c.fail(ref, field, "%q is not an IP address", text)
	case a.Zone() != "":
		c.fail(ref, field, "%q has an IPv6 zone; use spec.interface for a session over a link-local address", text)
	case a.Is4In6():
		c.fail(ref, field, "%q is an IPv4-mapped IPv6 address; write the IPv4 address %s", text, a.Unmap())
	default:
		return a
	}
	return netip.Addr{}
}

// checkTimers converts the durations and applies the timer rules that
// RFC 4271 imposes on the OPEN message.
func (c *collector) checkTimers(ref objectRef, s v1beta2.BGPPeerSpec, p *Peer) {
	p.HoldTime = c.duration(ref, "spec.holdTime", s.HoldTime)
	p.KeepaliveTime = c.duration(ref, "spec.keepaliveTime", s.KeepaliveTime)
	p.ConnectTime = c.duration(ref, "spec.connectTime", s.ConnectTime)
	if h := p.HoldTime; h != nil {
		switch {
		case *h != 0 && *h < minHoldTime:
			c.fail(ref, "spec.holdTime", "%s is too short: must be 0 (no keepalives) or at least %s", *h, minHoldTime)
		case *h > maxBGPTimer:
			c.fail(ref, "spec.holdTime", "%s is too long: BGP carries at most %s", *h, maxBGPTimer)
		}
	}
	if h, k := p.HoldTime, p.KeepaliveTime; h != nil && k != nil {
		switch {
		case *h == 0 && *k != 0:
			c.fail(ref, "spec.keepaliveTime", "%s must be 0 or unset when holdTime is 0, which turns keepalives off", *k)
		case *k > *h:
			c.fail(ref, "spec.keepaliveTime", "%s is greater than holdTime %s; the session would expire between keepalives", *k, *h)
		}
	}
	if t := p.ConnectTime; t != nil && (*t < time.Second || *t > maxBGPTimer) {
		c.fail(ref, "spec.connectTime", "%s is out of range: must be from 1s to %s", *t, maxBGPTimer)
	}
}

// duration converts an optional duration; a negative one is reported and
// dropped so that the rules comparing durations do not report it again.
func (c *collector) duration(ref objectRef, field string, d *metav1.Duration) *time.Duration {
	if d == nil {
		return nil
	}
	if d.Duration < 0 {
		c.fail(ref, field, "%s is negative", d.Duration)
		return nil
	}
	v := d.Duration
	return &v
}

// password returns the session password, resolving passwordSecret. The
// Secret must live in the peer's namespace: reading Secrets elsewhere would
// let anyone allowed to create a BGPPeer exfiltrate them.
func (c *collector) password(ref objectRef, o *v1beta2.BGPPeer, secrets map[secretKey]*corev1.Secret) string {
	s := o.Spec
	sr := s.PasswordSecret
	if sr.Name == "" {
		if sr.Namespace != "" {
			c.fail(ref, "spec.passwordSecret.name", "passwordSecret.namespace is set but passwordSecret.name is empty")
		}
		return s.Password
	}
	if s.Password != "" {
		// Keep checking the Secret: the user is told everything at once.
		c.fail(ref, "spec.password", "password and passwordSecret are mutually exclusive: keep only passwordSecret")
	}
	if sr.Namespace != "" && sr.Namespace != o.Namespace {
		c.fail(ref, "spec.passwordSecret.namespace", "the Secret must be in the peer's namespace %q, not %q", o.Namespace, sr.Namespace)
		return ""
	}
	sec := secrets[secretKey{o.Namespace, sr.Name}]
	switch {
	case sec == nil:
		c.fail(ref, "spec.passwordSecret.name", "Secret %s/%s does not exist", o.Namespace, sr.Name)
	case sec.Type != corev1.SecretTypeBasicAuth:
		c.fail(ref, "spec.passwordSecret.name", "Secret %s/%s has type %q; it must be %q", o.Namespace, sr.Name, sec.Type, corev1.SecretTypeBasicAuth)
	default:
		if pw, ok := sec.Data[passwordKey]; ok && len(pw) > 0 {
			return string(pw)
		}
		// StringData is write-only on a real API server, but objects built
		// in code (tests, offline validation) often use it.
		if pw := sec.StringData[passwordKey]; pw != "" {
			return pw
		}
		c.fail(ref, "spec.passwordSecret.name", "Secret %s/%s has no non-empty %q key", o.Namespace, sr.Name, passwordKey)
	}
	return ""
}

// checkIdenticalPeers reports peers whose specs are equal: two sessions
// with the same settings are a leftover copy, and would fight over the
// same TCP connection.
func (c *collector) checkIdenticalPeers(peers []*parsedPeer) {
	first := make(map[string]*parsedPeer, len(peers))
	for _, p := range peers {
		f, seen := first[p.identity]
		if !seen {
			first[p.identity] = p
			continue
		}
		c.conflict(p.ref, "spec", f.ref, "spec", "identical to "+f.ref.String(), "identical to "+p.ref.String())
	}
}

// describeVRF names a VRF in messages.
func describeVRF(vrf string) string {
	if vrf == "" {
		return "the default VRF"
	}
	return fmt.Sprintf("VRF %q", vrf)
}

// checkPeerAddresses reports two peers with one address in one VRF. The
// port does not tell them apart: the speaker keys its sessions by address,
// and so do BGP daemons.
func (c *collector) checkPeerAddresses(peers []*parsedPeer) {
	type key struct {
		vrf  string
		addr netip.Addr
	}
	first := make(map[key]*parsedPeer, len(peers))
	for _, p := range peers {
		if !p.peer.Addr.IsValid() {
			continue
		}
		k := key{p.peer.VRF, p.peer.Addr}
		f, seen := first[k]
		if !seen {
			first[k] = p
			continue
		}
		c.conflict(p.ref, "spec.peerAddress", f.ref, "spec.peerAddress",
			fmt.Sprintf("address %s in %s is also the address of %s", p.peer.Addr, describeVRF(p.peer.VRF), f.ref),
			fmt.Sprintf("address %s in %s is also the address of %s", f.peer.Addr, describeVRF(f.peer.VRF), p.ref))
	}
}

// checkSharedNodes reports peers that open sessions from the same node in
// the same VRF yet disagree on myASN or routerID: the node runs one BGP
// instance per VRF, which has one AS number and one router ID. Peers
// without nodeSelectors share every node, known or not; other pairs are
// found by matching the given Nodes.
func (c *collector) checkSharedNodes(peers []*parsedPeer, nodes []corev1.Node) {
	type groupKey struct {
		node string // "" stands for every node.
		vrf  string
	}
	groups := make(map[groupKey][]*parsedPeer)
	var order []groupKey
	add := func(k groupKey, p *parsedPeer) {
		if _, seen := groups[k]; !seen {
			order = append(order, k)
		}
		groups[k] = append(groups[k], p)
	}
	for _, p := range peers {
		if p.allNodes {
			add(groupKey{vrf: p.peer.VRF}, p)
		}
	}
	sorted := make([]*corev1.Node, len(nodes))
	for i := range nodes {
		sorted[i] = &nodes[i]
	}
	slices.SortStableFunc(sorted, func(a, b *corev1.Node) int { return strings.Compare(a.Name, b.Name) })
	for _, n := range sorted {
		for _, p := range peers {
			if p.allNodes || matchesAny(p.peer.NodeSelectors, n.Labels) {
				add(groupKey{node: n.Name, vrf: p.peer.VRF}, p)
			}
		}
	}

	type pairKey struct{ a, b, field string }
	reported := make(map[pairKey]bool)
	report := func(k groupKey, first, other *parsedPeer, field, mine, theirs string) {
		pk := pairKey{first.peer.Name, other.peer.Name, field}
		if reported[pk] {
			return
		}
		reported[pk] = true
		where := "on every node, as neither has nodeSelectors"
		if k.node != "" {
			where = fmt.Sprintf("on node %q", k.node)
		}
		why := fmt.Sprintf("peers sharing a node in %s must agree on %s", describeVRF(k.vrf), field[len("spec."):])
		c.conflict(other.ref, field, first.ref, field,
			fmt.Sprintf("%s differs from %s of %s, which also peers %s; %s", mine, theirs, first.ref, where, why),
			fmt.Sprintf("%s differs from %s of %s, which also peers %s; %s", theirs, mine, other.ref, where, why))
	}
	// Within a group, every peer is compared with the first peer whose
	// value is comparable at all: a missing myASN or a bad routerID is
	// reported on its own, and comparing it would only repeat that error.
	for _, k := range order {
		g := groups[k]
		var asnRef, idRef *parsedPeer
		for _, p := range g {
			if p.peer.MyASN != 0 {
				if asnRef == nil {
					asnRef = p
				} else if p.peer.MyASN != asnRef.peer.MyASN {
					report(k, asnRef, p, "spec.myASN",
						fmt.Sprintf("myASN %d", p.peer.MyASN), fmt.Sprintf("myASN %d", asnRef.peer.MyASN))
				}
			}
			if !p.badRouterID {
				if idRef == nil {
					idRef = p
				} else if p.peer.RouterID != idRef.peer.RouterID {
					report(k, idRef, p, "spec.routerID",
						"routerID "+describeRouterID(p.peer.RouterID), "routerID "+describeRouterID(idRef.peer.RouterID))
				}
			}
		}
	}
}

// describeRouterID shows a router ID, which may be unset.
func describeRouterID(a netip.Addr) string {
	if !a.IsValid() {
		return "(unset)"
	}
	return a.String()
}

// checkEchoMode reports peers whose BFD profile enables echo mode while
// they carry IPv6 pools: BFD echo is defined for IPv4 only, so the IPv6
// routes would lose fast failure detection without anyone noticing. A peer
// carries a pool when a BGPAdvertisement selects the pool and lists no
// peers or lists this one.
func (c *collector) checkEchoMode(peers []*parsedPeer, ctx peerContext) {
	for _, p := range peers {
		prof := ctx.profiles.byName[p.peer.BFDProfile]
		if prof == nil || !prof.EchoMode {
			continue
		}
		if pool, adv := carriedIPv6Pool(p.peer.Name, ctx); pool != nil {
			c.fail(p.ref, "spec.bfdProfile", "BFDProfile %q enables echo mode, which works only over IPv4, but this peer carries IPv6 addresses of %s through %s",
				prof.Name, pool.ref, adv.ref)
		}
	}
}

// carriedIPv6Pool returns the first IPv6 pool the named peer carries, and
// the advertisement through which it does, or nils.
func carriedIPv6Pool(peer string, ctx peerContext) (*parsedPool, *parsedBGPAdv) {
	for _, a := range ctx.advs {
		if len(a.adv.Peers) > 0 && !slices.Contains(a.adv.Peers, peer) {
			continue
		}
		for _, name := range a.adv.Pools {
			if pool := ctx.pools.byName[name]; pool != nil && poolHasFamily(pool.pool, true) {
				return pool, a
			}
		}
	}
	return nil, nil
}
