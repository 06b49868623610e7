package layer2

import (
	"fmt"

	"golang.org/x/net/bpf"
)

// The kernel runs these classic BPF programs on every frame before it is
// queued to a socket, so the announcer wakes up only for ARP requests and
// neighbor solicitations, not for every IPv4 or IPv6 frame on a busy node.
// They are a cheap pre-filter; replyToARP and replyToNS still check
// everything.

// arpRequestFilter accepts Ethernet ARP frames whose operation is request.
func arpRequestFilter() ([]bpf.RawInstruction, error) {
	return assemble("ARP", []bpf.Instruction{
		bpf.LoadAbsolute{Off: 12, Size: 2},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: etherTypeARP, SkipTrue: 3},
		bpf.LoadAbsolute{Off: ethHeaderLen + 6, Size: 2},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: arpOpRequest, SkipTrue: 1},
		bpf.RetConstant{Val: 0xffff},
		bpf.RetConstant{Val: 0},
	})
}

// nsFilter accepts Ethernet IPv6 frames that carry ICMPv6 directly (no
// extension header, as RFC 4861 messages are sent) with type neighbor
// solicitation.
func nsFilter() ([]bpf.RawInstruction, error) {
	return assemble("NDP", []bpf.Instruction{
		bpf.LoadAbsolute{Off: 12, Size: 2},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: etherTypeIPv6, SkipTrue: 5},
		bpf.LoadAbsolute{Off: ethHeaderLen + 6, Size: 1},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: protoICMPv6, SkipTrue: 3},
		bpf.LoadAbsolute{Off: ethHeaderLen + ipv6HeaderLen, Size: 1},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: icmpNS, SkipTrue: 1},
		bpf.RetConstant{Val: 0xffff},
		bpf.RetConstant{Val: 0},
	})
}

func assemble(what string, prog []bpf.Instruction) ([]bpf.RawInstruction, error) {
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return nil, fmt.Errorf("assemble %s socket filter: %w", what, err)
	}
	return raw, nil
}
