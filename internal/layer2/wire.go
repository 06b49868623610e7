package layer2

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
)

// Wire formats: Ethernet II (IEEE 802.3), ARP (RFC 826), IPv6 (RFC 8200),
// ICMPv6 (RFC 4443) and Neighbor Discovery (RFC 4861). Everything in this
// file is pure: bytes in, bytes out, no I/O, so that every decision the
// announcer takes on the wire is table-tested and fuzzed.

const (
	ethHeaderLen  = 14
	ethMinFrame   = 60 // shortest Ethernet frame without the FCS
	etherTypeARP  = 0x0806
	etherTypeIPv4 = 0x0800
	etherTypeIPv6 = 0x86dd

	arpLen        = 28
	arpHTEthernet = 1
	arpOpRequest  = 1
	arpOpReply    = 2

	ipv6HeaderLen  = 40
	protoICMPv6    = 58
	ndpHopLimit    = 255 // RFC 4861: proves the packet was not forwarded
	icmpNS         = 135
	icmpNA         = 136
	nsLen          = 24 // type, code, checksum, reserved, target
	naLen          = 24
	optSourceLLA   = 1
	optTargetLLA   = 2
	naFlagSolicit  = 0x40
	naFlagOverride = 0x20
)

var (
	broadcastMAC = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	zeroMAC      = net.HardwareAddr{0, 0, 0, 0, 0, 0}
	// allNodes is ff02::1, where unsolicited advertisements go.
	allNodes = netip.AddrFrom16([16]byte{0: 0xff, 1: 0x02, 15: 0x01})
)

// answer is what replyToARP and replyToNS decide: the frame to send back
// and the owned address it answers for.
type answer struct {
	Frame  []byte
	Target netip.Addr
}

// replyToARP decides whether frame, received on an interface whose hardware
// address is mac, is an ARP request this node must answer, and builds the
// reply. It answers only a well-formed Ethernet/IPv4 request whose target
// is owned, that does not come from mac itself, that is addressed to
// broadcast or to mac (Linux refreshes a neighbour entry with a unicast
// request), and that is not itself a gratuitous announcement. An address
// probe (sender 0.0.0.0, RFC 5227) is answered, which defends the address
// as a host would.
func replyToARP(frame []byte, mac net.HardwareAddr, owned func(netip.Addr) bool) (answer, bool) {
	if len(frame) < ethHeaderLen+arpLen || len(mac) != 6 {
		return answer{}, false
	}
	dst, src := frame[0:6], frame[6:12]
	if binary.BigEndian.Uint16(frame[12:14]) != etherTypeARP || bytes.Equal(src, mac) {
		return answer{}, false
	}
	if !bytes.Equal(dst, broadcastMAC) && !bytes.Equal(dst, mac) {
		return answer{}, false
	}
	a := frame[ethHeaderLen:]
	if binary.BigEndian.Uint16(a[0:2]) != arpHTEthernet || binary.BigEndian.Uint16(a[2:4]) != etherTypeIPv4 ||
		a[4] != 6 || a[5] != 4 || binary.BigEndian.Uint16(a[6:8]) != arpOpRequest {
		return answer{}, false
	}
	sha := net.HardwareAddr(a[8:14])
	spa := netip.AddrFrom4([4]byte(a[14:18]))
	tpa := netip.AddrFrom4([4]byte(a[24:28]))
	if !unicastMAC(sha) || bytes.Equal(sha, mac) {
		return answer{}, false
	}
	if spa == tpa || spa.IsMulticast() || spa.IsLoopback() || spa == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return answer{}, false
	}
	if !owned(tpa) {
		return answer{}, false
	}
	return answer{Frame: arpFrame(sha, mac, arpOpReply, mac, tpa, sha, spa), Target: tpa}, true
}

// gratuitousARP returns the two announcements of ip at mac, both broadcast:
// a request and a reply whose sender and target are ip (RFC 5227 section 3,
// RFC 2002 section 4.6). Hosts differ in which of the two they honour, so
// both are sent. The reply carries mac as target hardware address too, which
// is what Linux requires to treat a reply as gratuitous.
func gratuitousARP(mac net.HardwareAddr, ip netip.Addr) (request, reply []byte) {
	request = arpFrame(broadcastMAC, mac, arpOpRequest, mac, ip, zeroMAC, ip)
	reply = arpFrame(broadcastMAC, mac, arpOpReply, mac, ip, mac, ip)
	return request, reply
}

