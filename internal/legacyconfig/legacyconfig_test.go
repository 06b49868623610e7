package legacyconfig

import (
	"reflect"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/keeperlb/keeperlb/api/v1beta1"
	"github.com/keeperlb/keeperlb/api/v1beta2"
	"github.com/keeperlb/keeperlb/internal/config"
)

const ns = "metallb-system"

// full is a legacy configuration using every key MetalLB documented.
const full = `
peers:
- peer-address: 198.18.0.1
  peer-asn: 64501
  my-asn: 64500
  peer-port: 1179
  source-address: 198.18.0.10
  hold-time: 120s
  keepalive-time: 40s
  router-id: 198.18.0.10
  password: secret
  bfd-profile: fast
  ebgp-multihop: true
  node-selectors:
  - match-labels:
      rack: r1
    match-expressions:
    - key: kubernetes.io/arch
      operator: in
      values: [amd64, arm64]
- peer-address: 2001:db8::1
  peer-asn: 64500
  my-asn: 64500
  hold-time: 90
bgp-communities:
  no-advertise: 65535:65282
bfd-profiles:
- name: fast
  receive-interval: 100
  transmit-interval: 100
  detect-multiplier: 3
  echo-interval: 50
  echo-mode: false
  passive-mode: true
  minimum-ttl: 254
address-pools:
- name: l2
  protocol: layer2
  addresses: [198.18.10.0/24, 198.18.11.1-198.18.11.9]
  auto-assign: false
  avoid-buggy-ips: true
- name: routed
  protocol: bgp
  addresses: [198.18.20.0/24, 2001:db8:20::/120]
  bgp-advertisements:
  - aggregation-length: 32
    localpref: 100
    communities: [no-advertise, "64500:1"]
  - aggregation-length: 24
    aggregation-length-v6: 120
- name: plain-bgp
  protocol: bgp
  addresses: [198.18.30.0/24]
`

