package cli

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/keeperlb/keeperlb/api/v1beta1"
	"github.com/keeperlb/keeperlb/api/v1beta2"
	"github.com/keeperlb/keeperlb/internal/config"
	"github.com/keeperlb/keeperlb/internal/configread"
	"github.com/keeperlb/keeperlb/internal/request"
)

// loadResources reads every configuration object of the install
// namespace through configread, the reader the reconcilers and the
// admission webhook share, so that the CLI judges a change against the
// same objects they do. The Secrets that the peers (and extra, the peers
// about to be created) name in passwordSecret are read too; a user who may
// not read Secrets still gets the rest, and the check of those references
// is then left to the webhook and the controller.
func loadResources(ctx context.Context, c client.Client, ns string, extra ...v1beta2.BGPPeer) (config.Resources, error) {
	res, err := configread.Read(ctx, c, ns)
	if err != nil {
		return res, apiError("reading the configuration in "+ns, err)
	}
	secrets, err := configread.PeerSecrets(ctx, c, ns, res.Peers, extra)
	if err != nil && !apierrors.IsForbidden(err) {
		return res, apiError("reading the peers' password Secrets in "+ns, err)
	}
	res.Secrets = secrets
	return res, nil
}

// newProblems validates after with config.Parse, the controller's own
// function, and returns the problems that before did not already have:
// the ones a change introduces. A cluster whose configuration is already
// broken can still be repaired one object at a time.
func newProblems(before, after config.Resources) []*config.FieldError {
	old := map[string]bool{}
	if _, err := config.Parse(before); err != nil {
		for _, fe := range fieldErrors(err) {
			old[fe.Error()] = true
		}
	}
	_, err := config.Parse(after)
	if err == nil {
		return nil
	}
	var out []*config.FieldError
	for _, fe := range fieldErrors(err) {
		if !old[fe.Error()] {
			out = append(out, fe)
		}
	}
	return out
}

func fieldErrors(err error) config.Errors {
	var errs config.Errors
	if errors.As(err, &errs) {
		return errs
	}
	return config.Errors{{Reason: err.Error()}}
}

// rejection is the error a create command returns when validation fails:
// every problem, the flag to change where one is known, and the promise
// that nothing was written.
func rejection(what string, problems []*config.FieldError, flags map[string]string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s would be rejected by the controller's validation; nothing was written:", what)
	for _, p := range problems {
		fmt.Fprintf(&b, "\n  - %s", p.Error())
		if f := flagFor(p.Field, flags); f != "" {
			fmt.Fprintf(&b, " (change %s)", f)
		}
	}
	b.WriteString("\nfix the flags named above and run the command again")
	return errors.New(b.String())
}

// flagFor returns the flag that sets field, matching the longest prefix.
func flagFor(field string, flags map[string]string) string {
	best := ""
	for prefix := range flags {
		if (field == prefix || strings.HasPrefix(field, prefix+".") || strings.HasPrefix(field, prefix+"[")) && len(prefix) > len(best) {
			best = prefix
		}
	}
	return flags[best]
}

