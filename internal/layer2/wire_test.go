package layer2

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"net"
	"net/netip"
	"strings"
	"testing"

	"golang.org/x/net/bpf"
)

// Frames below were captured from a Linux 6.18 kernel (AF_PACKET on a veth)
// or written by hand from the RFCs; checksums of hand-written frames were
// computed with an independent implementation. The node's MAC is
// 02:00:00:00:00:0b, the client's 02:00:00:00:00:0a.

var (
	nodeMAC   = mustMAC("02:00:00:00:00:0b")
	clientMAC = mustMAC("02:00:00:00:00:0a")
	vip4      = netip.MustParseAddr("198.18.201.99")
	vip6      = netip.MustParseAddr("2001:db8:201::99")
	dadVIP6   = netip.MustParseAddr("2001:db8:201::5")
)

func mustMAC(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

// frame decodes hex with spaces, newlines and "# comments" allowed.
func frame(t testing.TB, s string) []byte {
	t.Helper()
	var b strings.Builder
	for _, line := range strings.Split(s, "\n") {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		b.WriteString(strings.Join(strings.Fields(line), ""))
	}
	out, err := hex.DecodeString(b.String())
	if err != nil {
		t.Fatalf("bad hex in test: %v", err)
	}
	return out
}

func ownedSet(ips ...netip.Addr) func(netip.Addr) bool {
	return func(ip netip.Addr) bool {
		for _, o := range ips {
			if o == ip {
				return true
			}
		}
		return false
	}
}

// kernelARPRequest: 198.18.201.1 asks who has 198.18.201.99 (captured).
const kernelARPRequest = `
ffffffffffff 02000000000a 0806
0001 0800 06 04 0001
02000000000a c612c901   # sender MAC, IP
000000000000 c612c963   # target MAC, IP
`

const arpReplyToClient = `
02000000000a 02000000000b 0806
0001 0800 06 04 0002
02000000000b c612c963   # sender: node MAC, VIP
02000000000a c612c901   # target: the asker
000000000000000000000000000000000000  # padding to 60 bytes
`

func TestReplyToARP(t *testing.T) {
	req := frame(t, kernelARPRequest)
	reply := frame(t, arpReplyToClient)
	mutate := func(f func(b []byte) []byte) []byte {
		return f(bytes.Clone(req))
	}
	tests := []struct {
		name  string
		frame []byte
		owned func(netip.Addr) bool
		want  []byte // nil: no answer
	}{
		{"kernel request for owned IP", req, ownedSet(vip4), reply},
		{"not owned", req, ownedSet(netip.MustParseAddr("198.18.201.98")), nil},
		{"owned only as IPv6", req, ownedSet(vip6), nil},
		{"padded to 60 bytes", append(bytes.Clone(req), make([]byte, 18)...), ownedSet(vip4), reply},
		{"unicast refresh to our MAC", mutate(func(b []byte) []byte { copy(b[0:6], nodeMAC); return b }), ownedSet(vip4), reply},
		{"unicast to another MAC", mutate(func(b []byte) []byte { copy(b[0:6], mustMAC("02:00:00:00:00:0c")); return b }), ownedSet(vip4), nil},
		{"multicast destination", mutate(func(b []byte) []byte { copy(b[0:6], mustMAC("01:00:5e:00:00:01")); return b }), ownedSet(vip4), nil},
		{"our own frame", mutate(func(b []byte) []byte { copy(b[6:12], nodeMAC); copy(b[22:28], nodeMAC); return b }), ownedSet(vip4), nil},
		{"sender hardware address is ours", mutate(func(b []byte) []byte { copy(b[22:28], nodeMAC); return b }), ownedSet(vip4), nil},
		{"sender hardware address multicast", mutate(func(b []byte) []byte { b[22] = 0x01; return b }), ownedSet(vip4), nil},
		{"sender hardware address zero", mutate(func(b []byte) []byte { copy(b[22:28], zeroMAC); return b }), ownedSet(vip4), nil},
		{"someone else's gratuitous request", mutate(func(b []byte) []byte { copy(b[28:32], b[38:42]); return b }), ownedSet(vip4), nil},
		{"sender IP multicast", mutate(func(b []byte) []byte { b[28] = 224; return b }), ownedSet(vip4), nil},
		{"sender IP broadcast", mutate(func(b []byte) []byte { copy(b[28:32], []byte{255, 255, 255, 255}); return b }), ownedSet(vip4), nil},
		{"sender IP loopback", mutate(func(b []byte) []byte { b[28] = 127; return b }), ownedSet(vip4), nil},
		{"ARP reply, not request", mutate(func(b []byte) []byte { b[21] = 2; return b }), ownedSet(vip4), nil},
		{"hardware type not Ethernet", mutate(func(b []byte) []byte { b[15] = 6; return b }), ownedSet(vip4), nil},
		{"protocol type not IPv4", mutate(func(b []byte) []byte { b[16] = 0x86; b[17] = 0xdd; return b }), ownedSet(vip4), nil},
		{"hardware length not 6", mutate(func(b []byte) []byte { b[18] = 8; return b }), ownedSet(vip4), nil},
		{"protocol length not 4", mutate(func(b []byte) []byte { b[19] = 16; return b }), ownedSet(vip4), nil},
		{"EtherType not ARP", mutate(func(b []byte) []byte { b[13] = 0x00; return b }), ownedSet(vip4), nil},
		{"truncated", req[:41], ownedSet(vip4), nil},
		{"empty", nil, ownedSet(vip4), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := replyToARP(tt.frame, nodeMAC, tt.owned)
			if tt.want == nil {
				if ok {
					t.Fatalf("answered with %x, want silence", got.Frame)
				}
				return
			}
			if !ok {
				t.Fatal("no answer, want one")
			}
			if !bytes.Equal(got.Frame, tt.want) {
				t.Errorf("reply\n got %x\nwant %x", got.Frame, tt.want)
			}
			if got.Target != vip4 {
				t.Errorf("target %v, want %v", got.Target, vip4)
			}
		})
	}
}

