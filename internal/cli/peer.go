package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/keeperlb/keeperlb/api/v1beta2"
)

func newPeerCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "peer",
		Aliases: []string{"bgp-peer", "peers"},
		Short:   "Create, list and delete BGP peers (BGPPeer, metallb.io/v1beta2)",
	}
	cmd.AddCommand(newPeerCreateCmd(g), newPeerListCmd(g), newPeerDeleteCmd(g))
	return cmd
}

type peerOptions struct {
	myASN, peerASN   uint32
	dynamicASN       string
	address          string
	iface            string
	port             uint16
	holdTime         time.Duration
	keepaliveTime    time.Duration
	bfdProfile       string
	password         string
	passwordSecret   string
	nodeSelector     string
	ebgpMultiHop     bool
	sourceAddress    string
	routerID         string
	gracefulRestart  bool
	vrf              string
	holdSet, keepSet bool
}

func newPeerCreateCmd(g *globals) *cobra.Command {
	o := peerOptions{}
	cmd := &cobra.Command{
		Use:   "create NAME --my-asn ASN (--peer-asn ASN | --dynamic-asn internal|external) --peer-address IP",
		Short: "Create a BGP peer that the speakers of the selected nodes open a session to",
		Long: "create writes a metallb.io/v1beta2 BGPPeer after validating it, together with the\n" +
			"objects already in the cluster, with the controller's own rules.",
		Example: "  keeperlb peer create tor-a --my-asn 64500 --peer-asn 64501 --peer-address 198.18.0.1\n" +
			"  keeperlb peer create tor-b --my-asn 64500 --dynamic-asn external --peer-address 2001:db8::1 --bfd-profile fast --node-selector rack=r1 --hold-time 9s --keepalive-time 3s",
		Args: exactName("peer create"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.holdSet = cmd.Flags().Changed("hold-time")
			o.keepSet = cmd.Flags().Changed("keepalive-time")
			return runPeerCreate(cmd.Context(), g, args[0], o)
		},
	}
	f := cmd.Flags()
	f.Uint32Var(&o.myASN, "my-asn", 0, "AS number of the speakers")
	f.Uint32Var(&o.peerASN, "peer-asn", 0, "AS number of the peer")
	f.StringVar(&o.dynamicASN, "dynamic-asn", "", "accept the peer's AS number as it comes: internal (iBGP) or external (eBGP); instead of --peer-asn")
	f.StringVar(&o.address, "peer-address", "", "IP address of the peer")
	f.StringVar(&o.iface, "interface", "", "peer over this unnumbered interface instead of --peer-address")
	f.Uint16Var(&o.port, "peer-port", 0, "TCP port of the peer (default 179)")
	f.DurationVar(&o.holdTime, "hold-time", 0, "BGP hold time proposed to the peer: 0 or at least 3s")
	f.DurationVar(&o.keepaliveTime, "keepalive-time", 0, "interval between keepalives, at most the hold time")
	f.StringVar(&o.bfdProfile, "bfd-profile", "", "BFDProfile to run BFD with on this session")
	f.StringVar(&o.password, "password", "", "TCP-MD5 password (visible in shell history; prefer --password-secret)")
	f.StringVar(&o.passwordSecret, "password-secret", "", "kubernetes.io/basic-auth Secret in the install namespace holding the password")
	f.StringVar(&o.nodeSelector, "node-selector", "", "only nodes matching this label selector (k=v,k2=v2) open the session")
	f.BoolVar(&o.ebgpMultiHop, "ebgp-multihop", false, "the eBGP peer is not directly connected")
	f.StringVar(&o.sourceAddress, "source-address", "", "local address to open the session from")
	f.StringVar(&o.routerID, "router-id", "", "BGP router ID to use instead of the node's")
	f.BoolVar(&o.gracefulRestart, "graceful-restart", false, "negotiate graceful restart (fixed once created)")
	f.StringVar(&o.vrf, "vrf", "", "VRF of the session")
	_ = cmd.MarkFlagRequired("my-asn")
	return cmd
}

