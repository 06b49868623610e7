package bgp

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"syscall"
	"time"

	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
	"golang.org/x/sys/unix"
)

// openVerdict is how a peer answered a probe OPEN.
type openVerdict struct {
	// accepted is true when the peer answered with a KEEPALIVE.
	accepted bool
	// code and subcode are those of the NOTIFICATION the peer sent, when
	// it refused.
	code, subcode uint8
}

// probeOpen connects to a peer the way a session does and sends this
// node's OPEN, to learn the code of the NOTIFICATION the peer refuses it
// with. GoBGP discards a NOTIFICATION received before a session is
// established, so without this a user would only hear "refused during the
// OPEN exchange", when what they need is "bad peer AS" or "bad BGP
// identifier". It is run once per failure streak, while GoBGP waits to
// retry, and closes the connection before any session could form.
func probeOpen(ctx context.Context, pc PeerConfig, routerID netip.Addr, timeout time.Duration) (openVerdict, error) {
	d := net.Dialer{Timeout: timeout}
	if pc.SourceAddress.IsValid() {
		d.LocalAddr = &net.TCPAddr{IP: pc.SourceAddress.AsSlice()}
	}
	if pc.Password != "" {
		d.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) { serr = setMD5(int(fd), pc.Address, pc.Password) })
			if err != nil {
				return err
			}
			return serr
		}
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(pc.Address.String(), strconv.Itoa(int(pc.Port))))
	if err != nil {
		return openVerdict{}, err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return openVerdict{}, err
	}
	open, err := openMessage(pc, routerID)
	if err != nil {
		return openVerdict{}, err
	}
	if _, err := conn.Write(open); err != nil {
		return openVerdict{}, fmt.Errorf("sending OPEN: %w", err)
	}
	for {
		msg, err := readMessage(conn)
		if err != nil {
			return openVerdict{}, err
		}
		switch msg.Header.Type {
		case bgp.BGP_MSG_NOTIFICATION:
			n := msg.Body.(*bgp.BGPNotification)
			return openVerdict{code: n.ErrorCode, subcode: n.ErrorSubcode}, nil
		case bgp.BGP_MSG_KEEPALIVE:
			// Accepted: leave before the session forms.
			cease, _ := bgp.NewBGPNotificationMessage(bgp.BGP_ERROR_CEASE, bgp.BGP_ERROR_SUB_CONNECTION_COLLISION_RESOLUTION, nil).Serialize()
			_, _ = conn.Write(cease)
			return openVerdict{accepted: true}, nil
		}
		// The peer's own OPEN: wait for its verdict on ours.
	}
}

// openMessage builds the OPEN the session would send: AS, hold time,
// router ID, the address families and the 4-octet AS capability.
func openMessage(pc PeerConfig, routerID netip.Addr) ([]byte, error) {
	caps := []bgp.ParameterCapabilityInterface{bgp.NewCapRouteRefresh(), bgp.NewCapFourOctetASNumber(pc.LocalASN)}
	if pc.IPv4 {
		caps = append(caps, bgp.NewCapMultiProtocol(bgp.RF_IPv4_UC))
	}
	if pc.IPv6 {
		caps = append(caps, bgp.NewCapMultiProtocol(bgp.RF_IPv6_UC))
	}
	as := uint16(bgp.AS_TRANS)
	if pc.LocalASN <= 0xffff {
		as = uint16(pc.LocalASN)
	}
	hold := uint16(90)
	if pc.HoldTime > 0 {
		hold = uint16(pc.HoldTime / time.Second)
	}
	msg, err := bgp.NewBGPOpenMessage(as, hold, routerID, []bgp.OptionParameterInterface{bgp.NewOptionParameterCapability(caps)})
	if err != nil {
		return nil, fmt.Errorf("building OPEN: %w", err)
	}
	return msg.Serialize()
}