// An RFC 5227 probe (sender 0.0.0.0) is answered, as Linux does for its own
// addresses, so that nobody else configures the VIP.
func TestReplyToARPProbe(t *testing.T) {
	req := frame(t, kernelARPRequest)
	copy(req[28:32], []byte{0, 0, 0, 0})
	got, ok := replyToARP(req, nodeMAC, ownedSet(vip4))
	if !ok {
		t.Fatal("probe not answered")
	}
	want := frame(t, `
02000000000a 02000000000b 0806
0001 0800 06 04 0002
02000000000b c612c963
02000000000a 00000000
000000000000000000000000000000000000`)
	if !bytes.Equal(got.Frame, want) {
		t.Errorf("reply\n got %x\nwant %x", got.Frame, want)
	}
}

func TestGratuitousARP(t *testing.T) {
	req, rep := gratuitousARP(nodeMAC, vip4)
	wantReq := frame(t, `
ffffffffffff 02000000000b 0806
0001 0800 06 04 0001
02000000000b c612c963
000000000000 c612c963   # RFC 5227 announcement: target MAC zero
000000000000000000000000000000000000`)
	wantRep := frame(t, `
ffffffffffff 02000000000b 0806
0001 0800 06 04 0002
02000000000b c612c963
02000000000b c612c963   # RFC 2002 4.6: target MAC = sender MAC in a reply
000000000000000000000000000000000000`)
	if !bytes.Equal(req, wantReq) {
		t.Errorf("request\n got %x\nwant %x", req, wantReq)
	}
	if !bytes.Equal(rep, wantRep) {
		t.Errorf("reply\n got %x\nwant %x", rep, wantRep)
	}
	// Another node's announcement must never be answered.
	if ans, ok := replyToARP(req, clientMAC, ownedSet(vip4)); ok {
		t.Errorf("gratuitous request answered with %x", ans.Frame)
	}
}

// kernelNS: 2001:db8:201::1 solicits 2001:db8:201::99 (captured).
const kernelNS = `
3333ff000099 02000000000a 86dd
60000000 0020 3a ff
20010db8020100000000000000000001   # source
ff0200000000000000000001ff000099   # solicited-node multicast of the target
87 00 16ee 00000000
20010db8020100000000000000000099   # target
01 01 02000000000a                 # source link-layer address
`

const naToClient = `
02000000000a 02000000000b 86dd
60000000 0020 3a ff
20010db8020100000000000000000099   # source: the VIP itself
20010db8020100000000000000000001   # back to the solicitor
88 00 8337 60000000                # Solicited + Override
20010db8020100000000000000000099
02 01 02000000000b                 # target link-layer address
`

// kernelDAD: duplicate address detection for 2001:db8:201::5, with the
// nonce option of RFC 7527 (captured).
const kernelDAD = `
3333ff000005 02000000000a 86dd
60000000 0020 3a ff
00000000000000000000000000000000
ff0200000000000000000001ff000005
87 00 8c49 00000000
20010db8020100000000000000000005
0e 01 dcea01ccd1da
`

const naDefendDAD = `
333300000001 02000000000b 86dd
60000000 0020 3a ff
20010db8020100000000000000000005
ff020000000000000000000000000001   # all nodes
88 00 f516 20000000                # Override only
20010db8020100000000000000000005
02 01 02000000000b
`

