package legacyconfig

import (
	"reflect"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/keeperlb/keeperlb/internal/config"
)

// FuzzImport feeds arbitrary bytes to Import, as `keeperlb import -f` does
// with a user's file. Import must never panic, must give the same result
// twice, and every object it returns must be one the API server could
// store: a valid, unique name in the requested namespace, with its kind
// set. The controller's validation must digest the result too.
func FuzzImport(f *testing.F) {
	f.Add([]byte(full))
	f.Add([]byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: config}\ndata:\n  config: |\n    address-pools: [{name: a, protocol: layer2, addresses: [198.18.0.0/24]}]\n"))
	f.Add([]byte("peers: [{peer-address: '2001:db8::1', peer-asn: 1, my-asn: 2, hold-time: 3, node-selectors: [{match-expressions: [{key: k, operator: NotIn, values: [a]}]}]}]"))
	f.Add([]byte("address-pools: [{name: A_b, protocol: bgp, cidr: [198.18.0.0/24], bgp-advertisements: [{communities: [x]}, {}]}]\nbgp-communities: {x: 'large:1:2:3'}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := Import(data, "metallb-system")
		if err != nil {
			return
		}
		again, err := Import(data, "metallb-system")
		if err != nil || !reflect.DeepEqual(res, again) {
			t.Fatalf("two imports of one input differ (second error: %v)", err)
		}
		seen := map[string]bool{}
		for _, o := range res.Objects() {
			m, err := meta.Accessor(o)
			if err != nil {
				t.Fatalf("object without metadata: %v", err)
			}
			kind := o.GetObjectKind().GroupVersionKind()
			if kind.Kind == "" || kind.Group != "metallb.io" {
				t.Fatalf("object %q without its metallb.io kind: %v", m.GetName(), kind)
			}
			if errs := validation.IsDNS1123Subdomain(m.GetName()); len(errs) > 0 {
				t.Fatalf("%s has an invalid name %q: %v", kind.Kind, m.GetName(), errs)
			}
			if m.GetNamespace() != "metallb-system" {
				t.Fatalf("%s %s is in namespace %q", kind.Kind, m.GetName(), m.GetNamespace())
			}
			key := kind.Kind + "/" + m.GetName()
			if seen[key] {
				t.Fatalf("%s converted twice", key)
			}
			seen[key] = true
		}
		for _, n := range res.Notes {
			if n.Message == "" {
				t.Fatalf("note without a message at %q", n.Path)
			}
		}
		_, _ = config.Parse(res.Resources("metallb-system"))
	})
}
