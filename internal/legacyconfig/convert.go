package legacyconfig

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/keeperlb/keeperlb/api/v1beta1"
	"github.com/keeperlb/keeperlb/api/v1beta2"
	"github.com/keeperlb/keeperlb/internal/config"
)

// Keys of each legacy section, as MetalLB documented them.
var (
	peerKeys = []string{"my-asn", "peer-asn", "peer-address", "source-address", "peer-port", "hold-time",
		"keepalive-time", "router-id", "node-selectors", "password", "bfd-profile", "ebgp-multihop"}
	selectorKeys    = []string{"match-labels", "match-expressions"}
	expressionKeys  = []string{"key", "operator", "values"}
	poolKeys        = []string{"name", "protocol", "addresses", "cidr", "auto-assign", "avoid-buggy-ips", "bgp-advertisements"}
	advKeys         = []string{"aggregation-length", "aggregation-length-v6", "localpref", "communities"}
	bfdProfileKeys  = []string{"name", "receive-interval", "transmit-interval", "detect-multiplier", "echo-interval", "echo-mode", "passive-mode", "minimum-ttl"}
	selectorMapping = map[string]metav1.LabelSelectorOperator{
		"in":           metav1.LabelSelectorOpIn,
		"notin":        metav1.LabelSelectorOpNotIn,
		"exists":       metav1.LabelSelectorOpExists,
		"doesnotexist": metav1.LabelSelectorOpDoesNotExist,
	}
)

func (c *converter) meta(name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: c.ns}
}

func typeMeta(kind string) metav1.TypeMeta {
	return metav1.TypeMeta{APIVersion: v1beta1.GroupVersion.String(), Kind: kind}
}

// convertBFDProfiles converts bfd-profiles first, so that peers can refer
// to the converted names.
func (c *converter) convertBFDProfiles(v any) {
	const path = "bfd-profiles"
	c.profiles = map[string]string{}
	items, ok := c.list(path, v)
	if !ok {
		return
	}
	used := map[string]bool{}
	for i, item := range items {
		p := index(path, i)
		m, ok := c.mapping(p, item)
		if !ok {
			continue
		}
		fine := c.known(p, m, bfdProfileKeys...)
		legacy, ok := c.required(p, m, "name")
		if !ok {
			c.note(p, "BFD profile not converted")
			continue
		}
		name, ok := c.objectName(join(p, "name"), legacy, used)
		if !ok {
			continue
		}
		spec := v1beta1.BFDProfileSpec{}
		for _, f := range []struct {
			key string
			dst **uint32
		}{
			{"receive-interval", &spec.ReceiveInterval}, {"transmit-interval", &spec.TransmitInterval},
			{"detect-multiplier", &spec.DetectMultiplier}, {"echo-interval", &spec.EchoInterval},
			{"minimum-ttl", &spec.MinimumTTL},
		} {
			fine = c.optUint32(p, m, f.key, f.dst) && fine
		}
		fine = c.optBoolPtr(p, m, "echo-mode", &spec.EchoMode) && fine
		fine = c.optBoolPtr(p, m, "passive-mode", &spec.PassiveMode) && fine
		if !fine {
			c.note(p, "BFD profile %q not converted because of the problems above; peers using it will not validate until you create it", legacy)
			continue
		}
		used[name] = true
		c.profiles[legacy] = name
		c.res.BFDProfiles = append(c.res.BFDProfiles, v1beta1.BFDProfile{
			TypeMeta: typeMeta("BFDProfile"), ObjectMeta: c.meta(name), Spec: spec,
		})
	}
}

// convertCommunities turns the bgp-communities aliases into one Community
// object, keeping the alias names so that advertisements read as before.
func (c *converter) convertCommunities(v any) {
	const path = "bgp-communities"
	c.aliases = map[string]bool{}
	if v == nil {
		return
	}
	m, ok := c.mapping(path, v)
	if !ok {
		return
	}
	obj := v1beta1.Community{TypeMeta: typeMeta("Community"), ObjectMeta: c.meta(CommunityObjectName)}
	for _, name := range slices.Sorted(maps.Keys(m)) {
		p := join(path, name)
		val, ok := c.str(p, m[name])
		if !ok {
			continue
		}
		if _, err := config.ParseCommunity(val); err != nil {
			c.note(p, "%v; alias not converted, and advertisements using it are not converted either", err)
			continue
		}
		if name == "" {
			c.note(p, "an alias needs a name; not converted")
			continue
		}
		c.aliases[name] = true
		obj.Spec.Communities = append(obj.Spec.Communities, v1beta1.CommunityAlias{Name: name, Value: val})
	}
	if len(obj.Spec.Communities) > 0 {
		c.res.Communities = append(c.res.Communities, obj)
	}
}

