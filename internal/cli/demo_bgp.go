package cli

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/keeperlb/keeperlb/api/v1beta1"
	"github.com/keeperlb/keeperlb/examples"
	"github.com/keeperlb/keeperlb/internal/controller"
	"github.com/keeperlb/keeperlb/internal/lab"
	"github.com/keeperlb/keeperlb/internal/speaker"
)

// The BGP chapter's fixed numbers; examples/demo/bgp.yaml holds the
// cluster's side of them.
const (
	demoNodeASN   = 64512
	demoRouterASN = 64500
	demoPeer      = "router"
	// demoBFDInterval and demoBFDMultiplier are the BFD timers of both
	// sides: a silent neighbor is down after 3 x 300 ms.
	demoBFDInterval   = 300
	demoBFDMultiplier = 3
	// demoFarRequests is how many requests the far client sends to show
	// ECMP: with 3 equal paths, the chance that one node gets none of 30
	// independently hashed connections is about 3 x (2/3)^30, 2e-5.
	demoFarRequests = 30
)

// demoBGPChapter is the story of BGP mode, told with the Service of the
// layer 2 chapter: every node announces its address to the lab's router,
// which spreads the far client's connections over the nodes, and BFD takes
// a cut-off node out of the route in about a second.
func demoBGPChapter() demoChapter {
	return demoChapter{title: "BGP mode with ECMP and BFD", router: true, steps: []demoStep{
		{"restarting the killed speaker", demoRestartSpeaker},
		{"starting the router", demoStartRouter},
		{"applying the BGP configuration", demoApplyBGPConfig},
		{"reading the router's route", demoRouterRoute},
		{"reaching the Service through the router", demoFarSpread},
		{"cutting a node off", demoCutNode},
		{"reconnecting the node", demoHealNode},
	}}
}

// demoRestartSpeaker brings the layer 2 chapter's killed speaker back, so
// that every node peers with the router.
func demoRestartSpeaker(ctx context.Context, d *demoRun) error {
	name := d.announcer
	if p := d.speakers[name]; p == nil || !p.killed {
		return nil
	}
	d.step("Restarting the speaker on %s, so that every node can peer with the router", name)
	if err := d.startSpeaker(d.lab.Node(name)); err != nil {
		return err
	}
	began := time.Now()
	if err := d.waitAllLive(ctx); err != nil {
		return err
	}
	d.note("every speaker sees all %d alive again after %s", len(d.lab.Nodes), time.Since(began).Round(10*time.Millisecond))
	return nil
}

// demoRouterBGPD renders the router's bgpd.conf: an explicit neighbor for
// every node (FRR's BFD needs explicit neighbors) and ECMP over up to 8
// paths.
func demoRouterBGPD(l *lab.Lab) string {
	var b strings.Builder
	fmt.Fprintf(&b, "router bgp %d\n bgp router-id %s\n no bgp ebgp-requires-policy\n", demoRouterASN, l.Router.IPv4)
	for _, n := range l.Nodes {
		fmt.Fprintf(&b, " neighbor %s remote-as %d\n neighbor %s bfd profile fast\n", n.IPv4, demoNodeASN, n.IPv4)
	}
	b.WriteString(" address-family ipv4 unicast\n  maximum-paths 8\n")
	for _, n := range l.Nodes {
		fmt.Fprintf(&b, "  neighbor %s activate\n", n.IPv4)
	}
	b.WriteString(" exit-address-family\n")
	return b.String()
}

// demoRouterBFDD renders the router's bfdd.conf, the same timers as the
// BFDProfile of examples/demo/bgp.yaml.
func demoRouterBFDD() string {
	return fmt.Sprintf("bfd\n profile fast\n  receive-interval %d\n  transmit-interval %d\n  detect-multiplier %d\n",
		demoBFDInterval, demoBFDInterval, demoBFDMultiplier)
}

