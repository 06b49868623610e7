package config

import (
	"slices"
	"testing"

	"github.com/keeperlb/keeperlb/api/v1beta1"
	"github.com/keeperlb/keeperlb/api/v1beta2"
)

// TestConflictsStatedOnce: Parse reports a conflict between two objects on
// both (each gets an Event), and Once, given the changed object's errors
// first as the webhook orders them, states it once, from that object's
// side, with that object's field path. The first run of KeeperLB on a real
// cluster refused an overlapping pool with the overlap listed twice, the
// second time about the other pool.
func TestConflictsStatedOnce(t *testing.T) {
	rs := func(f func(*Resources)) Resources {
		r := Resources{Namespace: ns}
		f(&r)
		return r
	}
	tests := []struct {
		name    string
		in      Resources
		changed string // the object whose errors come first
		kind    string
		want    string // Once's errors, joined as Errors.Error does
		all     int    // how many errors Parse reports (both halves)
	}{
		{
			name: "a new pool inside an existing one",
			in: rs(func(r *Resources) {
				r.Pools = []v1beta1.IPAddressPool{pool("krc-pool", "198.18.250.200-198.18.250.220"), pool("new", "198.18.250.210/32")}
			}),
			changed: "new", kind: KindIPAddressPool, all: 2,
			want: `IPAddressPool metallb-system/new: spec.addresses[0]: "198.18.250.210/32" overlaps "198.18.250.200-198.18.250.220" (IPAddressPool metallb-system/krc-pool spec.addresses[0])`,
		},
		{
			name: "the existing pool edited to cover the other",
			in: rs(func(r *Resources) {
				r.Pools = []v1beta1.IPAddressPool{pool("krc-pool", "198.18.250.200-198.18.250.220"), pool("new", "198.18.250.210/32")}
			}),
			changed: "krc-pool", kind: KindIPAddressPool, all: 2,
			want: `IPAddressPool metallb-system/krc-pool: spec.addresses[0]: "198.18.250.200-198.18.250.220" overlaps "198.18.250.210/32" (IPAddressPool metallb-system/new spec.addresses[0])`,
		},
		{
			name: "a pool overlapping itself",
			in: rs(func(r *Resources) {
				r.Pools = []v1beta1.IPAddressPool{pool("a", "198.18.0.0/28", "198.18.0.8/29")}
			}),
			changed: "a", kind: KindIPAddressPool, all: 2,
			want: `IPAddressPool metallb-system/a: spec.addresses[0]: "198.18.0.0/28" overlaps "198.18.0.8/29" (IPAddressPool metallb-system/a spec.addresses[1])`,
		},
		{
			name: "a pool overlapping two others: two conflicts, each once",
			in: rs(func(r *Resources) {
				r.Pools = []v1beta1.IPAddressPool{pool("a", "198.18.0.0/30"), pool("b", "198.18.0.4/30"), pool("wide", "198.18.0.0/29")}
			}),
			changed: "wide", kind: KindIPAddressPool, all: 4,
			want: `IPAddressPool metallb-system/wide: spec.addresses[0]: "198.18.0.0/29" overlaps "198.18.0.0/30" (IPAddressPool metallb-system/a spec.addresses[0]); ` +
				`IPAddressPool metallb-system/wide: spec.addresses[0]: "198.18.0.0/29" overlaps "198.18.0.4/30" (IPAddressPool metallb-system/b spec.addresses[0])`,
		},
		{
			name: "two peers with one address",
			in: rs(func(r *Resources) {
				r.Peers = []v1beta2.BGPPeer{peer("p1", "198.18.100.1", nil), peer("p2", "198.18.100.1", func(s *v1beta2.BGPPeerSpec) { s.PeerPort = 1179 })}
			}),
			changed: "p2", kind: KindBGPPeer, all: 2,
			want: `BGPPeer metallb-system/p2: spec.peerAddress: address 198.18.100.1 in the default VRF is also the address of BGPPeer metallb-system/p1`,
		},
		{
			name: "two identical peers",
			in: rs(func(r *Resources) {
				r.Peers = []v1beta2.BGPPeer{peer("p1", "198.18.100.1", nil), peer("p2", "198.18.100.1", nil)}
			}),
			changed: "p2", kind: KindBGPPeer,
			want: `BGPPeer metallb-system/p2: spec: identical to BGPPeer metallb-system/p1; ` +
				`BGPPeer metallb-system/p2: spec.peerAddress: address 198.18.100.1 in the default VRF is also the address of BGPPeer metallb-system/p1`,
			all: 4,
		},
		{
			name: "two identical BGP advertisements",
			in: rs(func(r *Resources) {
				r.Pools = []v1beta1.IPAddressPool{pool("a", "198.18.0.0/28")}
				r.BGPAdvs = []v1beta1.BGPAdvertisement{bgpAdv("x", v1beta1.BGPAdvertisementSpec{}), bgpAdv("y", v1beta1.BGPAdvertisementSpec{})}
			}),
			changed: "x", kind: KindBGPAdvertisement, all: 2,
			want: `BGPAdvertisement metallb-system/x: spec: identical to BGPAdvertisement metallb-system/y`,
		},
		{
			name: "one error that is no conflict stays",
			in: rs(func(r *Resources) {
				r.Pools = []v1beta1.IPAddressPool{pool("a", "198.18.300.0/24")}
			}),
			changed: "a", kind: KindIPAddressPool, all: 1,
			want: `IPAddressPool metallb-system/a: spec.addresses[0]: "198.18.300.0/24" is neither a CIDR nor a range`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.in)
			errs, ok := err.(Errors)
			if !ok {
				t.Fatalf("Parse: %v, want Errors", err)
			}
			if len(errs) != tt.all {
				t.Errorf("Parse reported %d errors, want %d (both halves of each conflict): %v", len(errs), tt.all, errs)
			}
			// The changed object's errors first, as the webhook lists them.
			own := slices.Clone(errs)
			slices.SortStableFunc(own, func(a, b *FieldError) int {
				return boolRank(a.Kind == tt.kind && a.Name == tt.changed) - boolRank(b.Kind == tt.kind && b.Name == tt.changed)
			})
			once := own.Once()
			if got := once.Error(); got != tt.want {
				t.Errorf("Once:\n got %s\nwant %s", got, tt.want)
			}
			if m := errs.Mirrors(once); len(m)+len(once) != len(errs) {
				t.Errorf("Mirrors(Once) = %v: with Once it should make up every error of %v", m, errs)
			}
		})
	}
}

// boolRank sorts true before false.
func boolRank(b bool) int {
	if b {
		return 0
	}
	return 1
}
