package speaker

import (
	"context"
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/keeperlb/keeperlb/api/v1beta1"
	"github.com/keeperlb/keeperlb/internal/election"
)

// serviceOwners maps every Service of an election to its announcing node.
func serviceOwners(res election.L2Result) map[string]string {
	out := map[string]string{}
	for _, a := range res.Announcements {
		for _, s := range a.Services {
			out[s] = a.Node
		}
	}
	return out
}

// reportMoves emits the Events that tell a Service's story in `kubectl
// describe svc`: a nodeAssigned on each Service this node takes over (or
// announces first) over layer 2, naming the previous node and why (see
// l2Moves), and one Event per change of the nodes advertising it over BGP
// (see bgpChanges). It then remembers what this node announces.
func (r *reconciler) reportMoves(ctx context.Context, svcs []corev1.Service, owned map[string][]netip.Addr,
	prevOwners map[string]string, prevLive, live []string, bgpMoves []bgpChange) {
	announced := make(map[string]bool, len(owned))
	for k := range owned {
		announced[k] = true
	}
	was := r.announcing
	r.announcing = announced
	if r.events == nil {
		return
	}
	byKey := make(map[string]*corev1.Service, len(svcs))
	for i := range svcs {
		byKey[svcs[i].Namespace+"/"+svcs[i].Name] = &svcs[i]
	}
	var recorded map[string][]string
	moves := l2Moves(l2MoveInput{self: r.node, announced: announced, was: was, prevOwner: prevOwners,
		prevLive: prevLive, live: live, departure: r.live.Departure,
		recorded: func(svc string) []string {
			if recorded == nil {
				recorded = r.recordedL2(ctx)
			}
			return recorded[svc]
		}})
	for _, m := range moves {
		if s := byKey[m.service]; s != nil {
			r.events.Eventf(s, nil, corev1.EventTypeNormal, eventNodeAssigned, "Announce", "%s", l2MoveMessage(r.node, m))
		}
	}
	for _, c := range bgpMoves {
		if s := byKey[c.service]; s != nil {
			reason, note := bgpChangeEvent(r.node, c)
			r.events.Eventf(s, nil, corev1.EventTypeNormal, reason, "Announce", "%s", note)
		}
	}
}

// recordedL2 returns, per Service, the nodes its ServiceL2Status objects
// name (read from the cache). A failed read counts as no record: at worst
// an Event too many.
func (r *reconciler) recordedL2(ctx context.Context) map[string][]string {
	out := map[string][]string{}
	var list v1beta1.ServiceL2StatusList
	if err := r.client.List(ctx, &list, client.InNamespace(r.namespace)); err != nil {
		r.log.Warn("reading ServiceL2Status for the announcer Events", "err", err)
		return out
	}
	for _, st := range list.Items {
		if st.Status.Node == "" {
			continue
		}
		key := st.Status.ServiceNamespace + "/" + st.Status.ServiceName
		out[key] = append(out[key], st.Status.Node)
	}
	return out
}

// bgpChanges returns the changes of BGP advertisers this pass reports (see
// the pure bgpChanges); was is what the previous pass advertised. It reads
// the ServiceBGPStatus objects only when something may have changed.
func (r *reconciler) bgpChanges(ctx context.Context, was map[string][]netip.Addr, prevLive, live []string, isolated bool) []bgpChange {
	if r.events == nil {
		return nil
	}
	first := !r.bgpApplied
	departed := slices.ContainsFunc(prevLive, func(n string) bool { return !slices.Contains(live, n) })
	same := len(was) == len(r.bgpAnnounced)
	for k := range r.bgpAnnounced {
		if _, ok := was[k]; !ok {
			same = false
		}
	}
	if !first && !departed && same {
		return nil
	}
	in := bgpChangeInput{self: r.node, first: first, isolated: isolated, prevLive: prevLive, live: live, departure: r.live.Departure,
		advertised: map[string]bool{}, was: map[string]bool{}, recorded: map[string][]string{}}
	for k := range r.bgpAnnounced {
		in.advertised[k] = true
	}
	for k := range was {
		in.was[k] = true
	}
	var list v1beta1.ServiceBGPStatusList
	if err := r.client.List(ctx, &list, client.InNamespace(r.namespace)); err != nil {
		r.log.Warn("reading ServiceBGPStatus for the advertiser Events", "err", err)
	}
	for _, st := range list.Items {
		if st.Status.Node == "" || len(st.Status.Peers) == 0 {
			continue
		}
		key := st.Status.ServiceNamespace + "/" + st.Status.ServiceName
		in.recorded[key] = append(in.recorded[key], st.Status.Node)
	}
	return bgpChanges(in)
}
