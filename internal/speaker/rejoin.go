package speaker

import "time"

// rejoinState decides, pass after pass, whether this node is isolated (it
// hears none of its peers) and when it re-announces its IPs after peers come
// back. It is pure: the reconciler feeds it what membership says.
//
// A node that was not isolated re-announces as soon as a peer is heard again
// after a long silence: that peer has probably announced some of this
// node's IPs meanwhile. A node that was isolated is more likely the one that
// was cut off, and its view is the stale one: at the first heartbeat it hears
// it still owns the IPs of every peer not yet heard, and re-announcing them
// would pull clients away from their real owners. It waits until it has
// heard every known peer again, or for one liveness timeout after the first
// rejoin (by then every peer still alive has been heard), and then
// re-announces what it owns in the settled view.
type rejoinState struct {
	// heard is set once a peer has been heard alive: a node that never
	// heard one (the only speaker) is alone by design, not isolated.
	heard bool
	// wasIsolated is set while isolated and cleared by the deferred
	// re-announcement.
	wasIsolated bool
	// rejoins is membership's Rejoins when last acted on.
	rejoins uint64
	// pendingAt is when a deferred re-announcement is due; zero: none.
	pendingAt time.Time
}

// rejoinInput is what membership says in one pass.
type rejoinInput struct {
	// livePeers and knownPeers count the peers (this node excluded) alive
	// now and known from the Node objects.
	livePeers, knownPeers int
	// rejoins is membership's Rejoins counter.
	rejoins uint64
	// settle is the liveness timeout.
	settle time.Duration
}

// rejoinStep is what the pass must do.
type rejoinStep struct {
	// isolated tells the announcer to send no repeats.
	isolated bool
	// reannounce asks for a fresh gratuitous burst of every owned IP.
	reannounce bool
	// again, when positive, asks for another pass after that long, for a
	// deferred re-announcement.
	again time.Duration
}

// next advances the state by one pass at now.
func (s *rejoinState) next(now time.Time, in rejoinInput) rejoinStep {
	if in.livePeers > 0 {
		s.heard = true
	}
	st := rejoinStep{isolated: s.heard && in.knownPeers > 0 && in.livePeers == 0}
	if st.isolated {
		s.wasIsolated = true
	}
	if in.rejoins != s.rejoins {
		s.rejoins = in.rejoins
		switch {
		case !s.wasIsolated:
			st.reannounce = true
		case s.pendingAt.IsZero():
			s.pendingAt = now.Add(in.settle)
		}
	}
	if s.pendingAt.IsZero() {
		return st
	}
	switch {
	case st.isolated:
		// Everyone went silent again; the next rejoin starts over.
		s.pendingAt = time.Time{}
	case in.livePeers >= in.knownPeers || !now.Before(s.pendingAt):
		st.reannounce = true
		s.pendingAt = time.Time{}
		s.wasIsolated = false
	default:
		st.again = s.pendingAt.Sub(now)
	}
	return st
}
