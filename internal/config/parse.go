package config

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/keeperlb/keeperlb/api/v1beta1"
	"github.com/keeperlb/keeperlb/api/v1beta2"
)

// Resources is every object the configuration is built from. Parse needs
// all of them at once because most rules relate objects to each other.
type Resources struct {
	// Namespace is the install namespace. Configuration objects in other
	// namespaces are ignored, as MetalLB does; an empty Namespace keeps
	// every object, which suits tools that validate a set of manifests.
	Namespace string
	// Pools are the IPAddressPool objects.
	Pools []v1beta1.IPAddressPool
	// L2Advs are the L2Advertisement objects.
	L2Advs []v1beta1.L2Advertisement
	// BGPAdvs are the BGPAdvertisement objects.
	BGPAdvs []v1beta1.BGPAdvertisement
	// Peers are the BGPPeer objects, in the storage version.
	Peers []v1beta2.BGPPeer
	// BFDProfiles are the BFDProfile objects.
	BFDProfiles []v1beta1.BFDProfile
	// Communities are the Community objects defining aliases.
	Communities []v1beta1.Community
	// Secrets are searched for the peers' passwordSecret references; only
	// the referenced ones matter.
	Secrets []corev1.Secret
	// Nodes, when given, let Parse find peers that would open sessions
	// from the same node and must therefore agree on myASN and routerID.
	// Without them only peers without nodeSelectors are known to share a
	// node.
	Nodes []corev1.Node
}

// Parse validates the whole configuration and returns it as a Config, or
// returns a nil Config and an error of type Errors listing every problem
// found. The same input always gives the same output, whatever the order of
// the slices.
//
// Parse never fails on references to objects that do not exist yet in
// advertisements (pool names, peer names): MetalLB accepts them and users
// routinely apply advertisements before pools. Such names select nothing
// until the object appears. References from a BGPPeer (bfdProfile,
// passwordSecret) must resolve, since the session cannot be configured
// without them.
func Parse(r Resources) (*Config, error) {
	var c collector
	pools := c.parsePools(inScope(r.Namespace, r.Pools))
	profiles := c.parseBFDProfiles(inScope(r.Namespace, r.BFDProfiles))
	aliases := c.parseCommunityAliases(inScope(r.Namespace, r.Communities))
	l2 := c.parseL2Advertisements(inScope(r.Namespace, r.L2Advs), pools)
	bgp := c.parseBGPAdvertisements(inScope(r.Namespace, r.BGPAdvs), pools, aliases)
	peers := c.parsePeers(inScope(r.Namespace, r.Peers), peerContext{
		secrets:  r.Secrets,
		nodes:    r.Nodes,
		profiles: profiles,
		advs:     bgp,
		pools:    pools,
	})
	if errs := c.result(); errs != nil {
		return nil, errs
	}

	cfg := &Config{BFDProfiles: profiles.list, L2Advertisements: l2}
	for _, p := range pools.list {
		cfg.Pools = append(cfg.Pools, p.pool)
	}
	for _, p := range peers {
		cfg.Peers = append(cfg.Peers, p.peer)
	}
	for _, a := range bgp {
		cfg.BGPAdvertisements = append(cfg.BGPAdvertisements, a.adv)
	}
	return cfg, nil
}

// object is what Parse needs of every Kubernetes object.
type object interface {
	GetName() string
	GetNamespace() string
}