// arpFrame encodes one Ethernet/IPv4 ARP frame, padded to the Ethernet
// minimum.
func arpFrame(ethDst, ethSrc net.HardwareAddr, op uint16, sha net.HardwareAddr, spa netip.Addr, tha net.HardwareAddr, tpa netip.Addr) []byte {
	f := make([]byte, ethMinFrame)
	copy(f[0:6], ethDst)
	copy(f[6:12], ethSrc)
	binary.BigEndian.PutUint16(f[12:14], etherTypeARP)
	a := f[ethHeaderLen:]
	binary.BigEndian.PutUint16(a[0:2], arpHTEthernet)
	binary.BigEndian.PutUint16(a[2:4], etherTypeIPv4)
	a[4], a[5] = 6, 4
	binary.BigEndian.PutUint16(a[6:8], op)
	copy(a[8:14], sha)
	s4, t4 := spa.As4(), tpa.As4()
	copy(a[14:18], s4[:])
	copy(a[18:24], tha)
	copy(a[24:28], t4[:])
	return f
}

// replyToNS decides whether frame, received on an interface whose hardware
// address is mac, is a neighbor solicitation this node must answer, and
// builds the solicited advertisement. It applies the validity checks of RFC
// 4861 section 7.1.1 (hop limit 255, checksum, code 0, length, target not
// multicast, option lengths, no source link-layer option from the
// unspecified address) and answers only an owned target, on a frame that
// does not come from mac and is addressed to mac or to a multicast group.
// A duplicate address detection probe (source ::) is answered to ff02::1,
// which defends the address as a host would.
func replyToNS(frame []byte, mac net.HardwareAddr, owned func(netip.Addr) bool) (answer, bool) {
	if len(frame) < ethHeaderLen+ipv6HeaderLen+nsLen || len(mac) != 6 {
		return answer{}, false
	}
	dst, src := frame[0:6], frame[6:12]
	if binary.BigEndian.Uint16(frame[12:14]) != etherTypeIPv6 || bytes.Equal(src, mac) {
		return answer{}, false
	}
	if dst[0]&1 == 0 && !bytes.Equal(dst, mac) {
		return answer{}, false
	}
	ip := frame[ethHeaderLen:]
	plen := int(binary.BigEndian.Uint16(ip[4:6]))
	if ip[0]>>4 != 6 || ip[6] != protoICMPv6 || ip[7] != ndpHopLimit || len(ip) < ipv6HeaderLen+plen || plen < nsLen {
		return answer{}, false
	}
	srcIP := netip.AddrFrom16([16]byte(ip[8:24]))
	dstIP := netip.AddrFrom16([16]byte(ip[24:40]))
	icmp := ip[ipv6HeaderLen : ipv6HeaderLen+plen]
	if icmp[0] != icmpNS || icmp[1] != 0 || icmpv6Checksum(srcIP, dstIP, icmp) != 0 {
		return answer{}, false
	}
	target := netip.AddrFrom16([16]byte(icmp[8:24]))
	if target.IsMulticast() || srcIP.IsMulticast() {
		return answer{}, false
	}
	if dstIP != target && dstIP != solicitedNode(target) {
		return answer{}, false
	}
	slla, ok := sourceLLA(icmp[nsLen:])
	if !ok {
		return answer{}, false
	}
	dad := srcIP.IsUnspecified()
	if dad && (slla != nil || dstIP == target) {
		return answer{}, false
	}
	if slla != nil && (!unicastMAC(slla) || bytes.Equal(slla, mac)) {
		return answer{}, false
	}
	if !owned(target) {
		return answer{}, false
	}
	if dad {
		return answer{Frame: naFrame(multicastMAC(allNodes), mac, target, allNodes, naFlagOverride), Target: target}, true
	}
	ethDst := slla
	if ethDst == nil {
		// No link-layer option (allowed for a unicast NUD probe): answer the
		// frame's sender rather than resolving it first.
		ethDst = net.HardwareAddr(src)
		if !unicastMAC(ethDst) {
			return answer{}, false
		}
	}
	return answer{Frame: naFrame(ethDst, mac, target, srcIP, naFlagSolicit|naFlagOverride), Target: target}, true
}

