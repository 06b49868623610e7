package speaker

import (
	"fmt"
	"slices"

	"github.com/keeperlb/keeperlb/internal/membership"
)

// Event reasons on Services. nodeAssigned is MetalLB's (its speaker emits
// it when it starts announcing a Service), kept so that tooling that
// watches for it keeps working; the message adds the previous node and why.
const (
	eventNodeAssigned = "nodeAssigned"
	// eventNodeWithdrawn: a node stopped advertising a Service over BGP
	// while other nodes may go on (MetalLB has no Event for this).
	eventNodeWithdrawn = "nodeWithdrawn"
)

// reasonAssigned is the "why" of a Service's first layer 2 announcer: it
// was announced by no node before (new, just got its address, or just got
// a serving endpoint). It is not an ownership change and not a label value
// of keeperlb_layer2_ownership_changes_total.
const reasonAssigned = "assigned"

// l2Move is a change of a Service's layer 2 announcing node, as the node
// that now announces it reports it.
type l2Move struct {
	service string
	from    string // previous announcer, "" when there was none
	reason  string // an ownership-change reason, or reasonAssigned
}

// l2MoveInput is what l2Moves decides from.
type l2MoveInput struct {
	self string
	// announced are the Services this node announces after this pass,
	// was those it announced after the previous one.
	announced, was map[string]bool
	// prevOwner is each Service's elected announcer in the previous pass
	// of this process; a Service missing from it was not elected then (a
	// new Service, or the first pass since the speaker started).
	prevOwner map[string]string
	// recorded returns the nodes that the Service's ServiceL2Status
	// objects name: what the cluster says about the announcer, which
	// outlives this process.
	recorded       func(service string) []string
	prevLive, live []string
	departure      func(node string) membership.Departure
}

// l2Moves returns the announcer changes this node reports, one Event each,
// sorted by Service. Only the new announcer reports a change: it is alive,
// it is one node, and the previous owner may be dead. A change is reported
// once, in the pass that starts the announcement: a Service already
// announced in the previous pass is not reported again. When this process
// does not know the previous announcer (its first pass, or a Service it
// did not see elected), the ServiceL2Status objects say who it was; if
// they already name this node, nothing changed (a restarted speaker taking
// up its own Services again) and nothing is reported.
func l2Moves(in l2MoveInput) []l2Move {
	var out []l2Move
	for svc := range in.announced {
		if in.was[svc] {
			continue
		}
		from, known := in.prevOwner[svc]
		if !known || from == in.self {
			// Elected here before but not announced (no eligible
			// interface), or unknown to this process: ask the
			// cluster.
			rec := in.recorded(svc)
			if slices.Contains(rec, in.self) {
				continue
			}
			from = ""
			for _, n := range rec {
				if from == "" || n < from {
					from = n
				}
			}
		}
		out = append(out, l2Move{service: svc, from: from,
			reason: moveReason(in.self, from, in.prevLive, in.live, in.departure)})
	}
	slices.SortFunc(out, func(a, b l2Move) int {
		if a.service < b.service {
			return -1
		}
		if a.service > b.service {
			return 1
		}
		return 0
	})
	return out
}

// moveReason classifies a move from from to self, as ownershipChanges
// does for the IPs: gone (dead or left) when from is not live, joined when
// self was not live in the previous pass (it just started, or was cut
// off), else the candidates changed.
func moveReason(self, from string, prevLive, live []string, departure func(string) membership.Departure) string {
	switch {
	case from == "":
		return reasonAssigned
	case !slices.Contains(live, from):
		switch departure(from) {
		case membership.Left, membership.Removed:
			return reasonPeerLeft
		default:
			return reasonPeerDead
		}
	case !slices.Contains(prevLive, self):
		return reasonPeerJoined
	default:
		return reasonConfig
	}
}

// l2MoveMessage is the note of a move's nodeAssigned Event: MetalLB's
// sentence, then the previous node and why.
func l2MoveMessage(self string, m l2Move) string {
	head := fmt.Sprintf("announcing from node %q with protocol %q", self, protocolLayer2)
	switch m.reason {
	case reasonAssigned:
		return head + "; no node announced it before (reason assigned: new, or it just got an address or a serving endpoint)"
	case reasonPeerDead:
		return fmt.Sprintf("%s; taken over from node %q (reason %s: its heartbeats stopped)", head, m.from, m.reason)
	case reasonPeerLeft:
		return fmt.Sprintf("%s; taken over from node %q (reason %s: it stopped, lost its configuration or its Node)", head, m.from, m.reason)
	case reasonPeerJoined:
		return fmt.Sprintf("%s; taken over from node %q (reason %s: this node joined and outscores it)", head, m.from, m.reason)
	default:
		return fmt.Sprintf("%s; taken over from node %q (reason %s: the candidates changed: configuration, node labels or conditions, or serving endpoints)", head, m.from, m.reason)
	}
}

