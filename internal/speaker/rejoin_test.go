package speaker

import (
	"testing"
	"time"
)

func TestRejoinState(t *testing.T) {
	const settle = 400 * time.Millisecond
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	type pass struct {
		at          time.Duration // since t0
		live, known int
		rejoins     uint64
		want        rejoinStep
	}
	for _, c := range []struct {
		name   string
		passes []pass
	}{
		{"the only speaker is never isolated", []pass{
			{0, 0, 0, 0, rejoinStep{}},
			{time.Second, 0, 0, 0, rejoinStep{}},
		}},
		{"peers known but never heard: not isolated", []pass{
			{0, 0, 2, 0, rejoinStep{}},
		}},
		{"all peers healthy", []pass{
			{0, 2, 2, 0, rejoinStep{}},
			{time.Second, 2, 2, 0, rejoinStep{}},
		}},
		{"one peer dies: not isolated, no re-announcement", []pass{
			{0, 2, 2, 0, rejoinStep{}},
			{time.Second, 1, 2, 0, rejoinStep{}},
		}},
		{"a peer comes back to a node that was never isolated: re-announce at once", []pass{
			{0, 2, 2, 0, rejoinStep{}},
			{time.Second, 1, 2, 0, rejoinStep{}},
			{2 * time.Second, 2, 2, 1, rejoinStep{reannounce: true}},
			{3 * time.Second, 2, 2, 1, rejoinStep{}},
		}},
		{"cut off, healed, both peers heard within the settle time", []pass{
			{0, 2, 2, 0, rejoinStep{}},
			{1000 * time.Millisecond, 1, 2, 0, rejoinStep{}},
			{1080 * time.Millisecond, 0, 2, 0, rejoinStep{isolated: true}},
			{3000 * time.Millisecond, 1, 2, 1, rejoinStep{again: settle}},
			{3050 * time.Millisecond, 2, 2, 2, rejoinStep{reannounce: true}},
			{3100 * time.Millisecond, 2, 2, 2, rejoinStep{}},
		}},
		{"cut off, healed, one peer died meanwhile: re-announce after the settle time", []pass{
			{0, 2, 2, 0, rejoinStep{}},
			{1000 * time.Millisecond, 0, 2, 0, rejoinStep{isolated: true}},
			{3000 * time.Millisecond, 1, 2, 1, rejoinStep{again: settle}},
			{3100 * time.Millisecond, 1, 2, 1, rejoinStep{again: 300 * time.Millisecond}},
			{3400 * time.Millisecond, 1, 2, 1, rejoinStep{reannounce: true}},
			{3500 * time.Millisecond, 1, 2, 1, rejoinStep{}},
		}},
		{"a second rejoin does not push the deferred re-announcement back", []pass{
			{0, 2, 3, 0, rejoinStep{}},
			{1000 * time.Millisecond, 0, 3, 0, rejoinStep{isolated: true}},
			{3000 * time.Millisecond, 1, 3, 1, rejoinStep{again: settle}},
			{3200 * time.Millisecond, 2, 3, 2, rejoinStep{again: 200 * time.Millisecond}},
			{3400 * time.Millisecond, 2, 3, 2, rejoinStep{reannounce: true}},
		}},
		{"isolated again before the re-announcement: dropped, and deferred again next time", []pass{
			{0, 1, 1, 0, rejoinStep{}},
			{1000 * time.Millisecond, 0, 1, 0, rejoinStep{isolated: true}},
			{2000 * time.Millisecond, 0, 2, 1, rejoinStep{isolated: true}},
			{3000 * time.Millisecond, 0, 2, 1, rejoinStep{isolated: true}},
			{4000 * time.Millisecond, 1, 2, 2, rejoinStep{again: settle}},
			{4400 * time.Millisecond, 1, 2, 2, rejoinStep{reannounce: true}},
		}},
		{"a peer deleted while isolated leaves the node alone but not isolated", []pass{
			{0, 1, 1, 0, rejoinStep{}},
			{1000 * time.Millisecond, 0, 1, 0, rejoinStep{isolated: true}},
			{2000 * time.Millisecond, 0, 0, 0, rejoinStep{}},
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var s rejoinState
			for i, p := range c.passes {
				got := s.next(t0.Add(p.at), rejoinInput{livePeers: p.live, knownPeers: p.known, rejoins: p.rejoins, settle: settle})
				if got != p.want {
					t.Fatalf("pass %d (at %v, live %d of %d, rejoins %d): got %+v, want %+v",
						i, p.at, p.live, p.known, p.rejoins, got, p.want)
				}
			}
		})
	}
}
