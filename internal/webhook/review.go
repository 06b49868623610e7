package webhook

import (
	"fmt"
	"slices"
	"strings"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/keeperlb/keeperlb/api/v1beta1"
	"github.com/keeperlb/keeperlb/api/v1beta2"
	"github.com/keeperlb/keeperlb/internal/config"
)

// Operation is what a Change does to its object.
type Operation string

// The operations the webhook reviews.
const (
	// Create adds an object.
	Create Operation = "CREATE"
	// Update replaces an object.
	Update Operation = "UPDATE"
	// Delete removes an object.
	Delete Operation = "DELETE"
)

// Change is one admission request, decoded.
type Change struct {
	// Operation is Create, Update or Delete.
	Operation Operation
	// Kind is one of the config.Kind constants.
	Kind string
	// Namespace and Name identify the object.
	Namespace, Name string
	// Object is the object as it would be stored: a pointer to the
	// api/v1beta1 type of Kind, or *v1beta2.BGPPeer for BGPPeers of
	// either version. It is nil for Delete.
	Object client.Object
}

// maxOtherErrors bounds the warnings about problems the change did not
// cause, so that a badly broken configuration cannot flood kubectl.
const maxOtherErrors = 3

// Decision is the answer to a Change.
type Decision struct {
	// Allowed says whether the change may proceed.
	Allowed bool
	// Errors are the reasons for a refusal: the problems the change
	// would bring into the configuration.
	Errors config.Errors
	// Message explains a refusal in one line.
	Message string
	// Warnings are shown to the user even when the change is allowed.
	Warnings []string
}

// Review decides whether a change may be made to the configuration current,
// the configuration objects of the install namespace as they are now
// (current.Namespace) with the Secrets the peers may refer to.
//
// It runs config.Parse, the function the controller loads the configuration
// with, on the objects as they would be after the change, and refuses the
// change when that reports a problem that is about the changed object, or a
// problem about another object that the change brings in (deleting a
// BFDProfile a peer uses, a pool overlapping an existing one). Problems that
// were there before and that the change does not touch are only warned
// about: one broken object must not block every other edit.
//
// Objects outside the install namespace are allowed with a warning: KeeperLB,
// like MetalLB, ignores them.
func Review(current config.Resources, ch Change) Decision {
	if ch.Namespace != current.Namespace {
		return Decision{Allowed: true, Warnings: []string{fmt.Sprintf(
			"%s %s/%s is outside %s, the namespace KeeperLB reads its configuration from; it will be ignored",
			ch.Kind, ch.Namespace, ch.Name, current.Namespace)}}
	}
	after, err := apply(current, ch)
	if err != nil {
		return Decision{Message: err.Error()}
	}
	_, afterErr := config.Parse(after)
	if afterErr == nil {
		return Decision{Allowed: true}
	}
	_, beforeErr := config.Parse(current)
	before := asErrors(beforeErr)

	// The changed object's own errors come first: they are what its
	// author has to fix.
	var own, caused, others config.Errors
	for _, fe := range asErrors(afterErr) {
		about := ch.Operation != Delete && fe.Kind == ch.Kind && fe.Namespace == ch.Namespace && fe.Name == ch.Name
		existed := slices.ContainsFunc(before, func(b *config.FieldError) bool { return *b == *fe })
		switch {
		case about:
			own = append(own, fe)
		case !existed:
			caused = append(caused, fe)
		default:
			others = append(others, fe)
		}
	}
	// A conflict between the changed object and another is reported on
	// both; the refusal states it once, from the changed object's side
	// (own comes first), and a pre-existing problem that is only the other
	// half of a refused conflict is not warned about again.
	blocking := append(own, caused...).Once()
	others = slices.DeleteFunc(others, func(fe *config.FieldError) bool { return len(config.Errors{fe}.Mirrors(blocking)) > 0 })
	d := Decision{Allowed: len(blocking) == 0, Errors: blocking}
	if n := len(others); n > 0 {
		shown := others[:min(n, maxOtherErrors)]
		for _, fe := range shown {
			d.Warnings = append(d.Warnings, "the configuration has a problem this change does not touch: "+fe.Error())
		}
		if n > len(shown) {
			d.Warnings = append(d.Warnings, fmt.Sprintf("... and %d more such problems (see the ConfigurationState)", n-len(shown)))
		}
	}
	if d.Allowed {
		return d
	}
	msgs := make([]string, len(blocking))
	for i, fe := range blocking {
		msgs[i] = fe.Error()
	}
	d.Message = strings.Join(msgs, "; ")
	if ch.Operation == Delete {
		prefix := fmt.Sprintf("deleting %s %s/%s would break the configuration", ch.Kind, ch.Namespace, ch.Name)
		if ch.Kind == config.KindBFDProfile {
			if users := config.ProfileInUse(current, ch.Name); len(users) > 0 {
				prefix = fmt.Sprintf("BFDProfile %s/%s is used by BGPPeer %s; point their spec.bfdProfile elsewhere first", ch.Namespace, ch.Name, strings.Join(users, ", "))
			}
		}
		d.Message = prefix + ": " + d.Message
	}
	return d
}

// asErrors returns Parse's error as a list; Parse only ever returns
// config.Errors, anything else becomes one error without an object.
func asErrors(err error) config.Errors {
	if err == nil {
		return nil
	}
	if errs, ok := err.(config.Errors); ok {
		return errs
	}
	return config.Errors{{Field: "-", Reason: err.Error()}}
}

// apply returns r with the change made. It copies the slice it changes, so
// that r itself stays as it was.
func apply(r config.Resources, ch Change) (config.Resources, error) {
	var err error
	switch ch.Kind {
	case config.KindIPAddressPool:
		r.Pools, err = replace[v1beta1.IPAddressPool](r.Pools, ch)
	case config.KindL2Advertisement:
		r.L2Advs, err = replace[v1beta1.L2Advertisement](r.L2Advs, ch)
	case config.KindBGPAdvertisement:
		r.BGPAdvs, err = replace[v1beta1.BGPAdvertisement](r.BGPAdvs, ch)
	case config.KindBGPPeer:
		r.Peers, err = replace[v1beta2.BGPPeer](r.Peers, ch)
	case config.KindBFDProfile:
		r.BFDProfiles, err = replace[v1beta1.BFDProfile](r.BFDProfiles, ch)
	case config.KindCommunity:
		r.Communities, err = replace[v1beta1.Community](r.Communities, ch)
	default:
		err = fmt.Errorf("%s is not a metallb.io configuration kind", ch.Kind)
	}
	return r, err
}

// replace returns a copy of items without the object ch names, plus ch's
// object unless ch is a deletion.
func replace[T any, P interface {
	*T
	client.Object
}](items []T, ch Change) ([]T, error) {
	out := make([]T, 0, len(items)+1)
	for i := range items {
		o := P(&items[i])
		if o.GetName() == ch.Name && o.GetNamespace() == ch.Namespace {
			continue
		}
		out = append(out, items[i])
	}
	if ch.Operation == Delete {
		return out, nil
	}
	obj, ok := ch.Object.(P)
	if !ok || obj == nil {
		var want P
		return nil, fmt.Errorf("%s %s/%s: expected a %T, got %T", ch.Kind, ch.Namespace, ch.Name, want, ch.Object)
	}
	return append(out, *obj), nil
}
