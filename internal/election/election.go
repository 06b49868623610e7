// Package election decides which node announces which Service IP. It is pure:
// the speaker hands it the cluster as it sees it (configuration, Nodes, the
// speakers it knows to be alive, Services with their serving endpoints) and it
// returns the announcements, with no I/O and no memory between calls.
//
// Every speaker runs the same function over the same inputs, so every speaker
// reaches the same answer without talking to the others: the only thing they
// exchange is liveness (package membership). That is what lets a failover
// finish as soon as the survivors notice the death, with no extra round of
// agreement.
//
// The layer 2 owner of a Service is chosen by rendezvous (highest random
// weight) hashing over the candidate nodes: each candidate scores
// hash(node, first IP of the Service) and the highest score wins; the
// Service's other IPs follow that node. Unlike "sort the nodes and take IP
// mod N", it moves a Service only when its owner leaves the candidate set or
// a node that outscores it joins, so a speaker restarting elsewhere never
// moves it, and the Services of a dead node spread over the survivors
// instead of all landing on one.
package election

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"net/netip"
	"slices"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/keeperlb/keeperlb/internal/config"
)

// ExcludeLabel marks a Node that must never announce load-balancer IPs, as
// Kubernetes defines it for cloud load balancers.
const ExcludeLabel = "node.kubernetes.io/exclude-from-external-load-balancers"

// Node is what election needs of a Kubernetes Node.
type Node struct {
	// Name is the Node's name, which is also the speaker's identity.
	Name string
	// Labels are the Node's labels, matched by advertisement nodeSelectors.
	Labels map[string]string
	// NetworkUnavailable is true when the Node's NetworkUnavailable condition
	// is True: its network is not set up, so it must not attract traffic.
	NetworkUnavailable bool
}

// Service is what election needs of a LoadBalancer Service.
type Service struct {
	// Key is "namespace/name"; it orders the results.
	Key string
	// IPs are the Service's load-balancer IPs (status.loadBalancer.ingress).
	IPs []netip.Addr
	// Labels are the Service's labels, matched by serviceSelectors.
	Labels map[string]string
	// LocalTrafficPolicy is true for externalTrafficPolicy: Local, where only
	// nodes with a serving endpoint of their own may announce.
	LocalTrafficPolicy bool
	// Serving is true when the Service has at least one serving endpoint,
	// wherever it runs.
	Serving bool
	// ServingNodes are the nodes that run at least one serving endpoint.
	ServingNodes []string
}

// Reason values say why an IP is not announced over layer 2.
const (
	ReasonNoPool          = "NoPool"
	ReasonNoAdvertisement = "NoL2Advertisement"
	ReasonNoEndpoints     = "NoServingEndpoints"
	ReasonNoCandidates    = "NoEligibleNode"
	ReasonSharedNoCommon  = "SharedIPNoCommonNode"
)

// L2Input is everything the layer 2 election looks at.
type L2Input struct {
	// Config is the current configuration; nil means none, and nothing is
	// announced.
	Config *config.Config
	// Nodes are the cluster's Nodes.
	Nodes []Node
	// Live names the speakers known to be alive (the caller included).
	Live []string
	// Services are the LoadBalancer Services that have IPs.
	Services []Service
}

// Announcement is one IP and the node that announces it.
type Announcement struct {
	// IP is the announced address.
	IP netip.Addr
	// Node is the elected announcer.
	Node string
	// Interfaces limits the announcing interfaces on Node; nil means every
	// eligible interface. It is the union of the interfaces of the
	// advertisements that apply to Node, or nil if one of them lists none.
	Interfaces []string
	// Services are the keys of the Services using IP, sorted.
	Services []string
}

// Skip says why one Service's IP is not announced over layer 2.
type Skip struct {
	// Service is the Service's key.
	Service string
	// IP is the address concerned.
	IP netip.Addr
	// Reason is one of the Reason constants.
	Reason string
	// Message explains Reason in words for the Service's owner.
	Message string
}

// L2Result is the outcome of an election.
type L2Result struct {
	// Announcements are sorted by IP.
	Announcements []Announcement
	// Skipped are sorted by Service, then IP.
	Skipped []Skip
}

// For returns the announcements whose Node is node, in IP order.
func (r L2Result) For(node string) []Announcement {
	var out []Announcement
	for _, a := range r.Announcements {
		if a.Node == node {
			out = append(out, a)
		}
	}
	return out
}

// claim is one Service's wish to have an IP announced, with the nodes that
// may do it and, per node, the interfaces.
type claim struct {
	service    string
	candidates []string            // sorted
	interfaces map[string][]string // node -> interfaces; nil slice = all
}

