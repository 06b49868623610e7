package controller

import (
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

type ctrlQueue = workqueue.TypedRateLimitingInterface[reconcile.Request]

// lastApplied is kubectl's copy of the whole object in an annotation; it
// often doubles an object's size and the controller never reads it.
const lastApplied = "kubectl.kubernetes.io/last-applied-configuration"

// trimForCache drops what the controller never reads from cached objects.
// It is safe because the controller writes with patches, never with full
// updates of a cached object.
func trimForCache(obj any) (any, error) {
	if m, err := meta.Accessor(obj); err == nil {
		m.SetManagedFields(nil)
		if a := m.GetAnnotations(); a != nil {
			if _, ok := a[lastApplied]; ok {
				delete(a, lastApplied)
				m.SetAnnotations(a)
			}
		}
	}
	return obj, nil
}
