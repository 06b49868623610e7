package speaker

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/keeperlb/keeperlb/api/v1beta1"
	"github.com/keeperlb/keeperlb/api/v1beta2"
	"github.com/keeperlb/keeperlb/internal/bgp"
	"github.com/keeperlb/keeperlb/internal/config"
	"github.com/keeperlb/keeperlb/internal/election"
)

// bgpEngine is the BGP engine (package bgp) as the reconciler drives it.
type bgpEngine interface {
	Apply(ctx context.Context, d bgp.Desired) error
	Sessions() []bgp.SessionState
}

// bgpNode describes this node to bgp.Plan; its addresses are the Node's
// InternalIPs in the Node's order.
func bgpNode(nodes []corev1.Node, name string) bgp.Node {
	out := bgp.Node{Name: name}
	for i := range nodes {
		n := &nodes[i]
		if n.Name != name {
			continue
		}
		en := electionNodes(nodes[i : i+1])[0]
		out.Labels, out.NetworkUnavailable = en.Labels, en.NetworkUnavailable
		for _, a := range n.Status.Addresses {
			if a.Type != corev1.NodeInternalIP {
				continue
			}
			if ip, err := parseAddr(a.Address); err == nil {
				out.Addresses = append(out.Addresses, ip)
			}
		}
	}
	return out
}

// bgpServices converts election's view of the Services, which carries the
// same facts.
func bgpServices(svcs []election.Service) []bgp.Service {
	out := make([]bgp.Service, len(svcs))
	for i, s := range svcs {
		out[i] = bgp.Service{Key: s.Key, IPs: s.IPs, Labels: s.Labels,
			LocalTrafficPolicy: s.LocalTrafficPolicy, Serving: s.Serving, ServingNodes: s.ServingNodes}
	}
	return out
}

// bfdPollInterval is how often a pass runs while a session's BFD settles
// (see bfdSettling).
const bfdPollInterval = time.Second

// syncBGP plans and applies this node's BGP sessions and routes, and
// returns what its status objects should say (the status writer writes
// them). It also returns true while BFD is settling on a session, so that
// the caller runs another pass soon.
func (r *reconciler) syncBGP(ctx context.Context, nodes []corev1.Node, svcs []election.Service) (*bgpSnapshot, bool, error) {
	var d bgp.Desired
	var problems []bgp.Problem
	if r.cfg != nil {
		d, problems = bgp.Plan(r.cfg, bgpNode(nodes, r.node), bgpServices(svcs))
	}
	if err := r.bgp.Apply(ctx, d); err != nil {
		return nil, false, fmt.Errorf("applying BGP configuration: %w", err)
	}
	r.reportProblems(ctx, problems)
	sessions := r.bgp.Sessions()
	return &bgpSnapshot{adverts: d.Services, sessions: sessions}, bfdSettling(d.Peers, sessions), nil
}

// bfdSettling reports whether a session is established with BFD configured
// but its BFD session is not Up (yet). The engine signals BGP state changes
// only, and turns BFD on after the session comes up, so without more
// passes BGPSessionState's bfdStatus would keep the value of the pass that
// saw the session come up.
func bfdSettling(peers []bgp.PeerConfig, sessions []bgp.SessionState) bool {
	withBFD := map[string]bool{}
	for _, p := range peers {
		withBFD[p.Name] = p.BFD.Enabled
	}
	for _, s := range sessions {
		if s.Up && withBFD[s.Peer] && s.BFD != "Up" {
			return true
		}
	}
	return false
}