func (c *converter) convertPeers(v any) {
	const path = "peers"
	items, ok := c.list(path, v)
	if !ok {
		return
	}
	used := map[string]bool{}
	for i, item := range items {
		p := index(path, i)
		m, ok := c.mapping(p, item)
		if !ok {
			continue
		}
		fine := c.known(p, m, peerKeys...)
		spec := v1beta2.BGPPeerSpec{}
		for _, req := range []struct {
			key string
			dst *uint32
		}{{"my-asn", &spec.MyASN}, {"peer-asn", &spec.PeerASN}} {
			if m[req.key] == nil {
				c.note(join(p, req.key), "missing; it is required")
				fine = false
				continue
			}
			n, ok := c.number(join(p, req.key), m[req.key], 32)
			fine = fine && ok
			*req.dst = uint32(n)
		}
		addr, ok := c.required(p, m, "peer-address")
		fine = fine && ok
		spec.PeerAddress = addr
		fine = c.optString(p, m, "source-address", &spec.SourceAddress) && fine
		fine = c.optString(p, m, "router-id", &spec.RouterID) && fine
		fine = c.optString(p, m, "password", &spec.Password) && fine
		fine = c.optBool(p, m, "ebgp-multihop", &spec.EBGPMultiHop) && fine
		if m["peer-port"] != nil {
			n, ok := c.number(join(p, "peer-port"), m["peer-port"], 16)
			fine = fine && ok
			spec.PeerPort = uint16(n)
		}
		for _, d := range []struct {
			key string
			dst **metav1.Duration
		}{{"hold-time", &spec.HoldTime}, {"keepalive-time", &spec.KeepaliveTime}} {
			if m[d.key] == nil {
				continue
			}
			dur, ok := c.duration(join(p, d.key), m[d.key])
			fine = fine && ok
			*d.dst = dur
		}
		if m["bfd-profile"] != nil {
			legacy, ok := c.str(join(p, "bfd-profile"), m["bfd-profile"])
			fine = fine && ok
			spec.BFDProfile = legacy
			if name, found := c.profiles[legacy]; found {
				spec.BFDProfile = name
			}
		}
		sels, ok := c.selectors(join(p, "node-selectors"), m["node-selectors"])
		fine = fine && ok
		spec.NodeSelectors = sels
		if !fine {
			// A peer with a field left out could open sessions from more
			// nodes, without a password or with other timers than meant;
			// better none than a different one.
			c.note(p, "peer not converted because of the problems above")
			continue
		}
		base := sanitize("peer-" + addr)
		if len(validation.IsDNS1123Subdomain(base)) > 0 {
			base = "peer"
		}
		name := c.unique(base, used)
		used[name] = true
		c.res.Peers = append(c.res.Peers, v1beta2.BGPPeer{
			TypeMeta:   metav1.TypeMeta{APIVersion: v1beta2.GroupVersion.String(), Kind: "BGPPeer"},
			ObjectMeta: c.meta(name),
			Spec:       spec,
		})
	}
}

// selectors converts legacy node-selectors. Any selector that cannot be
// converted fails the whole list, because dropping one would select more
// nodes than the user meant.
func (c *converter) selectors(path string, v any) ([]metav1.LabelSelector, bool) {
	items, ok := c.list(path, v)
	if !ok || len(items) == 0 {
		return nil, ok
	}
	var out []metav1.LabelSelector
	fine := true
	for i, item := range items {
		p := index(path, i)
		m, ok := c.mapping(p, item)
		if !ok {
			fine = false
			continue
		}
		fine = c.known(p, m, selectorKeys...) && fine
		sel := metav1.LabelSelector{}
		if m["match-labels"] != nil {
			labels, ok := c.mapping(join(p, "match-labels"), m["match-labels"])
			fine = fine && ok
			for _, k := range slices.Sorted(maps.Keys(labels)) {
				val, ok := c.str(join(join(p, "match-labels"), k), labels[k])
				fine = fine && ok
				if sel.MatchLabels == nil {
					sel.MatchLabels = map[string]string{}
				}
				sel.MatchLabels[k] = val
			}
		}
		exprs, ok := c.list(join(p, "match-expressions"), m["match-expressions"])
		fine = fine && ok
		for j, e := range exprs {
			ep := index(join(p, "match-expressions"), j)
			em, ok := c.mapping(ep, e)
			if !ok {
				fine = false
				continue
			}
			fine = c.known(ep, em, expressionKeys...) && fine
			key, ok1 := c.required(ep, em, "key")
			opText, ok2 := c.required(ep, em, "operator")
			op, known := selectorMapping[strings.ToLower(opText)]
			if ok2 && !known {
				c.note(join(ep, "operator"), "unknown operator %q: want In, NotIn, Exists or DoesNotExist", opText)
			}
			vals, ok3 := c.list(join(ep, "values"), em["values"])
			req := metav1.LabelSelectorRequirement{Key: key, Operator: op}
			for k, val := range vals {
				s, ok := c.str(index(join(ep, "values"), k), val)
				ok3 = ok3 && ok
				req.Values = append(req.Values, s)
			}
			fine = fine && ok1 && ok2 && known && ok3
			sel.MatchExpressions = append(sel.MatchExpressions, req)
		}
		out = append(out, sel)
	}
	return out, fine
}

