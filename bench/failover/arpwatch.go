package main

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/mdlayher/arp"

	"github.com/keeperlb/keeperlb/internal/lab"
	"github.com/keeperlb/keeperlb/internal/netns"
)

// arpReply is one answer to the watcher's requests.
type arpReply struct {
	at  time.Time
	mac string
}

// announcement is one ARP frame from one of the benchmark's VIPs (sender
// IP = the VIP): a gratuitous announcement (target IP = sender IP) or an
// answer to someone's request.
type announcement struct {
	at         time.Time
	ip         netip.Addr
	mac        string
	reply      bool
	gratuitous bool
}

// arpWatch asks "who has VIP?" by broadcast from an observer host every few
// milliseconds and records every answer, so that the time two nodes answered
// at once can be read afterwards. The observer is the router host, not the
// client: the client's kernel takes any ARP reply from the VIP into its
// existing entry, so asking from the client would change what is measured.
type arpWatch struct {
	c    *arp.Client
	self netip.Addr
	vip  netip.Addr
	// all are every VIP of the benchmark, whose ARP frames are recorded
	// too.
	all  []netip.Addr
	stop chan struct{}
	wg   sync.WaitGroup

	mu      sync.Mutex
	sent    []time.Time
	replies []arpReply
	garps   []announcement
	err     error
}

// startARPWatch opens a raw ARP socket in h's namespace and, when vip is
// valid, starts asking for it every interval; it also records every ARP
// frame it sees from an address in all.
func startARPWatch(h *lab.Host, vip netip.Addr, all []netip.Addr, interval time.Duration) (*arpWatch, error) {
	w := &arpWatch{vip: vip, all: all, self: h.IPv4, stop: make(chan struct{})}
	err := netns.Do(h.Netns, func() error {
		ifi, err := net.InterfaceByName(h.Interface)
		if err != nil {
			return err
		}
		w.c, err = arp.Dial(ifi)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("ARP socket in %s: %w", h.Netns, err)
	}
	w.wg.Add(1)
	go w.read()
	if vip.IsValid() {
		w.wg.Add(1)
		go w.ask(interval)
	}
	return w, nil
}

func (w *arpWatch) ask(interval time.Duration) {
	defer w.wg.Done()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		now := time.Now()
		if err := w.c.Request(w.vip); err != nil {
			w.fail(err)
			return
		}
		w.mu.Lock()
		w.sent = append(w.sent, now)
		w.mu.Unlock()
		select {
		case <-w.stop:
			return
		case <-t.C:
		}
	}
}

func (w *arpWatch) read() {
	defer w.wg.Done()
	for {
		// A deadline so that the loop sees stop even in silence.
		if err := w.c.SetReadDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
			w.fail(err)
			return
		}
		p, _, err := w.c.Read()
		select {
		case <-w.stop:
			return
		default:
		}
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				continue
			}
			w.fail(err)
			return
		}
		if slices.Contains(w.all, p.SenderIP) {
			w.mu.Lock()
			w.garps = append(w.garps, announcement{at: time.Now(), ip: p.SenderIP, mac: p.SenderHardwareAddr.String(),
				reply: p.Operation == arp.OperationReply, gratuitous: p.SenderIP == p.TargetIP})
			w.mu.Unlock()
		}
		// Answers to our requests only: gratuitous announcements are
		// addressed to the VIP itself, not to the observer.
		if p.Operation != arp.OperationReply || p.SenderIP != w.vip || p.TargetIP != w.self {
			continue
		}
		w.mu.Lock()
		w.replies = append(w.replies, arpReply{at: time.Now(), mac: p.SenderHardwareAddr.String()})
		w.mu.Unlock()
	}
}

func (w *arpWatch) fail(err error) {
	w.mu.Lock()
	if w.err == nil {
		w.err = err
	}
	w.mu.Unlock()
}

// firstFrom returns the arrival of the first answer from mac at or after
// since.
func (w *arpWatch) firstFrom(mac string, since time.Time) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, r := range w.replies {
		if r.mac == mac && !r.at.Before(since) {
			return r.at, true
		}
	}
	return time.Time{}, false
}

// announcements returns the frames from the watched VIPs recorded from
// since (inclusive) to until (exclusive).
func (w *arpWatch) announcements(since, until time.Time) []announcement {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []announcement
	for _, g := range w.garps {
		if !g.at.Before(since) && g.at.Before(until) {
			out = append(out, g)
		}
	}
	return out
}

// finish stops the watch and returns what it recorded.
func (w *arpWatch) finish() ([]time.Time, []arpReply, []announcement, error) {
	close(w.stop)
	w.wg.Wait()
	w.c.Close()
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.sent, w.replies, w.garps, w.err
}

// doubleRounds returns the send times of the rounds that more than one MAC
// answered: a reply belongs to the last request sent before it arrived.
func doubleRounds(sent []time.Time, replies []arpReply) []time.Time {
	macs := make([][]string, len(sent))
	for _, r := range replies {
		// The round is the last request sent at or before the reply.
		i, found := slices.BinarySearchFunc(sent, r.at, func(s, t time.Time) int { return s.Compare(t) })
		if !found {
			i--
		}
		if i < 0 {
			continue
		}
		if !slices.Contains(macs[i], r.mac) {
			macs[i] = append(macs[i], r.mac)
		}
	}
	var out []time.Time
	for i, m := range macs {
		if len(m) > 1 {
			out = append(out, sent[i])
		}
	}
	return out
}