// loadBalancerServices returns every Service of type LoadBalancer, sorted
// by namespace and name.
func loadBalancerServices(ctx context.Context, c client.Client) ([]corev1.Service, error) {
	var l corev1.ServiceList
	if err := c.List(ctx, &l); err != nil {
		return nil, apiError("listing Services", err)
	}
	var out []corev1.Service
	for _, s := range l.Items {
		if s.Spec.Type == corev1.ServiceTypeLoadBalancer {
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

// announcement says who announces one Service: the node answering ARP/NDP
// for it in layer 2 mode, or the nodes advertising it to BGP peers.
type announcement struct {
	// L2 are the layer 2 announcers (one node, normally).
	L2 []l2Announcer `json:"layer2,omitempty"`
	// BGP are the nodes advertising the Service and the peers they
	// advertise it to.
	BGP []bgpAnnouncer `json:"bgp,omitempty"`
}

type l2Announcer struct {
	Node       string   `json:"node"`
	Interfaces []string `json:"interfaces,omitempty"`
}

type bgpAnnouncer struct {
	Node  string   `json:"node"`
	Peers []string `json:"peers,omitempty"`
}

// summary renders the announcers in one table cell.
func (a announcement) summary() string {
	var parts []string
	for _, l := range a.L2 {
		parts = append(parts, "l2:"+l.Node)
	}
	for _, b := range a.BGP {
		parts = append(parts, fmt.Sprintf("bgp:%s>%s", b.Node, joinOr(b.Peers, "none")))
	}
	return joinOr(parts, "-")
}

// announcers reads the ServiceL2Status and ServiceBGPStatus objects the
// speakers write, keyed by "namespace/name" of the Service. known is false
// when the kinds are not installed. The objects live in the speakers'
// namespace; every namespace is searched when the user may, so that a
// speaker installed elsewhere is found too.
func announcers(ctx context.Context, c client.Client, ns string) (map[string]*announcement, bool, error) {
	out, known, denied, err := speakerReports(ctx, c, ns)
	if err == nil && denied.l2 != nil {
		err = denied.l2
	} else if err == nil && denied.bgp != nil {
		err = denied.bgp
	}
	if err != nil {
		return nil, false, apiError("reading the speakers' status", err)
	}
	return out, known, nil
}

// reportsDenied holds, for each kind of speaker status object, the
// Forbidden error when the user may list it neither in every namespace
// nor in the install namespace; nil when it could be read.
type reportsDenied struct {
	l2, bgp error
}

// speakerReports is announcers for a user who may not read everything:
// a kind that the user may not list is left out and its refusal returned
// in denied, and the other kind is still read. err is any other failure.
func speakerReports(ctx context.Context, c client.Client, ns string) (map[string]*announcement, bool, reportsDenied, error) {
	var l2 v1beta1.ServiceL2StatusList
	var bgp v1beta1.ServiceBGPStatusList
	var denied reportsDenied
	out := map[string]*announcement{}
	get := func(key string) *announcement {
		if out[key] == nil {
			out[key] = &announcement{}
		}
		return out[key]
	}
	for _, k := range []struct {
		list   client.ObjectList
		denied *error
	}{{&l2, &denied.l2}, {&bgp, &denied.bgp}} {
		err := c.List(ctx, k.list)
		if apierrors.IsForbidden(err) {
			err = c.List(ctx, k.list, client.InNamespace(ns))
		}
		if meta.IsNoMatchError(err) {
			return out, false, reportsDenied{}, nil
		}
		if apierrors.IsForbidden(err) {
			*k.denied = err
			continue
		}
		if err != nil {
			return nil, false, reportsDenied{}, err
		}
	}
	for _, s := range l2.Items {
		var ifs []string
		for _, i := range s.Status.Interfaces {
			ifs = append(ifs, i.Name)
		}
		key, node := statusKey(s.Labels, s.Status.ServiceNamespace, s.Status.ServiceName, s.Status.Node)
		a := get(key)
		a.L2 = append(a.L2, l2Announcer{Node: node, Interfaces: ifs})
	}
	for _, s := range bgp.Items {
		key, node := statusKey(s.Labels, s.Status.ServiceNamespace, s.Status.ServiceName, s.Status.Node)
		a := get(key)
		a.BGP = append(a.BGP, bgpAnnouncer{Node: node, Peers: slices.Sorted(slices.Values(s.Status.Peers))})
	}
	for _, a := range out {
		slices.SortFunc(a.L2, func(x, y l2Announcer) int { return strings.Compare(x.Node, y.Node) })
		slices.SortFunc(a.BGP, func(x, y bgpAnnouncer) int { return strings.Compare(x.Node, y.Node) })
	}
	return out, true, denied, nil
}

// statusKey returns the "namespace/name" of the Service a speaker status
// object is about, and its node, from its status or, between the object's
// creation and its first status write, from the labels the speakers set.
func statusKey(labels map[string]string, ns, name, node string) (string, string) {
	if name == "" {
		ns, name = labels["metallb.io/service-namespace"], labels["metallb.io/service-name"]
	}
	if node == "" {
		node = labels["metallb.io/node"]
	}
	return ns + "/" + name, node
}

// sessionState is one node's BGP session with one peer, as the speakers
// report it in BGPSessionState objects (MetalLB's kind; KeeperLB reads it
// without a compiled-in type, so that the CLI works whether or not the
// cluster has it).
type sessionState struct {
	Node      string `json:"node"`
	Peer      string `json:"peer"`
	BGPStatus string `json:"bgpStatus"`
	BFDStatus string `json:"bfdStatus,omitempty"`
	// Reason and Message say why a session is not Established, where the
	// speaker reports it.
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
	// peerName is the BGPPeer's name from the metallb.io/peer label, when
	// the speaker sets it.
	peerName string
}

var sessionStateKind = schema.GroupVersionKind{Group: "metallb.io", Version: "v1beta1", Kind: "BGPSessionStateList"}

// sessionStates reads BGPSessionState objects; known is false when the
// cluster does not have the kind.
func sessionStates(ctx context.Context, c client.Client, ns string) ([]sessionState, bool, error) {
	l := &unstructured.UnstructuredList{}
	l.SetGroupVersionKind(sessionStateKind)
	err := c.List(ctx, l, client.InNamespace(ns))
	if meta.IsNoMatchError(err) || apierrors.IsNotFound(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, apiError("reading BGP session states", err)
	}
	var out []sessionState
	for _, u := range l.Items {
		str := func(field string) string {
			v, _, _ := unstructured.NestedString(u.Object, "status", field)
			return v
		}
		out = append(out, sessionState{
			Node: str("node"), Peer: str("peer"), BGPStatus: str("bgpStatus"), BFDStatus: str("bfdStatus"),
			Reason: str("reason"), Message: str("message"),
			peerName: u.GetLabels()["metallb.io/peer"],
		})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Node != out[j].Node {
			return out[i].Node < out[j].Node
		}
		return out[i].Peer < out[j].Peer
	})
	return out, true, nil
}

// forPeer picks the sessions of one BGPPeer: by the label naming it, or by
// the peer field holding its name or address.
func forPeer(states []sessionState, p *v1beta2.BGPPeer) []sessionState {
	var out []sessionState
	for _, s := range states {
		if s.peerName == p.Name || s.peerName == "" && (s.Peer == p.Name || p.Spec.PeerAddress != "" && s.Peer == p.Spec.PeerAddress) {
			out = append(out, s)
		}
	}
	return out
}

// poolsOfAdvertisements maps each pool name to the names of the L2 and BGP
// advertisements that select it. It uses the validated configuration when
// there is one, so that pool selectors resolve exactly as the speakers
// resolve them, and the advertisements' own lists otherwise.
func poolsOfAdvertisements(res config.Resources, cfg *config.Config) (l2, bgp map[string][]string) {
	l2, bgp = map[string][]string{}, map[string][]string{}
	if cfg != nil {
		for _, a := range cfg.L2Advertisements {
			for _, p := range a.Pools {
				l2[p] = append(l2[p], a.Name)
			}
		}
		for _, a := range cfg.BGPAdvertisements {
			for _, p := range a.Pools {
				bgp[p] = append(bgp[p], a.Name)
			}
		}
		return l2, bgp
	}
	selected := func(names []string, sels []metav1.LabelSelector, pool *v1beta1.IPAddressPool) bool {
		if len(names) == 0 && len(sels) == 0 {
			return true
		}
		if slices.Contains(names, pool.Name) {
			return true
		}
		for i := range sels {
			s, err := metav1.LabelSelectorAsSelector(&sels[i])
			if err == nil && s.Matches(labels.Set(pool.Labels)) {
				return true
			}
		}
		return false
	}
	for i := range res.Pools {
		p := &res.Pools[i]
		for _, a := range res.L2Advs {
			if selected(a.Spec.IPAddressPools, a.Spec.IPAddressPoolSelectors, p) {
				l2[p.Name] = append(l2[p.Name], a.Name)
			}
		}
		for _, a := range res.BGPAdvs {
			if selected(a.Spec.IPAddressPools, a.Spec.IPAddressPoolSelectors, p) {
				bgp[p.Name] = append(bgp[p.Name], a.Name)
			}
		}
	}
	return l2, bgp
}

// advertiseMode names how a pool is announced from its advertisements.
func advertiseMode(l2, bgp []string) string {
	switch {
	case len(l2) > 0 && len(bgp) > 0:
		return "both"
	case len(l2) > 0:
		return "arp"
	case len(bgp) > 0:
		return "bgp"
	}
	return "none"
}

// allocatedPool returns the pool a Service's addresses came from, as the
// controller records it.
func allocatedPool(s *corev1.Service) string {
	return s.Annotations[request.AnnotationAllocatedFromPool]
}

func ingressIPs(s *corev1.Service) []string {
	var ips []string
	for _, ing := range s.Status.LoadBalancer.Ingress {
		if ing.IP != "" {
			ips = append(ips, ing.IP)
		}
	}
	return ips
}

// servicesByPool groups LoadBalancer Services by the pool their addresses
// came from.
func servicesByPool(svcs []corev1.Service) map[string][]serviceRef {
	out := map[string][]serviceRef{}
	for i := range svcs {
		s := &svcs[i]
		if p := allocatedPool(s); p != "" {
			out[p] = append(out[p], serviceRef{Namespace: s.Namespace, Name: s.Name, IPs: ingressIPs(s)})
		}
	}
	return out
}

// serviceRef names a Service and its addresses.
type serviceRef struct {
	Namespace string   `json:"namespace"`
	Name      string   `json:"name"`
	IPs       []string `json:"ips,omitempty"`
}

func (r serviceRef) String() string { return r.Namespace + "/" + r.Name }