func (c *converter) convertPools(v any) {
	const path = "address-pools"
	items, ok := c.list(path, v)
	if !ok {
		return
	}
	used := map[string]bool{}
	advNames := map[string]bool{}
	for i, item := range items {
		p := index(path, i)
		m, ok := c.mapping(p, item)
		if !ok {
			continue
		}
		known := c.known(p, m, poolKeys...)
		legacy, ok := c.required(p, m, "name")
		if !ok {
			c.note(p, "pool not converted")
			continue
		}
		name, ok := c.objectName(join(p, "name"), legacy, used)
		if !ok {
			continue
		}
		spec := v1beta1.IPAddressPoolSpec{}
		fine := known
		for _, key := range []string{"addresses", "cidr"} {
			if m[key] == nil {
				continue
			}
			if key == "cidr" {
				c.note(join(p, key), "MetalLB's oldest spelling of addresses; converted into spec.addresses")
			}
			list, ok := c.list(join(p, key), m[key])
			fine = fine && ok
			for j, a := range list {
				s, ok := c.str(index(join(p, key), j), a)
				fine = fine && ok
				spec.Addresses = append(spec.Addresses, strings.TrimSpace(s))
			}
		}
		if len(spec.Addresses) == 0 && fine {
			c.note(join(p, "addresses"), "missing or empty; a pool needs addresses")
			fine = false
		}
		if m["auto-assign"] != nil {
			b, ok := c.boolean(join(p, "auto-assign"), m["auto-assign"])
			fine = fine && ok
			spec.AutoAssign = &b
		}
		fine = c.optBool(p, m, "avoid-buggy-ips", &spec.AvoidBuggyIPs) && fine
		if !fine {
			// A pool with fewer addresses, or auto-assigned when it was
			// not, would hand out addresses the user did not mean to.
			c.note(p, "pool %q not converted because of the problems above", legacy)
			continue
		}
		used[name] = true
		c.res.Pools = append(c.res.Pools, v1beta1.IPAddressPool{
			TypeMeta: typeMeta("IPAddressPool"), ObjectMeta: c.meta(name), Spec: spec,
		})
		c.advertise(p, m, name, advNames)
	}
}

// advertise creates the advertisements of one converted pool according to
// its legacy protocol.
func (c *converter) advertise(p string, m map[string]any, pool string, used map[string]bool) {
	proto, ok := c.str(join(p, "protocol"), m["protocol"])
	if !ok {
		if m["protocol"] == nil {
			c.note(join(p, "protocol"), "missing; pool %q is converted but nothing announces it: add an L2Advertisement or BGPAdvertisement for it", pool)
		}
		return
	}
	switch strings.ToLower(proto) {
	case "layer2", "arp", "ndp":
		if strings.ToLower(proto) != "layer2" {
			c.note(join(p, "protocol"), "%q is MetalLB's old name for layer2; converted as layer2", proto)
		}
		if m["bgp-advertisements"] != nil {
			c.note(join(p, "bgp-advertisements"), "ignored: the pool's protocol is layer2, so MetalLB never used them")
		}
		name := c.unique(pool, used)
		used[name] = true
		c.res.L2Advertisements = append(c.res.L2Advertisements, v1beta1.L2Advertisement{
			TypeMeta: typeMeta("L2Advertisement"), ObjectMeta: c.meta(name),
			Spec: v1beta1.L2AdvertisementSpec{IPAddressPools: []string{pool}},
		})
	case "bgp":
		advs, ok := c.list(join(p, "bgp-advertisements"), m["bgp-advertisements"])
		if !ok {
			c.note(join(p, "bgp-advertisements"), "not converted; pool %q is not announced until you add a BGPAdvertisement for it", pool)
			return
		}
		if len(advs) == 0 {
			// MetalLB gave a bgp pool without advertisements one with
			// the defaults: each address as a host route to every peer.
			advs = []any{map[string]any{}}
		}
		for j, a := range advs {
			ap := index(join(p, "bgp-advertisements"), j)
			spec, ok := c.bgpAdvertisement(ap, a)
			if !ok {
				c.note(ap, "advertisement not converted because of the problems above; pool %q lacks it until you add it by hand", pool)
				continue
			}
			spec.IPAddressPools = []string{pool}
			base := pool
			if len(advs) > 1 {
				base = fmt.Sprintf("%s-%d", pool, j+1)
			}
			name := c.unique(base, used)
			used[name] = true
			c.res.BGPAdvertisements = append(c.res.BGPAdvertisements, v1beta1.BGPAdvertisement{
				TypeMeta: typeMeta("BGPAdvertisement"), ObjectMeta: c.meta(name), Spec: spec,
			})
		}
	default:
		c.note(join(p, "protocol"), "unknown protocol %q (want layer2 or bgp); pool %q is converted but nothing announces it", proto, pool)
	}
}

