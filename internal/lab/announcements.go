package lab

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ndp"
)

// Announcement is one ARP frame or IPv6 Neighbor Advertisement seen on the
// wire, as a claim that MAC holds IP.
type Announcement struct {
	// At is when the watcher read it.
	At time.Time
	// IP is the claimed address: the ARP sender address, or the NA's
	// target.
	IP netip.Addr
	// MAC is the claimant's hardware address: the frame's source.
	MAC net.HardwareAddr
	// Gratuitous is true for an unrequested claim: an ARP frame whose
	// sender and target addresses are equal, or an NA without the
	// Solicited flag.
	Gratuitous bool
}

// AnnouncementWatch records every announcement that reaches one host; its
// Seen and Stop return them in arrival order.
type AnnouncementWatch struct {
	*capture[Announcement]
}

const (
	etherTypeARP  = 0x0806
	etherTypeIPv6 = 0x86dd
)

// WatchAnnouncements opens passive ARP and IPv6 packet sockets on h's
// interface, in h's namespace, and records every announcement until Stop.
// It sends nothing.
func (l *Lab) WatchAnnouncements(h *Host) (*AnnouncementWatch, error) {
	c, err := startCapture(h, []int{etherTypeARP, etherTypeIPv6}, func(frame []byte, at time.Time) (Announcement, bool) {
		a, ok := ParseAnnouncement(frame)
		a.At = at
		return a, ok
	})
	if err != nil {
		return nil, fmt.Errorf("watching announcements: %w", err)
	}
	return &AnnouncementWatch{c}, nil
}

// ParseAnnouncement reads an Ethernet frame: an ARP packet, or an IPv6
// packet carrying a Neighbor Advertisement directly (no extension headers,
// as the kernel and the speaker send them). Anything else is not an
// announcement.
func ParseAnnouncement(frame []byte) (Announcement, bool) {
	const ethLen, ip6Len = 14, 40
	if len(frame) < ethLen {
		return Announcement{}, false
	}
	mac := net.HardwareAddr(slices.Clone(frame[6:12]))
	switch binary.BigEndian.Uint16(frame[12:14]) {
	case etherTypeARP:
		var p arp.Packet
		if err := p.UnmarshalBinary(frame[ethLen:]); err != nil {
			return Announcement{}, false
		}
		return Announcement{IP: p.SenderIP.Unmap(), MAC: mac, Gratuitous: p.SenderIP == p.TargetIP}, true
	case etherTypeIPv6:
		ip6 := frame[ethLen:]
		if len(ip6) < ip6Len || ip6[0]>>4 != 6 || ip6[6] != 58 { // next header ICMPv6
			return Announcement{}, false
		}
		m, err := ndp.ParseMessage(ip6[ip6Len:])
		if err != nil {
			return Announcement{}, false
		}
		na, ok := m.(*ndp.NeighborAdvertisement)
		if !ok {
			return Announcement{}, false
		}
		return Announcement{IP: na.TargetAddress, MAC: mac, Gratuitous: !na.Solicited}, true
	}
	return Announcement{}, false
}
