package layer2

import (
	"encoding/binary"
	"net"
	"reflect"
	"slices"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

func TestEligible(t *testing.T) {
	mac := mustMAC("02:00:00:00:00:01")
	up := func(name string) Interface { return Interface{Name: name, Up: true, MAC: mac} }
	ifs := []Interface{
		{Name: "lo", Up: true, Loopback: true, MAC: net.HardwareAddr{0, 0, 0, 0, 0, 0}},
		up("eth0"),
		{Name: "eth1", Up: false, MAC: mac},
		{Name: "eth2", Up: true, NoARP: true, MAC: mac},
		{Name: "eth3", Up: true, Master: "bond0", MAC: mac},
		up("bond0"),
		up("br0"),
		{Name: "wg0", Up: true},
		{Name: "ib0", Up: true, MAC: make(net.HardwareAddr, 20)},
		up("veth1234"), up("cali0ab"), up("lxc99"), up("cilium_host"), up("docker0"), up("cni0"),
		up("flannel.1"), up("vxlan.calico"), up("weave"), up("tunl0"), up("kube-ipvs0"), up("nodelocaldns"),
		up("ens3"),
		{Name: "", Up: true, MAC: mac},
	}
	tests := []struct {
		name    string
		allowed []string
		want    []string
	}{
		{"default", nil, []string{"eth0", "bond0", "br0", "ens3"}},
		{"allowed names only", []string{"ens3", "eth0"}, []string{"eth0", "ens3"}},
		{"allowed overrides the name prefixes", []string{"veth1234", "cali0ab"}, []string{"veth1234", "cali0ab"}},
		{"allowed never overrides down, NOARP, loopback, ports, no MAC", []string{"lo", "eth1", "eth2", "eth3", "wg0", "ib0"}, nil},
		{"allowed name that does not exist", []string{"eth9"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Eligible(ifs, tt.allowed); !slices.Equal(got, tt.want) {
				t.Errorf("Eligible = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestDefaultExcludedPrefixesIsACopy(t *testing.T) {
	p := DefaultExcludedPrefixes()
	p[0] = "eth"
	if DefaultExcludedPrefixes()[0] != "veth" {
		t.Fatal("DefaultExcludedPrefixes returns shared state")
	}
}

// rtattr encodes one netlink attribute, padded to 4 bytes.
func rtattr(typ uint16, value []byte) []byte {
	b := make([]byte, 4, 4+len(value)+3)
	binary.NativeEndian.PutUint16(b[0:2], uint16(4+len(value)))
	binary.NativeEndian.PutUint16(b[2:4], typ)
	b = append(b, value...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func u32(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }

type testLink struct {
	index  int32
	flags  uint32
	name   string
	mac    net.HardwareAddr
	master int32
	kind   string
}

func newLinkMsg(l testLink) syscall.NetlinkMessage {
	data := make([]byte, syscall.SizeofIfInfomsg)
	binary.NativeEndian.PutUint32(data[4:8], uint32(l.index))
	binary.NativeEndian.PutUint32(data[8:12], l.flags)
	data = append(data, rtattr(syscall.IFLA_IFNAME, append([]byte(l.name), 0))...)
	if l.mac != nil {
		data = append(data, rtattr(syscall.IFLA_ADDRESS, l.mac)...)
	}
	if l.master != 0 {
		data = append(data, rtattr(unix.IFLA_MASTER, u32(uint32(l.master)))...)
	}
	if l.kind != "" {
		info := rtattr(unix.IFLA_INFO_KIND, append([]byte(l.kind), 0))
		data = append(data, rtattr(unix.IFLA_LINKINFO, info)...)
	}
	return syscall.NetlinkMessage{
		Header: syscall.NlMsghdr{Len: uint32(syscall.NLMSG_HDRLEN + len(data)), Type: syscall.RTM_NEWLINK},
		Data:   data,
	}
}

func TestParseLinks(t *testing.T) {
	mac := mustMAC("02:00:00:00:00:01")
	msgs := []syscall.NetlinkMessage{
		newLinkMsg(testLink{index: 5, flags: unix.IFF_UP, name: "br0", mac: mac, kind: "bridge"}),
		newLinkMsg(testLink{index: 1, flags: unix.IFF_UP | unix.IFF_LOOPBACK, name: "lo", mac: make(net.HardwareAddr, 6)}),
		newLinkMsg(testLink{index: 6, flags: unix.IFF_UP, name: "port0", mac: mac, master: 5, kind: "veth"}),
		newLinkMsg(testLink{index: 7, flags: unix.IFF_UP, name: "vrf-red", mac: mac, kind: "vrf"}),
		newLinkMsg(testLink{index: 8, flags: unix.IFF_UP, name: "eth1", mac: mac, master: 7}),
		newLinkMsg(testLink{index: 9, flags: unix.IFF_UP | unix.IFF_NOARP, name: "tun0"}),
		newLinkMsg(testLink{index: 10, flags: 0, name: "eth2", mac: mac, master: 99}),
		{Header: syscall.NlMsghdr{Type: syscall.NLMSG_DONE}},
	}
	got, err := parseLinks(msgs)
	if err != nil {
		t.Fatal(err)
	}
	want := []Interface{
		{Name: "lo", Up: true, Loopback: true, MAC: make(net.HardwareAddr, 6)},
		{Name: "br0", Up: true, MAC: mac},
		{Name: "port0", Up: true, Master: "br0", MAC: mac},
		{Name: "vrf-red", Up: true, MAC: mac},
		{Name: "eth1", Up: true, MAC: mac}, // a VRF is not a master that answers for its ports
		{Name: "tun0", Up: true, NoARP: true},
		{Name: "eth2", Master: "ifindex 99", MAC: mac},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parseLinks\n got %+v\nwant %+v", got, want)
	}

	short := syscall.NetlinkMessage{Header: syscall.NlMsghdr{Type: syscall.RTM_NEWLINK}, Data: []byte{1, 2}}
	if _, err := parseLinks([]syscall.NetlinkMessage{short}); err == nil {
		t.Error("a short RTM_NEWLINK message was accepted")
	}
}

func TestLinkKindMalformed(t *testing.T) {
	for _, b := range [][]byte{nil, {1}, {2, 0, 1, 0}, {200, 0, 1, 0, 'x'}} {
		if k := linkKind(b); k != "" {
			t.Errorf("linkKind(%v) = %q", b, k)
		}
	}
}
