// Package legacyconfig converts MetalLB's legacy configuration, the YAML
// held under the "config" key of the ConfigMap MetalLB read before v0.13,
// into the metallb.io objects KeeperLB (and current MetalLB) read.
//
// The conversion is pure and never stops at the first problem: whatever can
// be converted is, and everything that cannot is reported as a Note naming
// the place in the input and the reason, so that an operator migrating a
// cluster knows exactly what to redo by hand. Nothing is dropped silently.
package legacyconfig

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"github.com/keeperlb/keeperlb/api/v1beta1"
	"github.com/keeperlb/keeperlb/api/v1beta2"
	"github.com/keeperlb/keeperlb/internal/config"
)

// ConfigKey is the ConfigMap data key that holds MetalLB's legacy
// configuration.
const ConfigKey = "config"

// CommunityObjectName is the name of the Community object that receives
// the legacy bgp-communities aliases.
const CommunityObjectName = "bgp-communities"

// maxInput bounds the input: a real configuration is a few kilobytes, and
// the YAML decoder's memory grows with its input.
const maxInput = 4 << 20

// Note is one thing the conversion could not carry over as it was, or had
// to change.
type Note struct {
	// Path locates the input, e.g. "address-pools[1].protocol".
	Path string `json:"path"`
	// Message says what happened and what to do about it.
	Message string `json:"message"`
}

// String renders the note as "path: message".
func (n Note) String() string {
	if n.Path == "" {
		return n.Message
	}
	return n.Path + ": " + n.Message
}

// Result is the converted configuration. Every object carries its
// apiVersion and kind and the namespace given to Convert, so that it can
// be printed as a manifest or applied as it is.
type Result struct {
	// Pools are the IPAddressPools, in input order.
	Pools []v1beta1.IPAddressPool
	// L2Advertisements announce the layer2 pools.
	L2Advertisements []v1beta1.L2Advertisement
	// BGPAdvertisements announce the bgp pools.
	BGPAdvertisements []v1beta1.BGPAdvertisement
	// Peers are the BGP peers, in the storage version.
	Peers []v1beta2.BGPPeer
	// BFDProfiles are the BFD profiles.
	BFDProfiles []v1beta1.BFDProfile
	// Communities holds at most one object with the bgp-communities aliases.
	Communities []v1beta1.Community
	// Notes lists what was not converted, or converted with a change:
	// unknown top-level keys first, then bfd-profiles, bgp-communities,
	// peers and address-pools (the order in which references resolve),
	// each in input order.
	Notes []Note
}

// Objects returns every converted object in an order that applies
// cleanly: profiles and communities before the peers and advertisements
// that refer to them, pools before their advertisements.
func (r *Result) Objects() []runtime.Object {
	var out []runtime.Object
	for i := range r.BFDProfiles {
		out = append(out, &r.BFDProfiles[i])
	}
	for i := range r.Communities {
		out = append(out, &r.Communities[i])
	}
	for i := range r.Peers {
		out = append(out, &r.Peers[i])
	}
	for i := range r.Pools {
		out = append(out, &r.Pools[i])
	}
	for i := range r.L2Advertisements {
		out = append(out, &r.L2Advertisements[i])
	}
	for i := range r.BGPAdvertisements {
		out = append(out, &r.BGPAdvertisements[i])
	}
	return out
}

// Resources returns the converted objects as config.Parse input, so that
// the caller can check them with the controller's own rules.
func (r *Result) Resources(namespace string) config.Resources {
	return config.Resources{
		Namespace:   namespace,
		Pools:       slices.Clone(r.Pools),
		L2Advs:      slices.Clone(r.L2Advertisements),
		BGPAdvs:     slices.Clone(r.BGPAdvertisements),
		Peers:       slices.Clone(r.Peers),
		BFDProfiles: slices.Clone(r.BFDProfiles),
		Communities: slices.Clone(r.Communities),
	}
}

// Import reads a manifest holding MetalLB's ConfigMap (possibly among other
// documents) or the bare configuration text, and converts it. The error is
// only for input that holds no configuration at all; problems inside the
// configuration are Notes.
func Import(data []byte, namespace string) (*Result, error) {
	text, err := Extract(data)
	if err != nil {
		return nil, err
	}
	return Convert(text, namespace)
}