// demoStartRouter runs FRR in the router's namespace.
func demoStartRouter(ctx context.Context, d *demoRun) error {
	l := d.lab
	d.step("Starting FRR (zebra, bgpd, bfdd) on the router %s, between the nodes' network and the far client %s", l.Router.IPv4, l.Far.IPv4)
	conf := demoRouterBGPD(l)
	fmt.Fprintln(d.out, demoIndent("bgpd.conf:\n"+conf+"bfdd.conf:\n"+demoRouterBFDD(), "      "))
	start := l.StartFRR
	if d.opts.keep {
		start = l.StartFRRDetached
	}
	f, err := start(ctx, conf, demoRouterBFDD())
	if err != nil {
		return err
	}
	d.frr = f
	return nil
}

// demoApplyBGPConfig applies examples/demo/bgp.yaml and waits until every
// node's session is established with BFD up, as the speakers report it and
// as FRR sees it.
func demoApplyBGPConfig(ctx context.Context, d *demoRun) error {
	l := d.lab
	raw, err := fs.ReadFile(examples.Demo, "demo/bgp.yaml")
	if err != nil {
		return fmt.Errorf("reading examples/demo/bgp.yaml: %w", err)
	}
	text, objs, err := demoBGPManifest(raw, l.Router.IPv4)
	if err != nil {
		return fmt.Errorf("examples/demo/bgp.yaml: %w", err)
	}
	d.step("Applying examples/demo/bgp.yaml with this lab's router: a BFDProfile, a BGPPeer and a BGPAdvertisement of pool %s", demoPool)
	fmt.Fprintln(d.out, demoIndent(text, "      "))
	if err := apply(ctx, d.c, objs, demoInstallNS, io.Discard); err != nil {
		return err
	}
	began := time.Now()
	nodes := demoNodeNames(l)
	err = d.waitFor(ctx, 60*time.Second, "waiting for every node's BGP session and BFD", func(ctx context.Context) (bool, error) {
		var list v1beta1.BGPSessionStateList
		if err := d.c.List(ctx, &list, client.InNamespace(demoInstallNS), client.MatchingLabels{speaker.LabelPeer: speaker.LabelValue(demoPeer)}); err != nil {
			return false, err
		}
		var up []string
		for _, s := range list.Items {
			st := s.Status
			if st.BGPStatus == "Established" && st.BFDStatus == "Up" && st.Peer == l.Router.IPv4.String() {
				up = append(up, st.Node)
			}
		}
		slices.Sort(up)
		if !slices.Equal(up, nodes) {
			return false, fmt.Errorf("BGPSessionState objects show Established with BFD Up on %v", up)
		}
		peers, err := d.frr.BFDPeers(ctx)
		if err != nil {
			return false, err
		}
		for _, n := range l.Nodes {
			if peers[n.IPv4] != "up" {
				return false, fmt.Errorf("FRR's BFD sessions: %v", peers)
			}
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	cs := &v1beta1.ConfigurationState{}
	if err := d.c.Get(ctx, client.ObjectKey{Namespace: demoInstallNS, Name: controller.ConfigurationStateName}, cs); err != nil {
		return err
	}
	if cs.Status.Result != v1beta1.ConfigurationResultValid {
		return fmt.Errorf("ConfigurationState %q is %q: %s", cs.Name, cs.Status.Result, cs.Status.ErrorSummary)
	}
	d.note("after %s every node's BGPSessionState says Established, BFD Up (kubectl get bgpsessionstates -n %s),",
		time.Since(began).Round(10*time.Millisecond), demoInstallNS)
	d.note("and FRR agrees: %d BGP sessions established, %d BFD sessions up", len(nodes), len(nodes))
	return nil
}

// demoBGPManifest puts router in place of lab 1's router address, which the
// example names so that it is valid as it stands, and returns the text to
// show (comments dropped) and the objects to apply. It fails unless the
// result has exactly one BGPPeer, named demoPeer, whose peerAddress is
// router.
func demoBGPManifest(raw []byte, router netip.Addr) (string, []*unstructured.Unstructured, error) {
	ref, err := lab.Plan(1, 1, true)
	if err != nil {
		return "", nil, err
	}
	text, objs, err := demoManifest(raw, func(line string) string {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "peerAddress:"); ok && strings.TrimSpace(v) == ref.Router.IPv4.String() {
			return strings.Replace(line, ref.Router.IPv4.String(), router.String(), 1)
		}
		return line
	})
	if err != nil {
		return "", nil, err
	}
	var peers []string
	for _, u := range objs {
		if u.GetKind() != "BGPPeer" {
			continue
		}
		addr, _, err := unstructured.NestedString(u.Object, "spec", "peerAddress")
		if err != nil {
			return "", nil, fmt.Errorf("BGPPeer %s: spec.peerAddress: %w", u.GetName(), err)
		}
		if addr != router.String() {
			return "", nil, fmt.Errorf("BGPPeer %s: spec.peerAddress must be %s (lab 1's router, which the demo replaces with its lab's), got %q",
				u.GetName(), ref.Router.IPv4, addr)
		}
		peers = append(peers, u.GetName())
	}
	if len(peers) != 1 || peers[0] != demoPeer {
		return "", nil, fmt.Errorf("want one BGPPeer named %q, got %v", demoPeer, peers)
	}
	return text, objs, nil
}

// demoRouterRoute waits until the router's kernel routes the Service's
// address over every node and shows that route.
func demoRouterRoute(ctx context.Context, d *demoRun) error {
	l := d.lab
	d.step("The router learns %s from every node; zebra installs one route with a next hop per node", d.vip)
	if err := d.waitRoute(ctx, 30*time.Second, "waiting for the router's route to "+d.vip.String()); err != nil {
		return err
	}
	out, err := l.Exec(ctx, l.Router, "ip", "route", "show", d.vip.String()+"/32")
	if err != nil {
		return err
	}
	fmt.Fprintf(d.out, "      router$ ip route show %s/32\n%s\n", d.vip, demoIndent(string(out), "      "))
	var list v1beta1.ServiceBGPStatusList
	if err := d.c.List(ctx, &list, client.InNamespace(demoInstallNS), client.MatchingLabels{
		speaker.LabelServiceName: demoService, speaker.LabelServiceNamespace: demoAppNS}); err != nil {
		return err
	}
	d.note("the speakers say the same: %d ServiceBGPStatus objects for %s/%s, one per node", len(list.Items), demoAppNS, demoService)
	return nil
}

// waitRoute waits until the router's kernel route to the VIP leads to
// every node.
func (d *demoRun) waitRoute(ctx context.Context, timeout time.Duration, what string) error {
	want := demoNodeNames(d.lab)
	return d.waitFor(ctx, timeout, what, func(ctx context.Context) (bool, error) {
		got, err := d.hopNodes(ctx)
		if err != nil {
			return false, err
		}
		if !slices.Equal(got, want) {
			return false, fmt.Errorf("the router's route to %s leads to %v", d.vip, got)
		}
		return true, nil
	})
}

// hopNodes returns the nodes the router's kernel route to the VIP leads
// to, sorted.
func (d *demoRun) hopNodes(ctx context.Context) ([]string, error) {
	l := d.lab
	hops, err := l.KernelNextHops(ctx, l.Router, netip.PrefixFrom(d.vip, 32))
	if err != nil {
		return nil, err
	}
	var nodes []string
	for _, h := range hops {
		name := h.String()
		for _, n := range l.Nodes {
			if n.IPv4 == h {
				name = n.Name
			}
		}
		nodes = append(nodes, name)
	}
	slices.Sort(nodes)
	return nodes, nil
}

// farSpread sends n requests from the far client, each on a new connection
// (a new source port, so a new ECMP hash at the router), and counts the
// answering nodes.
func (d *demoRun) farSpread(ctx context.Context, n int) (map[string]int, error) {
	got := map[string]int{}
	for range n {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		node, err := d.lab.Curl(rctx, d.lab.Far, d.vip, demoPort)
		cancel()
		if err != nil {
			return got, fmt.Errorf("the far client asking http://%s/: %w", d.vip, err)
		}
		got[node]++
	}
	return got, nil
}

// demoCounts writes "node1 11, node2 9, node3 10".
func demoCounts(got map[string]int) string {
	var parts []string
	for _, n := range slices.Sorted(maps.Keys(got)) {
		parts = append(parts, fmt.Sprintf("%s %d", n, got[n]))
	}
	return strings.Join(parts, ", ")
}

// demoFarSpread shows the far client's connections spread over every node.
func demoFarSpread(ctx context.Context, d *demoRun) error {
	d.step("The far client (%s, behind the router) asks http://%s/ %d times, each on a new connection", d.lab.Far.IPv4, d.vip, demoFarRequests)
	got, err := d.farSpread(ctx, demoFarRequests)
	if err != nil {
		return err
	}
	d.note("HTTP 200 every time; served by %s", demoCounts(got))
	for _, n := range demoNodeNames(d.lab) {
		if got[n] == 0 {
			return fmt.Errorf("no request reached %s although the router has a path to it: %s", n, demoCounts(got))
		}
	}
	d.busiest = ""
	for n, c := range got {
		if c > got[d.busiest] || (c == got[d.busiest] && n < d.busiest) {
			d.busiest = n
		}
	}
	return nil
}

// demoCutNode cuts off the node that served the most requests and measures
// how long its next hop stays in the router's route.
func demoCutNode(ctx context.Context, d *demoRun) error {
	l := d.lab
	victim := l.Node(d.busiest)
	d.step("Cutting %s off the network (everything it sends or receives is dropped) while reading the router's route every %d ms",
		victim.Name, demoPollEvery.Milliseconds())
	var want []string
	for _, n := range demoNodeNames(l) {
		if n != victim.Name {
			want = append(want, n)
		}
	}
	// The hold time the session negotiated, which without BFD would be
	// the time to notice the cut.
	before, err := d.frr.Neighbor(ctx, victim.IPv4)
	if err != nil {
		return err
	}
	cut := time.Now()
	if err := l.Cut(victim); err != nil {
		return err
	}
	d.cut = victim
	for {
		began := time.Now()
		got, err := d.hopNodes(ctx)
		if err == nil && slices.Equal(got, want) {
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Since(cut) > 30*time.Second {
			return fmt.Errorf("the router's route to %s still leads to %v 30 s after %s was cut (last error: %v); see the logs in %s",
				d.vip, got, victim.Name, err, l.Dir)
		}
		if wait := demoPollEvery - time.Since(began); wait > 0 {
			time.Sleep(wait)
		}
	}
	took := time.Since(cut)
	n, err := d.frr.Neighbor(ctx, victim.IPv4)
	if err != nil {
		return err
	}
	d.note("BGP failover in %d ms: from the cut to %s's next hop leaving the router's route (BFD: %d x %d ms)",
		took.Milliseconds(), victim.Name, demoBFDMultiplier, demoBFDInterval)
	why := n.LastReset
	if n.LastNotification != "" {
		why += " (" + n.LastNotification + ")"
	}
	d.note("FRR's session with %s is %s, last reset: %s; without BFD it would wait for the %s hold time",
		victim.Name, n.State, why, before.HoldTime)
	got, err := d.farSpread(ctx, demoFarRequests)
	if err != nil {
		return err
	}
	d.note("the far client asks %d more times: served by %s", demoFarRequests, demoCounts(got))
	if got[victim.Name] != 0 {
		return fmt.Errorf("the far client still reached %s after it was cut off: %s", victim.Name, demoCounts(got))
	}
	return nil
}

// demoHealNode reconnects the cut node and waits until the router routes
// over it again.
func demoHealNode(ctx context.Context, d *demoRun) error {
	l := d.lab
	victim := d.cut
	d.step("Reconnecting %s", victim.Name)
	healed := time.Now()
	if err := l.Heal(victim); err != nil {
		return err
	}
	d.cut = nil
	if err := d.waitRoute(ctx, 60*time.Second, "waiting for "+victim.Name+" to be back in the router's route"); err != nil {
		return err
	}
	d.note("%s is back in the router's route after %s (its speaker reconnects, BGP and BFD come up again)",
		victim.Name, time.Since(healed).Round(100*time.Millisecond))
	return nil
}