func TestConvertFull(t *testing.T) {
	res, err := Convert([]byte(full), ns)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Notes) != 0 {
		t.Errorf("a fully supported configuration gave notes: %v", res.Notes)
	}
	u32 := func(v uint32) *uint32 { return &v }
	i32 := func(v int32) *int32 { return &v }
	yes, no := true, false
	meta := func(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Name: name, Namespace: ns} }
	want := &Result{
		BFDProfiles: []v1beta1.BFDProfile{{
			TypeMeta: typeMeta("BFDProfile"), ObjectMeta: meta("fast"),
			Spec: v1beta1.BFDProfileSpec{
				ReceiveInterval: u32(100), TransmitInterval: u32(100), DetectMultiplier: u32(3),
				EchoInterval: u32(50), EchoMode: &no, PassiveMode: &yes, MinimumTTL: u32(254),
			},
		}},
		Communities: []v1beta1.Community{{
			TypeMeta: typeMeta("Community"), ObjectMeta: meta(CommunityObjectName),
			Spec: v1beta1.CommunitySpec{Communities: []v1beta1.CommunityAlias{{Name: "no-advertise", Value: "65535:65282"}}},
		}},
		Peers: []v1beta2.BGPPeer{
			{
				TypeMeta:   metav1.TypeMeta{APIVersion: "metallb.io/v1beta2", Kind: "BGPPeer"},
				ObjectMeta: meta("peer-198.18.0.1"),
				Spec: v1beta2.BGPPeerSpec{
					MyASN: 64500, PeerASN: 64501, PeerAddress: "198.18.0.1", PeerPort: 1179,
					SourceAddress: "198.18.0.10", RouterID: "198.18.0.10", Password: "secret",
					HoldTime:      &metav1.Duration{Duration: 120 * time.Second},
					KeepaliveTime: &metav1.Duration{Duration: 40 * time.Second},
					BFDProfile:    "fast", EBGPMultiHop: true,
					NodeSelectors: []metav1.LabelSelector{{
						MatchLabels: map[string]string{"rack": "r1"},
						MatchExpressions: []metav1.LabelSelectorRequirement{{
							Key: "kubernetes.io/arch", Operator: metav1.LabelSelectorOpIn, Values: []string{"amd64", "arm64"},
						}},
					}},
				},
			},
			{
				TypeMeta:   metav1.TypeMeta{APIVersion: "metallb.io/v1beta2", Kind: "BGPPeer"},
				ObjectMeta: meta("peer-2001-db8--1"),
				Spec: v1beta2.BGPPeerSpec{
					MyASN: 64500, PeerASN: 64500, PeerAddress: "2001:db8::1",
					HoldTime: &metav1.Duration{Duration: 90 * time.Second},
				},
			},
		},
		Pools: []v1beta1.IPAddressPool{
			{TypeMeta: typeMeta("IPAddressPool"), ObjectMeta: meta("l2"), Spec: v1beta1.IPAddressPoolSpec{
				Addresses: []string{"198.18.10.0/24", "198.18.11.1-198.18.11.9"}, AutoAssign: &no, AvoidBuggyIPs: true}},
			{TypeMeta: typeMeta("IPAddressPool"), ObjectMeta: meta("routed"), Spec: v1beta1.IPAddressPoolSpec{
				Addresses: []string{"198.18.20.0/24", "2001:db8:20::/120"}}},
			{TypeMeta: typeMeta("IPAddressPool"), ObjectMeta: meta("plain-bgp"), Spec: v1beta1.IPAddressPoolSpec{
				Addresses: []string{"198.18.30.0/24"}}},
		},
		L2Advertisements: []v1beta1.L2Advertisement{{
			TypeMeta: typeMeta("L2Advertisement"), ObjectMeta: meta("l2"),
			Spec: v1beta1.L2AdvertisementSpec{IPAddressPools: []string{"l2"}},
		}},
		BGPAdvertisements: []v1beta1.BGPAdvertisement{
			{TypeMeta: typeMeta("BGPAdvertisement"), ObjectMeta: meta("routed-1"), Spec: v1beta1.BGPAdvertisementSpec{
				AggregationLength: i32(32), LocalPref: 100, Communities: []string{"no-advertise", "64500:1"}, IPAddressPools: []string{"routed"}}},
			{TypeMeta: typeMeta("BGPAdvertisement"), ObjectMeta: meta("routed-2"), Spec: v1beta1.BGPAdvertisementSpec{
				AggregationLength: i32(24), AggregationLengthV6: i32(120), IPAddressPools: []string{"routed"}}},
			{TypeMeta: typeMeta("BGPAdvertisement"), ObjectMeta: meta("plain-bgp"), Spec: v1beta1.BGPAdvertisementSpec{
				IPAddressPools: []string{"plain-bgp"}}},
		},
	}
	if !reflect.DeepEqual(res, want) {
		t.Errorf("Convert:\n got %+v\nwant %+v", res, want)
	}
	// The controller's own rules accept the result as it is.
	if _, err := config.Parse(res.Resources(ns)); err != nil {
		t.Errorf("the converted configuration does not validate: %v", err)
	}
	if got := len(res.Objects()); got != 11 {
		t.Errorf("Objects() returned %d objects, want 11", got)
	}
}

