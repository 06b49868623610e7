package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/keeperlb/keeperlb/internal/lab"
	"github.com/keeperlb/keeperlb/internal/netns"
)

// neighbours reads one host's neighbour table over a netlink socket opened
// in its namespace: one dump is a single system call, cheap enough to poll
// every few milliseconds (forking `ip neigh` costs more than the interval).
type neighbours struct {
	mu    sync.Mutex
	h     *netlink.Handle
	index int
}

// openNeighbours opens the netlink socket inside h's namespace; the socket
// stays there for life, whichever thread later uses it.
func openNeighbours(h *lab.Host) (*neighbours, error) {
	n := &neighbours{}
	err := netns.Do(h.Netns, func() error {
		hd, err := netlink.NewHandle(unix.NETLINK_ROUTE)
		if err != nil {
			return err
		}
		link, err := hd.LinkByName(h.Interface)
		if err != nil {
			hd.Close()
			return err
		}
		n.h, n.index = hd, link.Attrs().Index
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("netlink socket in %s: %w", h.Netns, err)
	}
	return n, nil
}

// lookup returns the link-layer address of ip's entry, or nil when there is
// no usable entry (none, INCOMPLETE or FAILED).
func (n *neighbours) lookup(ip netip.Addr) (net.HardwareAddr, error) {
	fam := netlink.FAMILY_V4
	if ip.Is6() {
		fam = netlink.FAMILY_V6
	}
	n.mu.Lock()
	list, err := n.h.NeighList(n.index, fam)
	n.mu.Unlock()
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return nil, fmt.Errorf("neighbour dump: %w", err)
	}
	want := net.IP(ip.AsSlice())
	for _, e := range list {
		if !e.IP.Equal(want) || len(e.HardwareAddr) == 0 {
			continue
		}
		if e.State&(netlink.NUD_INCOMPLETE|netlink.NUD_FAILED) != 0 {
			return nil, nil
		}
		return e.HardwareAddr, nil
	}
	return nil, nil
}

func (n *neighbours) close() { n.h.Close() }

// observation is when a watcher saw what it waited for, and from whom.
type observation struct {
	at   time.Time
	node string
}

// watchNeighbour polls the client's entry for vip every interval and sends
// the first observation of an entry that points at a node accepted by ok.
// It stops when ctx ends.
func (b *bench) watchNeighbour(ctx context.Context, vip netip.Addr, interval time.Duration, ok func(string) bool) <-chan observation {
	out := make(chan observation, 1)
	go func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			mac, err := b.neigh.lookup(vip)
			if err == nil && mac != nil {
				if node := b.nodeOfMAC(mac); node != "" && ok(node) {
					out <- observation{at: time.Now(), node: node}
					return
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return out
}

// watchHTTP starts a new HTTP request from the client to vip every interval,
// each on a new connection and with a short timeout, and sends the arrival
// time of the first answer from a node accepted by ok. Requests overlap, so
// one stuck on a dead MAC does not delay the next. It stops when ctx ends.
func (b *bench) watchHTTP(ctx context.Context, vip netip.Addr, interval, timeout time.Duration, ok func(string) bool) <-chan observation {
	out := make(chan observation, 1)
	go func() {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		var wg sync.WaitGroup
		defer wg.Wait()
		got := make(chan observation, 1)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rctx, rcancel := context.WithTimeout(ctx, timeout)
				defer rcancel()
				node, err := b.lab.Curl(rctx, b.lab.Client, vip, 80)
				if err == nil && ok(node) {
					select {
					case got <- observation{at: time.Now(), node: node}:
					default:
					}
				}
			}()
			select {
			case <-ctx.Done():
				return
			case o := <-got:
				out <- o
				return
			case <-t.C:
			}
		}
	}()
	return out
}

// arpAnswerers broadcasts ARP requests for ip from host with arping
// (-b: keep broadcasting, so that a second answerer cannot hide behind the
// first) and returns the nodes whose MACs answered, sorted. Unknown MACs are
// returned as they are.
func (b *bench) arpAnswerers(ctx context.Context, host *lab.Host, ip netip.Addr) ([]string, error) {
	out, err := b.lab.Exec(ctx, host, "arping", "-b", "-c", "2", "-w", "2", "-I", host.Interface, ip.String())
	var exit *exec.ExitError
	if err != nil && !(errors.As(err, &exit) && exit.ExitCode() == 1) && !strings.Contains(err.Error(), "exit status 1") {
		// Exit status 1 means that nobody answered.
		return nil, fmt.Errorf("arping %s: %w", ip, err)
	}
	var nodes []string
	for _, m := range arpingMACs(out) {
		mac, perr := net.ParseMAC(m)
		if perr != nil {
			nodes = append(nodes, m)
			continue
		}
		if n := b.nodeOfMAC(mac); n != "" {
			nodes = append(nodes, n)
		} else {
			nodes = append(nodes, m)
		}
	}
	return nodes, nil
}

// nodeOfMAC names the node whose eth0 has mac, or "" when none has.
func (b *bench) nodeOfMAC(mac net.HardwareAddr) string {
	for _, n := range b.lab.Nodes {
		if strings.EqualFold(n.MAC.String(), mac.String()) {
			return n.Name
		}
	}
	return ""
}
