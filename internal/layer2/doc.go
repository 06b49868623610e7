// Package layer2 is the layer 2 announcer of the speaker: it makes this node
// answer ARP requests (IPv4) and neighbor solicitations (IPv6) for the
// Service IPs it owns, and tells the network when it takes one over.
//
// # Shape
//
// The speaker decides ownership (package election) and hands the result to
// Announcer.Set, level-based: the full set of owned IPs and the interfaces to
// announce each on, every time. Set compares with what it had, opens or
// closes the per-interface sockets, and returns once answering matches the
// new set: a removed IP is never answered after Set returns, and a new one
// has had its first announcement sent.
//
// The node's kernel does not own the Service IPs (they are not assigned to
// any interface; kube-proxy or nftables only rewrites traffic to them), so
// the kernel never answers for them and the announcer must. It uses one
// AF_PACKET socket per interface for ARP and one for IPv6, each with a BPF
// pre-filter so it wakes up only for requests, and writes whole Ethernet
// frames. It therefore needs no IP address of its own on the interface, in
// the Service IP's subnet or at all, and only CAP_NET_RAW. For IPv6 it joins
// the Ethernet group of each owned IP's solicited-node address, so that a
// NIC with multicast filtering delivers the solicitations.
//
// # Why the decisions are pure functions
//
// Every frame comes from the network, so from anyone. What to do with one,
// answer or stay silent, and with which bytes, is decided by replyToARP and
// replyToNS: pure functions from the received frame, the interface's
// address and the set of owned IPs to a reply. They check what RFC 826 and
// RFC 4861 require (hop limit 255, checksum, option lengths, no answer to
// our own frames or to someone else's announcement) and never answer for an
// IP that is not owned. Being pure, they are tested on exact wire bytes
// (some captured from a Linux kernel) and fuzzed; the socket code around
// them only reads, calls and writes.
//
// # Why gratuitous announcements are repeated
//
// When an IP moves to this node, clients still have the old node's MAC in
// their neighbour caches. A gratuitous ARP (a request and a reply, both
// broadcast, since hosts differ in which they honour) or an unsolicited
// neighbor advertisement with the Override flag replaces it without anyone
// asking. A single frame can be lost, and Linux ignores a second update of
// the same entry within its ARP locktime (1 s by default); so a takeover
// sends Options.GratuitousRepeats bursts Options.GratuitousInterval apart
// (default 3, 1.1 s). Only existing entries are updated (Linux arp_accept=0
// is the default), which is exactly the case that matters: hosts that never
// talked to the IP will ask and get an answer. Options.Refresh optionally
// re-announces every owned IP periodically, for switches whose forwarding
// tables age out a silent MAC. A node that hears none of its peers sends no
// repeats (Announcer.SetIsolated): it may be the one that is cut off, and a
// repeat sent when its link comes back would pull clients away from the
// real owners.
//
// # Failures
//
// An interface that is missing or down, or whose socket fails (interface
// deleted or set down), is logged once and retried with backoff; when it
// works again the announcer announces all its IPs again, since the switch
// may have forgotten the node meanwhile. Interfaces are also re-checked
// every few seconds for a changed index or MAC address.
//
// # Network namespaces
//
// The Announcer works in the network namespace New was called in: it keeps
// a handle on it and opens every socket there, also from its background
// goroutine. The speaker runs in the node's namespace and never switches
// (no CAP_SYS_ADMIN needed); tests call New inside netns.Do to run several
// nodes in one process, and may call Set from anywhere.
package layer2
