package lab_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/keeperlb/keeperlb/internal/lab"
	"github.com/keeperlb/keeperlb/internal/lab/labtest"
)

// udp4Frame builds an Ethernet frame with an IPv4 header (no options
// unless ihl says more) and a UDP datagram.
func udp4Frame(src, dst netip.AddrPort, payload []byte, mod func(ip, udp []byte)) []byte {
	udp := make([]byte, 8, 8+len(payload))
	binary.BigEndian.PutUint16(udp[0:2], src.Port())
	binary.BigEndian.PutUint16(udp[2:4], dst.Port())
	binary.BigEndian.PutUint16(udp[4:6], uint16(8+len(payload)))
	udp = append(udp, payload...)
	ip := make([]byte, 20)
	ip[0] = 4<<4 | 5
	binary.BigEndian.PutUint16(ip[2:4], uint16(20+len(udp)))
	ip[8], ip[9] = 64, 17
	copy(ip[12:16], src.Addr().AsSlice())
	copy(ip[16:20], dst.Addr().AsSlice())
	if mod != nil {
		mod(ip, udp)
	}
	return ether(net.HardwareAddr{0x02, 0, 0, 0, 0, 1}, 0x0800, append(ip, udp...))
}

func TestParseUDP4(t *testing.T) {
	src := netip.MustParseAddrPort("198.18.0.11:7946")
	dst := netip.MustParseAddrPort("198.18.0.12:7946")
	hello := []byte("hello")
	cases := []struct {
		name    string
		frame   []byte
		ok      bool
		payload []byte
	}{
		{"datagram", udp4Frame(src, dst, hello, nil), true, hello},
		{"empty payload", udp4Frame(src, dst, nil, nil), true, []byte{}},
		// An Ethernet frame is padded to 60 bytes: the IP total length,
		// not the frame, says where the datagram ends.
		{"padded frame", append(udp4Frame(src, dst, hello, nil), make([]byte, 20)...), true, hello},
		{"TCP", udp4Frame(src, dst, hello, func(ip, _ []byte) { ip[9] = 6 }), false, nil},
		{"IPv6 EtherType", func() []byte {
			f := udp4Frame(src, dst, hello, nil)
			f[12], f[13] = 0x86, 0xdd
			return f
		}(), false, nil},
		{"first fragment", udp4Frame(src, dst, hello, func(ip, _ []byte) { ip[6] = 0x20 }), false, nil},
		{"later fragment", udp4Frame(src, dst, hello, func(ip, _ []byte) { ip[7] = 1 }), false, nil},
		{"total length past the frame", udp4Frame(src, dst, hello, func(ip, _ []byte) { ip[3] += 10 }), false, nil},
		{"UDP length past the datagram", udp4Frame(src, dst, hello, func(_, udp []byte) { udp[5] += 1 }), false, nil},
		{"UDP length under its header", udp4Frame(src, dst, hello, func(_, udp []byte) { udp[5] = 7 }), false, nil},
		{"header length under 20", udp4Frame(src, dst, hello, func(ip, _ []byte) { ip[0] = 4<<4 | 4 }), false, nil},
		{"short frame", []byte{1, 2, 3}, false, nil},
	}
	for _, tc := range cases {
		got, ok := lab.ParseUDP4(tc.frame)
		if ok != tc.ok {
			t.Errorf("%s: ok = %v, want %v (%+v)", tc.name, ok, tc.ok, got)
			continue
		}
		if ok && (got.Src != src || got.Dst != dst || !bytes.Equal(got.Payload, tc.payload)) {
			t.Errorf("%s: got %+v, want %s -> %s %q", tc.name, got, src, dst, tc.payload)
		}
	}
	// An IP header with options: the UDP header starts after them.
	opts := udp4Frame(src, dst, nil, nil)
	ip := opts[14:34]
	ip[0] = 4<<4 | 6
	binary.BigEndian.PutUint16(ip[2:4], 24+8+5)
	withOpts := append(append(append([]byte{}, opts[:34]...), 1, 1, 1, 0), udp4Frame(src, dst, hello, nil)[34:]...)
	if got, ok := lab.ParseUDP4(withOpts); !ok || got.Src != src || !bytes.Equal(got.Payload, hello) {
		t.Errorf("with IP options: got %+v, %v", got, ok)
	}
}

