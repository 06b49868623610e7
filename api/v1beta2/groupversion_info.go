// Package v1beta2 holds the metallb.io/v1beta2 API: BGPPeer, the version the
// API server stores. v1beta1 BGPPeers are still served; v1beta2 is a
// superset with the same JSON shape, and the controller's conversion webhook
// carries the v1beta2-only fields through v1beta1 edits.
//
// +kubebuilder:object:generate=true
// +groupName=metallb.io
package v1beta2

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the group and version of every kind in this package.
	GroupVersion = schema.GroupVersion{Group: "metallb.io", Version: "v1beta2"}

	// SchemeBuilder registers this package's kinds with a runtime.Scheme.
	// It is apimachinery's, not controller-runtime's (deprecated for API
	// packages), so that importing the API costs no controller-runtime.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds this package's kinds to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

// kinds are this package's kinds; each type file's init adds its own.
var kinds []runtime.Object

// register adds kinds to those AddToScheme registers.
func register(objs ...runtime.Object) { kinds = append(kinds, objs...) }

// addKnownTypes registers the kinds, and the meta/v1 options kinds, under
// GroupVersion.
func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, kinds...)
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