// nsFrame builds a solicitation; tests use it for variants whose checksum
// must stay valid so that only the property under test is wrong.
func nsFrame(ethDst, ethSrc net.HardwareAddr, src, dst netip.Addr, hop, code byte, target netip.Addr, opts []byte) []byte {
	icmp := make([]byte, nsLen, nsLen+len(opts))
	icmp[0], icmp[1] = icmpNS, code
	t16 := target.As16()
	copy(icmp[8:24], t16[:])
	icmp = append(icmp, opts...)
	binary.BigEndian.PutUint16(icmp[2:4], icmpv6Checksum(src, dst, icmp))
	f := make([]byte, ethHeaderLen+ipv6HeaderLen)
	copy(f[0:6], ethDst)
	copy(f[6:12], ethSrc)
	binary.BigEndian.PutUint16(f[12:14], etherTypeIPv6)
	ip := f[ethHeaderLen:]
	ip[0] = 0x60
	binary.BigEndian.PutUint16(ip[4:6], uint16(len(icmp)))
	ip[6], ip[7] = protoICMPv6, hop
	s16, d16 := src.As16(), dst.As16()
	copy(ip[8:24], s16[:])
	copy(ip[24:40], d16[:])
	return append(f, icmp...)
}

func TestReplyToNS(t *testing.T) {
	client6 := netip.MustParseAddr("2001:db8:201::1")
	slla := append([]byte{optSourceLLA, 1}, clientMAC...)
	sn := solicitedNode(vip6)
	snMAC := multicastMAC(sn)
	valid := func() []byte { return nsFrame(snMAC, clientMAC, client6, sn, 255, 0, vip6, slla) }
	toClient := frame(t, naToClient)
	tests := []struct {
		name  string
		frame []byte
		owned func(netip.Addr) bool
		want  []byte
	}{
		{"kernel solicitation for owned IP", frame(t, kernelNS), ownedSet(vip6), toClient},
		{"built solicitation equals the kernel's", valid(), ownedSet(vip6), toClient},
		{"not owned", frame(t, kernelNS), ownedSet(netip.MustParseAddr("2001:db8:201::98")), nil},
		{"kernel DAD probe for owned IP", frame(t, kernelDAD), ownedSet(dadVIP6), frame(t, naDefendDAD)},
		{"trailing bytes after the payload", append(frame(t, kernelNS), 0, 0, 0, 0), ownedSet(vip6), toClient},
		{"unicast NUD to our MAC", nsFrame(nodeMAC, clientMAC, client6, vip6, 255, 0, vip6, slla), ownedSet(vip6), toClient},
		{"unicast NUD without link-layer option", nsFrame(nodeMAC, clientMAC, client6, vip6, 255, 0, vip6, nil), ownedSet(vip6), toClient},
		{"unicast to another MAC", nsFrame(mustMAC("02:00:00:00:00:0c"), clientMAC, client6, vip6, 255, 0, vip6, slla), ownedSet(vip6), nil},
		{"our own frame", nsFrame(snMAC, nodeMAC, client6, sn, 255, 0, vip6, slla), ownedSet(vip6), nil},
		{"link-layer option is our MAC", nsFrame(snMAC, clientMAC, client6, sn, 255, 0, vip6, append([]byte{1, 1}, nodeMAC...)), ownedSet(vip6), nil},
		{"link-layer option multicast", nsFrame(snMAC, clientMAC, client6, sn, 255, 0, vip6, []byte{1, 1, 0x33, 0x33, 0, 0, 0, 1}), ownedSet(vip6), nil},
		{"hop limit 254 (forwarded)", nsFrame(snMAC, clientMAC, client6, sn, 254, 0, vip6, slla), ownedSet(vip6), nil},
		{"code 1", nsFrame(snMAC, clientMAC, client6, sn, 255, 1, vip6, slla), ownedSet(vip6), nil},
		{"bad checksum", func() []byte { b := valid(); b[len(b)-1] ^= 0xff; return b }(), ownedSet(vip6), nil},
		{"zero-length option", nsFrame(snMAC, clientMAC, client6, sn, 255, 0, vip6, []byte{1, 0, 0, 0, 0, 0, 0, 0}), ownedSet(vip6), nil},
		{"option runs past the end", nsFrame(snMAC, clientMAC, client6, sn, 255, 0, vip6, []byte{1, 2, 0, 0, 0, 0, 0, 0}), ownedSet(vip6), nil},
		{"DAD probe with link-layer option", nsFrame(snMAC, clientMAC, netip.IPv6Unspecified(), sn, 255, 0, vip6, slla), ownedSet(vip6), nil},
		{"DAD probe sent to the target", nsFrame(nodeMAC, clientMAC, netip.IPv6Unspecified(), vip6, 255, 0, vip6, nil), ownedSet(vip6), nil},
		{"destination is all-nodes", nsFrame(snMAC, clientMAC, client6, allNodes, 255, 0, vip6, slla), ownedSet(vip6), nil},
		{"multicast target", nsFrame(snMAC, clientMAC, client6, sn, 255, 0, allNodes, slla), ownedSet(allNodes), nil},
		{"multicast source", nsFrame(snMAC, clientMAC, allNodes, sn, 255, 0, vip6, slla), ownedSet(vip6), nil},
		{"IPv4-mapped target", nsFrame(snMAC, clientMAC, client6, solicitedNode(netip.AddrFrom16(vip4.As16())), 255, 0, netip.AddrFrom16(vip4.As16()), slla), ownedSet(vip4), nil},
		{"next header not ICMPv6", func() []byte { b := valid(); b[20] = 0; return b }(), ownedSet(vip6), nil},
		{"IP version 4", func() []byte { b := valid(); b[14] = 0x45; return b }(), ownedSet(vip6), nil},
		{"payload length past the frame", func() []byte { b := valid(); b[19]++; return b }(), ownedSet(vip6), nil},
		{"payload shorter than a solicitation", func() []byte { b := valid(); b[19] = 16; return b }(), ownedSet(vip6), nil},
		{"EtherType not IPv6", func() []byte { b := valid(); b[13] = 0; return b }(), ownedSet(vip6), nil},
		{"advertisement, not solicitation", frame(t, naToClient), ownedSet(vip6), nil},
		{"truncated", frame(t, kernelNS)[:77], ownedSet(vip6), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := replyToNS(tt.frame, nodeMAC, tt.owned)
			if tt.want == nil {
				if ok {
					t.Fatalf("answered with %x, want silence", got.Frame)
				}
				return
			}
			if !ok {
				t.Fatal("no answer, want one")
			}
			if !bytes.Equal(got.Frame, tt.want) {
				t.Errorf("reply\n got %x\nwant %x", got.Frame, tt.want)
			}
		})
	}
}

