package ipam

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"testing"

	"github.com/keeperlb/keeperlb/internal/config"
	"k8s.io/apimachinery/pkg/labels"
)

// fuzzPoolSets are the configurations a fuzz run switches between: grown,
// shrunk, renamed, removed and re-selected versions of one small setup.
func fuzzPoolSets(t testing.TB) [][]*config.Pool {
	mk := func(name string, auto, buggy bool, sa *config.ServiceAllocation, entries ...string) *config.Pool {
		p := mkPool(t, name, entries...)
		p.AutoAssign, p.AvoidBuggyIPs, p.Allocation = auto, buggy, sa
		return p
	}
	ns1 := &config.ServiceAllocation{Priority: 1, Namespaces: []string{"ns1"}}
	ns2sel := &config.ServiceAllocation{NamespaceSelectors: []labels.Selector{sel(t, "env=two")}}
	front := &config.ServiceAllocation{Priority: 2, ServiceSelectors: []labels.Selector{sel(t, "tier=front")}}
	return [][]*config.Pool{
		{
			mk("a", true, false, nil, "10.0.0.0-10.0.0.5", "fd00::-fd00::3"),
			mk("b", true, true, nil, "10.0.1.254-10.0.2.1"),
			mk("c", false, false, nil, "10.0.3.0-10.0.3.3"),
			mk("d", true, false, ns1, "10.0.4.0-10.0.4.2"),
		},
		{
			mk("a", true, false, nil, "10.0.0.2-10.0.0.5"),
			mk("b", true, true, nil, "10.0.1.254-10.0.2.1"),
			mk("c", true, false, nil, "10.0.3.0-10.0.3.3"),
			mk("d", true, false, ns2sel, "10.0.4.0-10.0.4.2", "fd04::/126"),
		},
		{
			mk("a2", true, false, nil, "10.0.0.0-10.0.0.5", "fd00::-fd00::3"),
			mk("b", true, false, front, "10.0.1.254-10.0.2.1"),
			mk("c", false, false, nil, "10.0.3.0-10.0.3.3"),
			mk("d", true, false, ns1, "10.0.4.0-10.0.4.2"),
		},
		{
			mk("c", true, false, ns2sel, "10.0.3.0-10.0.3.3"),
			mk("e", true, false, nil, "fd00::/126"),
		},
		{
			mk("a", true, false, nil, "10.0.0.0-10.0.0.9", "fd00::-fd00::7"),
			mk("b", true, true, nil, "10.0.1.250-10.0.2.3"),
			mk("c", false, false, nil, "10.0.3.0-10.0.3.3"),
			mk("d", true, false, ns1, "10.0.4.0-10.0.4.2", "fd04::/126"),
		},
	}
}

var fuzzAddrs = addrs("10.0.0.1", "10.0.0.3", "fd00::1", "10.0.1.255", "10.0.2.1", "10.0.3.1", "192.168.0.1", "10.0.4.2", "fd04::2")

// fuzzReader hands out bytes, then zeros, so every input is a program.
type fuzzReader struct {
	data []byte
}

func (r *fuzzReader) next() int {
	if len(r.data) == 0 {
		return 0
	}
	b := r.data[0]
	r.data = r.data[1:]
	return int(b)
}

func (r *fuzzReader) service(key int, current []netip.Addr) *Service {
	ns := "ns1"
	if key%2 == 1 {
		ns = "ns2"
	}
	s := &Service{Key: fmt.Sprintf("%s/s%d", ns, key), Namespace: ns, NamespaceLabels: map[string]string{"env": map[string]string{"ns1": "one", "ns2": "two"}[ns]}}
	s.Families = [][]Family{famV4, famV6, famV4V6, famV6V4}[r.next()%4]
	s.Policy = FamilyPolicy(r.next() % 3)
	s.SharingKey = []string{"", "k1", "k2", "k1"}[r.next()%4]
	if r.next()%3 == 0 {
		s.BackendKey = "app=x"
	}
	ports := r.next()
	for i, p := range []Port{{"TCP", 80}, {"TCP", 443}, {"UDP", 53}} {
		if ports&(1<<i) != 0 {
			s.Ports = append(s.Ports, p)
		}
	}
	if ports&8 != 0 {
		s.Labels = map[string]string{"tier": "front"}
	}
	s.Pool = []string{"", "", "", "a", "c", "zz"}[r.next()%6]
	switch n := r.next() % 6; n {
	case 0, 1, 2:
	case 3:
		s.RequestedIPs = []netip.Addr{fuzzAddrs[r.next()%len(fuzzAddrs)]}
	default:
		s.RequestedIPs = []netip.Addr{fuzzAddrs[r.next()%len(fuzzAddrs)], fuzzAddrs[r.next()%len(fuzzAddrs)]}
	}
	s.Current = current
	return s
}

