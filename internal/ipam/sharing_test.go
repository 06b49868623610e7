package ipam

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/keeperlb/keeperlb/internal/config"
)

func TestSharingAutoAllocation(t *testing.T) {
	type step struct {
		key, share, backend string
		ports               []Port
		want                string
	}
	cases := []struct {
		name  string
		steps []step
	}{
		{
			name: "same key, different ports share",
			steps: []step{
				{key: "ns/a", share: "k", ports: tcp(80), want: "10.0.0.0"},
				{key: "ns/b", share: "k", ports: tcp(443), want: "10.0.0.0"},
				{key: "ns/c", share: "k", ports: []Port{{"UDP", 80}}, want: "10.0.0.0"},
			},
		},
		{
			name: "port overlap takes a new address",
			steps: []step{
				{key: "ns/a", share: "k", ports: tcp(80), want: "10.0.0.0"},
				{key: "ns/b", share: "k", ports: tcp(80, 443), want: "10.0.0.1"},
				{key: "ns/c", share: "k", ports: tcp(443), want: "10.0.0.0"},
				{key: "ns/d", share: "k", ports: tcp(443), want: "10.0.0.2"},
			},
		},
		{
			name: "joins the lowest compatible address",
			steps: []step{
				{key: "ns/a", share: "k", ports: tcp(80), want: "10.0.0.0"},
				{key: "ns/b", share: "k", ports: tcp(80), want: "10.0.0.1"},
				{key: "ns/c", share: "k", ports: tcp(81), want: "10.0.0.0"},
				{key: "ns/d", share: "k", ports: tcp(81), want: "10.0.0.1"},
				{key: "ns/e", share: "k", ports: tcp(82), want: "10.0.0.0"},
			},
		},
		{
			name: "different backend key refuses",
			steps: []step{
				{key: "ns/a", share: "k", ports: tcp(80), want: "10.0.0.0"},
				{key: "ns/b", share: "k", backend: "app=x", ports: tcp(443), want: "10.0.0.1"},
				{key: "ns/c", share: "k", backend: "app=x", ports: tcp(8443), want: "10.0.0.1"},
			},
		},
		{
			name: "different key refuses",
			steps: []step{
				{key: "ns/a", share: "k1", ports: tcp(80), want: "10.0.0.0"},
				{key: "ns/b", share: "k2", ports: tcp(443), want: "10.0.0.1"},
			},
		},
		{
			name: "no key refuses",
			steps: []step{
				{key: "ns/a", ports: tcp(80), want: "10.0.0.0"},
				{key: "ns/b", ports: tcp(443), want: "10.0.0.1"},
				{key: "ns/c", share: "k", ports: tcp(8080), want: "10.0.0.2"},
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := newAlloc(t, mkPool(t, "p", "10.0.0.0/24"))
			for _, st := range tc.steps {
				s := svc(st.key)
				s.SharingKey, s.BackendKey, s.Ports = st.share, st.backend, st.ports
				got := mustEnsure(t, a, s)
				if ipStrings(got.IPs) != st.want {
					t.Fatalf("%s got %v, want %s", st.key, got.IPs, st.want)
				}
			}
		})
	}
}

func TestSharingReleaseAndPortChange(t *testing.T) {
	a := newAlloc(t, mkPool(t, "p", "10.0.0.0/24"))
	x := svc("ns/x")
	x.SharingKey, x.Ports = "k", tcp(80)
	y := svc("ns/y")
	y.SharingKey, y.Ports = "k", tcp(443)
	mustEnsure(t, a, x)
	mustEnsure(t, a, y)
	if u, _ := a.Usage("p"); u.AssignedV4 != 1 {
		t.Fatalf("shared address counted %d times", u.AssignedV4)
	}

	// y now also wants port 80: sharing is no longer possible, y moves.
	y.Ports = tcp(80, 443)
	checkResult(t, mustEnsure(t, a, y), nil, "p", "10.0.0.1", "")
	checkResult(t, mustEnsure(t, a, x), nil, "p", "10.0.0.0", "")

	// y drops port 80 again: it keeps its own address rather than moving.
	y.Ports = tcp(443)
	checkResult(t, mustEnsure(t, a, y), nil, "p", "10.0.0.1", "")

	// Releasing one holder of a shared address leaves it to the other.
	z := svc("ns/z")
	z.SharingKey, z.Ports = "k", tcp(443)
	checkResult(t, mustEnsure(t, a, z), nil, "p", "10.0.0.0", "")
	if !a.Release("ns/x") {
		t.Fatal("Release(ns/x) = false")
	}
	if got, ok := a.Get("ns/z"); !ok || ipStrings(got.IPs) != "10.0.0.0" {
		t.Fatalf("ns/z after release of ns/x: %v %v", got, ok)
	}
	checkResult(t, mustEnsure(t, a, svc("ns/plain")), nil, "p", "10.0.0.2", "")
	a.Release("ns/z")
	checkResult(t, mustEnsure(t, a, svc("ns/plain2")), nil, "p", "10.0.0.0", "")
	if a.Release("ns/never") {
		t.Fatal("Release of an unknown key reported true")
	}
}

