package lab_test

import (
	"errors"
	"testing"

	"github.com/keeperlb/keeperlb/internal/lab"
)

func TestMetricValue(t *testing.T) {
	body := `# HELP keeperlb_speaker_live_members Speakers this one sees alive.
# TYPE keeperlb_speaker_live_members gauge
keeperlb_speaker_live_members 3
keeperlb_speaker_live_members_total 9
metallb_speaker_announced{ip="198.18.0.1",node="n1"} 1
bad_value abc
`
	if v, err := lab.MetricValue(body, "keeperlb_speaker_live_members"); err != nil || v != 3 {
		t.Errorf("live members: %v %v, want 3 (not the _total series that shares the prefix)", v, err)
	}
	if _, err := lab.MetricValue(body, "metallb_speaker_announced"); !errors.Is(err, lab.ErrNoSeries) {
		t.Errorf("a labelled series is not an unlabelled one: %v", err)
	}
	if _, err := lab.MetricValue(body, "bad_value"); err == nil || errors.Is(err, lab.ErrNoSeries) {
		t.Errorf("an unparsable value must be a parse error: %v", err)
	}
}
