package config

import (
	"slices"

	"github.com/keeperlb/keeperlb/api/v1beta1"
)

// BFD defaults, applied when a field is unset; they are the CRD defaults,
// repeated here because objects created before the schema had them, or
// built in code, reach Parse without them.
const (
	defaultBFDInterval   = 300
	defaultBFDMultiplier = 3
	defaultBFDEcho       = 50
)

// bfdSet is the parsed BFD profiles, sorted by name, with an index for the
// peers that refer to them.
type bfdSet struct {
	list   []*BFDProfile
	byName map[string]*BFDProfile
}

// parseBFDProfiles parses every profile. The bounds are those of the CRD
// schema; they are checked again so that a profile admitted without the
// schema cannot reach the BFD daemon with values it would refuse.
func (c *collector) parseBFDProfiles(objs []*v1beta1.BFDProfile) bfdSet {
	set := bfdSet{byName: make(map[string]*BFDProfile)}
	for _, o := range uniqueByName(c, KindBFDProfile, objs) {
		ref := refOf(KindBFDProfile, o)
		s := o.Spec
		p := &BFDProfile{
			Name:             o.Name,
			ReceiveInterval:  c.bounded(ref, "spec.receiveInterval", s.ReceiveInterval, defaultBFDInterval, 10, 60000),
			TransmitInterval: c.bounded(ref, "spec.transmitInterval", s.TransmitInterval, defaultBFDInterval, 10, 60000),
			DetectMultiplier: c.bounded(ref, "spec.detectMultiplier", s.DetectMultiplier, defaultBFDMultiplier, 2, 255),
			EchoInterval:     c.bounded(ref, "spec.echoInterval", s.EchoInterval, defaultBFDEcho, 10, 60000),
			EchoMode:         s.EchoMode != nil && *s.EchoMode,
			PassiveMode:      s.PassiveMode != nil && *s.PassiveMode,
			MinimumTTL:       c.bounded(ref, "spec.minimumTtl", s.MinimumTTL, 0, 1, 254),
		}
		set.list = append(set.list, p)
		set.byName[p.Name] = p
	}
	return set
}

// bounded returns *v, or def when v is nil, reporting a set value outside
// [lo, hi].
func (c *collector) bounded(ref objectRef, field string, v *uint32, def, lo, hi uint32) uint32 {
	if v == nil {
		return def
	}
	if *v < lo || *v > hi {
		c.fail(ref, field, "%d is out of range: must be from %d to %d", *v, lo, hi)
	}
	return *v
}

// ProfileInUse returns the sorted names of the BGPPeers in r.Namespace
// that refer to the BFDProfile called name. The admission webhook refuses
// to delete a profile while this is not empty, because the peers' sessions
// could not be configured without it.
func ProfileInUse(r Resources, name string) []string {
	if name == "" {
		return nil
	}
	var out []string
	for _, p := range inScope(r.Namespace, r.Peers) {
		if p.Spec.BFDProfile == name {
			out = append(out, p.Name)
		}
	}
	return slices.Compact(out)
}
