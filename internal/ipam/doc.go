// Package ipam is KeeperLB's address allocator: it decides which
// load-balancer addresses each Service gets from the configured
// IPAddressPools. It is pure bookkeeping (no I/O, no clock, no randomness,
// no global state) and every result is a function of the sequence of
// calls alone, never of Go map iteration order.
//
// An Allocator is not safe for concurrent use; the controller serialises
// calls with a mutex of its own.
//
// # Families
//
// The families a Service wants follow spec.ipFamilyPolicy: SingleStack
// wants its primary family (Families[0]); RequireDualStack wants both,
// from one pool, or fails; PreferDualStack wants both when one candidate
// pool can give both and otherwise settles for the primary family. A
// PreferDualStack Service that holds one family is given the other on a
// later Ensure once its pool can supply it, without moving the address it
// has. Assignment.IPs are in the Service's family order.
//
// # Requested addresses
//
// RequestedIPs (the loadBalancerIPs annotation or spec.loadBalancerIP)
// must be at most one per family, each of a family the Service wants; a
// RequireDualStack Service must request both and a SingleStack one only
// its primary. All must lie in one pool, which must be the named pool when
// Service.Pool is set and whose serviceAllocation must select the Service;
// autoAssign does not matter, and avoidBuggyIPs makes IPv4 .0 and .255
// unavailable. Each must be free or shareable (see Sharing). The Service
// gets exactly the requested addresses and gives up anything else it held.
//
// # Keeping addresses
//
// Without requested addresses, a Service keeps what it holds in the
// allocator or, when the allocator does not know it (a restarted
// controller), the addresses in Service.Current. Each address is judged on
// its own and kept when it is of a wanted family, lies in an existing pool
// (the named one, if Service.Pool is set) whose serviceAllocation selects
// the Service, is not excluded by avoidBuggyIPs, and is shareable with its
// other holders under the Service's current ports and keys. autoAssign
// false does not evict anyone. All kept addresses come from one pool: the
// primary family's address decides which. A wanted family that is missing
// is then added from that same pool; when that is impossible a
// RequireDualStack Service gets a fresh allocation instead (or an error),
// while the others keep what they have. When nothing can be kept the
// Service gets a fresh allocation.
//
// On a controller restart every Service that has addresses in its status
// must be passed to Ensure, with Current set, before any Service without
// addresses: that is what stops a new Service from being handed an address
// an existing one already announces.
//
// # Pool order
//
// A fresh allocation tries, when Service.Pool is set, that pool alone (it
// must exist and select the Service; autoAssign is ignored). Otherwise it
// tries the pools with autoAssign true whose serviceAllocation selects the
// Service, ordered by priority (lower first; 0, the default, after every
// positive value), ties broken by pool name; then the autoAssign pools
// without a serviceAllocation, by name. A serviceAllocation selects a
// Service when (it lists no namespaces and no namespace selectors, or the
// namespace is listed, or a namespace selector matches the namespace's
// labels) and (it has no service selectors, or one matches the Service's
// labels). The first pool able to give every wanted family wins; a
// PreferDualStack Service first looks for a pool giving both, then for
// the first giving the primary family.
//
// Within a pool, a Service with a sharing key first joins the
// lowest-addressed address of the family that is already shared under that
// key and whose holders all accept it. Otherwise it takes the lowest free
// address: ranges in ascending order, skipping IPv4 .0 and .255 when
// avoidBuggyIPs is set.
//
// # Sharing
//
// Two Services may hold the same address only if both have the same
// non-empty sharing key (allow-shared-ip), the same backend key (so an
// externalTrafficPolicy Cluster Service never shares with a Local one, nor
// two Local Services with different pod selectors), and no (protocol,
// port) pair in common. Protocols are compared exactly as written.
//
// # Configuration changes
//
// SetPools keeps every held address that is still valid under the new
// pools, judged with the namespace and labels remembered from the
// Service's last Ensure: assignable in its pool, the pool selecting the
// Service, and (as in Ensure) the same pool as the Service's other kept
// address. A holding whose addresses now belong to a pool with another
// name is kept and reported under the new name. Addresses that fail are
// released. SetPools returns the keys of Services whose holding was
// dropped, lost one of its addresses, or was renamed, plus
// PreferDualStack Services holding one family whose pool can now give the
// other, so the controller re-runs Ensure for exactly those (and,
// separately, for Services that hold nothing yet). A RequireDualStack
// Service left with one family keeps it only until that Ensure.
//
// # Errors
//
// Ensure returns an *Error whose Reason classifies the failure and whose
// Message names the pools, addresses and Services involved. After an error
// the Service holds nothing.
//
// # Cost
//
// Each (pool, family) numbers its assignable addresses densely from 0 in
// address order (128-bit arithmetic, a binary search over the ranges, and
// avoidBuggyIPs handled by arithmetic rather than by splitting ranges),
// and keeps the numbers in use, with their holders, in a size-augmented
// treap. Finding the lowest free address is one descent of that tree,
// O(log n) for n addresses in use, whatever the pool size; looking up a
// held address is O(log ranges + log n). Memory grows with the addresses
// in use (a few hundred bytes each), so a /64 or /48 pool costs nothing
// until used. Usage is O(1). Joining a shared address scans the addresses
// already shared under the same keys in that pool, skipped outright when
// one of the Service's ports is taken on all of them. SetPools rebuilds
// the indexes in O(n log n).
package ipam
