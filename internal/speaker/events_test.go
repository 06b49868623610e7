package speaker

import (
	"slices"
	"strings"
	"testing"

	"github.com/keeperlb/keeperlb/internal/membership"
)

func set(keys ...string) map[string]bool {
	out := map[string]bool{}
	for _, k := range keys {
		out[k] = true
	}
	return out
}

func TestL2Moves(t *testing.T) {
	gone := map[string]membership.Departure{"n2": membership.Silent, "n3": membership.Left, "n4": membership.Restarted, "n5": membership.Removed}
	departure := func(n string) membership.Departure { return gone[n] }
	all := []string{"n1", "n2", "n3", "n4", "n5", "n6"}
	cases := []struct {
		name           string
		announced, was map[string]bool
		prevOwner      map[string]string
		recorded       map[string][]string
		prevLive, live []string
		want           []l2Move
	}{
		{name: "still announced: no Event on later passes",
			announced: set("a/s"), was: set("a/s"), prevOwner: map[string]string{"a/s": "n1"}, prevLive: all, live: all},
		{name: "taken from a dead owner",
			announced: set("a/s", "a/t"), prevOwner: map[string]string{"a/s": "n2", "a/t": "n2"},
			prevLive: all, live: []string{"n1", "n6"},
			want: []l2Move{{"a/s", "n2", reasonPeerDead}, {"a/t", "n2", reasonPeerDead}}},
		{name: "taken from an owner that left, restarted, lost its Node",
			announced: set("a/s", "a/t", "a/u"), prevOwner: map[string]string{"a/s": "n3", "a/t": "n4", "a/u": "n5"},
			prevLive: all, live: []string{"n1"},
			want: []l2Move{{"a/s", "n3", reasonPeerLeft}, {"a/t", "n4", reasonPeerDead}, {"a/u", "n5", reasonPeerLeft}}},
		{name: "taken from a live owner: the candidates changed",
			announced: set("a/s"), prevOwner: map[string]string{"a/s": "n6"}, prevLive: all, live: all,
			want: []l2Move{{"a/s", "n6", reasonConfig}}},
		{name: "given away: the new owner reports, not us",
			announced: set(), was: set("a/s"), prevOwner: map[string]string{"a/s": "n1"}, prevLive: all, live: all},
		{name: "first pass after a start: the cluster names another live node, which this one outscores",
			announced: set("a/s"), recorded: map[string][]string{"a/s": {"n6"}}, live: all,
			want: []l2Move{{"a/s", "n6", reasonPeerJoined}}},
		{name: "first pass after a restart: the cluster already names this node",
			announced: set("a/s"), recorded: map[string][]string{"a/s": {"n1"}}, live: all},
		{name: "first pass: the cluster still names the dead owner",
			announced: set("a/s"), recorded: map[string][]string{"a/s": {"n2"}}, live: []string{"n1"},
			want: []l2Move{{"a/s", "n2", reasonPeerDead}}},
		{name: "a new Service: nobody announced it",
			announced: set("a/new"), prevOwner: map[string]string{"a/s": "n1"}, prevLive: all, live: all,
			want: []l2Move{{"a/new", "", reasonAssigned}}},
		{name: "elected here before but stranded (no interface), now announced, nothing recorded",
			announced: set("a/s"), prevOwner: map[string]string{"a/s": "n1"}, prevLive: all, live: all,
			want: []l2Move{{"a/s", "", reasonAssigned}}},
	}
	for _, c := range cases {
		rec := c.recorded
		got := l2Moves(l2MoveInput{self: "n1", announced: c.announced, was: c.was, prevOwner: c.prevOwner,
			prevLive: c.prevLive, live: c.live, departure: departure,
			recorded: func(s string) []string { return rec[s] }})
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

func TestL2MoveMessage(t *testing.T) {
	msg := l2MoveMessage("n1", l2Move{service: "a/s", from: "n2", reason: reasonPeerDead})
	// MetalLB's sentence first, so that matching on it keeps working.
	for _, want := range []string{`announcing from node "n1" with protocol "layer2"`, `"n2"`, reasonPeerDead} {
		if !strings.Contains(msg, want) {
			t.Errorf("%q lacks %q", msg, want)
		}
	}
	if !strings.HasPrefix(msg, `announcing from node "n1" with protocol "layer2"`) {
		t.Errorf("%q does not start with MetalLB's sentence", msg)
	}
}

func TestBGPChanges(t *testing.T) {
	departure := func(n string) membership.Departure {
		if n == "n3" {
			return membership.Left
		}
		return membership.Silent
	}
	all := []string{"n1", "n2", "n3", "n4"}
	cases := []struct {
		name            string
		advertised, was map[string]bool
		first, isolated bool
		recorded        map[string][]string
		prevLive, live  []string
		want            []bgpChange
	}{
		{name: "unchanged", advertised: set("a/s"), was: set("a/s"), recorded: map[string][]string{"a/s": {"n1", "n2"}},
			prevLive: all, live: all},
		{name: "starts advertising: counts itself and the live recorded advertisers",
			advertised: set("a/s"), was: set(), recorded: map[string][]string{"a/s": {"n2", "n4"}}, prevLive: []string{"n1", "n2", "n3"}, live: []string{"n1", "n2", "n3"},
			want: []bgpChange{{service: "a/s", node: "n1", started: true, reason: reasonConfig, advertisers: 2}}},
		{name: "stops advertising while alive",
			advertised: set(), was: set("a/s"), recorded: map[string][]string{"a/s": {"n1", "n2"}}, prevLive: all, live: all,
			want: []bgpChange{{service: "a/s", node: "n1", reason: reasonConfig, advertisers: 1}}},
		{name: "first pass after a restart, already recorded: nothing",
			advertised: set("a/s"), first: true, recorded: map[string][]string{"a/s": {"n1", "n2"}}, live: all},
		{name: "first pass, not recorded: this node's speaker started",
			advertised: set("a/s"), first: true, recorded: map[string][]string{"a/s": {"n2"}}, live: all,
			want: []bgpChange{{service: "a/s", node: "n1", started: true, reason: reasonPeerJoined, advertisers: 2}}},
		{name: "an advertiser died: the smallest live advertiser reports it",
			advertised: set("a/s", "a/t"), was: set("a/s", "a/t"),
			recorded: map[string][]string{"a/s": {"n1", "n2", "n4"}, "a/t": {"n1", "n3"}}, prevLive: all, live: []string{"n1"},
			want: []bgpChange{{service: "a/s", node: "n2", reason: reasonPeerDead, advertisers: 1},
				{service: "a/s", node: "n4", reason: reasonPeerDead, advertisers: 1},
				{service: "a/t", node: "n3", reason: reasonPeerLeft, advertisers: 1}}},
		{name: "an advertiser died: a smaller live advertiser reports it, not us",
			advertised: set("a/s"), was: set("a/s"), recorded: map[string][]string{"a/s": {"n0", "n1", "n4"}},
			prevLive: []string{"n0", "n1", "n4"}, live: []string{"n0", "n1"}},
		{name: "an isolated node (it hears no peer) reports no dead advertisers",
			advertised: set("a/s"), was: set("a/s"), isolated: true, recorded: map[string][]string{"a/s": {"n1", "n2"}},
			prevLive: all, live: []string{"n1"}},
		{name: "a node dead before this process started is not reported",
			advertised: set("a/s"), first: true, recorded: map[string][]string{"a/s": {"n1", "n4"}}, live: []string{"n1"}},
		{name: "a node already dead in the previous pass is not reported again",
			advertised: set("a/s"), was: set("a/s"), recorded: map[string][]string{"a/s": {"n1", "n4"}},
			prevLive: []string{"n1"}, live: []string{"n1"}},
	}
	for _, c := range cases {
		got := bgpChanges(bgpChangeInput{self: "n1", advertised: c.advertised, was: c.was, first: c.first, isolated: c.isolated,
			recorded: c.recorded, prevLive: c.prevLive, live: c.live, departure: departure})
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		}
	}
}

func TestBGPChangeEvent(t *testing.T) {
	for _, c := range []struct {
		change       bgpChange
		reason, want string
	}{
		{bgpChange{service: "a/s", node: "n1", started: true, reason: reasonConfig, advertisers: 3}, eventNodeAssigned,
			`announcing from node "n1" with protocol "bgp"; 3 live node(s)`},
		{bgpChange{service: "a/s", node: "n1", reason: reasonConfig, advertisers: 2}, eventNodeWithdrawn, `node "n1" stopped advertising`},
		{bgpChange{service: "a/s", node: "n2", reason: reasonPeerDead, advertisers: 2}, eventNodeWithdrawn, `node "n2" no longer advertises it with protocol "bgp" (reported by node "n1"; reason peer_dead`},
	} {
		reason, note := bgpChangeEvent("n1", c.change)
		if reason != c.reason || !strings.Contains(note, c.want) {
			t.Errorf("%+v: %s %q, want %s containing %q", c.change, reason, note, c.reason, c.want)
		}
	}
}