// bgpChange is a change of the set of nodes advertising a Service over
// BGP, as one node reports it.
type bgpChange struct {
	service string
	node    string // the node that started or stopped advertising
	started bool
	reason  string // an ownership-change reason
	// advertisers is how many live nodes advertise the Service after the
	// change, as this node sees it (itself, and the nodes its
	// ServiceBGPStatus objects name).
	advertisers int
}

// bgpChangeInput is what bgpChanges decides from.
type bgpChangeInput struct {
	self string
	// advertised are the Services this node advertises to at least one
	// peer after this pass, was those after the previous pass; first
	// says there was no previous pass in this process.
	advertised, was map[string]bool
	first           bool
	// isolated says this node hears no peer: it is more likely cut off
	// itself than every other node dead, so it reports no dead ones.
	isolated bool
	// recorded are, per Service, the nodes its ServiceBGPStatus objects
	// name (this node's included, as last written).
	recorded       map[string][]string
	prevLive, live []string
	departure      func(node string) membership.Departure
}

// bgpChanges returns the changes of BGP advertisers this node reports,
// one Event each, sorted by Service then node.
//
//   - A node that starts advertising a Service reports it, once: in the
//     pass that starts it. In its first pass a speaker reports only the
//     Services its ServiceBGPStatus objects do not already list (a restart
//     changes nothing).
//   - A live node that stops advertising a Service reports it.
//   - A node that dies cannot: the live advertiser of the Service with the
//     smallest name reports it, in the pass that sees the node go from live
//     to not live (so once per death, and never from a process that did not
//     see it alive: a restart does not repeat it). A node that hears no
//     peer reports none: it is probably the one cut off.
func bgpChanges(in bgpChangeInput) []bgpChange {
	alive := func(nodes []string, self bool) int {
		n := 0
		for _, x := range nodes {
			if x != in.self && slices.Contains(in.live, x) {
				n++
			}
		}
		if self {
			n++
		}
		return n
	}
	var out []bgpChange
	for svc := range in.advertised {
		if in.was[svc] || (in.first && slices.Contains(in.recorded[svc], in.self)) {
			continue
		}
		reason := reasonConfig
		if in.first || !slices.Contains(in.prevLive, in.self) {
			reason = reasonPeerJoined
		}
		out = append(out, bgpChange{service: svc, node: in.self, started: true, reason: reason,
			advertisers: alive(in.recorded[svc], true)})
	}
	for svc := range in.was {
		if !in.advertised[svc] {
			out = append(out, bgpChange{service: svc, node: in.self, reason: reasonConfig,
				advertisers: alive(in.recorded[svc], false)})
		}
	}
	if !in.first && !in.isolated {
		for svc := range in.advertised {
			rec := in.recorded[svc]
			reporter := in.self
			for _, n := range rec {
				if slices.Contains(in.live, n) && n < reporter {
					reporter = n
				}
			}
			if reporter != in.self {
				continue
			}
			for _, n := range rec {
				if n == in.self || slices.Contains(in.live, n) || !slices.Contains(in.prevLive, n) {
					continue
				}
				reason := reasonPeerDead
				if d := in.departure(n); d == membership.Left || d == membership.Removed {
					reason = reasonPeerLeft
				}
				out = append(out, bgpChange{service: svc, node: n, reason: reason, advertisers: alive(rec, true)})
			}
		}
	}
	slices.SortFunc(out, func(a, b bgpChange) int {
		switch {
		case a.service != b.service:
			if a.service < b.service {
				return -1
			}
			return 1
		case a.node < b.node:
			return -1
		case a.node > b.node:
			return 1
		}
		return 0
	})
	return out
}

// bgpChangeEvent is the reason and note of a change's Event.
func bgpChangeEvent(self string, c bgpChange) (reason, note string) {
	switch {
	case c.started:
		why := "it is a candidate now: configuration, node labels or serving endpoints changed"
		if c.reason == reasonPeerJoined {
			why = "this node's speaker started"
		}
		return eventNodeAssigned, fmt.Sprintf("announcing from node %q with protocol %q; %d live node(s) advertise it now (reason %s: %s)",
			self, protocolBGP, c.advertisers, c.reason, why)
	case c.node == self:
		return eventNodeWithdrawn, fmt.Sprintf("node %q stopped advertising it with protocol %q; %d live node(s) advertise it now (reason %s: it is no candidate now: configuration, node labels or serving endpoints changed)",
			self, protocolBGP, c.advertisers, c.reason)
	default:
		why := "its heartbeats stopped"
		if c.reason == reasonPeerLeft {
			why = "it stopped, lost its configuration or its Node"
		}
		return eventNodeWithdrawn, fmt.Sprintf("node %q no longer advertises it with protocol %q (reported by node %q; reason %s: %s; its routers drop its routes when its sessions end); %d live node(s) advertise it now",
			c.node, protocolBGP, self, c.reason, why, c.advertisers)
	}
}
