package webhook

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/keeperlb/keeperlb/api/v1beta1"
	"github.com/keeperlb/keeperlb/api/v1beta2"
	"github.com/keeperlb/keeperlb/internal/config"
)

const ns = "metallb-system"

func meta(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Namespace: ns, Name: name} }

func pool(name string, addrs ...string) v1beta1.IPAddressPool {
	return v1beta1.IPAddressPool{ObjectMeta: meta(name), Spec: v1beta1.IPAddressPoolSpec{Addresses: addrs}}
}

func peer(name, addr string, f func(*v1beta2.BGPPeerSpec)) v1beta2.BGPPeer {
	p := v1beta2.BGPPeer{ObjectMeta: meta(name), Spec: v1beta2.BGPPeerSpec{MyASN: 64500, PeerASN: 64501, PeerAddress: addr}}
	if f != nil {
		f(&p.Spec)
	}
	return p
}

func bfd(name string) v1beta1.BFDProfile {
	return v1beta1.BFDProfile{ObjectMeta: meta(name)}
}

func dur(d time.Duration) *metav1.Duration { return &metav1.Duration{Duration: d} }

// base is a valid configuration: two pools, a BFD profile used by a peer,
// a community alias used by an advertisement.
func base() config.Resources {
	return config.Resources{
		Namespace: ns,
		Pools:     []v1beta1.IPAddressPool{pool("a", "198.18.0.0/28"), pool("b", "198.18.1.0/28")},
		Peers: []v1beta2.BGPPeer{peer("p1", "198.18.100.1", func(s *v1beta2.BGPPeerSpec) {
			s.BFDProfile = "fast"
		})},
		BFDProfiles: []v1beta1.BFDProfile{bfd("fast"), bfd("unused")},
		Communities: []v1beta1.Community{{ObjectMeta: meta("comms"), Spec: v1beta1.CommunitySpec{
			Communities: []v1beta1.CommunityAlias{{Name: "no-export", Value: "65535:65281"}},
		}}},
		BGPAdvs: []v1beta1.BGPAdvertisement{{ObjectMeta: meta("adv"), Spec: v1beta1.BGPAdvertisementSpec{
			Communities: []string{"no-export"},
		}}},
	}
}

func TestBaseIsValid(t *testing.T) {
	if _, err := config.Parse(base()); err != nil {
		t.Fatalf("the base configuration of these tests does not parse: %v", err)
	}
}