// readMessage reads one BGP message.
func readMessage(r io.Reader) (*bgp.BGPMessage, error) {
	hdr := make([]byte, bgp.BGP_HEADER_LENGTH)
	if _, err := io.ReadFull(r, hdr); err != nil {
		return nil, fmt.Errorf("reading the peer's answer: %w", err)
	}
	n := int(binary.BigEndian.Uint16(hdr[16:18]))
	if n < bgp.BGP_HEADER_LENGTH || n > bgp.BGP_MAX_MESSAGE_LENGTH {
		return nil, fmt.Errorf("the peer sent a message of length %d", n)
	}
	buf := make([]byte, n)
	copy(buf, hdr)
	if _, err := io.ReadFull(r, buf[bgp.BGP_HEADER_LENGTH:]); err != nil {
		return nil, fmt.Errorf("reading the peer's answer: %w", err)
	}
	return parseMessage(buf)
}

// parseMessage decodes one message from a peer. The bytes come from the
// network, so a decoder panic (a bug in the library on hostile input)
// becomes an error instead of taking the speaker down.
func parseMessage(buf []byte) (msg *bgp.BGPMessage, err error) {
	defer func() {
		if r := recover(); r != nil {
			msg, err = nil, fmt.Errorf("parsing the peer's answer: malformed message (%v)", r)
		}
	}()
	msg, err = bgp.ParseBGPMessage(buf)
	if err != nil {
		return nil, fmt.Errorf("parsing the peer's answer: %w", err)
	}
	return msg, nil
}

// setMD5 sets the TCP-MD5 key for segments to and from peer.
func setMD5(fd int, peer netip.Addr, password string) error {
	if len(password) > unix.TCP_MD5SIG_MAXKEYLEN {
		return errors.New("TCP-MD5 password longer than 80 bytes")
	}
	sig := unix.TCPMD5Sig{Keylen: uint16(len(password))}
	copy(sig.Key[:], password)
	if peer.Is4() {
		sig.Addr.Family = unix.AF_INET
		a := peer.As4()
		copy(sig.Addr.Data[2:6], a[:])
	} else {
		sig.Addr.Family = unix.AF_INET6
		a := peer.As16()
		copy(sig.Addr.Data[6:22], a[:])
	}
	return unix.SetsockoptTCPMD5Sig(fd, unix.IPPROTO_TCP, unix.TCP_MD5SIG, &sig)
}

// describeOpenVerdict turns a probe's answer into a Reason and message.
func describeOpenVerdict(v openVerdict, pc PeerConfig, routerID netip.Addr) (string, string) {
	switch {
	case v.accepted:
		return ReasonOpenRejected, "the peer refused this node's OPEN during the session, yet accepts it when probed; the failure may be transient"
	case v.code == bgp.BGP_ERROR_OPEN_MESSAGE_ERROR && v.subcode == bgp.BGP_ERROR_SUB_BAD_PEER_AS:
		return ReasonASNMismatch, fmt.Sprintf("the peer refused this node's AS %d (OPEN error: bad peer AS); the router expects another AS from this node: check myASN here and the neighbor's remote-as on the router", pc.LocalASN)
	case v.code == bgp.BGP_ERROR_OPEN_MESSAGE_ERROR && v.subcode == bgp.BGP_ERROR_SUB_BAD_BGP_IDENTIFIER:
		return ReasonOpenRejected, fmt.Sprintf("the peer refused this node's router ID %s (OPEN error: bad BGP identifier); set a unique routerID", routerID)
	case v.code == bgp.BGP_ERROR_OPEN_MESSAGE_ERROR && v.subcode == bgp.BGP_ERROR_SUB_UNACCEPTABLE_HOLD_TIME:
		return ReasonOpenRejected, "the peer refused the proposed hold time (OPEN error: unacceptable hold time); adjust holdTime"
	case v.code == bgp.BGP_ERROR_CEASE:
		return ReasonNotificationReceived, "the peer refused the session: " + bgp.NewNotificationErrorCode(v.code, v.subcode).String()
	}
	return ReasonOpenRejected, "the peer refused this node's OPEN: " + bgp.NewNotificationErrorCode(v.code, v.subcode).String()
}