func FuzzAllocator(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 1, 1, 3, 0, 0})
	f.Add([]byte{6, 1, 0, 3, 1, 1, 1, 1, 0, 6, 2, 5, 0, 6, 3})
	f.Fuzz(runFuzzProgram)
}

// runFuzzProgram interprets data as a sequence of Ensure, Release and
// SetPools calls and checks the invariants after each.
func runFuzzProgram(t *testing.T, data []byte) {
	{
		sets := fuzzPoolSets(t)
		cfg := sets[0]
		a := newAlloc(t, cfg...)
		specs := map[string]*Service{}
		var keys []string
		for k := range 8 {
			ns := "ns1"
			if k%2 == 1 {
				ns = "ns2"
			}
			keys = append(keys, fmt.Sprintf("%s/s%d", ns, k))
		}
		r := &fuzzReader{data: data}
		for step := 0; len(r.data) > 0 && step < 120; step++ {
			switch op := r.next() % 8; op {
			case 5:
				k := keys[r.next()%len(keys)]
				a.Release(k)
				delete(specs, k)
				if _, ok := a.Get(k); ok {
					t.Fatalf("step %d: %s still holds after Release", step, k)
				}
			case 6:
				cfg = sets[r.next()%len(sets)]
				a.SetPools(cfg)
				for _, k := range keys {
					if _, ok := a.Get(k); !ok {
						delete(specs, k)
					}
				}
			default:
				ki := r.next() % len(keys)
				var current []netip.Addr
				if op == 7 {
					current = []netip.Addr{fuzzAddrs[r.next()%len(fuzzAddrs)]}
				}
				s := r.service(ki, current)
				got, err := a.Ensure(s)
				checkEnsureOutcome(t, a, s, got, err)
				if err != nil {
					delete(specs, s.Key)
				} else {
					specs[s.Key] = s
					before := snapshot(a)
					again, err2 := a.Ensure(s)
					if err2 != nil || again.Pool != got.Pool || !slices.Equal(again.IPs, got.IPs) || snapshot(a) != before {
						t.Fatalf("step %d: Ensure(%s) not idempotent: %v/%v then %v/%v", step, s.Key, got, err, again, err2)
					}
				}
			}
			checkInvariants(t, a, cfg, keys, specs)
		}
	}
}

func checkEnsureOutcome(t *testing.T, a *Allocator, s *Service, got Assignment, err error) {
	t.Helper()
	if err != nil {
		var e *Error
		if !errors.As(err, &e) || e.Reason == "" || e.Message == "" {
			t.Fatalf("Ensure(%s) error %v is not a usable *Error", s.Key, err)
		}
		if _, ok := a.Get(s.Key); ok {
			t.Fatalf("Ensure(%s) failed (%v) but the Service holds addresses", s.Key, err)
		}
		return
	}
	held, ok := a.Get(s.Key)
	if !ok || held.Pool != got.Pool || !slices.Equal(held.IPs, got.IPs) {
		t.Fatalf("Get(%s) = %v,%v; Ensure returned %v", s.Key, held, ok, got)
	}
	if len(got.IPs) == 0 {
		t.Fatalf("Ensure(%s) succeeded with no address", s.Key)
	}
	// Addresses follow the Service's family order.
	fi := 0
	for _, ip := range got.IPs {
		for fi < len(s.Families) && s.Families[fi] != familyOf(ip) {
			fi++
		}
		if fi == len(s.Families) {
			t.Fatalf("Ensure(%s) families %v gave %v", s.Key, s.Families, got.IPs)
		}
		fi++
	}
	if s.Policy == SingleStack && len(got.IPs) != 1 || s.Policy == RequireDualStack && len(got.IPs) != 2 {
		t.Fatalf("Ensure(%s) policy %v gave %v", s.Key, s.Policy, got.IPs)
	}
	if s.Pool != "" && got.Pool != s.Pool {
		t.Fatalf("Ensure(%s) asked for pool %s, got %s", s.Key, s.Pool, got.Pool)
	}
	if len(s.RequestedIPs) > 0 {
		want := slices.SortedFunc(slices.Values(s.RequestedIPs), netip.Addr.Compare)
		have := slices.SortedFunc(slices.Values(got.IPs), netip.Addr.Compare)
		if !slices.Equal(want, have) {
			t.Fatalf("Ensure(%s) requested %v, got %v", s.Key, s.RequestedIPs, got.IPs)
		}
	}
}

