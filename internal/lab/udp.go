package lab

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"syscall"
	"time"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"

	"github.com/keeperlb/keeperlb/internal/netns"
)

// Datagram is one IPv4 UDP datagram seen on the wire.
type Datagram struct {
	// At is when the watcher read it.
	At       time.Time
	Src, Dst netip.AddrPort
	Payload  []byte
}

// UDPWatch records the UDP datagrams that one host sends and receives on a
// port; its Seen and Stop return them in the order they crossed the
// interface.
type UDPWatch struct {
	*capture[Datagram]
}

// WatchUDP records every IPv4 UDP datagram from or to port that crosses h's
// interface, in either direction, until Stop. It sends nothing. It is how a
// test records a speaker's heartbeats, which the speaker's own socket
// (bound to the port) would not let it read.
func (l *Lab) WatchUDP(h *Host, port uint16) (*UDPWatch, error) {
	c, err := startCapture(h, []int{etherTypeAll}, func(frame []byte, at time.Time) (Datagram, bool) {
		d, ok := ParseUDP4(frame)
		if !ok || (d.Src.Port() != port && d.Dst.Port() != port) {
			return Datagram{}, false
		}
		d.At = at
		return d, true
	})
	if err != nil {
		return nil, fmt.Errorf("watching UDP port %d: %w", port, err)
	}
	return &UDPWatch{c}, nil
}

const etherTypeIPv4 = 0x0800

// ParseUDP4 reads an Ethernet frame carrying an unfragmented IPv4 UDP
// datagram (RFC 791, RFC 768). Anything else, or a frame shorter than its
// headers say, is not one.
func ParseUDP4(frame []byte) (Datagram, bool) {
	const ethLen, udpLen = 14, 8
	if len(frame) < ethLen+20 || binary.BigEndian.Uint16(frame[12:14]) != etherTypeIPv4 {
		return Datagram{}, false
	}
	ip := frame[ethLen:]
	ihl := int(ip[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(ip[2:4]))
	// Flags and fragment offset: a set More Fragments bit or a non-zero
	// offset is a fragment, whose UDP header is elsewhere or incomplete.
	frag := binary.BigEndian.Uint16(ip[6:8]) & 0x3fff
	if ip[0]>>4 != 4 || ihl < 20 || total < ihl+udpLen || total > len(ip) || ip[9] != syscall.IPPROTO_UDP || frag != 0 {
		return Datagram{}, false
	}
	udp := ip[ihl:total]
	length := int(binary.BigEndian.Uint16(udp[4:6]))
	if length < udpLen || length > len(udp) {
		return Datagram{}, false
	}
	src, _ := netip.AddrFromSlice(ip[12:16])
	dst, _ := netip.AddrFromSlice(ip[16:20])
	return Datagram{
		Src:     netip.AddrPortFrom(src, binary.BigEndian.Uint16(udp[0:2])),
		Dst:     netip.AddrPortFrom(dst, binary.BigEndian.Uint16(udp[2:4])),
		Payload: slices.Clone(udp[udpLen:length]),
	}, true
}

// ListenUDP opens a UDP socket in h's namespace bound to laddr, one of h's
// own addresses (with a port that is free there), e.g. to send as h after
// the process that owned the port has gone.
func (l *Lab) ListenUDP(h *Host, laddr netip.AddrPort) (*net.UDPConn, error) {
	return l.listenUDP(h, laddr, false)
}

// ForgeUDP opens a UDP socket in h's namespace that sends from src, an
// address of another host of the lab: a transparent socket (IP_TRANSPARENT,
// which needs CAP_NET_ADMIN in h's namespace) may bind an address it does
// not have, and its datagrams leave with that source. The receiver cannot
// tell them from src's own at the IP layer. Only addresses of the lab's
// subnets are accepted.
func (l *Lab) ForgeUDP(h *Host, src netip.AddrPort) (*net.UDPConn, error) {
	if a := src.Addr().Unmap(); !l.Subnet4.Contains(a) && !l.Subnet6.Contains(a) {
		return nil, fmt.Errorf("forge UDP from %s: %s is not in the lab's subnets %s, %s", h.label(), src, l.Subnet4, l.Subnet6)
	}
	return l.listenUDP(h, src, true)
}

func (l *Lab) listenUDP(h *Host, laddr netip.AddrPort, transparent bool) (*net.UDPConn, error) {
	lc := net.ListenConfig{}
	if transparent {
		lc.Control = func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				if laddr.Addr().Unmap().Is4() {
					serr = unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_TRANSPARENT, 1)
				} else {
					serr = unix.SetsockoptInt(int(fd), unix.SOL_IPV6, unix.IPV6_TRANSPARENT, 1)
				}
			})
			return errors.Join(err, serr)
		}
	}
	network := "udp4"
	if !laddr.Addr().Unmap().Is4() {
		network = "udp6"
	}
	var c net.PacketConn
	err := netns.Do(h.Netns, func() error {
		var err error
		// A literal address makes ListenPacket create the socket on this
		// goroutine, hence in the namespace.
		c, err = lc.ListenPacket(context.Background(), network, laddr.String())
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("UDP socket on %s in %s: %w", laddr, h.label(), err)
	}
	return c.(*net.UDPConn), nil
}