// reportProblems tells users about configuration this node cannot honour:
// a Warning Event on each object concerned (once per distinct message) and
// the list in this speaker's ConfigurationState.
func (r *reconciler) reportProblems(ctx context.Context, problems []bgp.Problem) {
	msgs := make([]string, len(problems))
	for i, p := range problems {
		msgs[i] = p.Error()
		if r.reported[msgs[i]] || r.events == nil {
			continue
		}
		if obj := configObject(p.Kind, r.namespace, p.Name); obj != nil {
			r.events.Eventf(obj, nil, corev1.EventTypeWarning, "UnsupportedField", "LoadConfiguration",
				"node %s: %s: %s", r.node, p.Field, p.Reason)
		}
	}
	next := make(map[string]bool, len(msgs))
	for _, m := range msgs {
		next[m] = true
	}
	r.reported = next
	slices.Sort(msgs)
	if err := r.writeState(ctx, strings.Join(msgs, "; ")); err != nil {
		r.log.Warn("writing ConfigurationState", "err", err)
	}
}

// writeState records this speaker's view of the configuration in the
// ConfigurationState "speaker-<node>": Valid or Invalid (the last good
// configuration stays in force), and a condition listing the fields it
// does not honour. It writes only on change.
func (r *reconciler) writeState(ctx context.Context, unsupported string) error {
	result, summary := v1beta1.ConfigurationResultValid, ""
	if r.cfgErr != "" {
		result, summary = v1beta1.ConfigurationResultInvalid, r.cfgErr
	}
	cond := metav1.Condition{Type: "Honoured", Status: metav1.ConditionTrue, Reason: "AllFieldsHonoured",
		Message: "this node honours every configured field"}
	if unsupported != "" {
		cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, "UnsupportedField", unsupported
	}
	key := [3]string{result, summary, unsupported}
	if r.lastState == key {
		return nil
	}
	name := "speaker-" + r.node
	cs := &v1beta1.ConfigurationState{}
	err := r.client.Get(ctx, clientKey(r.namespace, name), cs)
	if err != nil {
		cs = &v1beta1.ConfigurationState{ObjectMeta: metav1.ObjectMeta{Namespace: r.namespace, Name: name}}
		if err := r.client.Create(ctx, cs); err != nil {
			return fmt.Errorf("creating ConfigurationState %s: %w", name, err)
		}
	}
	cond.ObservedGeneration = cs.Generation
	cond.LastTransitionTime = metav1.Now()
	cs.Status = v1beta1.ConfigurationStateStatus{Result: result, ErrorSummary: summary, Conditions: []metav1.Condition{cond}}
	if err := r.client.Status().Update(ctx, cs); err != nil {
		return fmt.Errorf("writing ConfigurationState %s: %w", name, err)
	}
	r.lastState = key
	return nil
}

// configObject returns a reference object for an Event on a configuration
// object of the given kind.
func configObject(kind, ns, name string) runtime.Object {
	meta := metav1.ObjectMeta{Namespace: ns, Name: name}
	switch kind {
	case config.KindBGPPeer:
		return &v1beta2.BGPPeer{ObjectMeta: meta}
	case config.KindBGPAdvertisement:
		return &v1beta1.BGPAdvertisement{ObjectMeta: meta}
	case config.KindBFDProfile:
		return &v1beta1.BFDProfile{ObjectMeta: meta}
	case config.KindIPAddressPool:
		return &v1beta1.IPAddressPool{ObjectMeta: meta}
	case config.KindCommunity:
		return &v1beta1.Community{ObjectMeta: meta}
	case config.KindL2Advertisement:
		return &v1beta1.L2Advertisement{ObjectMeta: meta}
	}
	return nil
}

// sessionEvent turns a session change into an Event on the BGPPeer: Normal
// when it comes up, Warning with the reason when it goes down.
func sessionEvent(rec eventRecorder, ns, node string, s bgp.SessionState) {
	if rec == nil {
		return
	}
	peer := &v1beta2.BGPPeer{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: s.Peer}}
	if s.Up {
		rec.Eventf(peer, nil, corev1.EventTypeNormal, "SessionEstablished", "BGPSession",
			"node %s: session with %s is established", node, s.Address)
		return
	}
	if s.Reason == "" {
		return
	}
	rec.Eventf(peer, nil, corev1.EventTypeWarning, s.Reason, "BGPSession",
		"node %s: session with %s is %s: %s", node, s.Address, s.State, s.Message)
}
