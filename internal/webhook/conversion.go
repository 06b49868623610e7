package webhook

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/keeperlb/keeperlb/api/v1beta1"
	"github.com/keeperlb/keeperlb/api/v1beta2"
)

// maxReviewBytes bounds a review body at what the API server sends: an
// object is at most 3 MiB there (its request limit; etcd stores 1.5 MiB), a
// review carries up to two, and a list is converted a page at a time. It is
// controller-runtime's bound for admission reviews too. Before, 64 MiB let
// four parallel reviews take the heap to 888 MiB.
const maxReviewBytes = 7 << 20

// conversionHandler serves the bgppeers.metallb.io conversion webhook: a
// ConversionReview in, the same objects in the desired version out.
type conversionHandler struct {
	log *slog.Logger
}

// ServeHTTP implements http.Handler.
func (h conversionHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "conversion reviews are POSTed", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxReviewBytes+1))
	if err != nil {
		http.Error(w, fmt.Sprintf("reading the request: %v", err), http.StatusBadRequest)
		return
	}
	if len(body) > maxReviewBytes {
		http.Error(w, fmt.Sprintf("request larger than %d bytes", maxReviewBytes), http.StatusRequestEntityTooLarge)
		return
	}
	var review apiextensionsv1.ConversionReview
	if err := json.Unmarshal(body, &review); err != nil {
		http.Error(w, fmt.Sprintf("decoding the ConversionReview: %v", err), http.StatusBadRequest)
		return
	}
	if review.Request == nil {
		http.Error(w, "the ConversionReview has no request", http.StatusBadRequest)
		return
	}
	resp := Convert(review.Request)
	if resp.Result.Status != metav1.StatusSuccess {
		h.log.Warn("conversion failed", "uid", review.Request.UID, "desiredAPIVersion", review.Request.DesiredAPIVersion, "err", resp.Result.Message)
	}
	out := apiextensionsv1.ConversionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: apiextensionsv1.SchemeGroupVersion.String(), Kind: "ConversionReview"},
		Response: resp,
	}
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(out); err != nil {
		h.log.Warn("writing the conversion response", "err", err)
	}
}

// Convert answers one conversion request. It converts every object or
// none: the API server cannot use a partial answer.
func Convert(req *apiextensionsv1.ConversionRequest) *apiextensionsv1.ConversionResponse {
	resp := &apiextensionsv1.ConversionResponse{UID: req.UID}
	objs := make([]runtime.RawExtension, 0, len(req.Objects))
	for i, obj := range req.Objects {
		raw, err := convertObject(obj.Raw, req.DesiredAPIVersion)
		if err != nil {
			resp.Result = metav1.Status{Status: metav1.StatusFailure, Message: fmt.Sprintf("object %d: %v", i, err)}
			return resp
		}
		objs = append(objs, runtime.RawExtension{Raw: raw})
	}
	resp.ConvertedObjects = objs
	resp.Result = metav1.Status{Status: metav1.StatusSuccess}
	return resp
}

// convertObject converts one BGPPeer, given as JSON, to apiVersion.
func convertObject(raw []byte, apiVersion string) ([]byte, error) {
	var tm metav1.TypeMeta
	if err := json.Unmarshal(raw, &tm); err != nil {
		return nil, fmt.Errorf("decoding: %w", err)
	}
	if tm.Kind != "BGPPeer" || (tm.APIVersion != v1beta1.GroupVersion.String() && tm.APIVersion != v1beta2.GroupVersion.String()) {
		return nil, fmt.Errorf("cannot convert %s %s: only metallb.io/v1beta1 and v1beta2 BGPPeers are converted here", tm.APIVersion, tm.Kind)
	}
	if apiVersion != v1beta1.GroupVersion.String() && apiVersion != v1beta2.GroupVersion.String() {
		return nil, fmt.Errorf("cannot convert BGPPeer to %q: the versions are metallb.io/v1beta1 and metallb.io/v1beta2", apiVersion)
	}
	if tm.APIVersion == apiVersion {
		return raw, nil
	}
	if apiVersion == v1beta2.GroupVersion.String() {
		var in v1beta1.BGPPeer
		if err := json.Unmarshal(raw, &in); err != nil {
			return nil, fmt.Errorf("decoding v1beta1 BGPPeer: %w", err)
		}
		return json.Marshal(PeerToV1beta2(&in))
	}
	var in v1beta2.BGPPeer
	if err := json.Unmarshal(raw, &in); err != nil {
		return nil, fmt.Errorf("decoding v1beta2 BGPPeer: %w", err)
	}
	out, err := PeerToV1beta1(&in)
	if err != nil {
		return nil, err
	}
	return marshalV1beta1Peer(out)
}

// marshalV1beta1Peer encodes a v1beta1 BGPPeer leaving out zero durations:
// v1beta1's holdTime and keepaliveTime are plain structs, which
// encoding/json would always write, and a "0s" the user never wrote would
// show up in every v1beta1 read.
func marshalV1beta1Peer(p *v1beta1.BGPPeer) ([]byte, error) {
	raw, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("encoding v1beta1 BGPPeer: %w", err)
	}
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber() // numbers stay exactly as written
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("re-reading v1beta1 BGPPeer: %w", err)
	}
	spec, ok := m["spec"].(map[string]any)
	if !ok {
		return nil, errors.New("encoded v1beta1 BGPPeer has no spec")
	}
	if p.Spec.HoldTime.Duration == 0 {
		delete(spec, "holdTime")
	}
	if p.Spec.KeepaliveTime.Duration == 0 {
		delete(spec, "keepaliveTime")
	}
	return json.Marshal(m)
}