// peerObject builds the BGPPeer `peer create` writes.
func peerObject(name, ns string, o peerOptions) (*v1beta2.BGPPeer, error) {
	if o.address == "" && o.iface == "" {
		return nil, errors.New("give --peer-address (or --interface for an unnumbered session)")
	}
	if o.peerASN == 0 && o.dynamicASN == "" {
		return nil, errors.New("give --peer-asn, or --dynamic-asn internal|external to accept the peer's own")
	}
	sels, err := parseSelector("node-selector", o.nodeSelector)
	if err != nil {
		return nil, err
	}
	p := &v1beta2.BGPPeer{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1beta2.GroupVersion.String(), Kind: "BGPPeer"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: v1beta2.BGPPeerSpec{
			MyASN:                 o.myASN,
			PeerASN:               o.peerASN,
			DynamicASN:            v1beta2.DynamicASNMode(o.dynamicASN),
			PeerAddress:           o.address,
			Interface:             o.iface,
			PeerPort:              o.port,
			BFDProfile:            o.bfdProfile,
			Password:              o.password,
			NodeSelectors:         sels,
			EBGPMultiHop:          o.ebgpMultiHop,
			SourceAddress:         o.sourceAddress,
			RouterID:              o.routerID,
			EnableGracefulRestart: o.gracefulRestart,
			VRF:                   o.vrf,
		},
	}
	if o.holdSet {
		p.Spec.HoldTime = &metav1.Duration{Duration: o.holdTime}
	}
	if o.keepSet {
		p.Spec.KeepaliveTime = &metav1.Duration{Duration: o.keepaliveTime}
	}
	if o.passwordSecret != "" {
		p.Spec.PasswordSecret = corev1.SecretReference{Name: o.passwordSecret, Namespace: ns}
	}
	return p, nil
}

// peerFlags maps BGPPeer fields to `peer create` flags, for error hints.
var peerFlags = map[string]string{
	"spec.myASN":                 "--my-asn",
	"spec.peerASN":               "--peer-asn",
	"spec.dynamicASN":            "--dynamic-asn",
	"spec.peerAddress":           "--peer-address",
	"spec.interface":             "--interface",
	"spec.peerPort":              "--peer-port",
	"spec.holdTime":              "--hold-time",
	"spec.keepaliveTime":         "--keepalive-time",
	"spec.bfdProfile":            "--bfd-profile",
	"spec.password":              "--password",
	"spec.passwordSecret":        "--password-secret",
	"spec.nodeSelectors":         "--node-selector",
	"spec.ebgpMultiHop":          "--ebgp-multihop",
	"spec.sourceAddress":         "--source-address",
	"spec.routerID":              "--router-id",
	"spec.enableGracefulRestart": "--graceful-restart",
	"spec.vrf":                   "--vrf",
	"metadata.name":              "NAME",
}

func runPeerCreate(ctx context.Context, g *globals, name string, o peerOptions) error {
	peer, err := peerObject(name, g.namespace, o)
	if err != nil {
		return err
	}
	c, _, err := g.client()
	if err != nil {
		return err
	}
	before, err := loadResources(ctx, c, g.namespace, *peer)
	if err != nil {
		return err
	}
	if slices.ContainsFunc(before.Peers, func(p v1beta2.BGPPeer) bool { return p.Name == name }) {
		return fmt.Errorf("BGPPeer %q already exists in namespace %s: pick another name, or delete it first (keeperlb peer delete %s)", name, g.namespace, name)
	}
	after := before
	after.Peers = append(slices.Clone(before.Peers), *peer)
	if problems := newProblems(before, after); len(problems) > 0 {
		return rejection("BGPPeer "+name, problems, peerFlags)
	}
	return createAll(ctx, c, []client.Object{peer}, g.out)
}

// peerView is one BGP peer as `peer list` shows it.
type peerView struct {
	Name       string         `json:"name"`
	Address    string         `json:"address"`
	MyASN      uint32         `json:"myASN"`
	PeerASN    string         `json:"peerASN"`
	BFDProfile string         `json:"bfdProfile,omitempty"`
	Nodes      string         `json:"nodes"`
	Sessions   []sessionState `json:"sessions"`
	// SessionsKnown is false when the cluster has no BGPSessionState kind,
	// so no session state can be shown.
	SessionsKnown bool `json:"sessionsKnown"`
	// Services counts the Services the speakers advertise to this peer,
	// from ServiceBGPStatus; nil when no speaker reports any.
	Services *int `json:"services,omitempty"`
}

func peerAddress(p *v1beta2.BGPPeer) string {
	addr := p.Spec.PeerAddress
	if p.Spec.Interface != "" {
		addr = "interface " + p.Spec.Interface
	}
	if p.Spec.PeerPort != 0 && p.Spec.PeerPort != 179 {
		addr = fmt.Sprintf("%s port %d", addr, p.Spec.PeerPort)
	}
	return addr
}

func peerASN(p *v1beta2.BGPPeer) string {
	if p.Spec.DynamicASN != "" {
		return "dynamic:" + string(p.Spec.DynamicASN)
	}
	return fmt.Sprint(p.Spec.PeerASN)
}

