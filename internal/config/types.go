package config

import (
	"net/netip"
	"time"

	"k8s.io/apimachinery/pkg/labels"
)

// Config is a validated snapshot of every metallb.io configuration object in
// the install namespace. Parse builds it; nothing mutates it afterwards, so it
// can be shared between goroutines and compared with the next snapshot.
// Slices are sorted by object name so that every consumer iterates in the
// same, deterministic order.
type Config struct {
	// Pools holds the address pools, sorted by name.
	Pools []*Pool
	// Peers holds the BGP peers, sorted by name.
	Peers []*Peer
	// BFDProfiles holds the BFD profiles, sorted by name.
	BFDProfiles []*BFDProfile
	// L2Advertisements holds the layer 2 advertisements, sorted by name.
	L2Advertisements []*L2Advertisement
	// BGPAdvertisements holds the BGP advertisements, sorted by name.
	BGPAdvertisements []*BGPAdvertisement
}

// Pool is a validated IPAddressPool.
type Pool struct {
	// Name is the IPAddressPool's name.
	Name string
	// Labels are the IPAddressPool's labels, matched by advertisement pool
	// selectors.
	Labels map[string]string
	// Ranges are the pool's addresses as inclusive ranges, sorted by first
	// address, disjoint, each within one address family. A CIDR entry becomes
	// one range covering the whole prefix.
	Ranges []Range
	// CIDRs are the pool's entries as CIDRs: a CIDR entry as given (host
	// bits cleared), a range entry as the smallest set of prefixes covering
	// it exactly; sorted by address.
	CIDRs []netip.Prefix
	// AutoAssign says whether Services that do not name the pool may get
	// its addresses.
	AutoAssign bool
	// AvoidBuggyIPs keeps IPv4 addresses ending in .0 and .255 unassigned.
	AvoidBuggyIPs bool
	// Allocation restricts and ranks the pool; nil when the pool has no
	// serviceAllocation.
	Allocation *ServiceAllocation
}

// Range is an inclusive range of addresses of one family.
type Range struct {
	// First is the lowest address of the range.
	First netip.Addr
	// Last is the highest address of the range, of First's family.
	Last netip.Addr
}

// ServiceAllocation is a validated IPAddressPool serviceAllocation.
type ServiceAllocation struct {
	// Priority ranks matching pools: lower first, 0 after every positive value.
	Priority int
	// Namespaces lists namespaces whose Services may use the pool.
	Namespaces []string
	// NamespaceSelectors select namespaces whose Services may use the pool.
	NamespaceSelectors []labels.Selector
	// ServiceSelectors select Services that may use the pool.
	ServiceSelectors []labels.Selector
}

// Peer is a validated BGPPeer (either API version).
type Peer struct {
	// Name is the BGPPeer's name.
	Name string
	// MyASN is the local AS number.
	MyASN uint32
	// PeerASN is the peer's AS number, 0 when DynamicASN is set.
	PeerASN uint32
	// DynamicASN is "internal", "external" or "" when PeerASN is set.
	DynamicASN string
	// LocalASN overrides MyASN towards this peer when non-zero.
	LocalASN uint32
	// Addr is the peer's address; invalid when Interface is set.
	Addr netip.Addr
	// Interface is the unnumbered interface; "" when Addr is set.
	Interface string
	// SourceAddr is the local address to connect from; invalid when unset.
	SourceAddr netip.Addr
	// Port is the peer's TCP port.
	Port uint16
	// HoldTime is the proposed hold time; nil when unset (engine default).
	HoldTime *time.Duration
	// KeepaliveTime is the keepalive interval; nil when unset.
	KeepaliveTime *time.Duration
	// ConnectTime is the wait between connection attempts; nil when unset.
	ConnectTime *time.Duration
	// RouterID is the BGP router ID override; invalid when unset.
	RouterID netip.Addr
	// NodeSelectors limit the nodes that peer; empty means every node.
	NodeSelectors []labels.Selector
	// Password is the TCP-MD5 password, resolved from passwordSecret when
	// that is used.
	Password string
	// BFDProfile names the BFD profile, "" for none.
	BFDProfile string
	// EBGPMultiHop allows a peer that is not directly connected.
	EBGPMultiHop bool
	// VRF is the VRF of the session, "" for the default.
	VRF string
	// EnableGracefulRestart negotiates graceful restart.
	EnableGracefulRestart bool
	// DisableMP keeps the address families in separate sessions.
	DisableMP bool
	// DualStackAddressFamily carries both families on this session.
	DualStackAddressFamily bool
}

// BFDProfile is a validated BFDProfile with defaults applied.
type BFDProfile struct {
	// Name is the BFDProfile's name.
	Name string
	// ReceiveInterval is in milliseconds.
	ReceiveInterval uint32
	// TransmitInterval is in milliseconds.
	TransmitInterval uint32
	// DetectMultiplier is the number of missed packets before down.
	DetectMultiplier uint32
	// EchoInterval is in milliseconds.
	EchoInterval uint32
	// EchoMode enables echo packets.
	EchoMode bool
	// PassiveMode waits for the peer to start the session.
	PassiveMode bool
	// MinimumTTL is the lowest accepted TTL; 0 when unset.
	MinimumTTL uint32
}

// L2Advertisement is a validated L2Advertisement.
type L2Advertisement struct {
	// Name is the L2Advertisement's name.
	Name string
	// Pools names the selected pools (by name or selector), sorted.
	Pools []string
	// NodeSelectors limit the announcing nodes; empty means every node.
	NodeSelectors []labels.Selector
	// Interfaces limit the announcing interfaces; empty means every
	// eligible interface.
	Interfaces []string
	// ServiceSelectors limit the Services; empty means every Service.
	ServiceSelectors []labels.Selector
}

// BGPAdvertisement is a validated BGPAdvertisement with defaults applied.
type BGPAdvertisement struct {
	// Name is the BGPAdvertisement's name.
	Name string
	// AggregationLength is the IPv4 prefix length advertised.
	AggregationLength int
	// AggregationLengthV6 is the IPv6 prefix length advertised.
	AggregationLengthV6 int
	// LocalPref is the LOCAL_PREF attribute; 0 when unset.
	LocalPref uint32
	// Communities are the communities attached, aliases resolved, sorted.
	Communities []Community
	// Pools names the selected pools (by name or selector), sorted.
	Pools []string
	// NodeSelectors limit the advertising nodes; empty means every node.
	NodeSelectors []labels.Selector
	// Peers names the peers to advertise to; empty means every peer.
	Peers []string
	// ServiceSelectors limit the Services; empty means every Service.
	ServiceSelectors []labels.Selector
}
