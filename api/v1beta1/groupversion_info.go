// Package v1beta1 holds the metallb.io/v1beta1 API served by KeeperLB: the
// configuration kinds (IPAddressPool, L2Advertisement, BGPAdvertisement,
// BFDProfile, Community, the deprecated v1beta1 BGPPeer) and the status kinds
// written by the controller and the speakers. The schema is MetalLB's, so that
// existing manifests apply unchanged.
//
// +kubebuilder:object:generate=true
// +groupName=metallb.io
package v1beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the group and version of every kind in this package.
	GroupVersion = schema.GroupVersion{Group: "metallb.io", Version: "v1beta1"}

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