// L2 elects, for every Service, the one node that announces all of its IPs.
//
// The decision is per Service, as in MetalLB: the owner is the rendezvous
// winner for the Service's first IP (the first of status.loadBalancer.ingress
// that can be announced), and every other IP of the Service, of either
// family, follows it. A dual-stack Service is therefore reached through one
// node on both families and has one ServiceL2Status. Services that share an
// IP are elected together, over the nodes every one of them accepts, keyed by
// the smallest first IP among them, so they land on one node too (and so
// does every IP any of them holds).
func L2(in L2Input) L2Result {
	var res L2Result
	if in.Config == nil {
		return res
	}
	eligible := eligibleNodes(in.Nodes, in.Live)
	// Claims per Service, in input order; groups join Services that share
	// an IP.
	type svcClaims struct {
		key    string
		first  netip.Addr
		claims map[netip.Addr]claim
	}
	var claimed []svcClaims
	for _, svc := range in.Services {
		sc := svcClaims{key: svc.Key, claims: map[netip.Addr]claim{}}
		for _, ip := range svc.IPs {
			if _, dup := sc.claims[ip]; dup {
				continue
			}
			c, skip := claimFor(in.Config, eligible, svc, ip)
			if skip != nil {
				res.Skipped = append(res.Skipped, *skip)
				continue
			}
			if !sc.first.IsValid() {
				sc.first = ip
			}
			sc.claims[ip] = c
		}
		if len(sc.claims) > 0 {
			claimed = append(claimed, sc)
		}
	}

	// Union-find over Services, joined through the IPs they share.
	parent := make([]int, len(claimed))
	for i := range parent {
		parent[i] = i
	}
	find := func(i int) int {
		for parent[i] != i {
			parent[i] = parent[parent[i]]
			i = parent[i]
		}
		return i
	}
	holder := map[netip.Addr]int{}
	for i, sc := range claimed {
		for ip := range sc.claims {
			if j, ok := holder[ip]; ok {
				a, b := find(i), find(j)
				// The smaller index becomes the root so that the grouping
				// never depends on map order.
				if a > b {
					a, b = b, a
				}
				parent[b] = a
				continue
			}
			holder[ip] = i
		}
	}
	groups := map[int][]int{}
	var roots []int
	for i := range claimed {
		r := find(i)
		if _, ok := groups[r]; !ok {
			roots = append(roots, r)
		}
		groups[r] = append(groups[r], i)
	}

	for _, r := range roots {
		members := groups[r]
		var common []string
		var key netip.Addr
		byIP := map[netip.Addr][]claim{}
		started := false
		for _, i := range members {
			sc := claimed[i]
			if !key.IsValid() || sc.first.Less(key) {
				key = sc.first
			}
			for ip, c := range sc.claims {
				byIP[ip] = append(byIP[ip], c)
				if !started {
					common, started = c.candidates, true
				} else {
					common = intersect(common, c.candidates)
				}
			}
		}
		ips := make([]netip.Addr, 0, len(byIP))
		for ip := range byIP {
			ips = append(ips, ip)
		}
		slices.SortFunc(ips, netip.Addr.Compare)
		if len(common) == 0 {
			reason, msg := ReasonSharedNoCommon, "the Services sharing an address with this one have no eligible node in common"
			if len(members) == 1 {
				reason, msg = ReasonNoCandidates, "no live speaker on a node eligible for every address of the Service"
			}
			for _, i := range members {
				for ip := range claimed[i].claims {
					res.Skipped = append(res.Skipped, Skip{Service: claimed[i].key, IP: ip, Reason: reason, Message: msg})
				}
			}
			continue
		}
		owner := Owner(common, key)
		for _, ip := range ips {
			cs := byIP[ip]
			slices.SortFunc(cs, func(a, b claim) int { return cmp.Compare(a.service, b.service) })
			keys := make([]string, len(cs))
			for i, c := range cs {
				keys[i] = c.service
			}
			res.Announcements = append(res.Announcements, Announcement{
				IP: ip, Node: owner, Interfaces: mergeInterfaces(cs, owner), Services: keys,
			})
		}
	}
	slices.SortFunc(res.Announcements, func(a, b Announcement) int { return a.IP.Compare(b.IP) })
	slices.SortFunc(res.Skipped, func(a, b Skip) int {
		return cmp.Or(cmp.Compare(a.Service, b.Service), a.IP.Compare(b.IP))
	})
	return res
}

