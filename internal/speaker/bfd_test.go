package speaker

import (
	"testing"

	"github.com/keeperlb/keeperlb/internal/bgp"
)

// TestBFDSettling covers when the speaker keeps polling for BFD state.
func TestBFDSettling(t *testing.T) {
	peers := []bgp.PeerConfig{{Name: "fast", BFD: bgp.BFDConfig{Enabled: true}}, {Name: "plain"}}
	for _, c := range []struct {
		name     string
		sessions []bgp.SessionState
		want     bool
	}{
		{"no sessions", nil, false},
		{"BFD session up but BFD not enabled yet", []bgp.SessionState{{Peer: "fast", Up: true}}, true},
		{"BFD coming up", []bgp.SessionState{{Peer: "fast", Up: true, BFD: "Init"}}, true},
		{"BFD up", []bgp.SessionState{{Peer: "fast", Up: true, BFD: "Up"}}, false},
		{"BGP down: its coming up triggers a pass anyway", []bgp.SessionState{{Peer: "fast", BFD: "Down"}}, false},
		{"no BFD configured", []bgp.SessionState{{Peer: "plain", Up: true}}, false},
		{"a session of an unknown peer", []bgp.SessionState{{Peer: "gone", Up: true}}, false},
	} {
		if got := bfdSettling(peers, c.sessions); got != c.want {
			t.Errorf("%s: bfdSettling = %v, want %v", c.name, got, c.want)
		}
	}
}
