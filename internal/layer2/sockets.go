package layer2

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mdlayher/packet"
	"golang.org/x/sys/unix"
)

// sockets are the two packet sockets of one interface and the set of IPs
// they answer for. The readers hold mu for reading while they decide and
// reply; setOwned and close take it for writing, which is what guarantees
// that no answer for a removed IP leaves after Set returns.
type sockets struct {
	name    string
	index   int
	mac     net.HardwareAddr
	arp     *packet.Conn
	nd      *packet.Conn
	bufSize int

	mu     sync.RWMutex
	owned  map[netip.Addr]struct{}
	groups map[string]net.HardwareAddr // joined Ethernet groups, by String()

	closing atomic.Bool
	errMu   sync.Mutex
	err     error
	wg      sync.WaitGroup
}

// openSockets opens the ARP and IPv6 packet sockets of the named interface,
// in the announcer's namespace.
func (a *Announcer) openSockets(name string) (*sockets, error) {
	arpF, err := arpRequestFilter()
	if err != nil {
		return nil, err
	}
	ndF, err := nsFilter()
	if err != nil {
		return nil, err
	}
	var s *sockets
	err = a.ns.Do(func() error {
		ifi, err := net.InterfaceByName(name)
		if err != nil {
			return fmt.Errorf("interface %s: %w", name, err)
		}
		if ifi.Flags&net.FlagUp == 0 {
			return fmt.Errorf("interface %s is down", name)
		}
		if len(ifi.HardwareAddr) != 6 {
			return fmt.Errorf("interface %s has no Ethernet address", name)
		}
		arpc, err := packet.Listen(ifi, packet.Raw, etherTypeARP, &packet.Config{Filter: arpF})
		if err != nil {
			return fmt.Errorf("open ARP socket on %s: %w", name, err)
		}
		ndc, err := packet.Listen(ifi, packet.Raw, etherTypeIPv6, &packet.Config{Filter: ndF})
		if err != nil {
			_ = arpc.Close()
			return fmt.Errorf("open IPv6 socket on %s: %w", name, err)
		}
		s = &sockets{
			name:    name,
			index:   ifi.Index,
			mac:     slices.Clone(ifi.HardwareAddr),
			arp:     arpc,
			nd:      ndc,
			bufSize: max(ifi.MTU+ethHeaderLen+4, 1518),
			owned:   map[netip.Addr]struct{}{},
			groups:  map[string]net.HardwareAddr{},
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Our own transmissions would otherwise be looped back to us. Failure
	// (a kernel before 4.20) is harmless: replyTo* ignore frames from mac.
	ignoreOutgoing(s.arp)
	ignoreOutgoing(s.nd)
	return s, nil
}

func ignoreOutgoing(c *packet.Conn) {
	rc, err := c.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		_ = unix.SetsockoptInt(int(fd), unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1)
	})
}

// start launches the two readers.
func (s *sockets) start(a *Announcer) {
	s.wg.Add(2)
	go s.serve(a, s.arp, "ARP", replyToARP)
	go s.serve(a, s.nd, "NDP", replyToNS)
}

// serve reads frames from c and answers those decide accepts. A read error
// other than the one caused by close is recorded for the announcer's loop,
// which reopens the interface.
func (s *sockets) serve(a *Announcer, c *packet.Conn, proto string, decide func([]byte, net.HardwareAddr, func(netip.Addr) bool) (answer, bool)) {
	defer s.wg.Done()
	buf := make([]byte, s.bufSize)
	for {
		n, _, err := c.ReadFrom(buf)
		if err != nil {
			if s.closing.Load() {
				return
			}
			s.fail(fmt.Errorf("read %s frames on %s: %w", proto, s.name, err))
			a.poke()
			return
		}
		s.mu.RLock()
		ans, ok := decide(buf[:n], s.mac, s.owns)
		if ok {
			label := ans.Target.String()
			a.m.requests.WithLabelValues(label).Inc()
			if err := send(c, ans.Frame); err != nil {
				a.log.Debug("cannot send reply", "interface", s.name, "protocol", proto, "ip", label, "error", err)
			} else {
				a.m.responses.WithLabelValues(label).Inc()
			}
		}
		s.mu.RUnlock()
	}
}

// owns is the owned-IP test handed to replyTo*; s.mu is held by the caller.
func (s *sockets) owns(ip netip.Addr) bool {
	_, ok := s.owned[ip]
	return ok
}

// setOwned replaces the answered set and joins exactly the Ethernet groups
// of its IPv6 addresses' solicited-node addresses.
func (s *sockets) setOwned(owned map[netip.Addr]struct{}) error {
	want := map[string]net.HardwareAddr{}
	for ip := range owned {
		if ip.Is6() {
			g := multicastMAC(solicitedNode(ip))
			want[g.String()] = g
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.owned = owned
	var errs []error
	for _, k := range slices.Sorted(maps.Keys(s.groups)) {
		if _, ok := want[k]; !ok {
			if err := s.nd.LeaveGroup(s.groups[k]); err != nil {
				errs = append(errs, fmt.Errorf("leave group %s: %w", k, err))
			}
			delete(s.groups, k)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if _, ok := s.groups[k]; !ok {
			if err := s.nd.JoinGroup(want[k]); err != nil {
				errs = append(errs, fmt.Errorf("join group %s: %w", k, err))
				continue
			}
			s.groups[k] = want[k]
		}
	}
	return errors.Join(errs...)
}

// gratuitous returns the frames of one gratuitous burst for ip.
func (s *sockets) gratuitous(ip netip.Addr) [][]byte {
	if ip.Is4() {
		req, rep := gratuitousARP(s.mac, ip)
		return [][]byte{req, rep}
	}
	return [][]byte{unsolicitedNA(s.mac, ip)}
}

// write sends a frame about ip on the matching socket.
func (s *sockets) write(ip netip.Addr, frame []byte) error {
	c := s.nd
	if ip.Is4() {
		c = s.arp
	}
	return send(c, frame)
}

// writeTimeout bounds a send. A packet socket write normally returns at
// once, but the callers hold locks that Set needs, so a device that stops
// draining its queue must not be able to hang the announcer.
const writeTimeout = 100 * time.Millisecond

// send writes a whole Ethernet frame; its destination MAC addresses it.
func send(c *packet.Conn, frame []byte) error {
	if err := c.SetWriteDeadline(time.Now().Add(writeTimeout)); err != nil {
		return err
	}
	_, err := c.WriteTo(frame, &packet.Addr{HardwareAddr: net.HardwareAddr(frame[0:6])})
	return err
}

func (s *sockets) fail(err error) {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	if s.err == nil {
		s.err = err
	}
}

// failure returns the first read error, if any.
func (s *sockets) failure() error {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	return s.err
}

// close stops answering, closes both sockets and waits for the readers.
func (s *sockets) close() {
	s.closing.Store(true)
	s.mu.Lock()
	s.owned = nil
	s.mu.Unlock()
	_ = s.arp.Close()
	_ = s.nd.Close()
	s.wg.Wait()
}