// checkInvariants verifies, from the public API and an independent model
// of the rules, that the allocator's state is coherent.
func checkInvariants(t *testing.T, a *Allocator, cfg []*config.Pool, keys []string, specs map[string]*Service) {
	t.Helper()
	byName := map[string]*config.Pool{}
	for _, p := range cfg {
		byName[p.Name] = p
	}
	holders := map[netip.Addr][]string{}
	poolOf := map[netip.Addr]string{}
	servicesIn := map[string]uint64{}
	for _, k := range keys {
		asg, ok := a.Get(k)
		if !ok {
			continue
		}
		servicesIn[asg.Pool]++
		if specs[k] == nil {
			t.Fatalf("%s holds %v without a successful Ensure", k, asg)
		}
		p := byName[asg.Pool]
		if p == nil {
			t.Fatalf("%s holds %v from unknown pool %q", k, asg.IPs, asg.Pool)
		}
		seenFam := map[Family]bool{}
		for _, ip := range asg.IPs {
			if !inRanges(p, ip) {
				t.Fatalf("%s holds %s outside pool %s", k, ip, p.Name)
			}
			if p.AvoidBuggyIPs && ip.Is4() && (ip.As4()[3] == 0 || ip.As4()[3] == 255) {
				t.Fatalf("%s holds buggy %s in pool %s", k, ip, p.Name)
			}
			if seenFam[familyOf(ip)] {
				t.Fatalf("%s holds two %s addresses: %v", k, familyOf(ip), asg.IPs)
			}
			seenFam[familyOf(ip)] = true
			if q, ok := poolOf[ip]; ok && q != asg.Pool {
				t.Fatalf("%s is reported in pools %s and %s", ip, q, asg.Pool)
			}
			poolOf[ip] = asg.Pool
			holders[ip] = append(holders[ip], k)
		}
	}
	for ip, hs := range holders {
		for i := range hs {
			for j := i + 1; j < len(hs); j++ {
				x, y := specs[hs[i]], specs[hs[j]]
				if x.SharingKey == "" || x.SharingKey != y.SharingKey || x.BackendKey != y.BackendKey || portsOverlap(x.Ports, y.Ports) {
					t.Fatalf("%s is held by incompatible %s and %s", ip, x.Key, y.Key)
				}
			}
		}
	}
	for _, p := range cfg {
		u, ok := a.Usage(p.Name)
		if !ok {
			t.Fatalf("Usage(%s) missing", p.Name)
		}
		var n4, n6 uint64
		for ip := range holders {
			if poolOf[ip] == p.Name {
				if ip.Is4() {
					n4++
				} else {
					n6++
				}
			}
		}
		t4, t6 := bruteTotal(p)
		if u.AssignedV4 != n4 || u.AssignedV6 != n6 || u.TotalV4() != t4 || u.TotalV6() != t6 {
			t.Fatalf("Usage(%s) = %+v; Get says v4=%d v6=%d, pool has %d/%d", p.Name, u, n4, n6, t4, t6)
		}
		if u.Services != servicesIn[p.Name] {
			t.Fatalf("Usage(%s).Services = %d; Get says %d Services hold addresses of it", p.Name, u.Services, servicesIn[p.Name])
		}
	}
	checkInternal(t, a)
}