// inScope returns pointers to the items that belong to namespace (all of
// them when namespace is empty), sorted by name then namespace, so that
// everything downstream sees one order whatever the order of the input.
func inScope[T any, P interface {
	*T
	object
}](namespace string, items []T) []P {
	out := make([]P, 0, len(items))
	for i := range items {
		p := P(&items[i])
		if namespace == "" || p.GetNamespace() == namespace {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, func(a, b P) int {
		if c := cmp.Or(strings.Compare(a.GetName(), b.GetName()), strings.Compare(a.GetNamespace(), b.GetNamespace())); c != 0 {
			return c
		}
		// The same object twice: order the copies by content, so that
		// which one the cross-object rules keep does not depend on the
		// input order. Marshalling only happens on this rare tie.
		ja, _ := json.Marshal(a)
		jb, _ := json.Marshal(b)
		return bytes.Compare(ja, jb)
	})
	return out
}

// refOf names an object in errors.
func refOf(kind string, o object) objectRef {
	return objectRef{kind: kind, namespace: o.GetNamespace(), name: o.GetName()}
}

// uniqueByName reports objects without a name and objects sharing a name,
// and returns the first object of each name. objs must be sorted as
// inScope sorts them. The Config refers to objects by name alone (pools in
// annotations, peers in advertisements), so two objects of one name would
// make every reference ambiguous; the rule can only trigger when objects of
// several namespaces are parsed together or the input holds one object
// twice, but it keeps Parse honest on any input.
func uniqueByName[P object](c *collector, kind string, objs []P) []P {
	var out []P
	for i := 0; i < len(objs); {
		name := objs[i].GetName()
		j := i + 1
		for j < len(objs) && objs[j].GetName() == name {
			j++
		}
		switch {
		case name == "":
			for _, o := range objs[i:j] {
				c.fail(refOf(kind, o), "metadata.name", "must not be empty")
			}
		case j-i > 1:
			names := make([]string, 0, j-i)
			for _, o := range objs[i:j] {
				names = append(names, refOf(kind, o).String())
			}
			names = slices.Compact(names)
			for _, o := range objs[i:j] {
				c.fail(refOf(kind, o), "metadata.name", "name %q is used by %d objects (%s); names must be unique because the configuration refers to objects by name", name, j-i, strings.Join(names, ", "))
			}
			out = append(out, objs[i])
		default:
			out = append(out, objs[i])
		}
		i = j
	}
	return out
}

// selectors converts label selectors, reporting each that does not
// convert and each that repeats an earlier one. A repeated selector is
// harmless to matching but almost always a copy-and-paste slip, and MetalLB
// rejects it too. It returns nil for an empty list so that Config values
// compare equal whether the field was absent or empty.
func (c *collector) selectors(o objectRef, field string, in []metav1.LabelSelector) []labels.Selector {
	if len(in) == 0 {
		return nil
	}
	out := make([]labels.Selector, 0, len(in))
	seen := make(map[string]int, len(in))
	for i := range in {
		f := fmt.Sprintf("%s[%d]", field, i)
		sel, err := metav1.LabelSelectorAsSelector(&in[i])
		if err != nil {
			c.fail(o, f, "invalid label selector: %v", err)
			continue
		}
		key := sel.String()
		if j, dup := seen[key]; dup {
			c.fail(o, f, "duplicate of %s[%d] (%s)", field, j, describeSelector(key))
			continue
		}
		seen[key] = i
		out = append(out, sel)
	}
	return out
}

// describeSelector shows a selector's canonical text, which is empty for
// the selector that matches everything.
func describeSelector(s string) string {
	if s == "" {
		return "matches everything"
	}
	return s
}

// selectorKey is a canonical text for a list of selectors, independent of
// their order, used to tell whether two objects select the same things.
func selectorKey(sels []labels.Selector) string {
	keys := make([]string, len(sels))
	for i, s := range sels {
		keys[i] = s.String()
	}
	slices.Sort(keys)
	return strings.Join(keys, "\x00")
}

// matchesAny reports whether any selector matches set; an empty list
// matches nothing, callers decide what an empty list means for them.
func matchesAny(sels []labels.Selector, set map[string]string) bool {
	for _, s := range sels {
		if s != nil && s.Matches(labels.Set(set)) {
			return true
		}
	}
	return false
}

// distinct reports entries of a string list that repeat an earlier entry.
func (c *collector) distinct(o objectRef, field string, in []string) {
	seen := make(map[string]int, len(in))
	for i, s := range in {
		if j, dup := seen[s]; dup {
			c.fail(o, fmt.Sprintf("%s[%d]", field, i), "%q is listed twice (first at %s[%d])", s, field, j)
			continue
		}
		seen[s] = i
	}
}