func (c *converter) bgpAdvertisement(p string, v any) (v1beta1.BGPAdvertisementSpec, bool) {
	spec := v1beta1.BGPAdvertisementSpec{}
	m, ok := c.mapping(p, v)
	if !ok {
		return spec, false
	}
	fine := c.known(p, m, advKeys...)
	for _, a := range []struct {
		key  string
		bits int
		dst  **int32
	}{{"aggregation-length", 32, &spec.AggregationLength}, {"aggregation-length-v6", 128, &spec.AggregationLengthV6}} {
		if m[a.key] == nil {
			continue
		}
		n, ok := c.number(join(p, a.key), m[a.key], 8)
		if ok && n > uint64(a.bits) {
			c.note(join(p, a.key), "%d is longer than an address (%d bits)", n, a.bits)
			ok = false
		}
		fine = fine && ok
		v := int32(n)
		*a.dst = &v
	}
	if m["localpref"] != nil {
		n, ok := c.number(join(p, "localpref"), m["localpref"], 32)
		fine = fine && ok
		spec.LocalPref = uint32(n)
	}
	comms, ok := c.list(join(p, "communities"), m["communities"])
	fine = fine && ok
	for j, item := range comms {
		cp := index(join(p, "communities"), j)
		s, ok := c.str(cp, item)
		if !ok {
			fine = false
			continue
		}
		if !c.aliases[s] {
			if _, err := config.ParseCommunity(s); err != nil {
				// Dropping a community such as no-export could leak the
				// route further than meant; the advertisement goes instead.
				c.note(cp, "%q is neither a community nor a converted bgp-communities alias", s)
				fine = false
				continue
			}
		}
		spec.Communities = append(spec.Communities, s)
	}
	return spec, fine
}

// objectName turns a legacy name into an object name, noting a change.
// Names already in used, and names that cannot be made valid, are refused.
func (c *converter) objectName(path, legacy string, used map[string]bool) (string, bool) {
	name := legacy
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		name = sanitize(legacy)
		if len(validation.IsDNS1123Subdomain(name)) > 0 {
			if path != "" {
				c.note(path, "%q cannot be turned into a Kubernetes object name; not converted", legacy)
			}
			return "", false
		}
		if path != "" {
			c.note(path, "%q is not a valid Kubernetes object name; converted as %q (update Services whose address-pool annotation names it)", legacy, name)
		}
	}
	if used[name] {
		if path != "" {
			c.note(path, "the name %q is used twice; only the first is converted", legacy)
		}
		return "", false
	}
	return name, true
}

// sanitize lowercases s and replaces what a DNS subdomain cannot hold.
func sanitize(s string) string {
	b := []byte(strings.ToLower(s))
	for i, ch := range b {
		if !(ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9' || ch == '-' || ch == '.') {
			b[i] = '-'
		}
	}
	out := strings.Trim(string(b), "-.")
	if len(out) > validation.DNS1123SubdomainMaxLength {
		out = strings.Trim(out[:validation.DNS1123SubdomainMaxLength], "-.")
	}
	return out
}

// unique returns base, or base-2, base-3... whichever is not used yet.
func (c *converter) unique(base string, used map[string]bool) string {
	if !used[base] {
		return base
	}
	for i := 2; ; i++ {
		n := fmt.Sprintf("%s-%d", base, i)
		if !used[n] {
			return n
		}
	}
}