func inRanges(p *config.Pool, ip netip.Addr) bool {
	for _, r := range p.Ranges {
		if r.First.Is4() == ip.Is4() && r.First.Compare(ip) <= 0 && ip.Compare(r.Last) <= 0 {
			return true
		}
	}
	return false
}

func bruteTotal(p *config.Pool) (v4, v6 uint64) {
	for _, r := range p.Ranges {
		for ip := r.First; ip.IsValid() && ip.Compare(r.Last) <= 0; ip = ip.Next() {
			switch {
			case ip.Is6():
				v6++
			case p.AvoidBuggyIPs && (ip.As4()[3] == 0 || ip.As4()[3] == 255):
			default:
				v4++
			}
		}
	}
	return v4, v6
}

func portsOverlap(a, b []Port) bool {
	for _, x := range a {
		if slices.Contains(b, x) {
			return true
		}
	}
	return false
}

// checkInternal cross-checks the private indexes against each other.
func checkInternal(t *testing.T, a *Allocator) {
	t.Helper()
	for _, name := range a.names {
		p := a.pools[name]
		for _, fs := range p.space {
			if fs == nil {
				continue
			}
			checkSizes(t, fs.used.root)
			var count uint64
			var prev *treapNode
			fs.used.each(func(n *treapNode) {
				count++
				ip := fs.addrAt(n.key)
				if prev != nil && !prev.key.less(n.key) {
					t.Fatalf("pool %s: tree out of order at %s", name, ip)
				}
				prev = n
				if len(n.holders) == 0 {
					t.Fatalf("%s is in use but has no holder", ip)
				}
				for i, h := range n.holders {
					if a.svcs[h.key] != h || !slices.Contains(h.ips, ip) || h.pool != p {
						t.Fatalf("%s: holder %s is stale", ip, h.key)
					}
					if i > 0 && n.holders[i-1].key >= h.key {
						t.Fatalf("%s: holders not sorted", ip)
					}
				}
				if sk := n.holders[0].sharingKey; sk != "" {
					g := fs.groups[shareKey{sk, n.holders[0].backendKey}]
					if g == nil || !slices.Contains(g.offs, n.key) {
						t.Fatalf("%s missing from its sharing group", ip)
					}
				}
			})
			if count != fs.used.len() {
				t.Fatalf("pool %s %v: tree size %d, %d nodes", name, fs.fam, fs.used.len(), count)
			}
			for k, g := range fs.groups {
				counts := map[Port]int{}
				for _, off := range g.offs {
					n := fs.used.find(off)
					if n == nil || n.holders[0].sharingKey != k.sharing || n.holders[0].backendKey != k.backend {
						t.Fatalf("group %v lists %s wrongly", k, fs.addrAt(off))
					}
					for _, h := range n.holders {
						for _, p := range h.ports {
							counts[p]++
						}
					}
				}
				if len(g.offs) == 0 || len(counts) != len(g.ports) {
					t.Fatalf("group %v port counts %v, want %v", k, g.ports, counts)
				}
				for p, c := range counts {
					if g.ports[p] != c {
						t.Fatalf("group %v port counts %v, want %v", k, g.ports, counts)
					}
				}
			}
		}
	}
	for k, r := range a.svcs {
		if r.key != k || len(r.ips) == 0 || a.pools[r.pool.name] != r.pool {
			t.Fatalf("record %s malformed", k)
		}
		for _, ip := range r.ips {
			if n := holdersOf(r.pool, ip); n == nil || !slices.Contains(n.holders, r) {
				t.Fatalf("%s holds %s but the tree does not list it", k, ip)
			}
		}
	}
}

func checkSizes(t *testing.T, n *treapNode) uint64 {
	if n == nil {
		return 0
	}
	got := 1 + checkSizes(t, n.left) + checkSizes(t, n.right)
	if n.size != got {
		t.Fatalf("node %v size %d, want %d", n.key, n.size, got)
	}
	return got
}
