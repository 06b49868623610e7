package kubeobj

import (
	"strings"
	"testing"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

func TestTruncate(t *testing.T) {
	for _, tc := range []struct {
		in   string
		max  int
		want string
	}{
		{"short", 10, "short"},
		{"exactly10!", 10, "exactly10!"},
		{"0123456789abc", 10, "0123456…"},
		{"ééééé", 7, "éé…"}, // never half a character
	} {
		got := Truncate(tc.in, tc.max)
		if got != tc.want || len(got) > tc.max || !utf8.ValidString(got) {
			t.Errorf("Truncate(%q, %d) = %q, want %q", tc.in, tc.max, got, tc.want)
		}
	}
}

type noteRecorder struct{ notes []string }

func (r *noteRecorder) Eventf(_, _ runtime.Object, _, _, _, note string, args ...any) {
	if len(args) != 1 || note != "%s" {
		panic("BoundedRecorder must pass a formatted note")
	}
	r.notes = append(r.notes, args[0].(string))
}

func TestBoundedRecorder(t *testing.T) {
	inner := &noteRecorder{}
	rec := BoundedRecorder(inner)
	rec.Eventf(&corev1.Service{}, nil, corev1.EventTypeWarning, "R", "A", "bad objects: %s", strings.Repeat("x", 5000))
	rec.Eventf(&corev1.Service{}, nil, corev1.EventTypeNormal, "R", "A", "%d%%", 5)
	if len(inner.notes) != 2 || len(inner.notes[0]) > MaxEventNote || !strings.HasPrefix(inner.notes[0], "bad objects: xxx") || inner.notes[1] != "5%" {
		t.Errorf("notes %q", inner.notes)
	}
}
