package controller

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
)

// recorder emits Events about the objects the controller handles. A nil
// inner recorder (unit tests) drops them.
type recorder struct {
	rec events.EventRecorder
}

// warn records a Warning: something the user must fix.
func (r recorder) warn(obj runtime.Object, reason, msg string) {
	if r.rec != nil {
		r.rec.Eventf(obj, nil, corev1.EventTypeWarning, reason, "Allocate", "%s", msg)
	}
}

// normal records a Normal Event.
func (r recorder) normal(obj runtime.Object, reason, msg string) {
	if r.rec != nil {
		r.rec.Eventf(obj, nil, corev1.EventTypeNormal, reason, "Allocate", "%s", msg)
	}
}