func TestReview(t *testing.T) {
	p := func(o v1beta1.IPAddressPool) *v1beta1.IPAddressPool { return &o }
	pr := func(o v1beta2.BGPPeer) *v1beta2.BGPPeer { return &o }
	// broken has a pre-existing overlap between x and y, as when objects
	// were created while the webhook was down.
	broken := base()
	broken.Pools = append(broken.Pools, pool("x", "198.18.5.0/28"), pool("y", "198.18.5.8/29"))

	tests := []struct {
		name      string
		current   config.Resources
		change    Change
		allowed   bool
		message   []string // substrings of the refusal
		warnings  []string // substrings of some warning
		errFields []string // "Kind/name field" of each blocking error
	}{
		{
			name:    "a new pool that does not overlap",
			current: base(),
			change:  Change{Operation: Create, Kind: config.KindIPAddressPool, Namespace: ns, Name: "c", Object: p(pool("c", "198.18.2.0/28"))},
			allowed: true,
		},
		{
			name:      "a new pool overlapping an existing one",
			current:   base(),
			change:    Change{Operation: Create, Kind: config.KindIPAddressPool, Namespace: ns, Name: "c", Object: p(pool("c", "198.18.0.8/29"))},
			message:   []string{"IPAddressPool metallb-system/c: spec.addresses[0]: \"198.18.0.8/29\" overlaps", "IPAddressPool metallb-system/a"},
			errFields: []string{"IPAddressPool/c spec.addresses[0]"},
		},
		{
			name:    "an update that moves a pool onto free addresses",
			current: base(),
			change:  Change{Operation: Update, Kind: config.KindIPAddressPool, Namespace: ns, Name: "a", Object: p(pool("a", "198.18.3.0/28"))},
			allowed: true,
		},
		{
			name:      "an update that moves a pool onto another",
			current:   base(),
			change:    Change{Operation: Update, Kind: config.KindIPAddressPool, Namespace: ns, Name: "a", Object: p(pool("a", "198.18.1.0/30"))},
			message:   []string{"overlaps"},
			errFields: []string{"IPAddressPool/a spec.addresses[0]"},
		},
		{
			name:      "a pool with a bad address",
			current:   base(),
			change:    Change{Operation: Create, Kind: config.KindIPAddressPool, Namespace: ns, Name: "c", Object: p(pool("c", "198.18.300.0/24"))},
			message:   []string{"IPAddressPool metallb-system/c: spec.addresses[0]"},
			errFields: []string{"IPAddressPool/c spec.addresses[0]"},
		},
		{
			name:    "an unrelated edit next to a pre-existing problem",
			current: broken,
			change:  Change{Operation: Create, Kind: config.KindIPAddressPool, Namespace: ns, Name: "c", Object: p(pool("c", "198.18.2.0/28"))},
			allowed: true,
			// The user learns about it without being blocked.
			warnings: []string{"does not touch: IPAddressPool metallb-system/x: spec.addresses[0]"},
		},
		{
			name:      "an edit of an object that has a problem, not fixing it",
			current:   broken,
			change:    Change{Operation: Update, Kind: config.KindIPAddressPool, Namespace: ns, Name: "x", Object: p(pool("x", "198.18.5.0/28", "198.18.6.0/28"))},
			message:   []string{"IPAddressPool metallb-system/x: spec.addresses[0]"},
			errFields: []string{"IPAddressPool/x spec.addresses[0]"},
			// y's half of the same overlap is not warned about apart.
		},
		{
			name:    "the edit that fixes a pre-existing problem",
			current: broken,
			change:  Change{Operation: Update, Kind: config.KindIPAddressPool, Namespace: ns, Name: "x", Object: p(pool("x", "198.18.6.0/28"))},
			allowed: true,
		},
		{
			name:      "a peer with a hold time under 3s",
			current:   base(),
			change:    Change{Operation: Create, Kind: config.KindBGPPeer, Namespace: ns, Name: "p2", Object: pr(peer("p2", "198.18.100.2", func(s *v1beta2.BGPPeerSpec) { s.HoldTime = dur(2 * time.Second) }))},
			message:   []string{"BGPPeer metallb-system/p2: spec.holdTime: 2s is too short"},
			errFields: []string{"BGPPeer/p2 spec.holdTime"},
		},
		{
			name:    "a peer with a keepalive longer than its hold time",
			current: base(),
			change: Change{Operation: Create, Kind: config.KindBGPPeer, Namespace: ns, Name: "p2", Object: pr(peer("p2", "198.18.100.2", func(s *v1beta2.BGPPeerSpec) {
				s.HoldTime, s.KeepaliveTime = dur(9*time.Second), dur(30*time.Second)
			}))},
			message:   []string{"spec.keepaliveTime: 30s is greater than holdTime 9s"},
			errFields: []string{"BGPPeer/p2 spec.keepaliveTime"},
		},
		{
			name:    "a peer with both peerASN and dynamicASN",
			current: base(),
			change: Change{Operation: Create, Kind: config.KindBGPPeer, Namespace: ns, Name: "p2", Object: pr(peer("p2", "198.18.100.2", func(s *v1beta2.BGPPeerSpec) {
				s.DynamicASN = v1beta2.ExternalASNMode
			}))},
			message:   []string{"spec.peerASN: peerASN and dynamicASN are mutually exclusive"},
			errFields: []string{"BGPPeer/p2 spec.peerASN"},
		},
		{
			name:      "a peer naming a BFD profile that does not exist",
			current:   base(),
			change:    Change{Operation: Create, Kind: config.KindBGPPeer, Namespace: ns, Name: "p2", Object: pr(peer("p2", "198.18.100.2", func(s *v1beta2.BGPPeerSpec) { s.BFDProfile = "nope" }))},
			message:   []string{`BFDProfile "nope" does not exist`},
			errFields: []string{"BGPPeer/p2 spec.bfdProfile"},
		},
		{
			name:    "a valid peer",
			current: base(),
			change:  Change{Operation: Create, Kind: config.KindBGPPeer, Namespace: ns, Name: "p2", Object: pr(peer("p2", "198.18.100.2", nil))},
			allowed: true,
		},
		{
			name:      "deleting a BFD profile in use",
			current:   base(),
			change:    Change{Operation: Delete, Kind: config.KindBFDProfile, Namespace: ns, Name: "fast"},
			message:   []string{"BFDProfile metallb-system/fast is used by BGPPeer p1", `BGPPeer metallb-system/p1: spec.bfdProfile: BFDProfile "fast" does not exist`},
			errFields: []string{"BGPPeer/p1 spec.bfdProfile"},
		},
		{
			name:    "deleting a BFD profile nobody uses",
			current: base(),
			change:  Change{Operation: Delete, Kind: config.KindBFDProfile, Namespace: ns, Name: "unused"},
			allowed: true,
		},
		{
			name:      "deleting a community alias in use",
			current:   base(),
			change:    Change{Operation: Delete, Kind: config.KindCommunity, Namespace: ns, Name: "comms"},
			message:   []string{"deleting Community metallb-system/comms would break the configuration", "BGPAdvertisement metallb-system/adv"},
			errFields: []string{"BGPAdvertisement/adv spec.communities[0]"},
		},
		{
			name:    "deleting a pool",
			current: base(),
			change:  Change{Operation: Delete, Kind: config.KindIPAddressPool, Namespace: ns, Name: "a"},
			allowed: true,
		},
		{
			name:    "an object in another namespace",
			current: base(),
			change: Change{Operation: Create, Kind: config.KindIPAddressPool, Namespace: "elsewhere", Name: "c",
				Object: p(v1beta1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Namespace: "elsewhere", Name: "c"}, Spec: v1beta1.IPAddressPoolSpec{Addresses: []string{"198.18.0.0/28"}}})},
			allowed:  true,
			warnings: []string{"outside metallb-system", "ignored"},
		},
		{
			name:    "an object of the wrong type for its kind",
			current: base(),
			change:  Change{Operation: Create, Kind: config.KindBGPPeer, Namespace: ns, Name: "c", Object: p(pool("c", "198.18.2.0/28"))},
			message: []string{"expected a *v1beta2.BGPPeer"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := len(tc.current.Pools)
			d := Review(tc.current, tc.change)
			t.Logf("allowed=%v message=%q warnings=%q", d.Allowed, d.Message, d.Warnings)
			if len(tc.current.Pools) != before {
				t.Errorf("Review changed its input")
			}
			if d.Allowed != tc.allowed {
				t.Fatalf("allowed = %v, want %v (message %q, warnings %q)", d.Allowed, tc.allowed, d.Message, d.Warnings)
			}
			if d.Allowed && d.Message != "" {
				t.Errorf("allowed with a message: %q", d.Message)
			}
			for _, m := range tc.message {
				if !strings.Contains(d.Message, m) {
					t.Errorf("message %q lacks %q", d.Message, m)
				}
			}
			if tc.errFields != nil {
				var got []string
				for _, fe := range d.Errors {
					got = append(got, fe.Kind+"/"+fe.Name+" "+fe.Field)
				}
				if strings.Join(got, ", ") != strings.Join(tc.errFields, ", ") {
					t.Errorf("blocking errors = %q, want %q", got, tc.errFields)
				}
			}
			for _, w := range tc.warnings {
				found := false
				for _, have := range d.Warnings {
					found = found || strings.Contains(have, w)
				}
				if !found {
					t.Errorf("no warning contains %q; warnings: %q", w, d.Warnings)
				}
			}
			if len(tc.warnings) == 0 && len(d.Warnings) > 0 {
				t.Errorf("unexpected warnings %q", d.Warnings)
			}
		})
	}
}

