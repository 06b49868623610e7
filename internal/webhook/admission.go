package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"reflect"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/keeperlb/keeperlb/api/v1beta1"
	"github.com/keeperlb/keeperlb/api/v1beta2"
	"github.com/keeperlb/keeperlb/internal/config"
	"github.com/keeperlb/keeperlb/internal/configread"
)

// validator is the admission handler shared by every validation path: it
// reads the current configuration, decodes the request into a Change and
// lets Review decide.
type validator struct {
	// reader reads from the API server, not from a cache: two objects
	// applied in one kubectl call must see each other, and a cache may not
	// have caught up with the first when the second arrives. Reading the
	// cache first was tried: it admitted a pool overlapping one created a
	// moment before (a refusal can be re-checked, an admission cannot).
	// What a flood of forged reviews costs the API server is bounded by
	// the number of reviews served at once and by this reader's own
	// request rate instead (see Setup and reviewReader).
	reader    client.Reader
	namespace string
	log       *slog.Logger
}

// Handle implements admission.Handler.
func (v *validator) Handle(ctx context.Context, req admission.Request) admission.Response {
	ch, skip, err := decodeChange(req)
	if err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	if skip != "" {
		return admission.Allowed(skip)
	}
	if ch.Namespace != v.namespace {
		return respond(Review(config.Resources{Namespace: v.namespace}, ch))
	}
	d, err := v.decide(ctx, v.reader, ch)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, err)
	}
	if !d.Allowed {
		v.log.Info("refused a configuration change", "operation", ch.Operation, "kind", ch.Kind, "namespace", ch.Namespace, "name", ch.Name, "reason", d.Message)
	}
	return respond(d)
}

// decide reviews ch against the configuration that reader holds.
func (v *validator) decide(ctx context.Context, reader client.Reader, ch Change) (Decision, error) {
	if ch.Operation == Delete {
		// Namespace deletion removes everything; refusing a part of it
		// would only leave the namespace stuck in Terminating.
		var ns corev1.Namespace
		if err := reader.Get(ctx, client.ObjectKey{Name: ch.Namespace}, &ns); err == nil && ns.DeletionTimestamp != nil {
			return Decision{Allowed: true}, nil
		}
	}
	current, err := configread.Read(ctx, reader, v.namespace)
	if err != nil {
		return Decision{}, fmt.Errorf("reading the current configuration: %w", err)
	}
	var incoming []v1beta2.BGPPeer
	if p, ok := ch.Object.(*v1beta2.BGPPeer); ok {
		incoming = []v1beta2.BGPPeer{*p}
	}
	if current.Secrets, err = configread.PeerSecrets(ctx, reader, v.namespace, current.Peers, incoming); err != nil {
		return Decision{}, fmt.Errorf("reading the peers' password Secrets: %w", err)
	}
	return Review(current, ch), nil
}

// respond turns a Decision into an admission response. A refusal carries
// one cause per field error, so that clients that read status details find
// the field paths there too.
func respond(d Decision) admission.Response {
	if d.Allowed {
		return admission.Allowed("").WithWarnings(d.Warnings...)
	}
	st := &metav1.Status{
		Status:  metav1.StatusFailure,
		Code:    http.StatusUnprocessableEntity,
		Reason:  metav1.StatusReasonInvalid,
		Message: d.Message,
	}
	if len(d.Errors) > 0 {
		first := d.Errors[0]
		st.Details = &metav1.StatusDetails{Name: first.Name, Group: v1beta1.GroupVersion.Group, Kind: first.Kind}
		for _, fe := range d.Errors {
			st.Details.Causes = append(st.Details.Causes, cause(fe, first))
		}
	}
	return admission.Response{AdmissionResponse: admissionv1.AdmissionResponse{
		Allowed:  false,
		Result:   st,
		Warnings: d.Warnings,
	}}
}