// Typed readers. Each notes a value of the wrong type and returns ok =
// false; an absent (null) value is not noted and also returns ok = false,
// except for list, where absent means empty.

func (c *converter) mapping(path string, v any) (map[string]any, bool) {
	if v == nil {
		return nil, false
	}
	m, ok := v.(map[string]any)
	if !ok {
		c.note(path, "want a mapping, got a %s", kindOf(v))
	}
	return m, ok
}

func (c *converter) list(path string, v any) ([]any, bool) {
	if v == nil {
		return nil, true
	}
	l, ok := v.([]any)
	if !ok {
		c.note(path, "want a list, got a %s", kindOf(v))
	}
	return l, ok
}

// str accepts a string, and a number or boolean as its text, since YAML
// reads an unquoted name such as 65000 as a number.
func (c *converter) str(path string, v any) (string, bool) {
	switch x := v.(type) {
	case nil:
		return "", false
	case string:
		return x, true
	case json.Number:
		return x.String(), true
	case bool:
		return strconv.FormatBool(x), true
	}
	c.note(path, "want a string, got a %s", kindOf(v))
	return "", false
}

func (c *converter) number(path string, v any, bits int) (uint64, bool) {
	n, ok := v.(json.Number)
	if !ok {
		if v != nil {
			c.note(path, "want a number, got a %s", kindOf(v))
		}
		return 0, false
	}
	u, err := strconv.ParseUint(n.String(), 10, bits)
	if err != nil {
		c.note(path, "%s is not a whole number from 0 to %d", n, uint64(1)<<bits-1)
		return 0, false
	}
	return u, true
}

func (c *converter) boolean(path string, v any) (bool, bool) {
	switch x := v.(type) {
	case bool:
		return x, true
	case string:
		if b, err := strconv.ParseBool(x); err == nil {
			return b, true
		}
	}
	if v != nil {
		c.note(path, "want true or false, got %s", describe(v))
	}
	return false, false
}

// duration reads a Go duration ("90s") or, as MetalLB's first versions
// took it, a number of seconds.
func (c *converter) duration(path string, v any) (*metav1.Duration, bool) {
	var d time.Duration
	var err error
	switch x := v.(type) {
	case json.Number:
		var n uint64
		n, err = strconv.ParseUint(x.String(), 10, 16)
		d = time.Duration(n) * time.Second
	case string:
		if n, nerr := strconv.ParseUint(x, 10, 16); nerr == nil {
			d = time.Duration(n) * time.Second
		} else {
			d, err = time.ParseDuration(x)
		}
	default:
		err = fmt.Errorf("got a %s", kindOf(v))
	}
	if err != nil || d < 0 {
		c.note(path, "want a duration such as 90s, got %s", describe(v))
		return nil, false
	}
	return &metav1.Duration{Duration: d}, true
}

// required reads a string that must be present and not empty.
func (c *converter) required(p string, m map[string]any, key string) (string, bool) {
	if m[key] == nil {
		c.note(join(p, key), "missing; it is required")
		return "", false
	}
	s, ok := c.str(join(p, key), m[key])
	if ok && s == "" {
		c.note(join(p, key), "empty; it is required")
		return "", false
	}
	return s, ok
}

func (c *converter) optString(p string, m map[string]any, key string, dst *string) bool {
	if m[key] == nil {
		return true
	}
	s, ok := c.str(join(p, key), m[key])
	*dst = s
	return ok
}

func (c *converter) optBool(p string, m map[string]any, key string, dst *bool) bool {
	if m[key] == nil {
		return true
	}
	b, ok := c.boolean(join(p, key), m[key])
	*dst = b
	return ok
}

func (c *converter) optBoolPtr(p string, m map[string]any, key string, dst **bool) bool {
	if m[key] == nil {
		return true
	}
	b, ok := c.boolean(join(p, key), m[key])
	*dst = &b
	return ok
}

func (c *converter) optUint32(p string, m map[string]any, key string, dst **uint32) bool {
	if m[key] == nil {
		return true
	}
	n, ok := c.number(join(p, key), m[key], 32)
	v := uint32(n)
	*dst = &v
	return ok
}

// describe shows a scalar value, or the type of anything larger.
func describe(v any) string {
	switch x := v.(type) {
	case string:
		return strconv.Quote(x)
	case json.Number:
		return x.String()
	case bool:
		return strconv.FormatBool(x)
	}
	return "a " + kindOf(v)
}
