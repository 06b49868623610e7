package lab

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ndp"
	"github.com/mdlayher/packet"

	"github.com/keeperlb/keeperlb/internal/netns"
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

// AnnouncementWatch records every announcement that reaches one host.
type AnnouncementWatch struct {
	conns    []*packet.Conn
	stop     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup

	mu   sync.Mutex
	seen []Announcement
	err  error
}

const (
	etherTypeARP  = 0x0806
	etherTypeIPv6 = 0x86dd
)

// WatchAnnouncements opens passive ARP and IPv6 packet sockets on h's
// interface, in h's namespace, and records every announcement until Stop.
// It sends nothing.
func (l *Lab) WatchAnnouncements(h *Host) (*AnnouncementWatch, error) {
	w := &AnnouncementWatch{stop: make(chan struct{})}
	err := netns.Do(h.Netns, func() error {
		ifi, err := net.InterfaceByName(h.Interface)
		if err != nil {
			return err
		}
		for _, et := range []int{etherTypeARP, etherTypeIPv6} {
			c, err := packet.Listen(ifi, packet.Raw, et, nil)
			if err != nil {
				return err
			}
			w.conns = append(w.conns, c)
		}
		return nil
	})
	if err != nil {
		for _, c := range w.conns {
			_ = c.Close()
		}
		return nil, fmt.Errorf("watching announcements in %s: %w", h.Netns, err)
	}
	for _, c := range w.conns {
		w.wg.Add(1)
		go w.read(c)
	}
	return w, nil
}

func (w *AnnouncementWatch) read(c *packet.Conn) {
	defer w.wg.Done()
	buf := make([]byte, 1600)
	for {
		select {
		case <-w.stop:
			return
		default:
		}
		// A deadline so that the loop sees stop even in silence.
		if err := c.SetReadDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
			w.fail(err)
			return
		}
		n, _, err := c.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				continue
			}
			w.fail(err)
			return
		}
		if a, ok := ParseAnnouncement(buf[:n]); ok {
			a.At = time.Now()
			w.mu.Lock()
			w.seen = append(w.seen, a)
			w.mu.Unlock()
		}
	}
}

func (w *AnnouncementWatch) fail(err error) {
	w.mu.Lock()
	if w.err == nil {
		w.err = err
	}
	w.mu.Unlock()
}

// Seen returns what was recorded so far, in arrival order.
func (w *AnnouncementWatch) Seen() []Announcement {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.seen)
}

// Stop closes the sockets and returns everything recorded, and the first
// read error if any. It may be called more than once (from a test's
// cleanup too).
func (w *AnnouncementWatch) Stop() ([]Announcement, error) {
	w.stopOnce.Do(func() {
		close(w.stop)
		w.wg.Wait()
		for _, c := range w.conns {
			_ = c.Close()
		}
	})
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.seen, w.err
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
