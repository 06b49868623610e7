// Package bgp announces Service addresses to BGP routers from one node.
//
// It has two halves that meet in [Desired]:
//
//   - [Plan] is pure. From the validated configuration, the node it runs on
//     and the Services, it computes the sessions this node opens and, for
//     every prefix, the peers it goes to with the communities and local
//     preference each peer gets. It never does I/O, so every rule of the
//     BGPPeer and BGPAdvertisement contract is table-tested, and a field it
//     cannot honour comes back as a [Problem] naming the object and field
//     instead of being dropped.
//   - [Speaker] is the engine, an embedded GoBGP server. [Speaker.Apply]
//     moves it to a Desired state by difference: it adds, replaces and
//     deletes only the sessions and paths that changed, so a change to one
//     BGPPeer or one Service never disturbs the others.
//
// One GoBGP path per prefix lives in the RIB. What differs between peers
// (whether the prefix goes to a peer at all, its communities, its local
// preference, the next hop of the family a session does not natively
// carry) lives in one export policy that the engine rebuilds from Desired:
// for each peer and each distinct set of attributes, a statement matching
// that peer and a prefix set. Received routes are rejected on import; a
// node never learns or re-advertises routes.
//
// Engine behaviour worth knowing:
//
//   - The speaker only connects out (GoBGP listens on no port), so it does
//     not clash with another BGP daemon on the host. Connection attempts
//     repeat every connectTime (default 5 s, not GoBGP's 120 s), and a
//     dropped session is retried after 2 s (GoBGP: 30 s).
//   - BFD (GoBGP's, single hop, asynchronous, UDP 3784) is enabled on a
//     session once it is first established: FRR re-creates its BFD session
//     when the BGP session comes up, and a BFD session already Up here
//     would take that for a failure and reset the new BGP session.
//   - Close is graceful: sessions with graceful restart are closed without
//     a NOTIFICATION, so routers keep the routes (stale) until the next
//     speaker re-announces them and sends End-of-RIB. The first Apply of a
//     new speaker must therefore carry the full state: End-of-RIB follows
//     the routes present when a session comes up, and the router then
//     drops every stale route that was not re-announced.
//   - Why a session is down is reported per session (SessionState.Reason):
//     refused, no answer, TCP-MD5 password mismatch (the router silently
//     drops segments, so a timeout with a password set), ASN mismatch,
//     hold timer expired, BFD down, ... GoBGP drops a NOTIFICATION received
//     before a session is established without reporting its code; when a
//     router refuses the OPEN, the engine opens one probe connection, sends
//     the same OPEN and reads the code (bad peer AS, bad BGP identifier).
//   - The metrics are MetalLB's: metallb_bgp_session_up,
//     _updates_total, _announced_prefixes_total and _pending_prefixes_total
//     as its native mode has them, the message counters of its FRR mode
//     (metallb_bgp_opens_sent, _keepalives_received, ...), labelled
//     peer="addr:port", and for sessions with BFD metallb_bfd_session_up,
//     _control_packet_input/_output and _session_up/_down_events,
//     labelled peer="addr", plus keeperlb_bfd_session_state. GoBGP forgets
//     a session's counts when it is reconfigured; the engine carries them
//     over, so the counters never go down. GoBGP counts no BFD
//     transitions: they are read from its BFD's log records. The list,
//     with meanings, is docs/metrics.md.
//
// GoBGP opens its sockets from its own goroutines, so the process that
// runs a Speaker must already be in the node's network namespace.
package bgp
