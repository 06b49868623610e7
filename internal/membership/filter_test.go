package membership

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// sendFrom sends n copies of b from src (a loopback address, any port) to
// dst.
func sendFrom(t *testing.T, src netip.Addr, dst netip.AddrPort, b []byte, n int) {
	t.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for range n {
		if _, err := c.WriteToUDPAddrPort(b, dst); err != nil {
			t.Fatal(err)
		}
	}
}

// waitStats waits until ok accepts d's stats.
func waitStats(t *testing.T, d *Detector, what string, ok func(Stats) bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !ok(d.Stats()) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: stats %+v", what, d.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestPeerFilter checks the kernel's share of the address check on real
// sockets: datagrams from an address that is no peer's are dropped before
// the detector reads them (and counted as Dropped), a peer's reach it (and
// junk from one counts as Unknown), for IPv4 and IPv6 peers on a dual-stack
// socket, and across a change of peers.
func TestPeerFilter(t *testing.T) {
	d, err := New(slog.New(slog.DiscardHandler), Options{Node: "n1", Port: 0, Key: testKey,
		Interval: 100 * time.Millisecond, Timeout: 400 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	port := uint16(d.conn.LocalAddr().(*net.UDPAddr).Port)
	// Receiving only: Run would send heartbeats to the peers, which are
	// loopback addresses of this very socket.
	go d.receive()
	junk := []byte("not a heartbeat")
	v4peer, v4other := netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.3")
	v6 := netip.MustParseAddr("::1")
	to4, to6 := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port), netip.AddrPortFrom(v6, port)

	// Before SetPeers nothing is admitted.
	sendFrom(t, v4peer, to4, junk, 5)
	waitStats(t, d, "before any peer is known", func(s Stats) bool { return s.Dropped == 5 && s.Unknown == 0 })

	for _, step := range []struct {
		peers          []Peer
		admit, refuse  netip.Addr
		admitTo, refTo netip.AddrPort
	}{
		{[]Peer{{"n2", v4peer}}, v4peer, v4other, to4, to4},
		{[]Peer{{"n2", v4peer}}, v4peer, v6, to4, to6},
		{[]Peer{{"n2", v6}}, v6, v4peer, to6, to4},
		{[]Peer{{"n2", v6}, {"n3", v4other}}, v4other, v4peer, to4, to4},
	} {
		d.SetPeers(step.peers)
		before := d.Stats()
		what := fmt.Sprintf("peers %v, from %s and %s", step.peers, step.admit, step.refuse)
		sendFrom(t, step.refuse, step.refTo, junk, 7)
		sendFrom(t, step.admit, step.admitTo, junk, 3)
		waitStats(t, d, what, func(s Stats) bool {
			return s.Dropped == before.Dropped+7 && s.Unknown == before.Unknown+3
		})
	}

	// More peers than one program holds: everything is admitted rather
	// than a peer dropped, and handle still refuses strangers.
	var many []Peer
	for i := range 3000 {
		many = append(many, Peer{fmt.Sprintf("m%d", i), netip.AddrFrom4([4]byte{127, 1, byte(i >> 8), byte(i)})})
	}
	d.SetPeers(many)
	before := d.Stats()
	sendFrom(t, v4peer, to4, junk, 4)
	waitStats(t, d, "3000 peers", func(s Stats) bool { return s.Dropped == before.Dropped && s.Unknown == before.Unknown+4 })
}

func TestPeerFilterSize(t *testing.T) {
	addrs := func(n int, six bool) []netip.Addr {
		var out []netip.Addr
		for i := range n {
			if six {
				out = append(out, netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 14: byte(i >> 8), 15: byte(i)}))
			} else {
				out = append(out, netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}))
			}
		}
		return out
	}
	for _, c := range []struct {
		v4, v6 int
		ok     bool
	}{{0, 0, true}, {2000, 0, true}, {0, 450, true}, {2100, 0, false}, {0, 460, false}} {
		raw, err := peerFilter(append(addrs(c.v4, false), addrs(c.v6, true)...))
		if (err == nil) != c.ok {
			t.Errorf("%d IPv4 and %d IPv6 peers: %d instructions, %v", c.v4, c.v6, len(raw), err)
		}
	}
}

// TestDeepReceiveQueue checks the queue the detector asks for, against
// floods forged with a peer's address: the kernel gives twice the request
// (for its bookkeeping), capped at net.core.rmem_max.
func TestDeepReceiveQueue(t *testing.T) {
	d := newTestDetector(t, &clock{t: time.Unix(1000, 0)})
	b, err := os.ReadFile("/proc/sys/net/core/rmem_max")
	if err != nil {
		t.Fatal(err)
	}
	limit, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	rc, err := d.conn.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var got int
	var serr error
	if err := rc.Control(func(fd uintptr) { got, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF) }); err != nil || serr != nil {
		t.Fatal(err, serr)
	}
	if want := 2 * min(readBuffer, limit); got != want {
		t.Errorf("the heartbeat socket's queue is %d bytes, want %d (twice %d, capped at rmem_max %d)", got, want, readBuffer, limit)
	}
}