// sourceLLA walks NDP options (RFC 4861 section 4.6) and returns the source
// link-layer address option's Ethernet address, if any. ok is false when an
// option has length zero or runs past the end, which makes the whole
// message invalid.
func sourceLLA(opts []byte) (net.HardwareAddr, bool) {
	var lla net.HardwareAddr
	for len(opts) > 0 {
		if len(opts) < 2 || opts[1] == 0 || int(opts[1])*8 > len(opts) {
			return nil, false
		}
		n := int(opts[1]) * 8
		if opts[0] == optSourceLLA && n == 8 {
			lla = net.HardwareAddr(opts[2:8])
		}
		opts = opts[n:]
	}
	return lla, true
}

// unsolicitedNA returns the announcement of ip at mac to all nodes: an
// advertisement with the Override flag, without Solicited, carrying mac as
// target link-layer address (RFC 4861 section 7.2.6). Override makes
// receivers replace the address they had cached, which is the point of a
// takeover.
func unsolicitedNA(mac net.HardwareAddr, ip netip.Addr) []byte {
	return naFrame(multicastMAC(allNodes), mac, ip, allNodes, naFlagOverride)
}

// naFrame encodes an Ethernet/IPv6 neighbor advertisement for target with a
// target link-layer address option. The IPv6 source is the target itself:
// the announcer then needs no address of its own on the interface (the
// interface may have IPv6 off entirely), receivers do not check the source
// of an advertisement (RFC 4861 section 7.1.2), and tools that match the
// source against the target, such as ndisc6, accept it.
func naFrame(ethDst, ethSrc net.HardwareAddr, target, dstIP netip.Addr, flags byte) []byte {
	const plen = naLen + 8
	f := make([]byte, ethHeaderLen+ipv6HeaderLen+plen)
	copy(f[0:6], ethDst)
	copy(f[6:12], ethSrc)
	binary.BigEndian.PutUint16(f[12:14], etherTypeIPv6)
	ip := f[ethHeaderLen:]
	ip[0] = 6 << 4
	binary.BigEndian.PutUint16(ip[4:6], plen)
	ip[6] = protoICMPv6
	ip[7] = ndpHopLimit
	t16, d16 := target.As16(), dstIP.As16()
	copy(ip[8:24], t16[:])
	copy(ip[24:40], d16[:])
	icmp := ip[ipv6HeaderLen:]
	icmp[0] = icmpNA
	icmp[4] = flags
	copy(icmp[8:24], t16[:])
	icmp[24] = optTargetLLA
	icmp[25] = 1
	copy(icmp[26:32], ethSrc)
	binary.BigEndian.PutUint16(icmp[2:4], icmpv6Checksum(target, dstIP, icmp))
	return f
}

// icmpv6Checksum is the Internet checksum (RFC 1071) of msg preceded by the
// IPv6 pseudo-header (RFC 8200 section 8.1). Over a message whose checksum
// field is filled in it returns 0 when the checksum is right; over one whose
// field is zero it returns the value to store.
func icmpv6Checksum(src, dst netip.Addr, msg []byte) uint16 {
	var sum uint32
	add := func(b []byte) {
		for len(b) >= 2 {
			sum += uint32(binary.BigEndian.Uint16(b))
			b = b[2:]
		}
		if len(b) == 1 {
			sum += uint32(b[0]) << 8
		}
	}
	s, d := src.As16(), dst.As16()
	add(s[:])
	add(d[:])
	var l [8]byte
	binary.BigEndian.PutUint32(l[0:4], uint32(len(msg)))
	l[7] = protoICMPv6
	add(l[:])
	add(msg)
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// solicitedNode returns the solicited-node multicast address of ip,
// ff02::1:ffXX:XXXX (RFC 4291 section 2.7.1), where solicitations for ip
// are sent.
func solicitedNode(ip netip.Addr) netip.Addr {
	a := ip.As16()
	return netip.AddrFrom16([16]byte{0: 0xff, 1: 0x02, 11: 0x01, 12: 0xff, 13: a[13], 14: a[14], 15: a[15]})
}

// multicastMAC maps an IPv6 multicast address to its Ethernet group
// address, 33:33 followed by the low 32 bits (RFC 2464 section 7).
func multicastMAC(ip netip.Addr) net.HardwareAddr {
	a := ip.As16()
	return net.HardwareAddr{0x33, 0x33, a[12], a[13], a[14], a[15]}
}

// unicastMAC reports whether m is a usable destination: not a group
// address and not all zeros.
func unicastMAC(m net.HardwareAddr) bool {
	return len(m) == 6 && m[0]&1 == 0 && !bytes.Equal(m, zeroMAC)
}
