package ipam

import (
	"testing"

	"github.com/keeperlb/keeperlb/internal/config"
)

func TestRequestedIPs(t *testing.T) {
	basePools := func(t *testing.T) []*config.Pool {
		a := mkPool(t, "a", "10.0.0.0/24", "fd00::/120")
		b := mkPool(t, "b", "10.0.1.0/24")
		manual := mkPool(t, "manual", "10.0.2.0/24")
		manual.AutoAssign = false
		buggy := mkPool(t, "buggy", "10.0.3.0/24")
		buggy.AvoidBuggyIPs = true
		restricted := mkPool(t, "restricted", "10.0.4.0/24")
		restricted.Allocation = &config.ServiceAllocation{Namespaces: []string{"prod"}}
		return []*config.Pool{a, b, manual, buggy, restricted}
	}
	holder := func(ip string, key, share, backend string, ports ...int32) *Service {
		s := svc(key)
		s.RequestedIPs = addrs(ip)
		s.SharingKey = share
		s.BackendKey = backend
		s.Ports = tcp(ports...)
		return s
	}
	cases := []struct {
		name       string
		before     []*Service
		svc        func() *Service
		wantPool   string
		wantIPs    string
		wantReason Reason
		wantMsg    []string
	}{
		{
			name: "single annotation IP",
			svc: func() *Service {
				s := svc("ns/x")
				s.RequestedIPs = addrs("10.0.0.42")
				return s
			},
			wantPool: "a", wantIPs: "10.0.0.42",
		},
		{
			name: "dual-stack request is ordered by families",
			svc: func() *Service {
				s := svc("ns/x", IPv4, IPv6)
				s.Policy = RequireDualStack
				s.RequestedIPs = addrs("fd00::9", "10.0.0.9")
				return s
			},
			wantPool: "a", wantIPs: "10.0.0.9,fd00::9",
		},
		{
			name: "PreferDualStack with one requested IP gets just that",
			svc: func() *Service {
				s := svc("ns/x", IPv6, IPv4)
				s.Policy = PreferDualStack
				s.RequestedIPs = addrs("fd00::7")
				return s
			},
			wantPool: "a", wantIPs: "fd00::7",
		},
		{
			name: "autoAssign false pool is usable by requested IP",
			svc: func() *Service {
				s := svc("ns/x")
				s.RequestedIPs = addrs("10.0.2.5")
				return s
			},
			wantPool: "manual", wantIPs: "10.0.2.5",
		},
		{
			name: "requested IP inside requested pool",
			svc: func() *Service {
				s := svc("ns/x")
				s.Pool = "b"
				s.RequestedIPs = addrs("10.0.1.5")
				return s
			},
			wantPool: "b", wantIPs: "10.0.1.5",
		},
		{
			name:   "in use by a Service without a sharing key",
			before: []*Service{holder("10.0.0.5", "other/holder", "", "")},
			svc: func() *Service {
				s := holder("10.0.0.5", "ns/x", "k", "")
				return s
			},
			wantReason: ReasonIPInUse, wantMsg: []string{"10.0.0.5", "held by a Service in another namespace that cannot share it", "same allow-shared-ip key"},
		},
		{
			name:       "in use, requester has no sharing key",
			before:     []*Service{holder("10.0.0.5", "other/holder", "k", "")},
			svc:        func() *Service { return holder("10.0.0.5", "ns/x", "", "") },
			wantReason: ReasonIPInUse, wantMsg: []string{"held by a Service in another namespace", "this Service does not allow sharing"},
		},
		{
			name:     "shareable: same key, different ports",
			before:   []*Service{holder("10.0.0.5", "other/holder", "k", "", 80)},
			svc:      func() *Service { return holder("10.0.0.5", "ns/x", "k", "", 443) },
			wantPool: "a", wantIPs: "10.0.0.5",
		},
		{
			name:       "port overlap refuses",
			before:     []*Service{holder("10.0.0.5", "other/holder", "k", "", 80, 8080)},
			svc:        func() *Service { return holder("10.0.0.5", "ns/x", "k", "", 80) },
			wantReason: ReasonIPInUse, wantMsg: []string{"held by a Service in another namespace", "no port in common"},
		},
		{
			name:   "same port number on another protocol shares",
			before: []*Service{holder("10.0.0.5", "other/holder", "k", "", 53)},
			svc: func() *Service {
				s := holder("10.0.0.5", "ns/x", "k", "")
				s.Ports = []Port{{Protocol: "UDP", Port: 53}}
				return s
			},
			wantPool: "a", wantIPs: "10.0.0.5",
		},
		{
			name:       "different sharing key refuses",
			before:     []*Service{holder("10.0.0.5", "other/holder", "k1", "", 80)},
			svc:        func() *Service { return holder("10.0.0.5", "ns/x", "k2", "", 443) },
			wantReason: ReasonIPInUse, wantMsg: []string{"held by a Service in another namespace", "same allow-shared-ip key"},
		},
		{
			name:       "different backend key refuses",
			before:     []*Service{holder("10.0.0.5", "other/holder", "k", "", 80)},
			svc:        func() *Service { return holder("10.0.0.5", "ns/x", "k", "app=web", 443) },
			wantReason: ReasonIPInUse, wantMsg: []string{"held by a Service in another namespace", "same backends"},
		},
		{
			name: "requested family the Service lacks",
			svc: func() *Service {
				s := svc("ns/x", IPv4)
				s.RequestedIPs = addrs("fd00::1")
				return s
			},
			wantReason: ReasonInvalidRequest, wantMsg: []string{"fd00::1", "IPv6"},
		},
		{
			name: "two IPs of one family",
			svc: func() *Service {
				s := svc("ns/x", IPv4, IPv6)
				s.Policy = PreferDualStack
				s.RequestedIPs = addrs("10.0.0.1", "10.0.0.2")
				return s
			},
			wantReason: ReasonInvalidRequest, wantMsg: []string{"two IPv4", "10.0.0.1", "10.0.0.2"},
		},
		{
			name: "SingleStack with two IPs",
			svc: func() *Service {
				s := svc("ns/x", IPv4, IPv6)
				s.RequestedIPs = addrs("10.0.0.1", "fd00::1")
				return s
			},
			wantReason: ReasonInvalidRequest, wantMsg: []string{"SingleStack"},
		},
		{
			name: "RequireDualStack with one IP",
			svc: func() *Service {
				s := svc("ns/x", IPv4, IPv6)
				s.Policy = RequireDualStack
				s.RequestedIPs = addrs("10.0.0.1")
				return s
			},
			wantReason: ReasonInvalidRequest, wantMsg: []string{"RequireDualStack"},
		},
		{
			name: "IP in no pool",
			svc: func() *Service {
				s := svc("ns/x")
				s.RequestedIPs = addrs("192.168.1.1")
				return s
			},
			wantReason: ReasonIPNotInPool, wantMsg: []string{"192.168.1.1", "no IPAddressPool"},
		},
		{
			name: "IP outside the requested pool",
			svc: func() *Service {
				s := svc("ns/x")
				s.Pool = "b"
				s.RequestedIPs = addrs("10.0.0.1")
				return s
			},
			wantReason: ReasonIPNotInPool, wantMsg: []string{"10.0.0.1", `"a"`, `"b"`},
		},
		{
			name: "unknown requested pool",
			svc: func() *Service {
				s := svc("ns/x")
				s.Pool = "nope"
				s.RequestedIPs = addrs("10.0.0.1")
				return s
			},
			wantReason: ReasonUnknownPool, wantMsg: []string{`"nope"`, "pools its namespace may use: a, b, buggy, manual)"},
		},
		{
			name: "two IPs in different pools",
			svc: func() *Service {
				s := svc("ns/x", IPv4, IPv6)
				s.Policy = RequireDualStack
				s.RequestedIPs = addrs("10.0.1.1", "fd00::1")
				return s
			},
			wantReason: ReasonIPNotInPool, wantMsg: []string{"10.0.1.1", "fd00::1", "one pool"},
		},
		{
			name: "avoidBuggyIPs excludes .0",
			svc: func() *Service {
				s := svc("ns/x")
				s.RequestedIPs = addrs("10.0.3.0")
				return s
			},
			wantReason: ReasonIPNotInPool, wantMsg: []string{"avoidBuggyIPs", "buggy"},
		},
		{
			name: "avoidBuggyIPs excludes .255",
			svc: func() *Service {
				s := svc("ns/x")
				s.RequestedIPs = addrs("10.0.3.255")
				return s
			},
			wantReason: ReasonIPNotInPool, wantMsg: []string{"avoidBuggyIPs"},
		},
		{
			name: "avoidBuggyIPs allows .254",
			svc: func() *Service {
				s := svc("ns/x")
				s.RequestedIPs = addrs("10.0.3.254")
				return s
			},
			wantPool: "buggy", wantIPs: "10.0.3.254",
		},
		{
			name: "pool's serviceAllocation excludes the namespace",
			svc: func() *Service {
				s := svc("dev/x")
				s.RequestedIPs = addrs("10.0.4.1")
				return s
			},
			wantReason: ReasonPoolNotAllowed, wantMsg: []string{"reserved for other namespaces", `namespace "dev"`, "dev/x"},
		},
		{
			name: "pool's serviceAllocation includes the namespace",
			svc: func() *Service {
				s := svc("prod/x")
				s.RequestedIPs = addrs("10.0.4.1")
				return s
			},
			wantPool: "restricted", wantIPs: "10.0.4.1",
		},
		{
			name: "zoned address is not a load-balancer IP",
			svc: func() *Service {
				s := svc("ns/x", IPv6)
				s.RequestedIPs = addrs("fe80::1%eth0")
				return s
			},
			wantReason: ReasonInvalidRequest,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := newAlloc(t, basePools(t)...)
			for _, b := range tc.before {
				mustEnsure(t, a, b)
			}
			s := tc.svc()
			got, err := a.Ensure(s)
			checkResult(t, got, err, tc.wantPool, tc.wantIPs, tc.wantReason, tc.wantMsg...)
			held, ok := a.Get(s.Key)
			if ok != (err == nil) {
				t.Fatalf("Get ok = %v after err %v", ok, err)
			}
			if ok && ipStrings(held.IPs) != tc.wantIPs {
				t.Fatalf("Get = %v, want %s", held.IPs, tc.wantIPs)
			}
			for _, b := range tc.before {
				if _, ok := a.Get(b.Key); !ok {
					t.Fatalf("%s lost its address", b.Key)
				}
			}
		})
	}
}

func TestRequestedIPReplacesHolding(t *testing.T) {
	a := newAlloc(t, mkPool(t, "a", "10.0.0.0/24"))
	s := svc("ns/x")
	checkResult(t, mustEnsure(t, a, s), nil, "a", "10.0.0.0", "")
	s.RequestedIPs = addrs("10.0.0.200")
	got, err := a.Ensure(s)
	checkResult(t, got, err, "a", "10.0.0.200", "")
	u, _ := a.Usage("a")
	if u.AssignedV4 != 1 {
		t.Fatalf("old address not released: %+v", u)
	}
	// The freed address is the lowest again.
	checkResult(t, mustEnsure(t, a, svc("ns/y")), nil, "a", "10.0.0.0", "")

	// A failing request releases what the Service held.
	s.RequestedIPs = addrs("10.9.9.9")
	if _, err := a.Ensure(s); reasonOf(t, err) != ReasonIPNotInPool {
		t.Fatalf("err = %v", err)
	}
	if _, ok := a.Get("ns/x"); ok {
		t.Fatal("service still holds an address after an error")
	}
	if u, _ := a.Usage("a"); u.AssignedV4 != 1 {
		t.Fatalf("usage after failed request: %+v", u)
	}
}
