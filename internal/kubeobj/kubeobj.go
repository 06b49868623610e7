// Package kubeobj holds what KeeperLB's processes (controller and speaker)
// share about the Kubernetes objects they cache: the scheme, the transform
// that trims cached objects, and which configuration kinds they read from
// the install namespace only.
package kubeobj

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/keeperlb/keeperlb/api/v1beta1"
	"github.com/keeperlb/keeperlb/api/v1beta2"
)

// NewScheme returns a scheme holding the core kinds and every metallb.io kind.
func NewScheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, v1beta1.AddToScheme, v1beta2.AddToScheme} {
		if err := add(s); err != nil {
			return nil, fmt.Errorf("building scheme: %w", err)
		}
	}
	return s, nil
}

// Trim drops what neither process reads from cached objects: managed
// fields and kubectl's last-applied annotation, which often doubles an
// object's size. It is safe because cached objects are never written back
// whole: the processes write with patches or build the objects they write.
func Trim(obj any) (any, error) {
	if m, err := meta.Accessor(obj); err == nil {
		m.SetManagedFields(nil)
		if a := m.GetAnnotations(); a != nil {
			if _, ok := a[corev1.LastAppliedConfigAnnotation]; ok {
				delete(a, corev1.LastAppliedConfigAnnotation)
				m.SetAnnotations(a)
			}
		}
	}
	return obj, nil
}

// InNamespace restricts the cache of the configuration kinds, their Secrets
// and extra (the caller's own status kinds) to the install namespace:
// objects elsewhere are ignored, as MetalLB ignores them, and need not be
// cached or even readable.
func InNamespace(ns string, extra ...client.Object) map[client.Object]cache.ByObject {
	by := cache.ByObject{Namespaces: map[string]cache.Config{ns: {}}}
	out := map[client.Object]cache.ByObject{
		&corev1.Secret{}:            by,
		&v1beta1.IPAddressPool{}:    by,
		&v1beta1.L2Advertisement{}:  by,
		&v1beta1.BGPAdvertisement{}: by,
		&v1beta2.BGPPeer{}:          by,
		&v1beta1.BFDProfile{}:       by,
		&v1beta1.Community{}:        by,
	}
	for _, o := range extra {
		out[o] = by
	}
	return out
}
