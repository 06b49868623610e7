// Package lab builds the network-namespace lab that the tests, benchmarks,
// the demo and `keeperlb lab` run KeeperLB in: real Linux network stacks on a
// real bridge, and a real kube-apiserver reachable from all of them.
//
// # Topology
//
// Lab K (1..MaxIndex, unique among running labs) is named kl-lab<K>:
//
//	               root namespace: the test process, the controller,
//	               kube-apiserver on 198.18.K.254
//	                    | kl-labK-host (veth)
//	kl-labK-sw:  [================ br0 ================]   (switch)
//	               |           |           |         |
//	            node1 .. nodeN           client    router ---eth1--- far
//	            (kl-labK-nodeI)       (kl-labK-client)  (kl-labK-router) (kl-labK-far)
//
// Every host is a namespace with lo and eth0 (a veth whose peer p-<host> is
// a port of br0). The bridge has STP, forwarding delay, multicast snooping
// and bridge-netfilter off. The router and the far client exist only with
// Options.Router; the router forwards (ip_forward, IPv6 forwarding, ECMP
// hashing on ports, no redirects) but runs nothing: BGP tests start FRR in
// it. Nodes and the client route the far subnet through the router; the far
// client's default route is the router.
//
// # Address plan
//
// Only 198.18.0.0/15 and 2001:db8::/32 are used. IPv6 groups are written
// with the same digits as the IPv4 numbers (K=7, host 11: 198.18.7.11 and
// 2001:db8:7::11).
//
//	lab subnet       198.18.K.0/24          2001:db8:K::/64
//	  router         198.18.K.1             2001:db8:K::1
//	  node i         198.18.K.(10+i)        2001:db8:K::(10+i)    i = 1..50
//	  client         198.18.K.100           2001:db8:K::100
//	  root veth      198.18.K.254           2001:db8:K::254       (API server)
//	L2 VIP pool      198.18.K.128/26        2001:db8:K::1:0/112   (in the subnet)
//	BGP VIP pool     198.19.K.0/24          2001:db8:K:1::/64
//	far link         198.18.(128+K).0/24    2001:db8:K:2::/64
//	  router eth1    198.18.(128+K).1       2001:db8:K:2::1
//	  far client     198.18.(128+K).2       2001:db8:K:2::2
//
// MAC addresses are fixed: 02:6b:6c:<link>:<K>:<host> (link 0 the bridge,
// 1 the far link). With K <= 120 nothing overlaps another lab or the control
// plane's Service CIDRs (198.19.128.0/17, 2001:db8:fff0::/112).
//
// # Data path
//
// Every node runs an HTTP backend on port 8080 that answers with the node's
// name, and an nft table (inet kl_lb) that stands in for kube-proxy: Expose
// adds VIP:port -> nodeIP:8080 DNAT on every node. No address is assigned for
// a VIP, so the kernel never answers ARP or NDP for it: traffic reaches a
// node only through whoever announces the VIP (the speaker), or through a
// static neighbour entry (SetNeighbor) in a test. Curl fetches through it
// and returns the answering node's name.
//
// Cut pulls a host's cable: drop rules on input and output in the host
// (inet, priority -300, loopback spared) and, since raw ARP/NDP sockets
// bypass those, drops of the host's bridge port in the switch. Heal undoes it.
//
// # Processes and roles
//
// Start runs long-running processes in a host (or in the root namespace)
// with logs in Dir; they are forked from one locked thread so that
// PR_SET_PDEATHSIG kills them exactly when the lab's owner dies. The node
// backends and the owner of a detached lab (UpDetached, used by `keeperlb lab
// up`) are the current executable re-executed in a role: main and TestMain
// must call RunRoleIfRequested first (cli.Main and labtest.Main do). Up
// checks this (CheckRoles) and fails with a clear message otherwise.
//
// # Lifetime
//
// Each lab is recorded in StateDir (/run/keeperlb/labs/kl-lab<K>.json) with
// its owner's PID and start time, before anything is created. Down removes
// everything and is idempotent, also after a failed Up. Reap (called by
// labtest.Main) removes labs whose owner died; Load and List let other
// processes use and list labs; Remove takes a detached lab down from any
// process (a lab of a running test only with force).
//
// The lab needs root, ip and nft (`bash hack/lab-deps.sh`); the tests also
// use ping and arping.
package lab