// TestSharingGroupFastPath exercises the case the port counts exist for:
// many Services with one key and the same port must each get a new
// address quickly and correctly.
func TestSharingGroupFastPath(t *testing.T) {
	a := newAlloc(t, mkPool(t, "p", "10.0.0.0/16"))
	for i := range 2000 {
		s := svc("ns/s" + itoa(i))
		s.SharingKey, s.Ports = "k", tcp(80)
		got := mustEnsure(t, a, s)
		if want := u128ToAddr(u128From64(0x0a000000+uint64(i)), IPv4); got.IPs[0] != want {
			t.Fatalf("service %d got %v, want %v", i, got.IPs[0], want)
		}
	}
	s := svc("ns/other")
	s.SharingKey, s.Ports = "k", tcp(443)
	checkResult(t, mustEnsure(t, a, s), nil, "p", "10.0.0.0", "")
}

// TestRefusalsLeakNothingAcrossNamespaces checks every way a requested
// address can be refused as in use: the message shown to the requester
// never carries the holder's sharing key (the credential for joining its
// address), and names the holder only when both live in one namespace.
func TestRefusalsLeakNothingAcrossNamespaces(t *testing.T) {
	const secret = "holders-secret-key"
	type variant struct {
		name                string
		holderKey, ownKey   string
		holderBack, ownBack string
		holderPort, ownPort int32
		wantInMsg           string
	}
	variants := []variant{
		{name: "holder does not share", ownKey: "mine", holderPort: 80, ownPort: 443, wantInMsg: "does not allow sharing"},
		{name: "requester does not share", holderKey: secret, holderPort: 80, ownPort: 443, wantInMsg: "this Service does not allow sharing"},
		{name: "keys differ", holderKey: secret, ownKey: "mine", holderPort: 80, ownPort: 443, wantInMsg: `key other than this Service's "mine"`},
		{name: "backends differ", holderKey: secret, ownKey: secret, holderBack: "app=a", ownBack: "app=b", holderPort: 80, ownPort: 443, wantInMsg: "different backends"},
		{name: "ports overlap", holderKey: secret, ownKey: secret, holderPort: 80, ownPort: 80, wantInMsg: "TCP/80"},
	}
	for _, v := range variants {
		for _, sameNS := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/same namespace %v", v.name, sameNS), func(t *testing.T) {
				a := newAlloc(t, mkPool(t, "a", "198.18.0.0/24"))
				h := svc("victim/db")
				h.RequestedIPs, h.SharingKey, h.BackendKey, h.Ports = addrs("198.18.0.5"), v.holderKey, v.holderBack, tcp(v.holderPort)
				mustEnsure(t, a, h)
				key := "attacker/probe"
				if sameNS {
					key = "victim/probe"
				}
				s := svc(key)
				s.RequestedIPs, s.SharingKey, s.BackendKey, s.Ports = addrs("198.18.0.5"), v.ownKey, v.ownBack, tcp(v.ownPort)
				_, err := a.Ensure(s)
				var e *Error
				if !errors.As(err, &e) || e.Reason != ReasonIPInUse {
					t.Fatalf("Ensure = %v, want an %s error", err, ReasonIPInUse)
				}
				want := v.wantInMsg
				if !sameNS && v.ownKey != "" {
					// One message for every reason across namespaces.
					want = "held by a Service in another namespace that cannot share it with this one: sharing needs the same allow-shared-ip key, the same backends (externalTrafficPolicy and pod selector) and no port in common"
				}
				if !strings.Contains(e.Message, want) {
					t.Errorf("message %q does not say %q", e.Message, want)
				}
				if v.ownKey != secret && strings.Contains(e.Message, secret) {
					t.Errorf("message %q quotes the holder's sharing key", e.Message)
				}
				if named := strings.Contains(e.Message, "victim/db"); named != sameNS {
					t.Errorf("message %q names the holder: %v, want %v", e.Message, named, sameNS)
				}
				if !sameNS && strings.Contains(e.Message, "victim") {
					t.Errorf("message %q names the holder's namespace", e.Message)
				}
			})
		}
	}
}

