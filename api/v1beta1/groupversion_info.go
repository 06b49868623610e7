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
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of every kind in this package.
	GroupVersion = schema.GroupVersion{Group: "metallb.io", Version: "v1beta1"}

	// SchemeBuilder registers this package's kinds with a runtime.Scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds this package's kinds to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
