// Package v1beta2 holds the metallb.io/v1beta2 API: BGPPeer, the version the
// API server stores. v1beta1 BGPPeers are still served; v1beta2 is a
// superset with the same JSON shape, and the controller's conversion webhook
// carries the v1beta2-only fields through v1beta1 edits.
//
// +kubebuilder:object:generate=true
// +groupName=metallb.io
package v1beta2

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of every kind in this package.
	GroupVersion = schema.GroupVersion{Group: "metallb.io", Version: "v1beta2"}

	// SchemeBuilder registers this package's kinds with a runtime.Scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds this package's kinds to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