// TestMessagesNameNoPoolReservedForOthers checks every refusal that names
// pools: a pool whose serviceAllocation admits only other namespaces is
// never named to a Service outside them (such pools are often named after
// the tenants they serve), while a Service of a namespace it admits still
// reads its name.
func TestMessagesNameNoPoolReservedForOthers(t *testing.T) {
	const secret = "bank-vault"
	pools := func(t *testing.T) []*config.Pool {
		reserved := mkPool(t, secret, "10.0.9.0/24", "2001:db8:9::/120")
		reserved.Allocation = &config.ServiceAllocation{Namespaces: []string{"bank"}}
		reserved.AvoidBuggyIPs = true
		manual := mkPool(t, secret+"-manual", "2001:db8:8::/120")
		manual.Allocation, manual.AutoAssign = &config.ServiceAllocation{Namespaces: []string{"bank"}}, false
		return []*config.Pool{mkPool(t, "shared", "10.0.1.0/24"), reserved, manual}
	}
	for _, tc := range []struct {
		name   string
		svc    func(ns string) *Service
		reason Reason
		want   string
		// bank: the same request from namespace bank is refused too, and
		// its message names the pool.
		bank bool
	}{
		{
			name:   "unknown pool lists the pools the namespace may use",
			svc:    func(ns string) *Service { s := svc(ns + "/x"); s.Pool = "nope"; return s },
			reason: ReasonUnknownPool, want: "(pools its namespace may use: shared", bank: true,
		},
		{
			name:   "no pool with the family counts the reserved ones",
			svc:    func(ns string) *Service { return svc(ns+"/x", IPv6) },
			reason: ReasonNoMatchingPool, want: "2 pool(s) with IPv6 addresses are reserved for other namespaces",
		},
		{
			name:   "requested .0 in the reserved avoidBuggyIPs pool",
			svc:    func(ns string) *Service { s := svc(ns + "/x"); s.RequestedIPs = addrs("10.0.9.0"); return s },
			reason: ReasonIPNotInPool, want: "but a pool reserved for other namespaces has avoidBuggyIPs set", bank: true,
		},
		{
			name:   "requested address in the reserved pool",
			svc:    func(ns string) *Service { s := svc(ns + "/x"); s.RequestedIPs = addrs("10.0.9.7"); return s },
			reason: ReasonPoolNotAllowed, want: `belongs to a pool reserved for other namespaces (its serviceAllocation does not admit namespace "shop")`,
		},
		{
			name: "requested address in the reserved pool, another pool named",
			svc: func(ns string) *Service {
				s := svc(ns + "/x")
				s.Pool, s.RequestedIPs = "shared", addrs("10.0.9.7")
				return s
			},
			reason: ReasonIPNotInPool, want: `from pool "shared", but 10.0.9.7 belongs to a pool reserved for other namespaces`, bank: true,
		},
		{
			name: "requested addresses in two pools, one reserved",
			svc: func(ns string) *Service {
				s := svc(ns+"/x", IPv4, IPv6)
				s.Policy, s.RequestedIPs = RequireDualStack, addrs("10.0.1.7", "2001:db8:9::7")
				return s
			},
			reason: ReasonIPNotInPool, want: `(in pool "shared") and 2001:db8:9::7 (in a pool reserved for other namespaces)`, bank: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := newAlloc(t, pools(t)...).Ensure(tc.svc("shop"))
			var e *Error
			if !errors.As(err, &e) || e.Reason != tc.reason {
				t.Fatalf("Ensure = %v, want a %s error", err, tc.reason)
			}
			if !strings.Contains(e.Message, tc.want) {
				t.Errorf("message %q does not say %q", e.Message, tc.want)
			}
			if strings.Contains(e.Message, secret) {
				t.Errorf("message to a Service of shop names pool %s, reserved for bank: %q", secret, e.Message)
			}
			if !tc.bank {
				return
			}
			_, err = newAlloc(t, pools(t)...).Ensure(tc.svc("bank"))
			if !errors.As(err, &e) || e.Reason != tc.reason || !strings.Contains(e.Message, secret) {
				t.Errorf("from bank: %v, want a %s error naming pool %s", err, tc.reason, secret)
			}
		})
	}
}
