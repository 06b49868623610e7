package lab_test

import (
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ndp"

	"github.com/keeperlb/keeperlb/internal/lab"
)

func ether(src net.HardwareAddr, etherType uint16, payload []byte) []byte {
	f := append([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, src...)
	f = append(f, byte(etherType>>8), byte(etherType))
	return append(f, payload...)
}

func TestParseAnnouncement(t *testing.T) {
	mac := net.HardwareAddr{0x02, 0, 0, 0, 0, 1}
	vip := netip.MustParseAddr("198.18.0.10")
	other := netip.MustParseAddr("198.18.0.2")
	arpFrame := func(op arp.Operation, sender, target netip.Addr) []byte {
		p, err := arp.NewPacket(op, mac, sender, net.HardwareAddr{0, 0, 0, 0, 0, 0}, target)
		if err != nil {
			t.Fatal(err)
		}
		b, err := p.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		return ether(mac, 0x0806, b)
	}
	vip6 := netip.MustParseAddr("2001:db8::10")
	naFrame := func(solicited bool, nextHeader byte) []byte {
		icmp, err := ndp.MarshalMessage(&ndp.NeighborAdvertisement{Solicited: solicited, Override: true, TargetAddress: vip6,
			Options: []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: mac}}})
		if err != nil {
			t.Fatal(err)
		}
		ip6 := make([]byte, 40)
		ip6[0] = 6 << 4
		ip6[4], ip6[5] = 0, byte(len(icmp))
		ip6[6], ip6[7] = nextHeader, 255
		return ether(mac, 0x86dd, append(ip6, icmp...))
	}
	cases := []struct {
		name  string
		frame []byte
		ok    bool
		want  lab.Announcement
	}{
		{"gratuitous ARP request", arpFrame(arp.OperationRequest, vip, vip), true, lab.Announcement{IP: vip, MAC: mac, Gratuitous: true}},
		{"ARP reply to a host", arpFrame(arp.OperationReply, vip, other), true, lab.Announcement{IP: vip, MAC: mac}},
		{"unsolicited NA", naFrame(false, 58), true, lab.Announcement{IP: vip6, MAC: mac, Gratuitous: true}},
		{"solicited NA", naFrame(true, 58), true, lab.Announcement{IP: vip6, MAC: mac}},
		{"not ICMPv6", naFrame(false, 17), false, lab.Announcement{}},
		{"short frame", []byte{1, 2, 3}, false, lab.Announcement{}},
		{"IPv4 frame", ether(mac, 0x0800, make([]byte, 40)), false, lab.Announcement{}},
	}
	for _, tc := range cases {
		got, ok := lab.ParseAnnouncement(tc.frame)
		if ok != tc.ok || got.IP != tc.want.IP || got.Gratuitous != tc.want.Gratuitous || !slices.Equal(got.MAC, tc.want.MAC) {
			t.Errorf("%s: got %+v, %v; want %+v, %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}