// TestUDPWatchForgeAndFlood checks the UDP tools on a real lab: a watch
// sees a host's datagrams in both directions, a forged source arrives as
// the host it names, and floods keep their bounds and stay in the lab.
func TestUDPWatchForgeAndFlood(t *testing.T) {
	l := labtest.Up(t, lab.Options{Nodes: 2, NoControlPlane: true})
	n1, n2 := l.Nodes[0], l.Nodes[1]
	rx, err := l.ListenUDP(n1, netip.AddrPortFrom(n1.IPv4, 40000))
	if err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	to := netip.AddrPortFrom(n1.IPv4, 40000)
	recv := func() (netip.AddrPort, []byte) {
		t.Helper()
		buf := make([]byte, 1500)
		if err := rx.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
			t.Fatal(err)
		}
		n, from, err := rx.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("receiving on %s: %v", to, err)
		}
		return from, buf[:n]
	}
	// send sends payload through c and checks that it arrives from want.
	send := func(c *net.UDPConn, want netip.AddrPort, payload string) {
		t.Helper()
		if _, err := c.WriteToUDPAddrPort([]byte(payload), to); err != nil {
			t.Fatal(err)
		}
		if from, b := recv(); from != want || string(b) != payload {
			t.Fatalf("received %q from %s, want %q from %s", b, from, payload, want)
		}
	}

	sender, senderWatch := netip.AddrPortFrom(n2.IPv4, 40001), mustWatchUDP(t, l, n2, 40000)
	receiverWatch := mustWatchUDP(t, l, n1, 40000)
	tx, err := l.ListenUDP(n2, sender)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	send(tx, sender, "hello")
	// The sender's watch sees the datagram leave, the receiver's arrive.
	for name, w := range map[string]*lab.UDPWatch{"sender": senderWatch, "receiver": receiverWatch} {
		waitLab(t, "the "+name+"'s watch", func() error {
			for _, d := range w.Seen() {
				if d.Src == sender && d.Dst == to && string(d.Payload) == "hello" {
					return nil
				}
			}
			return errors.New("the " + name + "'s watch has not seen hello")
		})
		if _, err := w.Stop(); err != nil {
			t.Fatalf("the %s's watch: %v", name, err)
		}
	}

	// From the client, with node2's address.
	forged := netip.AddrPortFrom(n2.IPv4, 40002)
	fc, err := l.ForgeUDP(l.Client, forged)
	if err != nil {
		t.Fatal(err)
	}
	defer fc.Close()
	send(fc, forged, "forged")
	if c, err := l.ForgeUDP(l.Client, netip.MustParseAddrPort("192.0.2.1:40002")); err == nil {
		c.Close()
		t.Fatal("ForgeUDP accepted a source outside the lab")
	}

	// Floods: the packet bound, the time bound, and refusals.
	res, err := l.FloodUDP(t.Context(), fc, to, [][]byte{[]byte("a"), []byte("b")}, lab.FloodLimit{Packets: 100, Duration: 10 * time.Second})
	if err != nil || res.Packets != 100 {
		t.Fatalf("a flood of 100 packets sent %d (%v)", res.Packets, err)
	}
	// 100 small datagrams fit the receiver's queue: all arrive, the
	// payloads in turn.
	for i := range 100 {
		if from, b := recv(); from != forged || string(b) != string("ab"[i%2]) {
			t.Fatalf("flood datagram %d: %q from %s, want %q from %s", i, b, from, "ab"[i%2], forged)
		}
	}
	start := time.Now()
	res, err = l.FloodUDP(t.Context(), fc, to, [][]byte{[]byte("x")}, lab.FloodLimit{Packets: 1 << 40, Duration: 200 * time.Millisecond})
	if took := time.Since(start); err != nil || took > 2*time.Second || res.Packets == 0 {
		t.Fatalf("a 200 ms flood took %s, sent %d (%v)", took, res.Packets, err)
	}
	t.Logf("200 ms flood: %d packets, %.0f/s", res.Packets, res.Rate())
	for _, c := range []struct {
		dst   string
		limit lab.FloodLimit
	}{
		{"192.0.2.1:40000", lab.FloodLimit{Packets: 1, Duration: time.Second}},
		{to.String(), lab.FloodLimit{Packets: 0, Duration: time.Second}},
		{to.String(), lab.FloodLimit{Packets: 1, Duration: 0}},
		{to.String(), lab.FloodLimit{Packets: 1, Duration: lab.MaxFlood + time.Second}},
	} {
		if res, err := l.FloodUDP(t.Context(), fc, netip.MustParseAddrPort(c.dst), [][]byte{[]byte("x")}, c.limit); err == nil || res.Packets != 0 {
			t.Errorf("flood to %s with %+v: sent %d, err %v; want a refusal", c.dst, c.limit, res.Packets, err)
		}
	}
	if res, err := l.FloodUDP(t.Context(), fc, to, nil, lab.FloodLimit{Packets: 1, Duration: time.Second}); err == nil || res.Packets != 0 {
		t.Errorf("a flood with no payload sent %d, err %v; want a refusal", res.Packets, err)
	}
}

func mustWatchUDP(t *testing.T, l *lab.Lab, h *lab.Host, port uint16) *lab.UDPWatch {
	t.Helper()
	w, err := l.WatchUDP(h, port)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = w.Stop() })
	return w
}