// Extract returns the legacy configuration text from data: the "config"
// key of a ConfigMap when data is a manifest (one document or several,
// separated by "---"), or data itself when it is the configuration.
func Extract(data []byte) ([]byte, error) {
	if len(data) > maxInput {
		return nil, fmt.Errorf("input is %d bytes; a MetalLB configuration is far smaller (limit %d)", len(data), maxInput)
	}
	var found [][]byte
	sawConfigMap := false
	for i, doc := range splitDocuments(data) {
		var head struct {
			Kind string         `json:"kind"`
			Data map[string]any `json:"data"`
		}
		// Documents that are not YAML objects cannot be a ConfigMap; they
		// are either the bare configuration or noise reported by Convert.
		if err := yaml.Unmarshal(doc, &head); err != nil || head.Kind != "ConfigMap" {
			continue
		}
		sawConfigMap = true
		v, ok := head.Data[ConfigKey]
		if !ok {
			continue
		}
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("document %d: ConfigMap data.%s is not a string", i, ConfigKey)
		}
		found = append(found, []byte(s))
	}
	switch {
	case len(found) == 1:
		return found[0], nil
	case len(found) > 1:
		return nil, fmt.Errorf("found %d ConfigMaps with a %q key; pass the one MetalLB uses (usually metallb-system/config) alone", len(found), ConfigKey)
	case sawConfigMap:
		return nil, fmt.Errorf("no ConfigMap in the input has a %q key; MetalLB's legacy configuration lives in data.%s", ConfigKey, ConfigKey)
	}
	return data, nil
}

// splitDocuments splits a YAML stream at its "---" separator lines.
func splitDocuments(data []byte) [][]byte {
	var docs [][]byte
	var cur []byte
	for line := range bytes.Lines(data) {
		t := bytes.TrimRight(line, " \t\r\n")
		if bytes.Equal(t, []byte("---")) || bytes.HasPrefix(t, []byte("--- ")) {
			docs = append(docs, cur)
			cur = nil
			continue
		}
		cur = append(cur, line...)
	}
	return append(docs, cur)
}

// Convert converts the legacy configuration text into metallb.io objects
// in namespace. The error is only for text that is not a YAML mapping;
// every other problem is a Note.
func Convert(text []byte, namespace string) (*Result, error) {
	if len(text) > maxInput {
		return nil, fmt.Errorf("configuration is %d bytes; a MetalLB configuration is far smaller (limit %d)", len(text), maxInput)
	}
	js, err := yaml.YAMLToJSON(text)
	if err != nil {
		return nil, fmt.Errorf("the configuration is not valid YAML: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	var root any
	if err := dec.Decode(&root); err != nil {
		return nil, fmt.Errorf("the configuration is not valid YAML: %w", err)
	}
	if root == nil {
		return nil, errors.New("the configuration is empty")
	}
	top, ok := root.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("the configuration is a YAML %s; want a mapping with peers, address-pools, bgp-communities and bfd-profiles", kindOf(root))
	}
	c := &converter{ns: namespace, res: &Result{}}
	c.known("", top, "peers", "address-pools", "bgp-communities", "bfd-profiles")
	c.convertBFDProfiles(top["bfd-profiles"])
	c.convertCommunities(top["bgp-communities"])
	c.convertPeers(top["peers"])
	c.convertPools(top["address-pools"])
	return c.res, nil
}

// converter carries the state of one conversion.
type converter struct {
	ns  string
	res *Result
	// profiles maps a legacy BFD profile name to its object name.
	profiles map[string]string
	// aliases holds the community aliases kept in the Community object.
	aliases map[string]bool
}

func (c *converter) note(path, format string, args ...any) {
	c.res.Notes = append(c.res.Notes, Note{Path: path, Message: fmt.Sprintf(format, args...)})
}

// known notes every key of m that the legacy format does not define and
// reports whether there was none. Such keys are typos or fields of another
// MetalLB version; MetalLB itself refused them, and an object converted
// without one could mean something else (a peer without its VRF, a
// selector that matches every node), so callers drop the object.
func (c *converter) known(path string, m map[string]any, keys ...string) bool {
	var unknown []string
	for k := range m {
		if !slices.Contains(keys, k) {
			unknown = append(unknown, k)
		}
	}
	slices.Sort(unknown)
	for _, k := range unknown {
		c.note(join(path, k), "unknown key (known keys here: %s)", strings.Join(keys, ", "))
	}
	return len(unknown) == 0
}

// join builds a note path.
func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func index(path string, i int) string { return fmt.Sprintf("%s[%d]", path, i) }

// kindOf names a decoded YAML value's type for messages.
func kindOf(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case map[string]any:
		return "mapping"
	case []any:
		return "list"
	case string:
		return "string"
	case json.Number:
		return "number"
	case bool:
		return "boolean"
	}
	return fmt.Sprintf("%T", v)
}
