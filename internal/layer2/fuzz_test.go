package layer2

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ndp"
)

// The fuzz targets feed arbitrary frames to the decision functions. Besides
// "never panics", they check with independent parsers (mdlayher/arp and
// mdlayher/ndp) that every answer is a well-formed reply about an owned IP
// that the frame actually asked for, sent from our MAC. The corpus lives in
// testdata/fuzz/FuzzARP and testdata/fuzz/FuzzNDP.

var fuzzOwned4 = []netip.Addr{vip4, netip.MustParseAddr("198.18.201.5")}
var fuzzOwned6 = []netip.Addr{vip6, dadVIP6}

func FuzzARP(f *testing.F) {
	f.Add(frame(f, kernelARPRequest))
	f.Add(frame(f, arpReplyToClient))
	req, rep := gratuitousARP(clientMAC, vip4)
	f.Add(req)
	f.Add(rep)
	f.Fuzz(func(t *testing.T, in []byte) {
		orig := bytes.Clone(in)
		ans, ok := replyToARP(in, nodeMAC, ownedSet(fuzzOwned4...))
		if !bytes.Equal(in, orig) {
			t.Fatal("replyToARP modified its input")
		}
		if !ok {
			return
		}
		if !ownedSet(fuzzOwned4...)(ans.Target) {
			t.Fatalf("answered for %v, which is not owned", ans.Target)
		}
		var asked arp.Packet
		if err := asked.UnmarshalBinary(in[ethHeaderLen:]); err != nil {
			t.Fatalf("answered a frame mdlayher/arp rejects: %v", err)
		}
		if asked.Operation != arp.OperationRequest || asked.TargetIP != ans.Target {
			t.Fatalf("answered %v for %v, want a request for the target", asked.Operation, asked.TargetIP)
		}
		if len(ans.Frame) != ethMinFrame || !bytes.Equal(ans.Frame[6:12], nodeMAC) || binary.BigEndian.Uint16(ans.Frame[12:14]) != etherTypeARP {
			t.Fatalf("bad Ethernet header in reply %x", ans.Frame)
		}
		var got arp.Packet
		if err := got.UnmarshalBinary(ans.Frame[ethHeaderLen:]); err != nil {
			t.Fatalf("reply does not parse: %v", err)
		}
		if got.Operation != arp.OperationReply || !bytes.Equal(got.SenderHardwareAddr, nodeMAC) || got.SenderIP != ans.Target ||
			!bytes.Equal(got.TargetHardwareAddr, asked.SenderHardwareAddr) || got.TargetIP != asked.SenderIP ||
			!bytes.Equal(ans.Frame[0:6], asked.SenderHardwareAddr) {
			t.Fatalf("reply %+v does not answer request %+v", got, asked)
		}
	})
}

func FuzzNDP(f *testing.F) {
	f.Add(frame(f, kernelNS))
	f.Add(frame(f, kernelDAD))
	f.Add(frame(f, naToClient))
	f.Add(nsFrame(nodeMAC, clientMAC, netip.MustParseAddr("2001:db8:201::1"), vip6, 255, 0, vip6, nil))
	f.Fuzz(func(t *testing.T, in []byte) {
		checkNSAnswer(t, in)
		// Random bytes almost never carry a valid checksum, which would
		// keep the fuzzer in front of the first check; so also try each
		// input with its checksum made right.
		if fixed, ok := withValidChecksum(in); ok {
			checkNSAnswer(t, fixed)
		}
	})
}

// withValidChecksum returns a copy of an Ethernet/IPv6 frame with the ICMPv6
// checksum recomputed, when the frame is long enough to have one.
func withValidChecksum(in []byte) ([]byte, bool) {
	if len(in) < ethHeaderLen+ipv6HeaderLen+4 {
		return nil, false
	}
	plen := int(binary.BigEndian.Uint16(in[18:20]))
	if plen < 4 || len(in) < ethHeaderLen+ipv6HeaderLen+plen {
		return nil, false
	}
	out := bytes.Clone(in)
	icmp := out[ethHeaderLen+ipv6HeaderLen : ethHeaderLen+ipv6HeaderLen+plen]
	icmp[2], icmp[3] = 0, 0
	src := netip.AddrFrom16([16]byte(out[22:38]))
	dst := netip.AddrFrom16([16]byte(out[38:54]))
	binary.BigEndian.PutUint16(icmp[2:4], icmpv6Checksum(src, dst, icmp))
	return out, true
}

// checkNSAnswer checks the properties every answer of replyToNS must have.
func checkNSAnswer(t *testing.T, in []byte) {
	{
		orig := bytes.Clone(in)
		ans, ok := replyToNS(in, nodeMAC, ownedSet(fuzzOwned6...))
		if !bytes.Equal(in, orig) {
			t.Fatal("replyToNS modified its input")
		}
		if !ok {
			return
		}
		if !ownedSet(fuzzOwned6...)(ans.Target) {
			t.Fatalf("answered for %v, which is not owned", ans.Target)
		}
		// The oracle gets the fixed part only: RFC 4861 says unknown or
		// malformed options of other types are ignored, while mdlayher/ndp
		// rejects some of them.
		m, err := ndp.ParseMessage(in[ethHeaderLen+ipv6HeaderLen : ethHeaderLen+ipv6HeaderLen+nsLen])
		if err != nil {
			t.Fatalf("answered a message mdlayher/ndp rejects: %v", err)
		}
		ns, isNS := m.(*ndp.NeighborSolicitation)
		if !isNS || ns.TargetAddress != ans.Target {
			t.Fatalf("answered %T for the wrong target", m)
		}
		if in[ethHeaderLen+7] != ndpHopLimit {
			t.Fatal("answered a solicitation whose hop limit is not 255")
		}

		out := ans.Frame
		if len(out) != ethHeaderLen+ipv6HeaderLen+32 || !bytes.Equal(out[6:12], nodeMAC) || out[ethHeaderLen+7] != ndpHopLimit {
			t.Fatalf("bad header in reply %x", out)
		}
		src := netip.AddrFrom16([16]byte(out[22:38]))
		dst := netip.AddrFrom16([16]byte(out[38:54]))
		icmp := out[ethHeaderLen+ipv6HeaderLen:]
		if icmpv6Checksum(src, dst, icmp) != 0 {
			t.Fatal("reply checksum is wrong")
		}
		rm, err := ndp.ParseMessage(icmp)
		if err != nil {
			t.Fatalf("reply does not parse: %v", err)
		}
		na, isNA := rm.(*ndp.NeighborAdvertisement)
		if !isNA || na.TargetAddress != ans.Target || !na.Override || na.Router {
			t.Fatalf("reply is %+v, want an override advertisement of %v", rm, ans.Target)
		}
		if len(na.Options) != 1 {
			t.Fatalf("reply options %v, want one target link-layer address", na.Options)
		}
		lla, isLLA := na.Options[0].(*ndp.LinkLayerAddress)
		if !isLLA || lla.Direction != ndp.Target || !bytes.Equal(lla.Addr, nodeMAC) {
			t.Fatalf("reply option %+v, want our MAC as target link-layer address", na.Options[0])
		}
		solicitor := netip.AddrFrom16([16]byte(in[22:38]))
		if solicitor.IsUnspecified() {
			if dst != allNodes || na.Solicited {
				t.Fatalf("answer to a DAD probe goes to %v solicited=%v", dst, na.Solicited)
			}
		} else if dst != solicitor || !na.Solicited {
			t.Fatalf("answer goes to %v solicited=%v, want %v solicited", dst, na.Solicited, solicitor)
		}
	}
}
