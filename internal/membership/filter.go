package membership

import (
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// The kernel drops the datagrams whose source address is no peer's before
// it queues them to the heartbeat socket. handle checks the same thing;
// doing it in the kernel is what keeps a flood from elsewhere from costing
// heartbeats: the socket's queue is bounded, and a flood that fills it
// faster than the speaker reads pushes the peers' heartbeats out along
// with the junk (a flood of about 100,000 junk datagrams a second from the
// e2e lab's client made the default queue drop a tenth of everything, and
// once a speaker missed four heartbeats in a row and announced a live
// peer's address). Now only the peers' own datagrams, and datagrams forged with
// a peer's address, reach the queue. Dropped counts what the kernel threw
// away, so that a flood stays visible.

// netOff is the classic BPF offset (SKF_NET_OFF) that makes a load
// relative to the network header: a socket filter on a UDP socket
// otherwise starts at the UDP header.
const netOff = 0xfff00000 // -0x100000 as a uint32

// acceptAll is a socket filter's "keep the whole datagram".
const acceptAll = 0xffffffff

// peerFilter returns a classic BPF socket filter that accepts IPv4 and
// IPv6 datagrams from the given addresses and drops everything else (all
// of it when there are none). IPv4 datagrams reaching a dual-stack socket
// keep their IPv4 header, so an IPv4 peer is matched on IPv4 either way.
// Each address costs two instructions (nine for IPv6) and every jump is a
// short one, so the program stays within the kernel's 4096 instructions
// for about 2000 IPv4 peers.
func peerFilter(addrs []netip.Addr) ([]bpf.RawInstruction, error) {
	var v4, v6 []netip.Addr
	for _, a := range addrs {
		if a = a.Unmap(); a.Is4() {
			v4 = append(v4, a)
		} else if a.Is6() {
			v6 = append(v6, a)
		}
	}
	prog := []bpf.Instruction{
		bpf.LoadAbsolute{Off: netOff, Size: 1},
		bpf.ALUOpConstant{Op: bpf.ALUOpShiftRight, Val: 4},
		// IPv6: jump over the IPv4 part.
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 6, SkipFalse: 1},
		bpf.Jump{Skip: uint32(3 + 2*len(v4) + 1)},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 4, SkipTrue: 1},
		bpf.RetConstant{Val: 0},
		bpf.LoadAbsolute{Off: netOff + 12, Size: 4}, // IPv4 source
	}
	for _, a := range v4 {
		b := a.As4()
		prog = append(prog,
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]), SkipFalse: 1},
			bpf.RetConstant{Val: acceptAll})
	}
	prog = append(prog, bpf.RetConstant{Val: 0})
	for _, a := range v6 {
		b := a.As16()
		// The source is at 8..24; a mismatch in word i skips the rest
		// of this address's nine instructions.
		for i := range 4 {
			w := uint32(b[4*i])<<24 | uint32(b[4*i+1])<<16 | uint32(b[4*i+2])<<8 | uint32(b[4*i+3])
			prog = append(prog,
				bpf.LoadAbsolute{Off: netOff + 8 + uint32(4*i), Size: 4},
				bpf.JumpIf{Cond: bpf.JumpEqual, Val: w, SkipFalse: uint8(7 - 2*i)})
		}
		prog = append(prog, bpf.RetConstant{Val: acceptAll})
	}
	prog = append(prog, bpf.RetConstant{Val: 0})
	if len(prog) > 4096 {
		return nil, fmt.Errorf("membership: a socket filter for %d peers needs %d instructions, more than the kernel's 4096", len(addrs), len(prog))
	}
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return nil, fmt.Errorf("membership: assembling the peer filter: %w", err)
	}
	return raw, nil
}

// attachFilter replaces the socket filter of conn (SO_ATTACH_FILTER
// replaces atomically: no datagram is ever unfiltered).
func attachFilter(conn *net.UDPConn, raw []bpf.RawInstruction) error {
	ins := make([]unix.SockFilter, len(raw))
	for i, r := range raw {
		ins[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	rc, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptSockFprog(int(fd), unix.SOL_SOCKET, unix.SO_ATTACH_FILTER,
			&unix.SockFprog{Len: uint16(len(ins)), Filter: &ins[0]})
	}); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("membership: attaching the peer filter: %w", serr)
	}
	return nil
}

// socketDrops returns the kernel's count of datagrams dropped at conn
// (SO_MEMINFO's SK_MEMINFO_DROPS: refused by the filter, or the queue was
// full). It is 32 bits wide and wraps.
func socketDrops(conn *net.UDPConn) (uint32, error) {
	rc, err := conn.SyscallConn()
	if err != nil {
		return 0, err
	}
	var info [unix.SK_MEMINFO_VARS]uint32
	var errno syscall.Errno
	if err := rc.Control(func(fd uintptr) {
		l := uint32(unsafe.Sizeof(info))
		// x/sys/unix has no getsockopt for an array of words.
		_, _, errno = unix.Syscall6(unix.SYS_GETSOCKOPT, fd, unix.SOL_SOCKET, unix.SO_MEMINFO,
			uintptr(unsafe.Pointer(&info[0])), uintptr(unsafe.Pointer(&l)), 0)
	}); err != nil {
		return 0, err
	}
	if errno != 0 {
		return 0, fmt.Errorf("membership: SO_MEMINFO: %w", errno)
	}
	return info[unix.SK_MEMINFO_DROPS], nil
}
