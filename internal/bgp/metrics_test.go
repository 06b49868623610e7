package bgp

import (
	"log/slog"
	"maps"
	"net/netip"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestPlannedPrefixes(t *testing.T) {
	d := Desired{
		Peers: []PeerConfig{ebgp("ra", rtrV4), ebgp("rb", rtrV4), ebgp("idle", rtrV4)},
		Paths: []Path{
			{Prefix: pfx("198.19.0.10/32"), Routes: []Route{route("ra", 0), route("rb", 200)}},
			{Prefix: pfx("198.19.0.11/32"), Routes: []Route{route("ra", 0)}},
			{Prefix: pfx("2001:db8::/64"), Routes: []Route{route("rb", 0)}},
		},
	}
	want := map[string]int{"ra": 2, "rb": 2}
	if got := plannedPrefixes(d); !maps.Equal(got, want) {
		t.Errorf("plannedPrefixes = %v, want %v", got, want)
	}
	if got := plannedPrefixes(Desired{}); len(got) != 0 {
		t.Errorf("nothing planned: %v", got)
	}
}

// series gathers reg into name -> label set (as "k=v,k=v") -> value.
func series(t *testing.T, reg *prometheus.Registry) map[string]map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]float64{}
	for _, mf := range mfs {
		m := map[string]float64{}
		for _, metric := range mf.GetMetric() {
			key := ""
			for i, l := range metric.GetLabel() {
				if i > 0 {
					key += ","
				}
				key += l.GetName() + "=" + l.GetValue()
			}
			m[key] = metricValue(metric)
		}
		out[mf.GetName()] = m
	}
	return out
}

// TestCollector checks what each session exports: MetalLB's BGP series for
// every session, the BFD series only for sessions with BFD, counters that
// never go down when the engine's counts start again, and peer labels as
// MetalLB writes them (addr:port for BGP, addr for BFD).
func TestCollector(t *testing.T) {
	a := netip.MustParseAddr("198.51.100.1")
	b := netip.MustParseAddr("2001:db8::1")
	sessions := []SessionState{
		{Peer: "ra", Address: a, Port: 179, Up: true, Advertised: 2, Planned: 3,
			Sent:     MessageCounts{Opens: 1, Updates: 4, Keepalives: 10, Notifications: 0, RouteRefreshes: 0, Total: 15},
			Received: MessageCounts{Opens: 1, Updates: 0, Keepalives: 9, Total: 10},
			BFD:      "Up", BFDSent: 100, BFDReceived: 99, BFDUps: 1},
		{Peer: "rb", Address: b, Port: 1179, State: "Active", Planned: 1},
	}
	reg := prometheus.NewRegistry()
	c := newCollector(func() []SessionState { return sessions })
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	pa, pb, ba := "peer=198.51.100.1:179", "peer=[2001:db8::1]:1179", "peer=198.51.100.1"
	expect := func(step string, want map[string]map[string]float64) {
		t.Helper()
		got := series(t, reg)
		for name, w := range want {
			if !maps.Equal(got[name], w) {
				t.Errorf("%s: %s = %v, want %v", step, name, got[name], w)
			}
		}
	}
	expect("first scrape", map[string]map[string]float64{
		"metallb_bgp_session_up":               {pa: 1, pb: 0},
		"metallb_bgp_announced_prefixes_total": {pa: 2, pb: 0},
		"metallb_bgp_pending_prefixes_total":   {pa: 3, pb: 1},
		"metallb_bgp_updates_total":            {pa: 4, pb: 0},
		"metallb_bgp_opens_received":           {pa: 1, pb: 0},
		"metallb_bgp_keepalives_sent":          {pa: 10, pb: 0},
		"metallb_bgp_keepalives_received":      {pa: 9, pb: 0},
		"metallb_bgp_total_sent":               {pa: 15, pb: 0},
		"metallb_bgp_total_received":           {pa: 10, pb: 0},
		"metallb_bfd_session_up":               {ba: 1},
		"metallb_bfd_control_packet_output":    {ba: 100},
		"metallb_bfd_control_packet_input":     {ba: 99},
		"metallb_bfd_session_up_events":        {ba: 1},
		"metallb_bfd_session_down_events":      {ba: 0},
		"keeperlb_bfd_session_state": {
			ba + ",state=Down": 0, ba + ",state=Init": 0, ba + ",state=Up": 1, ba + ",state=AdminDown": 0},
	})

	// ra is reconfigured: the engine retires its counts, GoBGP starts
	// again from zero, the exported counters go on (even where the new
	// count is back where the old one was: one OPEN); BFD is Down now,
	// and its up and down events, which the engine keeps, are not added
	// twice.
	c.retire(sessions[0])
	sessions[0].Sent = MessageCounts{Opens: 1, Updates: 1, Keepalives: 2, Total: 4}
	sessions[0].Received = MessageCounts{Opens: 1, Keepalives: 5, Total: 6}
	sessions[0].BFD, sessions[0].BFDSent, sessions[0].BFDReceived, sessions[0].BFDDowns = "Down", 5, 0, 1
	expect("after a reset", map[string]map[string]float64{
		"metallb_bgp_updates_total":         {pa: 5, pb: 0},
		"metallb_bgp_opens_sent":            {pa: 2, pb: 0},
		"metallb_bgp_total_sent":            {pa: 19, pb: 0},
		"metallb_bgp_keepalives_received":   {pa: 14, pb: 0},
		"metallb_bfd_session_up":            {ba: 0},
		"metallb_bfd_control_packet_output": {ba: 105},
		"metallb_bfd_control_packet_input":  {ba: 99},
		"metallb_bfd_session_down_events":   {ba: 1},
		"metallb_bfd_session_up_events":     {ba: 1},
		"keeperlb_bfd_session_state": {
			ba + ",state=Down": 1, ba + ",state=Init": 0, ba + ",state=Up": 0, ba + ",state=AdminDown": 0},
	})

	// A count that goes down without a retirement (GoBGP reset it on its
	// own) is taken as a reset too.
	sessions[0].Received.Keepalives = 3
	expect("unannounced reset", map[string]map[string]float64{
		"metallb_bgp_keepalives_received": {pa: 17, pb: 0},
	})
}

// TestBFDTransitions checks the up and down events read from GoBGP's BFD
// log records: a down counts only after an up, repeats count once, and
// counts survive the session being removed (a reconfiguration).
func TestBFDTransitions(t *testing.T) {
	tr := newTracker(nil)
	defer tr.stop()
	pc := ebgp("r", rtrV4)
	tr.add(pc)
	log := slog.New(&logHook{next: slog.DiscardHandler, tracker: tr})
	bfd := func(msg string) { log.Debug(msg, "Topic", "bfd", "Peer", rtrV4.String()) }
	bfd("Set state to DOWN") // down before any up: not an event
	bfd("Set state to INIT")
	bfd("Set state to UP")
	bfd("Set state to UP") // no transition
	bfd("Expired")
	bfd("Set state to DOWN")
	tr.remove(pc.Address)
	tr.add(pc)
	bfd("Set state to UP")
	if ups, downs := tr.bfdEvents(rtrV4); ups != 2 || downs != 1 {
		t.Errorf("events: %d up, %d down; want 2 up, 1 down", ups, downs)
	}
	if ups, downs := tr.bfdEvents(netip.MustParseAddr("198.51.100.9")); ups != 0 || downs != 0 {
		t.Errorf("events of a peer never heard of: %d, %d", ups, downs)
	}
}
