package kubeobj

import (
	"fmt"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
)

// The API server's limits on the text KeeperLB writes. A write over one is
// refused whole: the Event is lost, or the status patch that carries the
// condition fails and the Service shows nothing at all.
const (
	// MaxEventNote is the longest note of an events.k8s.io Event.
	MaxEventNote = 1024
	// MaxConditionMessage is the longest message of a metav1.Condition.
	MaxConditionMessage = 32768
)

// Truncate shortens s to at most max bytes, cutting at a character
// boundary and ending with "…" when it cut, so that a message always fits
// where it is written and says that it was cut.
func Truncate(s string, max int) string {
	if len(s) <= max {
		return s
	}
	const more = "…"
	cut := max - len(more)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + more
}

// BoundedRecorder wraps an Event recorder so that every note fits the
// API's limit. Messages are built from objects users write (names, error
// lists), so no caller can promise a length.
func BoundedRecorder(rec events.EventRecorder) events.EventRecorder {
	return boundedRecorder{rec}
}

type boundedRecorder struct{ inner events.EventRecorder }

// Eventf implements events.EventRecorder.
func (b boundedRecorder) Eventf(regarding, related runtime.Object, eventtype, reason, action, note string, args ...any) {
	b.inner.Eventf(regarding, related, eventtype, reason, action, "%s", Truncate(fmt.Sprintf(note, args...), MaxEventNote))
}
