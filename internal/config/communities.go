package config

import (
	"cmp"
	"fmt"
	"strconv"
	"strings"

	"github.com/keeperlb/keeperlb/api/v1beta1"
)

// largePrefix introduces a large community in its text form.
const largePrefix = "large:"

// Community is one BGP community: a standard RFC 1997 community ("a:b",
// two 16-bit parts) or a large RFC 8092 community ("large:a:b:c", three
// 32-bit parts). It is a comparable value so that duplicates can be found
// with ==, and it keeps the standard form as the 32-bit number that goes on
// the wire so that the BGP speaker does not parse text again.
type Community struct {
	// Large says which form this is; the fields of the other form are zero.
	Large bool
	// Value is a standard community: the first part in the high 16 bits,
	// the second in the low 16 bits.
	Value uint32
	// GlobalAdmin is the first part of a large community, usually an ASN.
	GlobalAdmin uint32
	// LocalData1 is the second part of a large community.
	LocalData1 uint32
	// LocalData2 is the third part of a large community.
	LocalData2 uint32
}

// ParseCommunity parses the text form of a community. Parts are decimal
// without sign; anything else, including surrounding spaces, is refused so
// that a typo never turns into a different community.
func ParseCommunity(s string) (Community, error) {
	if rest, ok := strings.CutPrefix(s, largePrefix); ok {
		parts := strings.Split(rest, ":")
		if len(parts) != 3 {
			return Community{}, fmt.Errorf("%q is not a large community: want large:a:b:c", s)
		}
		var v [3]uint32
		for i, p := range parts {
			n, err := strconv.ParseUint(p, 10, 32)
			if err != nil {
				return Community{}, fmt.Errorf("%q is not a large community: part %d (%q) must be a number from 0 to 4294967295", s, i+1, p)
			}
			v[i] = uint32(n)
		}
		return Community{Large: true, GlobalAdmin: v[0], LocalData1: v[1], LocalData2: v[2]}, nil
	}
	hi, lo, ok := strings.Cut(s, ":")
	if !ok || strings.Contains(lo, ":") {
		return Community{}, fmt.Errorf("%q is not a community: want a:b or large:a:b:c", s)
	}
	a, err := strconv.ParseUint(hi, 10, 16)
	if err != nil {
		return Community{}, fmt.Errorf("%q is not a community: the first part (%q) must be a number from 0 to 65535", s, hi)
	}
	b, err := strconv.ParseUint(lo, 10, 16)
	if err != nil {
		return Community{}, fmt.Errorf("%q is not a community: the second part (%q) must be a number from 0 to 65535", s, lo)
	}
	return Community{Value: uint32(a)<<16 | uint32(b)}, nil
}

// String returns the text form ParseCommunity accepts, so that a community
// can be shown to users and parsed back to the same value.
func (c Community) String() string {
	if c.Large {
		return fmt.Sprintf("%s%d:%d:%d", largePrefix, c.GlobalAdmin, c.LocalData1, c.LocalData2)
	}
	return fmt.Sprintf("%d:%d", c.Value>>16, c.Value&0xffff)
}

// Compare orders communities standard first, then numerically, which is
// the order Parse leaves them in so that advertisements compare equal
// however their communities were listed.
func (c Community) Compare(o Community) int {
	if c.Large != o.Large {
		if c.Large {
			return 1
		}
		return -1
	}
	return cmp.Or(
		cmp.Compare(c.Value, o.Value),
		cmp.Compare(c.GlobalAdmin, o.GlobalAdmin),
		cmp.Compare(c.LocalData1, o.LocalData1),
		cmp.Compare(c.LocalData2, o.LocalData2),
	)
}

// alias is one community alias defined by a Community object.
type alias struct {
	value Community
	// valid is false when the value did not parse; the Community object is
	// reported for it, and advertisements using the alias are not reported
	// a second time.
	valid bool
}

// parseCommunityAliases collects the aliases of every Community object.
// Alias names form one namespace across all objects, because an
// advertisement names an alias without saying which object defines it.
func (c *collector) parseCommunityAliases(objs []*v1beta1.Community) map[string]alias {
	type site struct {
		ref   objectRef
		field string
	}
	aliases := make(map[string]alias)
	sites := make(map[string][]site)
	var order []string
	for _, o := range uniqueByName(c, KindCommunity, objs) {
		ref := refOf(KindCommunity, o)
		for i, a := range o.Spec.Communities {
			field := fmt.Sprintf("spec.communities[%d]", i)
			v, err := ParseCommunity(a.Value)
			if err != nil {
				c.fail(ref, field+".value", "%v", err)
			}
			if a.Name == "" {
				c.fail(ref, field+".name", "alias name must not be empty")
				continue
			}
			if _, seen := sites[a.Name]; !seen {
				aliases[a.Name] = alias{value: v, valid: err == nil}
				order = append(order, a.Name)
			}
			sites[a.Name] = append(sites[a.Name], site{ref: ref, field: field})
		}
	}
	for _, name := range order {
		defs := sites[name]
		if len(defs) < 2 {
			continue
		}
		where := make([]string, len(defs))
		for i, d := range defs {
			where[i] = d.ref.String() + " " + d.field
		}
		for _, d := range defs {
			c.fail(d.ref, d.field+".name", "alias %q is defined %d times (%s); alias names must be unique across all Community objects", name, len(defs), strings.Join(where, ", "))
		}
	}
	return aliases
}