// TestRefusalStatesConflictOnce checks the exact refusal of a change that
// conflicts with another object, as the API server passes it on and as
// kubectl prints it (`field: message` per cause): the changed object, its
// field path and the reason, once. The first real-cluster run found the
// overlap listed twice, the second time about the other pool but under
// the refused pool's name.
func TestRefusalStatesConflictOnce(t *testing.T) {
	p := func(o v1beta1.IPAddressPool) *v1beta1.IPAddressPool { return &o }
	withPool := func(name string, addrs ...string) config.Resources {
		r := base()
		r.Pools = append(r.Pools, pool(name, addrs...))
		return r
	}
	tests := []struct {
		name    string
		current config.Resources
		change  Change
		message string   // Decision.Message
		causes  []string // "field: message", as kubectl prints them
	}{
		{
			name:    "a new pool inside an existing one",
			current: withPool("krc-pool", "198.18.250.200-198.18.250.220"),
			change:  Change{Operation: Create, Kind: config.KindIPAddressPool, Namespace: ns, Name: "new", Object: p(pool("new", "198.18.250.210/32"))},
			message: `IPAddressPool metallb-system/new: spec.addresses[0]: "198.18.250.210/32" overlaps "198.18.250.200-198.18.250.220" (IPAddressPool metallb-system/krc-pool spec.addresses[0])`,
			causes:  []string{`spec.addresses[0]: "198.18.250.210/32" overlaps "198.18.250.200-198.18.250.220" (IPAddressPool metallb-system/krc-pool spec.addresses[0])`},
		},
		{
			name:    "a new pool covering an existing one, at its second entry",
			current: withPool("small", "198.18.250.210/32"),
			change:  Change{Operation: Create, Kind: config.KindIPAddressPool, Namespace: ns, Name: "big", Object: p(pool("big", "198.18.7.0/24", "198.18.250.200-198.18.250.220"))},
			message: `IPAddressPool metallb-system/big: spec.addresses[1]: "198.18.250.200-198.18.250.220" overlaps "198.18.250.210/32" (IPAddressPool metallb-system/small spec.addresses[0])`,
			causes:  []string{`spec.addresses[1]: "198.18.250.200-198.18.250.220" overlaps "198.18.250.210/32" (IPAddressPool metallb-system/small spec.addresses[0])`},
		},
		{
			name:    "a peer with another peer's address",
			current: base(),
			change: Change{Operation: Create, Kind: config.KindBGPPeer, Namespace: ns, Name: "p2", Object: func() *v1beta2.BGPPeer {
				o := peer("p2", "198.18.100.1", func(s *v1beta2.BGPPeerSpec) { s.PeerPort = 1179 })
				return &o
			}()},
			message: `BGPPeer metallb-system/p2: spec.peerAddress: address 198.18.100.1 in the default VRF is also the address of BGPPeer metallb-system/p1`,
			causes:  []string{`spec.peerAddress: address 198.18.100.1 in the default VRF is also the address of BGPPeer metallb-system/p1`},
		},
		{
			name:    "deleting a BFD profile in use: the cause is about another object and says so",
			current: base(),
			change:  Change{Operation: Delete, Kind: config.KindBFDProfile, Namespace: ns, Name: "fast"},
			message: `BFDProfile metallb-system/fast is used by BGPPeer p1; point their spec.bfdProfile elsewhere first: BGPPeer metallb-system/p1: spec.bfdProfile: BFDProfile "fast" does not exist`,
			causes:  []string{`spec.bfdProfile: BFDProfile "fast" does not exist`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := Review(tc.current, tc.change)
			if d.Allowed {
				t.Fatalf("allowed, want a refusal")
			}
			if d.Message != tc.message {
				t.Errorf("message:\n got %s\nwant %s", d.Message, tc.message)
			}
			if len(d.Warnings) > 0 {
				t.Errorf("warnings %q: the other half of the conflict is not a separate problem", d.Warnings)
			}
			st := respond(d).Result
			var causes []string
			for _, c := range st.Details.Causes {
				causes = append(causes, c.Field+": "+c.Message)
			}
			if strings.Join(causes, "\n") != strings.Join(tc.causes, "\n") {
				t.Errorf("causes:\n got %q\nwant %q", causes, tc.causes)
			}
		})
	}
}

// Many pre-existing problems give a bounded number of warnings.
func TestReviewBoundsWarnings(t *testing.T) {
	r := base()
	for i := range 10 {
		r.Pools = append(r.Pools, pool(string(rune('k'+i)), "198.18.9.0/28"))
	}
	d := Review(r, Change{Operation: Create, Kind: config.KindIPAddressPool, Namespace: ns, Name: "c", Object: func() *v1beta1.IPAddressPool { o := pool("c", "198.18.2.0/28"); return &o }()})
	if !d.Allowed {
		t.Fatalf("refused: %s", d.Message)
	}
	if len(d.Warnings) != maxOtherErrors+1 || !strings.Contains(d.Warnings[maxOtherErrors], "more such problems") {
		t.Errorf("warnings = %q, want %d and a summary", d.Warnings, maxOtherErrors)
	}
}