func loadPeers(ctx context.Context, c client.Client, ns string) ([]peerView, error) {
	var peers v1beta2.BGPPeerList
	if err := c.List(ctx, &peers, client.InNamespace(ns)); err != nil {
		return nil, apiError("listing BGP peers in "+ns, err)
	}
	states, known, err := sessionStates(ctx, c, ns)
	if err != nil {
		return nil, err
	}
	ann, _, err := announcers(ctx, c, ns)
	if err != nil {
		return nil, err
	}
	advertised := map[string]int{}
	anyBGP := false
	for _, a := range ann {
		seen := map[string]bool{}
		for _, b := range a.BGP {
			anyBGP = true
			for _, p := range b.Peers {
				if !seen[p] {
					seen[p] = true
					advertised[p]++
				}
			}
		}
	}
	items := peers.Items
	slices.SortFunc(items, func(a, b v1beta2.BGPPeer) int { return strings.Compare(a.Name, b.Name) })
	out := make([]peerView, 0, len(items))
	for i := range items {
		p := &items[i]
		v := peerView{
			Name: p.Name, Address: peerAddress(p), MyASN: p.Spec.MyASN, PeerASN: peerASN(p),
			BFDProfile: p.Spec.BFDProfile, Nodes: "all", SessionsKnown: known,
			Sessions: forPeer(states, p),
		}
		if v.Sessions == nil {
			v.Sessions = []sessionState{}
		}
		if len(p.Spec.NodeSelectors) > 0 {
			var sels []string
			for i := range p.Spec.NodeSelectors {
				sels = append(sels, metav1.FormatLabelSelector(&p.Spec.NodeSelectors[i]))
			}
			v.Nodes = strings.Join(sels, " or ")
		}
		if anyBGP {
			n := advertised[p.Name]
			v.Services = &n
		}
		out = append(out, v)
	}
	return out, nil
}

// sessionSummary renders a peer's sessions in one table cell, e.g.
// "Established 2/3" or "-" when nothing reports them.
func (v peerView) sessionSummary() string {
	if !v.SessionsKnown || len(v.Sessions) == 0 {
		return "-"
	}
	up := 0
	var other []string
	for _, s := range v.Sessions {
		if strings.EqualFold(s.BGPStatus, "Established") {
			up++
		} else {
			st := s.Node + "=" + dash(s.BGPStatus)
			if s.Reason != "" {
				st += "/" + s.Reason
			}
			other = append(other, st)
		}
	}
	sum := fmt.Sprintf("Established %d/%d", up, len(v.Sessions))
	if len(other) > 0 {
		sum += " (" + strings.Join(other, ",") + ")"
	}
	return sum
}

func printPeerTable(w io.Writer, peers []peerView) error {
	if len(peers) == 0 {
		_, err := fmt.Fprintln(w, "no BGP peers (create one with: keeperlb peer create NAME --my-asn A --peer-asn B --peer-address IP)")
		return err
	}
	tw := newTable(w)
	fmt.Fprintln(tw, "NAME\tADDRESS\tMY-ASN\tPEER-ASN\tBFD\tNODES\tSESSIONS\tSERVICES")
	for _, p := range peers {
		svcs := "-"
		if p.Services != nil {
			svcs = fmt.Sprint(*p.Services)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\n", p.Name, p.Address, p.MyASN, p.PeerASN, dash(p.BFDProfile), p.Nodes, p.sessionSummary(), svcs)
	}
	return tw.Flush()
}

func newPeerListCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List BGP peers with their session state where the speakers report it",
		Long: "list shows each BGPPeer. SESSIONS comes from BGPSessionState objects written by\n" +
			"the speakers and SERVICES counts the Services advertised to the peer from\n" +
			"ServiceBGPStatus objects; both show \"-\" while no speaker reports them.",
		Args: cobra.NoArgs,
	}
	format := addOutputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := checkOutput(*format); err != nil {
			return err
		}
		c, _, err := g.client()
		if err != nil {
			return err
		}
		peers, err := loadPeers(cmd.Context(), c, g.namespace)
		if err != nil {
			return err
		}
		return render(g.out, *format, peers, func(w io.Writer) error { return printPeerTable(w, peers) })
	}
	return cmd
}

func newPeerDeleteCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a BGP peer; the speakers close their sessions with it",
		Args:  exactName("peer delete"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			c, _, err := g.client()
			if err != nil {
				return err
			}
			res, err := loadResources(ctx, c, g.namespace)
			if err != nil {
				return err
			}
			i := slices.IndexFunc(res.Peers, func(p v1beta2.BGPPeer) bool { return p.Name == args[0] })
			if i < 0 {
				var names []string
				for _, p := range res.Peers {
					names = append(names, p.Name)
				}
				slices.Sort(names)
				return notFound("BGPPeer", args[0], g.namespace, names, "keeperlb peer list")
			}
			for _, a := range res.BGPAdvs {
				if slices.Contains(a.Spec.Peers, args[0]) {
					fmt.Fprintf(g.errOut(), "warning: BGPAdvertisement %s lists this peer; it keeps advertising to its other peers, and to none if this was the last\n", a.Name)
				}
			}
			if err := c.Delete(ctx, &res.Peers[i]); err != nil && !apierrors.IsNotFound(err) {
				return apiError("deleting BGPPeer "+args[0], err)
			}
			fmt.Fprintf(g.out, "bgppeer/%s deleted\n", args[0])
			return nil
		},
	}
}
