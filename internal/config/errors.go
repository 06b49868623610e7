package config

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Kind values used in FieldError.Kind. They are the API kinds, so that a
// caller can look the offending object up and attach an Event to it.
const (
	// KindIPAddressPool is the kind of an IPAddressPool.
	KindIPAddressPool = "IPAddressPool"
	// KindL2Advertisement is the kind of an L2Advertisement.
	KindL2Advertisement = "L2Advertisement"
	// KindBGPAdvertisement is the kind of a BGPAdvertisement.
	KindBGPAdvertisement = "BGPAdvertisement"
	// KindBGPPeer is the kind of a BGPPeer, whatever its API version.
	KindBGPPeer = "BGPPeer"
	// KindBFDProfile is the kind of a BFDProfile.
	KindBFDProfile = "BFDProfile"
	// KindCommunity is the kind of a Community.
	KindCommunity = "Community"
)

// FieldError is one reason why a configuration was rejected. It carries the
// object and the field separately, rather than only a message, so that the
// controller can emit an Event on the right object and the webhook can
// answer with a field path the user can find in the manifest.
type FieldError struct {
	// Kind is the API kind of the offending object, one of the Kind
	// constants.
	Kind string
	// Namespace is the offending object's namespace.
	Namespace string
	// Name is the offending object's name.
	Name string
	// Field is a JSON path into the object, such as "spec.addresses[1]".
	Field string
	// Reason says what is wrong, in words meant for the object's author.
	Reason string
	// Counterpart is set when the error is one half of a conflict between
	// two places (two pools sharing an address, two peers with one
	// address): Parse reports such a conflict on both objects, so that
	// each gets an Event, and Counterpart names the place the other half
	// is about. Errors.Once uses it to state the conflict once.
	Counterpart Location
}

// Location is an object and a field in it. The zero Location is no place.
type Location struct {
	// Kind, Namespace and Name identify the object.
	Kind, Namespace, Name string
	// Field is a JSON path into the object.
	Field string
}

// Location returns where the error is.
func (e *FieldError) Location() Location {
	return Location{Kind: e.Kind, Namespace: e.Namespace, Name: e.Name, Field: e.Field}
}

// Error renders the error as "Kind namespace/name: field: reason".
func (e *FieldError) Error() string {
	if e == nil {
		return "<nil>"
	}
	obj := e.Name
	if e.Namespace != "" {
		obj = e.Namespace + "/" + e.Name
	}
	return fmt.Sprintf("%s %s: %s: %s", e.Kind, obj, e.Field, e.Reason)
}

// Errors is every problem Parse found. Parse reports all of them at once so
// that a user fixes a manifest in one round trip rather than one error at a
// time. Parse returns them sorted by object, then field, then reason.
type Errors []*FieldError

// Error joins the messages with "; " in sorted order, so that the same
// problems always give the same text (callers store it in a status and
// compare it with the previous one).
func (e Errors) Error() string {
	sorted := slices.Clone(e)
	slices.SortFunc(sorted, compareFieldErrors)
	parts := make([]string, len(sorted))
	for i, fe := range sorted {
		parts[i] = fe.Error()
	}
	return strings.Join(parts, "; ")
}

// Once returns e with each conflict stated once: of two errors that report
// the same conflict from its two sides (each the other's Counterpart), only
// the one that comes first in e is kept. A refusal lists its errors this
// way, the changed object's own first, so that the user reads the conflict
// once, from the side of the object they wrote. Other errors keep their
// order.
func (e Errors) Once() Errors {
	var out Errors
	for _, fe := range e {
		if fe == nil {
			continue
		}
		if fe.Counterpart != (Location{}) && slices.ContainsFunc(out, func(k *FieldError) bool { return isMirror(k, fe) }) {
			continue
		}
		out = append(out, fe)
	}
	return out
}

// Mirrors returns the errors of e that state, from the other side, a
// conflict that some error of kept states already.
func (e Errors) Mirrors(kept Errors) Errors {
	var out Errors
	for _, fe := range e {
		if fe != nil && fe.Counterpart != (Location{}) && slices.ContainsFunc(kept, func(k *FieldError) bool { return isMirror(k, fe) }) {
			out = append(out, fe)
		}
	}
	return out
}

// isMirror reports whether a and b are the two halves of one conflict.
func isMirror(a, b *FieldError) bool {
	return a != nil && b != nil && a.Counterpart == b.Location() && b.Counterpart == a.Location()
}

// ForObject returns the errors about one object, in the order they appear
// in e. The controller uses it to emit one Event per offending object.
func (e Errors) ForObject(kind, namespace, name string) []*FieldError {
	var out []*FieldError
	for _, fe := range e {
		if fe != nil && fe.Kind == kind && fe.Namespace == namespace && fe.Name == name {
			out = append(out, fe)
		}
	}
	return out
}

// compareFieldErrors orders errors by object, then field, then reason; nil
// entries, which Parse never produces, sort first instead of panicking.
func compareFieldErrors(a, b *FieldError) int {
	switch {
	case a == nil && b == nil:
		return 0
	case a == nil:
		return -1
	case b == nil:
		return 1
	}
	return cmp.Or(
		strings.Compare(a.Kind, b.Kind),
		strings.Compare(a.Namespace, b.Namespace),
		strings.Compare(a.Name, b.Name),
		strings.Compare(a.Field, b.Field),
		strings.Compare(a.Reason, b.Reason),
	)
}

// objectRef identifies the object an error is about.
type objectRef struct {
	kind, namespace, name string
}

// String names the object in a message about another object, so that the
// reader of an overlap or conflict error knows where the other half is.
func (o objectRef) String() string {
	if o.namespace == "" {
		return o.kind + " " + o.name
	}
	return o.kind + " " + o.namespace + "/" + o.name
}

// collector accumulates errors while Parse keeps going, because the
// contract is to report every problem, not the first.
type collector struct {
	errs Errors
}

// fail records one error about object o.
func (c *collector) fail(o objectRef, field, format string, args ...any) {
	c.errs = append(c.errs, &FieldError{
		Kind:      o.kind,
		Namespace: o.namespace,
		Name:      o.name,
		Field:     field,
		Reason:    fmt.Sprintf(format, args...),
	})
}

// conflict reports one conflict between two places on both objects, each
// error naming the other as its Counterpart.
func (c *collector) conflict(a objectRef, aField string, b objectRef, bField string, aReason, bReason string) {
	ea := &FieldError{Kind: a.kind, Namespace: a.namespace, Name: a.name, Field: aField, Reason: aReason}
	eb := &FieldError{Kind: b.kind, Namespace: b.namespace, Name: b.name, Field: bField, Reason: bReason}
	ea.Counterpart, eb.Counterpart = eb.Location(), ea.Location()
	c.errs = append(c.errs, ea, eb)
}

// result returns the errors sorted and without repeats, or nil. Repeats
// arise when the same object appears twice in the input; one copy of the
// message is enough.
func (c *collector) result() Errors {
	if len(c.errs) == 0 {
		return nil
	}
	out := slices.Clone(c.errs)
	slices.SortFunc(out, compareFieldErrors)
	return slices.CompactFunc(out, func(a, b *FieldError) bool { return *a == *b })
}
