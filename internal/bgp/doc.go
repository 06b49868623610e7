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
// GoBGP opens its sockets from its own goroutines, so the process that
// runs a Speaker must already be in the node's network namespace.
package bgp