// eligibleNodes returns the nodes that may announce anything at all: alive,
// network ready and not excluded. Sorted by name.
func eligibleNodes(nodes []Node, live []string) []Node {
	alive := make(map[string]bool, len(live))
	for _, n := range live {
		alive[n] = true
	}
	var out []Node
	for _, n := range nodes {
		if !alive[n.Name] || n.NetworkUnavailable {
			continue
		}
		if _, excluded := n.Labels[ExcludeLabel]; excluded {
			continue
		}
		out = append(out, n)
	}
	slices.SortFunc(out, func(a, b Node) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

func claimFor(cfg *config.Config, eligible []Node, svc Service, ip netip.Addr) (claim, *Skip) {
	skip := func(reason, msg string) (claim, *Skip) {
		return claim{}, &Skip{Service: svc.Key, IP: ip, Reason: reason, Message: msg}
	}
	pool := cfg.PoolOf(ip)
	if pool == nil {
		return skip(ReasonNoPool, "no configured IPAddressPool holds "+ip.String())
	}
	var ads []*config.L2Advertisement
	for _, ad := range cfg.L2Advertisements {
		if slices.Contains(ad.Pools, pool.Name) && selects(ad.ServiceSelectors, svc.Labels) {
			ads = append(ads, ad)
		}
	}
	if len(ads) == 0 {
		return skip(ReasonNoAdvertisement, "no L2Advertisement selects pool "+pool.Name+" for this Service")
	}
	if !svc.Serving {
		return skip(ReasonNoEndpoints, "the Service has no serving endpoint")
	}
	c := claim{service: svc.Key, interfaces: map[string][]string{}}
	for _, n := range eligible {
		if svc.LocalTrafficPolicy && !slices.Contains(svc.ServingNodes, n.Name) {
			continue
		}
		var ifs []string
		all, matched := false, false
		for _, ad := range ads {
			if !selects(ad.NodeSelectors, n.Labels) {
				continue
			}
			matched = true
			if len(ad.Interfaces) == 0 {
				all = true
			}
			ifs = append(ifs, ad.Interfaces...)
		}
		if !matched {
			continue
		}
		c.candidates = append(c.candidates, n.Name)
		if all {
			c.interfaces[n.Name] = nil
		} else {
			slices.Sort(ifs)
			c.interfaces[n.Name] = slices.Compact(ifs)
		}
	}
	if len(c.candidates) == 0 {
		msg := "no live speaker on a node that the L2Advertisements select"
		if svc.LocalTrafficPolicy {
			msg = "no live speaker on a node with a serving endpoint (externalTrafficPolicy: Local) that the L2Advertisements select"
		}
		return skip(ReasonNoCandidates, msg)
	}
	return c, nil
}

// selects reports whether a list of selectors admits a label set; an empty
// list admits everything, as in MetalLB's API.
func selects(sels []labels.Selector, set map[string]string) bool {
	if len(sels) == 0 {
		return true
	}
	for _, s := range sels {
		if s.Matches(labels.Set(set)) {
			return true
		}
	}
	return false
}

// mergeInterfaces returns the interfaces the owner announces on: the union
// over the sharing Services, nil (all) if any of them allows all.
func mergeInterfaces(cs []claim, owner string) []string {
	var out []string
	for _, c := range cs {
		ifs := c.interfaces[owner]
		if ifs == nil {
			return nil
		}
		out = append(out, ifs...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func intersect(a, b []string) []string {
	var out []string
	for _, s := range a {
		if _, ok := slices.BinarySearch(b, s); ok {
			out = append(out, s)
		}
	}
	return out
}

// Owner returns the rendezvous-hash winner for ip among nodes, which must not
// be empty. Ties (in practice impossible with 64-bit scores) go to the
// smaller name so the result never depends on the order of nodes.
func Owner(nodes []string, ip netip.Addr) string {
	best, bestScore := "", uint64(0)
	for _, n := range nodes {
		s := score(n, ip)
		if best == "" || s > bestScore || (s == bestScore && n < best) {
			best, bestScore = n, s
		}
	}
	return best
}

// score is the first 64 bits of SHA-256(node || 0 || ip). A cryptographic
// hash is overkill for spreading, but it is stable across Go versions and
// architectures, which every speaker agreeing depends on.
func score(node string, ip netip.Addr) uint64 {
	h := sha256.New()
	h.Write([]byte(node))
	h.Write([]byte{0})
	b := ip.As16()
	h.Write(b[:])
	var sum [sha256.Size]byte
	return binary.BigEndian.Uint64(h.Sum(sum[:0]))
}