// FloodLimit bounds a flood; both bounds are required.
type FloodLimit struct {
	// Packets is the most datagrams sent.
	Packets int
	// Duration is the longest the flood lasts, at most MaxFlood.
	Duration time.Duration
}

// MaxFlood is the longest flood FloodUDP sends.
const MaxFlood = time.Minute

// FloodResult says what a flood sent.
type FloodResult struct {
	Packets int
	Took    time.Duration
}

// Rate is the datagrams sent per second.
func (r FloodResult) Rate() float64 {
	if r.Took <= 0 {
		return 0
	}
	return float64(r.Packets) / r.Took.Seconds()
}

// FloodUDP sends payloads to dst through c, one after the other and over
// again, as fast as one goroutine (one core) can, in batches (sendmmsg),
// until a bound of limit or ctx ends. dst
// must be a lab address (its subnets), so that a flood never leaves the
// lab. A datagram the kernel drops on the way (a full queue) still counts
// as sent: the count is what left the sender.
func (l *Lab) FloodUDP(ctx context.Context, c *net.UDPConn, dst netip.AddrPort, payloads [][]byte, limit FloodLimit) (FloodResult, error) {
	if a := dst.Addr().Unmap(); !l.Subnet4.Contains(a) && !l.Subnet6.Contains(a) {
		return FloodResult{}, fmt.Errorf("flood: %s is not in the lab's subnets %s, %s", dst, l.Subnet4, l.Subnet6)
	}
	if limit.Packets <= 0 || limit.Duration <= 0 || limit.Duration > MaxFlood {
		return FloodResult{}, fmt.Errorf("flood: bounds %d packets, %s must both be set (at most %s)", limit.Packets, limit.Duration, MaxFlood)
	}
	if len(payloads) == 0 {
		return FloodResult{}, errors.New("flood: no payload")
	}
	// A multiple of len(payloads), so that every batch starts with the
	// first.
	batch := len(payloads) * max(1, 64/len(payloads))
	to := net.UDPAddrFromAddrPort(dst)
	msgs := make([]ipv4.Message, batch)
	for i := range msgs {
		msgs[i] = ipv4.Message{Buffers: [][]byte{payloads[i%len(payloads)]}, Addr: to}
	}
	// ipv4.Message and ipv6.Message are one type.
	write := ipv4.NewPacketConn(c).WriteBatch
	if !dst.Addr().Unmap().Is4() {
		write = ipv6.NewPacketConn(c).WriteBatch
	}
	start := time.Now()
	deadline := start.Add(limit.Duration)
	sent := 0
	for sent < limit.Packets && ctx.Err() == nil && time.Now().Before(deadline) {
		n, err := write(msgs[:min(batch, limit.Packets-sent)], 0)
		sent += n
		if err != nil {
			return FloodResult{Packets: sent, Took: time.Since(start)}, fmt.Errorf("flood to %s: %w", dst, err)
		}
	}
	return FloodResult{Packets: sent, Took: time.Since(start)}, nil
}