func TestUnsolicitedNA(t *testing.T) {
	got := unsolicitedNA(nodeMAC, vip6)
	want := frame(t, `
333300000001 02000000000b 86dd
60000000 0020 3a ff
20010db8020100000000000000000099
ff020000000000000000000000000001
88 00 f3ee 20000000     # Override, not Solicited (RFC 4861 7.2.6)
20010db8020100000000000000000099
02 01 02000000000b`)
	if !bytes.Equal(got, want) {
		t.Errorf("advertisement\n got %x\nwant %x", got, want)
	}
}

func TestSolicitedNode(t *testing.T) {
	for _, tt := range []struct{ ip, group, mac string }{
		{"2001:db8:201::99", "ff02::1:ff00:99", "33:33:ff:00:00:99"},
		{"2001:db8::abcd:ef12:3456", "ff02::1:ff12:3456", "33:33:ff:12:34:56"},
	} {
		g := solicitedNode(netip.MustParseAddr(tt.ip))
		if g.String() != tt.group {
			t.Errorf("solicitedNode(%s) = %s, want %s", tt.ip, g, tt.group)
		}
		if m := multicastMAC(g).String(); m != tt.mac {
			t.Errorf("multicastMAC(%s) = %s, want %s", g, m, tt.mac)
		}
	}
}

// The BPF pre-filters pass exactly what the decision functions look at.
func TestFilters(t *testing.T) {
	arpF, err := arpRequestFilter()
	if err != nil {
		t.Fatal(err)
	}
	ndF, err := nsFilter()
	if err != nil {
		t.Fatal(err)
	}
	arpReq := frame(t, kernelARPRequest)
	arpRep := frame(t, arpReplyToClient)
	ns := frame(t, kernelNS)
	na := frame(t, naToClient)
	ipv4 := frame(t, "02000000000b 02000000000a 0800 4500001c000000004001")
	for _, tt := range []struct {
		name  string
		prog  []bpf.RawInstruction
		frame []byte
		pass  bool
	}{
		{"ARP request", arpF, arpReq, true},
		{"ARP reply", arpF, arpRep, false},
		{"IPv4 on the ARP filter", arpF, ipv4, false},
		{"NS on the ARP filter", arpF, ns, false},
		{"NS", ndF, ns, true},
		{"DAD NS", ndF, frame(t, kernelDAD), true},
		{"NA", ndF, na, false},
		{"ARP on the NDP filter", ndF, arpReq, false},
		{"short frame", ndF, ns[:30], false},
	} {
		vm, err := bpf.NewVM(disassemble(t, tt.prog))
		if err != nil {
			t.Fatal(err)
		}
		n, err := vm.Run(tt.frame)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if (n > 0) != tt.pass {
			t.Errorf("%s: filter returned %d, want pass=%v", tt.name, n, tt.pass)
		}
	}
}

func disassemble(t *testing.T, raw []bpf.RawInstruction) []bpf.Instruction {
	t.Helper()
	prog, ok := bpf.Disassemble(raw)
	if !ok {
		t.Fatal("filter does not disassemble")
	}
	return prog
}
