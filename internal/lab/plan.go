package lab

import (
	"fmt"
	"net"
	"net/netip"
)

// MaxIndex is the highest lab index. Indexes 1..MaxIndex keep every lab
// address inside 198.18.0.0/15 and 2001:db8::/32 and away from the control
// plane's Service CIDRs (198.19.128.0/17, 2001:db8:fff0::/112).
const MaxIndex = 120

// MaxNodes is the most nodes a lab can have: node i gets host number 10+i,
// and the hosts must stay below the client (100) and the L2 pool (128).
const MaxNodes = 50

// Host numbers inside a lab subnet. They are the last byte of the IPv4
// address and, written the same way, the last group of the IPv6 address.
const (
	hostRouter    = 1
	hostFirstNode = 11 // node1; nodeN is 10+N
	hostClient    = 100
	hostRoot      = 254
	// On the router's second link: the router and the far client.
	hostFarRouter = 1
	hostFarClient = 2
)

// plan computes every address and name of lab index k. It is pure so that
// the address plan can be table-tested without a kernel.
type plan struct{ k int }

// name is the lab's name. The "lab" infix keeps it clear of the
// kl-<pid>-<random>-<suffix> namespaces that internal/netns/netnstest
// reaps by PID: a bare kl-<k>- would look like a dead PID to it.
func (p plan) name() string { return fmt.Sprintf("kl-lab%d", p.k) }

// netns names the network namespace of a host (or "sw" for the switch).
func (p plan) netns(host string) string { return p.name() + "-" + host }

// rootLink is the root namespace's end of the veth into the bridge.
func (p plan) rootLink() string { return p.name() + "-host" }

// decHex turns n into the IPv6 group whose hex digits read like n in
// decimal (11 -> 0x11), so that 198.18.7.11 pairs with 2001:db8:7::11.
func decHex(n int) uint16 {
	var v, mul uint16 = 0, 1
	for n > 0 {
		v += uint16(n%10) * mul
		mul *= 16
		n /= 10
	}
	return v
}

func v4(a, b, c, d int) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(a), byte(b), byte(c), byte(d)})
}

// v6 returns 2001:db8:<k>:<sub>::<high>:<low> with every number written in
// decimal digits.
func v6(k, sub, high, low int) netip.Addr {
	var b [16]byte
	groups := [8]uint16{0x2001, 0x0db8, decHex(k), decHex(sub), 0, 0, decHex(high), decHex(low)}
	for i, g := range groups {
		b[2*i] = byte(g >> 8)
		b[2*i+1] = byte(g)
	}
	return netip.AddrFrom16(b)
}

// host4 and host6 are the addresses of host number n on the lab subnet.
func (p plan) host4(n int) netip.Addr { return v4(198, 18, p.k, n) }
func (p plan) host6(n int) netip.Addr { return v6(p.k, 0, 0, n) }

// far4 and far6 are the addresses of host number n on the router's second
// link, toward the far client.
func (p plan) far4(n int) netip.Addr { return v4(198, 18, 128+p.k, n) }
func (p plan) far6(n int) netip.Addr { return v6(p.k, 2, 0, n) }

func (p plan) subnet4() netip.Prefix    { return netip.PrefixFrom(v4(198, 18, p.k, 0), 24) }
func (p plan) subnet6() netip.Prefix    { return netip.PrefixFrom(v6(p.k, 0, 0, 0), 64) }
func (p plan) l2Pool4() netip.Prefix    { return netip.PrefixFrom(v4(198, 18, p.k, 128), 26) }
func (p plan) l2Pool6() netip.Prefix    { return netip.PrefixFrom(v6(p.k, 0, 1, 0), 112) }
func (p plan) bgpPool4() netip.Prefix   { return netip.PrefixFrom(v4(198, 19, p.k, 0), 24) }
func (p plan) bgpPool6() netip.Prefix   { return netip.PrefixFrom(v6(p.k, 1, 0, 0), 64) }
func (p plan) farSubnet4() netip.Prefix { return netip.PrefixFrom(v4(198, 18, 128+p.k, 0), 24) }
func (p plan) farSubnet6() netip.Prefix { return netip.PrefixFrom(v6(p.k, 2, 0, 0), 64) }

// mac is the fixed, locally administered MAC address of host number n on
// link l (0 the lab subnet, 1 the far link): 02:6b:6c:<l>:<k>:<n>, "kl" in
// the middle. Fixed addresses make captures and neighbour tables readable.
func (p plan) mac(l, n int) net.HardwareAddr {
	return net.HardwareAddr{0x02, 0x6b, 0x6c, byte(l), byte(p.k), byte(n)}
}