func TestConvertNotes(t *testing.T) {
	for _, tc := range []struct {
		name  string
		in    string
		notes []string // substrings, each of a different note, in order
		pools []string // converted pool names
		l2    []string
		bgp   []string
		peers []string
	}{
		{
			name:  "unknown top-level key",
			in:    "address-pools: [{name: a, protocol: layer2, addresses: [198.18.0.0/24]}]\nspeakers: 3\n",
			notes: []string{"speakers: unknown key"},
			pools: []string{"a"}, l2: []string{"a"},
		},
		{
			name:  "pool without protocol is converted, not announced",
			in:    "address-pools: [{name: a, addresses: [198.18.0.0/24]}]",
			notes: []string{`address-pools[0].protocol: missing; pool "a" is converted but nothing announces it`},
			pools: []string{"a"},
		},
		{
			name:  "unknown protocol",
			in:    "address-pools: [{name: a, protocol: vxlan, addresses: [198.18.0.0/24]}]",
			notes: []string{`unknown protocol "vxlan"`},
			pools: []string{"a"},
		},
		{
			name:  "old protocol name arp",
			in:    "address-pools: [{name: a, protocol: arp, addresses: [198.18.0.0/24]}]",
			notes: []string{`"arp" is MetalLB's old name for layer2`},
			pools: []string{"a"}, l2: []string{"a"},
		},
		{
			name:  "old cidr key",
			in:    "address-pools: [{name: a, protocol: bgp, cidr: [198.18.0.0/24]}]",
			notes: []string{"address-pools[0].cidr: MetalLB's oldest spelling"},
			pools: []string{"a"}, bgp: []string{"a"},
		},
		{
			name:  "layer2 pool ignores bgp-advertisements",
			in:    "address-pools: [{name: a, protocol: layer2, addresses: [198.18.0.0/24], bgp-advertisements: [{localpref: 5}]}]",
			notes: []string{"bgp-advertisements: ignored"},
			pools: []string{"a"}, l2: []string{"a"},
		},
		{
			name:  "invalid pool name is renamed",
			in:    "address-pools: [{name: My_Pool, protocol: layer2, addresses: [198.18.0.0/24]}]",
			notes: []string{`"My_Pool" is not a valid Kubernetes object name; converted as "my-pool"`},
			pools: []string{"my-pool"}, l2: []string{"my-pool"},
		},
		{
			name:  "duplicate pool name",
			in:    "address-pools: [{name: a, protocol: layer2, addresses: [198.18.0.0/24]}, {name: a, protocol: layer2, addresses: [198.18.1.0/24]}]",
			notes: []string{`address-pools[1].name: the name "a" is used twice`},
			pools: []string{"a"}, l2: []string{"a"},
		},
		{
			name:  "pool with a misspelt key is not converted",
			in:    "address-pools: [{name: a, protocol: layer2, addresses: [198.18.0.0/24], auto-asign: false}]",
			notes: []string{"address-pools[0].auto-asign: unknown key", `pool "a" not converted`},
		},
		{
			name:  "pool without addresses",
			in:    "address-pools: [{name: a, protocol: layer2}]",
			notes: []string{"address-pools[0].addresses: missing or empty", `pool "a" not converted`},
		},
		{
			name:  "auto-assign of the wrong type",
			in:    "address-pools: [{name: a, protocol: layer2, addresses: [198.18.0.0/24], auto-assign: maybe}]",
			notes: []string{`auto-assign: want true or false, got "maybe"`, `pool "a" not converted`},
		},
		{
			name:  "unknown community drops only that advertisement",
			in:    "address-pools: [{name: a, protocol: bgp, addresses: [198.18.0.0/24], bgp-advertisements: [{communities: [no-export]}, {localpref: 7}]}]",
			notes: []string{`communities[0]: "no-export" is neither a community nor a converted bgp-communities alias`, "bgp-advertisements[0]: advertisement not converted"},
			pools: []string{"a"}, bgp: []string{"a-2"},
		},
		{
			name:  "aggregation longer than an address",
			in:    "address-pools: [{name: a, protocol: bgp, addresses: [198.18.0.0/24], bgp-advertisements: [{aggregation-length: 33}]}]",
			notes: []string{"aggregation-length: 33 is longer than an address (32 bits)", "advertisement not converted"},
			pools: []string{"a"},
		},
		{
			name:  "bad alias value",
			in:    "bgp-communities: {bad: '1:2:3'}\naddress-pools: [{name: a, protocol: bgp, addresses: [198.18.0.0/24], bgp-advertisements: [{communities: [bad]}]}]",
			notes: []string{"bgp-communities.bad:", `"bad" is neither a community`, "advertisement not converted"},
			pools: []string{"a"},
		},
		{
			name:  "peer with an unknown selector operator is dropped",
			in:    "peers: [{peer-address: 198.18.0.1, peer-asn: 1, my-asn: 2, node-selectors: [{match-expressions: [{key: a, operator: Gt, values: ['1']}]}]}]",
			notes: []string{`operator: unknown operator "Gt"`, "peers[0]: peer not converted"},
		},
		{
			name:  "peer selector with a camelCase key is dropped, not widened",
			in:    "peers: [{peer-address: 198.18.0.1, peer-asn: 1, my-asn: 2, node-selectors: [{matchLabels: {a: b}}]}]",
			notes: []string{"node-selectors[0].matchLabels: unknown key", "peers[0]: peer not converted"},
		},
		{
			name:  "peer without my-asn",
			in:    "peers: [{peer-address: 198.18.0.1, peer-asn: 1}]",
			notes: []string{"peers[0].my-asn: missing", "peer not converted"},
		},
		{
			name:  "peer ASN out of range",
			in:    "peers: [{peer-address: 198.18.0.1, peer-asn: 4294967296, my-asn: 2}]",
			notes: []string{"peers[0].peer-asn: 4294967296 is not a whole number from 0 to 4294967295"},
		},
		{
			name:  "peer with a bad hold time",
			in:    "peers: [{peer-address: 198.18.0.1, peer-asn: 1, my-asn: 2, hold-time: soon}]",
			notes: []string{`hold-time: want a duration such as 90s, got "soon"`},
		},
		{
			name:  "two peers on one address get distinct names",
			in:    "peers: [{peer-address: 198.18.0.1, peer-asn: 1, my-asn: 2, node-selectors: [{match-labels: {a: b}}]}, {peer-address: 198.18.0.1, peer-asn: 1, my-asn: 2, node-selectors: [{match-labels: {a: c}}]}]",
			peers: []string{"peer-198.18.0.1", "peer-198.18.0.1-2"},
		},
		{
			name:  "sections of the wrong type",
			in:    "peers: {a: b}\naddress-pools: x\nbfd-profiles: [3]\n",
			notes: []string{"bfd-profiles[0]: want a mapping, got a number", "peers: want a list, got a mapping", "address-pools: want a list, got a string"},
		},
		{
			name:  "bfd profile without a name",
			in:    "bfd-profiles: [{receive-interval: 100}]",
			notes: []string{"bfd-profiles[0].name: missing", "BFD profile not converted"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Convert([]byte(tc.in), ns)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, n := range res.Notes {
				got = append(got, n.String())
			}
			all := strings.Join(got, "\n")
			rest := all
			for _, want := range tc.notes {
				i := strings.Index(rest, want)
				if i < 0 {
					t.Errorf("notes lack %q (in order); notes:\n%s", want, all)
					continue
				}
				rest = rest[i+len(want):]
			}
			if len(tc.notes) == 0 && len(got) > 0 {
				t.Errorf("unexpected notes:\n%s", all)
			}
			check := func(kind string, gotNames, want []string) {
				if strings.Join(gotNames, ",") != strings.Join(want, ",") {
					t.Errorf("%s: got %v, want %v", kind, gotNames, want)
				}
			}
			check("pools", names(res.Pools), tc.pools)
			check("L2 advertisements", names(res.L2Advertisements), tc.l2)
			check("BGP advertisements", names(res.BGPAdvertisements), tc.bgp)
			check("peers", names(res.Peers), tc.peers)
		})
	}
}