// cause is the status cause for one field error of a refusal whose
// details name the object of first. kubectl prints each cause as
// "field: message" under `The Kind "name" is invalid`, so a cause about
// that object carries its field path and the reason alone, and a cause
// about another object (a peer left without its BFDProfile) names that
// object in its field, rather than passing the other object's path off
// as the refused one's.
func cause(fe, first *config.FieldError) metav1.StatusCause {
	c := metav1.StatusCause{Type: metav1.CauseTypeFieldValueInvalid, Field: fe.Field, Message: fe.Reason}
	if fe.Kind != first.Kind || fe.Namespace != first.Namespace || fe.Name != first.Name {
		obj := fe.Name
		if fe.Namespace != "" {
			obj = fe.Namespace + "/" + fe.Name
		}
		c.Field = fmt.Sprintf("%s %s %s", fe.Kind, obj, fe.Field)
	}
	return c
}

// decodeChange reads the request's object into a Change. skip is non-empty
// when the request needs no review (it then says why).
func decodeChange(req admission.Request) (ch Change, skip string, err error) {
	ch = Change{Operation: Operation(req.Operation), Kind: req.Kind.Kind, Namespace: req.Namespace, Name: req.Name}
	switch ch.Operation {
	case Delete:
		return ch, "", nil
	case Create, Update:
	default:
		return ch, fmt.Sprintf("%s needs no review", req.Operation), nil
	}
	obj, err := decodeObject(req.Kind, req.Object.Raw)
	if err != nil {
		return ch, "", err
	}
	if obj.GetDeletionTimestamp() != nil && ch.Operation == Update && sameConfig(req.OldObject.Raw, req.Object.Raw) {
		// Removing finalizers from an object on its way out must always
		// work, whatever the object holds; changing what it configures
		// must not, or a finalizer and a delete would open a way
		// around validation.
		return ch, "the object is being deleted and its configuration is unchanged", nil
	}
	if ch.Name == "" {
		ch.Name = obj.GetName()
	}
	if ch.Namespace == "" {
		ch.Namespace = obj.GetNamespace()
	}
	ch.Object = obj
	return ch, "", nil
}

// sameConfig reports whether two versions of an object configure the same
// thing: equal spec and labels (advertisements select pools by label).
// Anything unreadable counts as different, so it is reviewed.
func sameConfig(oldRaw, newRaw []byte) bool {
	type configured struct {
		Metadata struct {
			Labels map[string]string `json:"labels"`
		} `json:"metadata"`
		Spec any `json:"spec"`
	}
	var a, b configured
	if len(oldRaw) == 0 || json.Unmarshal(oldRaw, &a) != nil || json.Unmarshal(newRaw, &b) != nil {
		return false
	}
	return reflect.DeepEqual(a, b)
}

// decodeObject decodes a metallb.io object of the given kind and version;
// v1beta1 BGPPeers come out as v1beta2, converted as the API server will
// store them.
func decodeObject(gvk metav1.GroupVersionKind, raw []byte) (client.Object, error) {
	if len(raw) == 0 {
		return nil, fmt.Errorf("the request for %s has no object", gvk.Kind)
	}
	gv := schema.GroupVersion{Group: gvk.Group, Version: gvk.Version}
	var obj client.Object
	switch {
	case gv == v1beta2.GroupVersion && gvk.Kind == config.KindBGPPeer:
		obj = &v1beta2.BGPPeer{}
	case gv != v1beta1.GroupVersion:
		return nil, fmt.Errorf("%s %s is not reviewed here", gv, gvk.Kind)
	case gvk.Kind == config.KindBGPPeer:
		var p v1beta1.BGPPeer
		if err := json.Unmarshal(raw, &p); err != nil {
			return nil, fmt.Errorf("decoding %s BGPPeer: %w", gv, err)
		}
		return PeerToV1beta2(&p), nil
	case gvk.Kind == config.KindIPAddressPool:
		obj = &v1beta1.IPAddressPool{}
	case gvk.Kind == config.KindL2Advertisement:
		obj = &v1beta1.L2Advertisement{}
	case gvk.Kind == config.KindBGPAdvertisement:
		obj = &v1beta1.BGPAdvertisement{}
	case gvk.Kind == config.KindBFDProfile:
		obj = &v1beta1.BFDProfile{}
	case gvk.Kind == config.KindCommunity:
		obj = &v1beta1.Community{}
	default:
		return nil, fmt.Errorf("%s %s is not reviewed here", gv, gvk.Kind)
	}
	if err := json.Unmarshal(raw, obj); err != nil {
		return nil, fmt.Errorf("decoding %s %s: %w", gv, gvk.Kind, err)
	}
	return obj, nil
}
