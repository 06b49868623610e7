package lab

import (
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/mdlayher/packet"

	"github.com/keeperlb/keeperlb/internal/netns"
)

// capture reads frames from packet sockets on one host's interface, in the
// host's namespace, and keeps what parse makes of them. It sends nothing.
type capture[T any] struct {
	conns    []*packet.Conn
	parse    func(frame []byte, at time.Time) (T, bool)
	stop     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup

	mu   sync.Mutex
	seen []T
	err  error
}

// etherTypeAll is ETH_P_ALL: a packet socket bound to it sees the frames the
// host sends as well as those it receives (a socket bound to one EtherType
// sees only received ones).
const etherTypeAll = 0x0003

// startCapture opens one packet socket per EtherType on h's interface and
// reads until stop.
func startCapture[T any](h *Host, etherTypes []int, parse func([]byte, time.Time) (T, bool)) (*capture[T], error) {
	c := &capture[T]{parse: parse, stop: make(chan struct{})}
	err := netns.Do(h.Netns, func() error {
		ifi, err := net.InterfaceByName(h.Interface)
		if err != nil {
			return err
		}
		for _, et := range etherTypes {
			pc, err := packet.Listen(ifi, packet.Raw, et, nil)
			if err != nil {
				return err
			}
			c.conns = append(c.conns, pc)
		}
		return nil
	})
	if err != nil {
		for _, pc := range c.conns {
			_ = pc.Close()
		}
		return nil, fmt.Errorf("capturing in %s: %w", h.Netns, err)
	}
	for _, pc := range c.conns {
		c.wg.Add(1)
		go c.read(pc)
	}
	return c, nil
}

func (c *capture[T]) read(pc *packet.Conn) {
	defer c.wg.Done()
	buf := make([]byte, 1600)
	for {
		select {
		case <-c.stop:
			return
		default:
		}
		// A deadline so that the loop sees stop even in silence.
		if err := pc.SetReadDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
			c.fail(err)
			return
		}
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				continue
			}
			c.fail(err)
			return
		}
		if v, ok := c.parse(buf[:n], time.Now()); ok {
			c.mu.Lock()
			c.seen = append(c.seen, v)
			c.mu.Unlock()
		}
	}
}

func (c *capture[T]) fail(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	c.mu.Unlock()
}

// Seen returns what was recorded so far, in arrival order.
func (c *capture[T]) Seen() []T {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.seen)
}

// Stop closes the sockets and returns everything recorded, and the first
// read error if any. It may be called more than once (from a test's
// cleanup too).
func (c *capture[T]) Stop() ([]T, error) {
	c.stopOnce.Do(func() {
		close(c.stop)
		c.wg.Wait()
		for _, pc := range c.conns {
			_ = pc.Close()
		}
	})
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.seen, c.err
}
