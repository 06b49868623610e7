package layer2

import (
	"encoding/binary"
	"fmt"
	"net"
	"slices"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Interface is what interface selection needs to know about a network
// interface.
type Interface struct {
	// Name is the interface name, e.g. eth0.
	Name string
	// Up is true when the interface is administratively up (IFF_UP).
	Up bool
	// NoARP is true when the interface does no address resolution
	// (IFF_NOARP), so nobody would ask it.
	NoARP bool
	// Loopback is true for the loopback interface.
	Loopback bool
	// Master is the device this interface is a port of (a bond, team,
	// bridge or Open vSwitch datapath), empty if none. Frames for such a port
	// are handled by its master, which is where the answer belongs. A VRF
	// does not count as a master: an interface in a VRF still answers for
	// itself.
	Master string
	// MAC is the interface's hardware address; only 6-byte (Ethernet)
	// addresses can be announced.
	MAC net.HardwareAddr
}

// DefaultExcludedPrefixes returns the interface name prefixes that Eligible
// skips when the advertisement names no interfaces: virtual interfaces made
// by container runtimes and CNI plugins, which face pods or tunnels, never
// the network clients reach the Service IPs from.
//
//	veth*          container ends of veth pairs
//	cali*          Calico pod interfaces
//	lxc*           Cilium pod interfaces, LXC containers
//	cilium_*       Cilium host and tunnel devices
//	docker*        Docker bridges
//	cni*           bridge CNI plugin
//	flannel*       Flannel VXLAN devices
//	vxlan*         VXLAN tunnels (e.g. vxlan.calico)
//	weave*         Weave Net
//	tunl*          IP-in-IP tunnels (Calico)
//	kube-*         kube-router and kube-proxy IPVS devices (kube-bridge, kube-ipvs0)
//	nodelocaldns   NodeLocal DNSCache
func DefaultExcludedPrefixes() []string {
	return []string{"veth", "cali", "lxc", "cilium_", "docker", "cni", "flannel", "vxlan", "weave", "tunl", "kube-", "nodelocaldns"}
}

// Eligible returns, in input order, the names of the interfaces a Service IP
// may be announced on. An interface is never eligible when it is down,
// NOARP, loopback, a port of a master device (see Interface.Master) or has
// no Ethernet address. If allowed is empty (the L2Advertisement names no
// interfaces), names starting with one of DefaultExcludedPrefixes are
// skipped too; otherwise only names in allowed are kept, whatever their
// prefix, since the administrator chose them.
func Eligible(ifs []Interface, allowed []string) []string {
	excluded := DefaultExcludedPrefixes()
	var out []string
	for _, i := range ifs {
		if i.Name == "" || !i.Up || i.NoARP || i.Loopback || i.Master != "" || len(i.MAC) != 6 {
			continue
		}
		if len(allowed) > 0 {
			if !slices.Contains(allowed, i.Name) {
				continue
			}
		} else if slices.ContainsFunc(excluded, func(p string) bool { return strings.HasPrefix(i.Name, p) }) {
			continue
		}
		out = append(out, i.Name)
	}
	return out
}

// SystemInterfaces lists the interfaces of the calling thread's network
// namespace. It asks the kernel over rtnetlink rather than reading
// /sys/class/net, because sysfs shows the namespace it was mounted in,
// which is not the thread's inside netns.Do, and because netlink also says
// which kind of device a master is and carries IFF_NOARP, which
// net.Interfaces drops.
func SystemInterfaces() ([]Interface, error) {
	rib, err := syscall.NetlinkRIB(syscall.RTM_GETLINK, syscall.AF_UNSPEC)
	if err != nil {
		return nil, fmt.Errorf("list interfaces: %w", err)
	}
	msgs, err := syscall.ParseNetlinkMessage(rib)
	if err != nil {
		return nil, fmt.Errorf("list interfaces: parse netlink: %w", err)
	}
	return parseLinks(msgs)
}

// rtLink is one RTM_NEWLINK message, decoded.
type rtLink struct {
	index  int32
	flags  uint32
	name   string
	mac    net.HardwareAddr
	master int32
	kind   string
}

// parseLinks turns an RTM_GETLINK dump into Interfaces, ordered by index.
// It is pure, so the rules about masters are tested on hand-made messages.
func parseLinks(msgs []syscall.NetlinkMessage) ([]Interface, error) {
	var links []rtLink
	for _, m := range msgs {
		switch m.Header.Type {
		case syscall.NLMSG_ERROR:
			return nil, fmt.Errorf("list interfaces: netlink error message")
		case syscall.RTM_NEWLINK:
			l, err := parseLink(m)
			if err != nil {
				return nil, err
			}
			links = append(links, l)
		}
	}
	slices.SortFunc(links, func(a, b rtLink) int { return int(a.index) - int(b.index) })
	byIndex := make(map[int32]rtLink, len(links))
	for _, l := range links {
		byIndex[l.index] = l
	}
	out := make([]Interface, 0, len(links))
	for _, l := range links {
		i := Interface{
			Name:     l.name,
			Up:       l.flags&unix.IFF_UP != 0,
			NoARP:    l.flags&unix.IFF_NOARP != 0,
			Loopback: l.flags&unix.IFF_LOOPBACK != 0,
			MAC:      l.mac,
		}
		if l.master != 0 {
			m, ok := byIndex[l.master]
			switch {
			case !ok:
				// The master vanished between messages; still a port.
				i.Master = fmt.Sprintf("ifindex %d", l.master)
			case m.kind != "vrf":
				i.Master = m.name
			}
		}
		out = append(out, i)
	}
	return out, nil
}

func parseLink(m syscall.NetlinkMessage) (rtLink, error) {
	if len(m.Data) < syscall.SizeofIfInfomsg {
		return rtLink{}, fmt.Errorf("list interfaces: short RTM_NEWLINK message (%d bytes)", len(m.Data))
	}
	var l rtLink
	l.index = int32(binary.NativeEndian.Uint32(m.Data[4:8]))
	l.flags = binary.NativeEndian.Uint32(m.Data[8:12])
	attrs, err := syscall.ParseNetlinkRouteAttr(&m)
	if err != nil {
		return rtLink{}, fmt.Errorf("list interfaces: attributes of ifindex %d: %w", l.index, err)
	}
	for _, a := range attrs {
		switch a.Attr.Type {
		case syscall.IFLA_IFNAME:
			l.name = strings.TrimRight(string(a.Value), "\x00")
		case syscall.IFLA_ADDRESS:
			l.mac = slices.Clone(net.HardwareAddr(a.Value))
		case unix.IFLA_MASTER:
			if len(a.Value) >= 4 {
				l.master = int32(binary.NativeEndian.Uint32(a.Value))
			}
		case unix.IFLA_LINKINFO:
			l.kind = linkKind(a.Value)
		}
	}
	return l, nil
}

// linkKind finds IFLA_INFO_KIND in the nested IFLA_LINKINFO attributes.
func linkKind(b []byte) string {
	for len(b) >= 4 {
		n := int(binary.NativeEndian.Uint16(b[0:2]))
		typ := binary.NativeEndian.Uint16(b[2:4])
		if n < 4 || n > len(b) {
			return ""
		}
		if typ == unix.IFLA_INFO_KIND {
			return strings.TrimRight(string(b[4:n]), "\x00")
		}
		b = b[min((n+3)&^3, len(b)):]
	}
	return ""
}
