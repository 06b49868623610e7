package webhook

import (
	"encoding/json"
	"reflect"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/keeperlb/keeperlb/api/v1beta1"
	"github.com/keeperlb/keeperlb/api/v1beta2"
)

// FuzzPeerConversion feeds the conversion webhook arbitrary objects and
// annotations, both of which any user who can write a BGPPeer controls. It
// checks that nothing panics, that a v1beta2 object survives a trip
// through v1beta1 unchanged, and that whatever the annotation holds, a
// v1beta1 object reads back as it was written.
func FuzzPeerConversion(f *testing.F) {
	f.Add([]byte(`{"apiVersion":"metallb.io/v1beta2","kind":"BGPPeer","metadata":{"name":"p","namespace":"metallb-system"},"spec":{"myASN":64500,"dynamicASN":"external","interface":"eth0","holdTime":"0s","vrf":"red","passwordSecret":{"name":"pw"}}}`), `{"spec":{"vrf":"blue"},"v1beta1Digest":""}`)
	f.Add([]byte(`{"spec":{"myASN":1,"peerASN":2,"peerAddress":"198.18.0.1","holdTime":"90s","keepaliveTime":"30s","nodeSelectors":[{"matchExpressions":[{"key":"k","operator":"In","values":[]}]}]}}`), `{"spec":{"holdTime":"0s","keepaliveTime":"0s","dynamicASN":"internal"}}`)
	f.Add([]byte(`{"metadata":{"annotations":{}},"spec":{"connectTime":"-1s","localASN":4294967295}}`), `null`)
	f.Fuzz(func(t *testing.T, raw []byte, annotation string) {
		var v2 v1beta2.BGPPeer
		if json.Unmarshal(raw, &v2) == nil {
			delete(v2.Annotations, PeerFieldsAnnotation)
			v1, err := PeerToV1beta1(&v2)
			if err != nil {
				t.Fatalf("PeerToV1beta1: %v", err)
			}
			back := PeerToV1beta2(v1)
			back.TypeMeta = v2.TypeMeta
			if !reflect.DeepEqual(normalize(back), normalize(&v2)) {
				t.Fatalf("v1beta2 round trip:\n%s\nwant\n%s", mustJSON(t, back), mustJSON(t, &v2))
			}
		}

		var v1 v1beta1.BGPPeer
		if json.Unmarshal(raw, &v1) == nil {
			if v1.Annotations == nil {
				v1.Annotations = map[string]string{}
			}
			v1.Annotations[PeerFieldsAnnotation] = annotation
			up := PeerToV1beta2(&v1)
			if _, ok := up.Annotations[PeerFieldsAnnotation]; ok {
				t.Fatal("the annotation survived conversion to v1beta2")
			}
			down, err := PeerToV1beta1(up)
			if err != nil {
				t.Fatalf("PeerToV1beta1: %v", err)
			}
			if !reflect.DeepEqual(down.Spec, v1.Spec) {
				t.Fatalf("v1beta1 spec changed by the annotation %q:\n%s\nwant\n%s", annotation, mustJSON(t, down.Spec), mustJSON(t, v1.Spec))
			}
		}

		// The review handler must answer, success or failure, never panic.
		for _, version := range []string{"metallb.io/v1beta1", "metallb.io/v1beta2"} {
			r := Convert(&apiextensionsv1.ConversionRequest{UID: "f", DesiredAPIVersion: version, Objects: []runtime.RawExtension{{Raw: raw}}})
			if r.Result.Status == "Success" && len(r.ConvertedObjects) != 1 {
				t.Fatalf("success with %d objects", len(r.ConvertedObjects))
			}
		}
	})
}

// normalize makes an empty annotation map nil: the API cannot tell them
// apart, and conversion drops a map it emptied.
func normalize(p *v1beta2.BGPPeer) *v1beta2.BGPPeer {
	p = p.DeepCopy()
	if len(p.Annotations) == 0 {
		p.Annotations = nil
	}
	return p
}