func names[T any, P interface {
	*T
	GetName() string
}](items []T) []string {
	var out []string
	for i := range items {
		out = append(out, P(&items[i]).GetName())
	}
	return out
}

func TestConvertRejectsWhatIsNoConfiguration(t *testing.T) {
	for in, want := range map[string]string{
		"":               "empty",
		"- a\n- b\n":     "is a YAML list",
		"key: [unclosed": "not valid YAML",
	} {
		if _, err := Convert([]byte(in), ns); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Convert(%q) = %v, want an error containing %q", in, err, want)
		}
	}
}

func TestExtract(t *testing.T) {
	cm := `apiVersion: v1
kind: ConfigMap
metadata: {name: config, namespace: metallb-system}
data:
  config: |
    address-pools: []
`
	for _, tc := range []struct {
		name, in, want, err string
	}{
		{name: "ConfigMap", in: cm, want: "address-pools: []\n"},
		{name: "ConfigMap among other documents", in: "apiVersion: v1\nkind: Namespace\nmetadata: {name: metallb-system}\n---\n" + cm + "---\n", want: "address-pools: []\n"},
		{name: "bare configuration", in: "peers: []\n", want: "peers: []\n"},
		{name: "ConfigMap without the key", in: "apiVersion: v1\nkind: ConfigMap\ndata: {other: x}\n", err: `no ConfigMap in the input has a "config" key`},
		{name: "two ConfigMaps", in: cm + "---\n" + cm, err: "found 2 ConfigMaps"},
		{name: "config key not a string", in: "kind: ConfigMap\ndata: {config: [1]}\n", err: "is not a string"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Extract([]byte(tc.in))
			switch {
			case tc.err != "":
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("got %q, %v; want an error containing %q", got, err, tc.err)
				}
			case err != nil:
				t.Errorf("unexpected error: %v", err)
			case string(got) != tc.want:
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestImportIsDeterministic(t *testing.T) {
	a, err := Import([]byte(full), ns)
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		b, err := Import([]byte(full), ns)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(a, b) {
			t.Fatal("two conversions of one input differ")
		}
	}
}
