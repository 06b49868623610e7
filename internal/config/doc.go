// Package config turns the metallb.io configuration objects of a cluster
// into one validated, immutable [Config], or into a list of errors that each
// name the offending object and field.
//
// Both the controller's reconcilers and the admission webhook call the same
// function, [Parse], on the whole set of objects: the webhook with the set as
// it would be after the change under review, the reconcilers with the set as
// it is. A rule that involves several objects (overlapping pools, peers that
// disagree on a node's router ID, advertisements that disagree on a pool's
// local preference) therefore cannot be enforced in one place and forgotten
// in the other, and a configuration the webhook admitted is one the
// reconcilers can load. Rules that concern one field alone are also declared
// in the CRD schema, but they are checked here again because the webhook may
// be disabled and old objects may predate the schema.
//
// Parse is pure: it reads nothing but its argument, keeps no state between
// calls, never logs and never panics. Its result does not depend on the
// order of the input slices, so two snapshots of the same objects compare
// equal and the errors it reports are stable from one reconcile to the next.
package config
