package speaker

import (
	"net/netip"
	"slices"

	"github.com/keeperlb/keeperlb/internal/election"
	"github.com/keeperlb/keeperlb/internal/membership"
)

// Why a layer 2 IP moved between nodes: the reason label of
// keeperlb_layer2_ownership_changes_total.
const (
	// reasonPeerDead: the previous owner's heartbeats stopped (it died or
	// was cut off), or it came back as a new process without a goodbye.
	reasonPeerDead = "peer_dead"
	// reasonPeerLeft: the previous owner said it was leaving (a speaker
	// that stops says so), or stopped being a candidate: it has no
	// configuration, or its Node is gone.
	reasonPeerLeft = "peer_left"
	// reasonPeerJoined: a node that came alive outscores the previous
	// owner (rendezvous hashing moves only those IPs).
	reasonPeerJoined = "peer_joined"
	// reasonConfig: both are alive and the candidates changed: the
	// configuration, a Node's labels or conditions, or where the serving
	// endpoints run.
	reasonConfig = "config"
)

// ownershipReasons are exported at 0 from the start.
var ownershipReasons = []string{reasonPeerDead, reasonPeerLeft, reasonPeerJoined, reasonConfig}

// owners maps every IP of an election to its announcing node.
func owners(res election.L2Result) map[netip.Addr]string {
	out := make(map[netip.Addr]string, len(res.Announcements))
	for _, a := range res.Announcements {
		out[a.IP] = a.Node
	}
	return out
}

// ownershipChanges counts, by reason, the moves of IPs between two passes
// that this node accounts for. Every speaker sees every move, so each is
// counted by one node only: the new owner when the previous one is not
// live (it cannot count, or is leaving), the previous owner otherwise (it
// knows whether the new one just joined). An IP that starts or stops being
// announced did not move. departure says why a node that is not live is
// gone.
func ownershipChanges(self string, prev, next map[netip.Addr]string, prevLive, live []string, departure func(string) membership.Departure) map[string]int {
	out := map[string]int{}
	for ip, to := range next {
		from := prev[ip]
		if from == "" || from == to {
			continue
		}
		switch {
		case to == self && !slices.Contains(live, from):
			switch departure(from) {
			case membership.Left, membership.Removed:
				out[reasonPeerLeft]++
			default:
				out[reasonPeerDead]++
			}
		case from == self:
			if slices.Contains(prevLive, to) {
				out[reasonConfig]++
			} else {
				out[reasonPeerJoined]++
			}
		}
	}
	return out
}
