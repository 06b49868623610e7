package bgp

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

func serialize(t testing.TB, m *bgp.BGPMessage) []byte {
	b, err := m.Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestReadMessage(t *testing.T) {
	notif := serialize(t, bgp.NewBGPNotificationMessage(bgp.BGP_ERROR_OPEN_MESSAGE_ERROR, bgp.BGP_ERROR_SUB_BAD_PEER_AS, nil))
	open, err := openMessage(ebgp("r", rtrV4), netip.MustParseAddr("10.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	r := bytes.NewReader(append(open, notif...))
	m, err := readMessage(r)
	if err != nil || m.Header.Type != bgp.BGP_MSG_OPEN {
		t.Fatalf("first message: %v %v, want our OPEN back", m, err)
	}
	if o := m.Body.(*bgp.BGPOpen); o.MyAS != 64512 || o.ID != netip.MustParseAddr("10.0.0.1") {
		t.Errorf("OPEN carries AS %d and ID %v", o.MyAS, o.ID)
	}
	m, err = readMessage(r)
	if err != nil || m.Header.Type != bgp.BGP_MSG_NOTIFICATION {
		t.Fatalf("second message: %v %v", m, err)
	}
	if n := m.Body.(*bgp.BGPNotification); n.ErrorCode != bgp.BGP_ERROR_OPEN_MESSAGE_ERROR || n.ErrorSubcode != bgp.BGP_ERROR_SUB_BAD_PEER_AS {
		t.Errorf("notification %d/%d", n.ErrorCode, n.ErrorSubcode)
	}
	if _, err := readMessage(bytes.NewReader(notif[:10])); err == nil {
		t.Error("a truncated header was accepted")
	}
	bad := bytes.Clone(notif)
	bad[16], bad[17] = 0, 5 // length below the header's
	if _, err := readMessage(bytes.NewReader(bad)); err == nil {
		t.Error("a length shorter than the header was accepted")
	}
}

func TestOpenMessageFourOctetAS(t *testing.T) {
	pc := ebgp("r", rtrV4)
	pc.LocalASN = 4200000001
	b, err := openMessage(pc, netip.MustParseAddr("10.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := parseMessage(b)
	if err != nil {
		t.Fatal(err)
	}
	o := m.Body.(*bgp.BGPOpen)
	if o.MyAS != bgp.AS_TRANS {
		t.Errorf("2-octet AS field %d, want AS_TRANS", o.MyAS)
	}
	found := false
	for _, p := range o.OptParams {
		if c, ok := p.(*bgp.OptionParameterCapability); ok {
			for _, cp := range c.Capability {
				if f, ok := cp.(*bgp.CapFourOctetASNumber); ok && f.CapValue == 4200000001 {
					found = true
				}
			}
		}
	}
	if !found {
		t.Error("no 4-octet AS capability with the real AS")
	}
}

// FuzzReadMessage feeds arbitrary bytes, as a hostile or broken router
// could send them to the OPEN probe, to the message reader: it must
// return an error or a message, never panic or hang.
func FuzzReadMessage(f *testing.F) {
	f.Add(serialize(f, bgp.NewBGPNotificationMessage(bgp.BGP_ERROR_CEASE, bgp.BGP_ERROR_SUB_CONNECTION_REJECTED, nil)))
	f.Add(serialize(f, bgp.NewBGPKeepAliveMessage()))
	if open, err := openMessage(ebgp("r", rtrV4), netip.MustParseAddr("10.0.0.1")); err == nil {
		f.Add(open)
	}
	f.Add([]byte{0xff, 0xff, 0, 19})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		for range 4 {
			if _, err := readMessage(r); err != nil {
				return
			}
		}
	})
}
