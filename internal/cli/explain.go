package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/keeperlb/keeperlb/api/v1beta1"
	"github.com/keeperlb/keeperlb/internal/config"
	"github.com/keeperlb/keeperlb/internal/controller"
	"github.com/keeperlb/keeperlb/internal/ipam"
	"github.com/keeperlb/keeperlb/internal/request"
)

// explainView is everything `keeperlb explain` found out about a Service.
type explainView struct {
	Service string `json:"service"`
	// Unreadable lists the reads the user's permissions refused and what
	// each hides; empty when everything could be read.
	Unreadable []deniedRead `json:"unreadable,omitempty"`
	// Address answers "why does it have, or lack, an address".
	Address addressView `json:"address"`
	// Request is how the controller reads the Service's annotations and
	// spec; nil when they cannot be read (Address says why).
	Request *requestView `json:"request,omitempty"`
	// Pools says, for each pool, whether the Service could get an address
	// from it and why; pools reserved for other namespaces are left out.
	Pools []poolCandidate `json:"pools"`
	// ReservedPools counts the pools left out of Pools because their
	// serviceAllocation admits only other namespaces: they cannot serve
	// the Service, and are often named after the tenants they serve.
	ReservedPools int `json:"reservedPools,omitempty"`
	// Events are the Service's Events, oldest first.
	Events []eventView `json:"events"`
	// Announcement answers "who announces it and why that node".
	Announcement announceView `json:"announcement"`

	poolsHidden, eventsHidden bool
}

// deniedRead is a read that the user's permissions refused, and what
// explain cannot tell without it.
type deniedRead struct {
	// Read is the refused request, as "list IPAddressPools in namespace
	// metallb-system".
	Read string `json:"read"`
	// Hides says what the output lacks, or shows unchecked, because of it.
	Hides string `json:"hides"`
}

type addressView struct {
	IPs       []string `json:"ips"`
	Pool      string   `json:"pool,omitempty"`
	Condition string   `json:"condition,omitempty"`
	Reason    string   `json:"reason,omitempty"`
	Message   string   `json:"message,omitempty"`
	Since     string   `json:"since,omitempty"`
	Verdict   string   `json:"verdict"`
}

type requestView struct {
	Families     []string `json:"families"`
	Policy       string   `json:"ipFamilyPolicy"`
	RequestedIPs []string `json:"requestedIPs,omitempty"`
	Pool         string   `json:"addressPool,omitempty"`
	SharingKey   string   `json:"allowSharedIP,omitempty"`
}

// poolCandidate is one pool and whether the Service may get addresses
// from it. Rank orders the pools the controller would try for a Service
// that names none (1 first); 0 for the others.
type poolCandidate struct {
	Name     string `json:"name"`
	Eligible bool   `json:"eligible"`
	Rank     int    `json:"rank,omitempty"`
	Why      string `json:"why"`
}

type eventView struct {
	Type    string `json:"type"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
	Count   int32  `json:"count,omitempty"`
	Last    string `json:"last,omitempty"`
}

type announceView struct {
	Verdict          string         `json:"verdict"`
	Why              []string       `json:"why,omitempty"`
	Layer2           []l2Announcer  `json:"layer2,omitempty"`
	BGP              []bgpAnnouncer `json:"bgp,omitempty"`
	ServingEndpoints int            `json:"servingEndpoints"`
	EndpointNodes    []string       `json:"endpointNodes,omitempty"`
}

func newExplainCmd(g *globals) *cobra.Command {
	var svcNS, installNS string
	cmd := &cobra.Command{
		Use:   "explain svc/NAME [-n NAMESPACE]",
		Short: "Explain why a Service has or lacks an address, and who announces it and why that node",
		Long: "explain reads a LoadBalancer Service, its condition keeperlb.io/IPAllocated, its Events,\n" +
			"the pools and advertisements, and the speakers' ServiceL2Status/ServiceBGPStatus, and\n" +
			"says in words why the Service has its address or why it waits, which pools it could use,\n" +
			"and which node announces it.\n\n" +
			"-n is the Service's namespace (default: the kubeconfig context's); KeeperLB's own\n" +
			"namespace is --install-namespace.",
		Example: "  keeperlb explain svc/web -n shop\n  kubectl keeperlb explain service/api",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return errors.New("explain takes one Service: explain svc/NAME -n NAMESPACE")
			}
			return nil
		},
	}
	format := addOutputFlag(cmd)
	cmd.Flags().StringVarP(&svcNS, "namespace", "n", "", "namespace of the Service (default: the kubeconfig context's namespace)")
	cmd.Flags().StringVar(&installNS, "install-namespace", "metallb-system", "KeeperLB install namespace")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := checkOutput(*format); err != nil {
			return err
		}
		name, err := serviceArg(args[0])
		if err != nil {
			return err
		}
		if svcNS == "" {
			svcNS = contextNamespace(g.kubeconfig)
		}
		c, _, err := g.client()
		if err != nil {
			return err
		}
		v, err := loadExplain(cmd.Context(), c, installNS, svcNS, name)
		if err != nil {
			return err
		}
		return render(g.out, *format, v, func(w io.Writer) error { return printExplain(w, v) })
	}
	return cmd
}

// serviceArg accepts svc/NAME, service/NAME, services/NAME or NAME.
func serviceArg(arg string) (string, error) {
	kind, name, found := strings.Cut(arg, "/")
	if !found {
		kind, name = "svc", arg
	}
	switch strings.ToLower(kind) {
	case "svc", "service", "services":
	default:
		return "", fmt.Errorf("explain works on Services: want svc/NAME, got %q", arg)
	}
	if name == "" || strings.Contains(name, "/") {
		return "", fmt.Errorf("%q: want svc/NAME, with the namespace given by -n", arg)
	}
	return name, nil
}

// contextNamespace is the namespace of the kubeconfig's current context,
// as kubectl uses it, or "default".
func contextNamespace(path string) string {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = path
	ns, _, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).Namespace()
	if err != nil || ns == "" {
		return "default"
	}
	return ns
}

// loadExplain reads what explain weighs about Service ns/name. It works
// with a tenant's permissions: only the Service itself must be readable.
// Every other read that is forbidden is left out and recorded in the
// input's hidden flags, so that explain says what it could not see
// instead of failing or guessing.
func loadExplain(ctx context.Context, c client.Client, installNS, ns, name string) (*explainView, error) {
	svc := &corev1.Service{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, svc); err != nil {
		switch {
		case apierrors.IsNotFound(err):
			return nil, fmt.Errorf("service %s/%s not found: check the name and -n (LoadBalancer Services: keeperlb status)", ns, name)
		case apierrors.IsForbidden(err):
			return nil, fmt.Errorf("reading Service %s/%s: %w: you may not get Services in namespace %s, and explain needs at least that; use an account with a Role there that allows get on services, or another --kubeconfig", ns, name, err, ns)
		}
		return nil, apiError("reading Service "+ns+"/"+name, err)
	}
	in := explainInput{svc: svc, installNS: installNS}
	res, err := readWeighed(ctx, c, installNS, &in.hidden)
	if err != nil {
		return nil, err
	}
	if !in.hidden.pools {
		in.cfg, in.cfgErr = config.Parse(res)
	}
	nsObj := &corev1.Namespace{}
	switch err := c.Get(ctx, client.ObjectKey{Name: ns}, nsObj); {
	case err == nil:
		in.nsLabels = nsObj.Labels
	case apierrors.IsForbidden(err):
		in.hidden.namespace = true
	}
	if in.events, err = serviceEvents(ctx, c, svc); apierrors.IsForbidden(err) {
		in.hidden.events = true
	} else if err != nil {
		return nil, apiError("reading the Service's Events", err)
	}
	ann, known, denied, err := speakerReports(ctx, c, installNS)
	if err != nil {
		return nil, apiError("reading the speakers' status", err)
	}
	in.ann, in.speakerKinds = ann[ns+"/"+name], known
	in.hidden.l2Status, in.hidden.bgpStatus = denied.l2 != nil, denied.bgp != nil
	var eps discoveryv1.EndpointSliceList
	switch err := c.List(ctx, &eps, client.InNamespace(ns), client.MatchingLabels{discoveryv1.LabelServiceName: name}); {
	case apierrors.IsForbidden(err):
		in.hidden.endpoints = true
	case err != nil:
		return nil, apiError("reading the Service's EndpointSlices", err)
	}
	in.endpoints = eps.Items
	return explain(in), nil
}

// readWeighed reads, kind by kind, the configuration objects explain
// weighs: the pools, and the advertisements that announce them. A kind the
// user may not list is marked in h and left empty; any other failure is an
// error. BGPPeers, BFD profiles and Communities decide nothing explain
// says, so they are not read: a tenant is rarely allowed to, and the
// controller's ConfigurationState already reports their errors (a Service
// waiting for a valid configuration says so in its condition). For the
// same reason the advertisements' communities are dropped before parsing:
// without the Community objects their aliases cannot resolve.
func readWeighed(ctx context.Context, c client.Client, ns string, h *hidden) (config.Resources, error) {
	var (
		pools v1beta1.IPAddressPoolList
		l2    v1beta1.L2AdvertisementList
		bgp   v1beta1.BGPAdvertisementList
	)
	for _, k := range []struct {
		list   client.ObjectList
		kind   string
		hidden *bool
	}{
		{&pools, "IPAddressPools", &h.pools},
		{&l2, "L2Advertisements", &h.l2Advs},
		{&bgp, "BGPAdvertisements", &h.bgpAdvs},
	} {
		switch err := c.List(ctx, k.list, client.InNamespace(ns)); {
		case apierrors.IsForbidden(err):
			*k.hidden = true
		case err != nil:
			return config.Resources{}, apiError("reading the "+k.kind+" in "+ns, err)
		}
	}
	for i := range bgp.Items {
		bgp.Items[i].Spec.Communities = nil
	}
	return config.Resources{Namespace: ns, Pools: pools.Items, L2Advs: l2.Items, BGPAdvs: bgp.Items}, nil
}

// serviceEvents returns the Events about svc, oldest first. The error is
// the API's, unwrapped, so that the caller can tell a refusal.
func serviceEvents(ctx context.Context, c client.Client, svc *corev1.Service) ([]eventView, error) {
	var l corev1.EventList
	sel := fields.AndSelectors(
		fields.OneTermEqualSelector("involvedObject.kind", "Service"),
		fields.OneTermEqualSelector("involvedObject.name", svc.Name),
	)
	if err := c.List(ctx, &l, client.InNamespace(svc.Namespace), client.MatchingFieldsSelector{Selector: sel}); err != nil {
		return nil, err
	}
	type timed struct {
		at time.Time
		ev eventView
	}
	var evs []timed
	for _, e := range l.Items {
		if e.InvolvedObject.UID != "" && e.InvolvedObject.UID != svc.UID {
			continue // an earlier Service of the same name
		}
		at := latest(e.LastTimestamp.Time, e.EventTime.Time, e.CreationTimestamp.Time)
		n := e.Count
		if e.Series != nil {
			at = latest(at, e.Series.LastObservedTime.Time)
			n = max(n, e.Series.Count)
		}
		evs = append(evs, timed{at: at, ev: eventView{Type: e.Type, Reason: e.Reason, Message: e.Message, Count: n, Last: at.UTC().Format(time.RFC3339)}})
	}
	slices.SortStableFunc(evs, func(a, b timed) int { return a.at.Compare(b.at) })
	out := make([]eventView, len(evs))
	for i, e := range evs {
		out[i] = e.ev
	}
	return out, nil
}

func latest(ts ...time.Time) time.Time {
	var out time.Time
	for _, t := range ts {
		if t.After(out) {
			out = t
		}
	}
	return out
}

// explainInput is what explain reasons about, read from the cluster.
type explainInput struct {
	svc          *corev1.Service
	installNS    string
	nsLabels     map[string]string
	cfg          *config.Config
	cfgErr       error
	events       []eventView
	ann          *announcement
	speakerKinds bool
	endpoints    []discoveryv1.EndpointSlice
	// hidden says which reads were refused; the zero value is a user who
	// may read everything.
	hidden hidden
}

// hidden marks the reads that the user's permissions refused.
type hidden struct {
	// pools: the IPAddressPools; cfg is then nil.
	pools bool
	// l2Advs, bgpAdvs: the L2Advertisements, BGPAdvertisements.
	l2Advs, bgpAdvs bool
	// namespace: the Service's Namespace, so its labels are unknown.
	namespace bool
	// events: the Service's Events.
	events bool
	// l2Status, bgpStatus: the speakers' ServiceL2Status,
	// ServiceBGPStatus objects.
	l2Status, bgpStatus bool
	// endpoints: the Service's EndpointSlices.
	endpoints bool
}

// explain is the reasoning itself, with no I/O, so that it is table-tested.
func explain(in explainInput) *explainView {
	svc := in.svc
	v := &explainView{Service: svc.Namespace + "/" + svc.Name, Events: in.events, Pools: []poolCandidate{},
		poolsHidden: in.hidden.pools, eventsHidden: in.hidden.events}
	if v.Events == nil {
		v.Events = []eventView{}
	}
	a := &v.Address
	a.IPs = ingressIPs(svc)
	if a.IPs == nil {
		a.IPs = []string{}
	}
	// The pool is the one holding the address, as the speakers decide it
	// (config.PoolOf); the annotation, which the Service's owner may edit,
	// is only the fallback when no configuration could be read.
	a.Pool = allocatedPool(svc)
	if in.cfg != nil {
		for _, s := range a.IPs {
			if ip, err := netip.ParseAddr(s); err == nil {
				if p := in.cfg.PoolOf(ip); p != nil {
					a.Pool = p.Name
					break
				}
			}
		}
	}
	cond := meta.FindStatusCondition(svc.Status.Conditions, controller.ConditionIPAllocated)
	if cond != nil {
		a.Condition, a.Reason, a.Message = string(cond.Status), cond.Reason, cond.Message
		a.Since = cond.LastTransitionTime.UTC().Format(time.RFC3339)
	}

	req, reqErr := request.FromService(svc, in.nsLabels)
	if reqErr == nil {
		v.Request = describeRequest(req)
		if in.cfg != nil {
			for _, c := range candidatePools(in.cfg, req, !in.hidden.namespace) {
				if reservedElsewhere(in.cfg.Pool(c.Name), req, !in.hidden.namespace) {
					v.ReservedPools++
					continue
				}
				v.Pools = append(v.Pools, c)
			}
		}
	}

	switch {
	case svc.Spec.Type != corev1.ServiceTypeLoadBalancer:
		a.Verdict = fmt.Sprintf("It has no load-balancer address because its type is %s: KeeperLB serves only type LoadBalancer.", cmp.Or(string(svc.Spec.Type), "ClusterIP"))
	case cond != nil && cond.Status == metav1.ConditionTrue && in.hidden.pools:
		a.Verdict = fmt.Sprintf("It has %s from pool %s (as its metallb.io/ip-allocated-from-pool annotation says: the pools are not readable to check it), allocated by the KeeperLB controller.", joinOr(a.IPs, "an address"), cmp.Or(a.Pool, "?"))
	case cond != nil && cond.Status == metav1.ConditionTrue:
		a.Verdict = fmt.Sprintf("It has %s from pool %s, allocated by the KeeperLB controller.", joinOr(a.IPs, "an address"), cmp.Or(a.Pool, "?"))
	case cond != nil:
		a.Verdict = fmt.Sprintf("It waits for an address: %s: %s", cond.Reason, cond.Message)
		if hint := reasonHint(cond.Reason); hint != "" {
			a.Verdict += " " + hint
		}
	case svc.Spec.LoadBalancerClass != nil:
		a.Verdict = fmt.Sprintf("No KeeperLB controller has handled it: it has spec.loadBalancerClass %q, and a controller handles only its --lb-class (none by default, meaning Services without a class).", *svc.Spec.LoadBalancerClass)
	case len(a.IPs) > 0:
		a.Verdict = fmt.Sprintf("It has %s, but no KeeperLB controller has recorded allocating it (another load balancer, or a controller that has not caught up).", strings.Join(a.IPs, ","))
	default:
		a.Verdict = "No controller has handled it yet: check that keeperlb-controller runs and loaded the configuration (keeperlb status)."
	}
	if reqErr != nil {
		a.Verdict += " Its annotations or spec cannot be read: " + reqErr.Error() + "."
	}
	if in.cfg == nil && in.cfgErr != nil && svc.Spec.Type == corev1.ServiceTypeLoadBalancer {
		a.Verdict += " The configuration in the install namespace does not validate, so pools cannot be weighed: " + in.cfgErr.Error()
	}

	v.Announcement = explainAnnouncement(in, v)
	v.Unreadable = unreadable(in)
	return v
}

// unreadable says, for each read the user's permissions refused, what
// explain could not tell because of it. The Namespace matters only when a
// pool selects namespaces by label, so its refusal is reported only then.
func unreadable(in explainInput) []deniedRead {
	h, ins, ns := in.hidden, in.installNS, in.svc.Namespace
	var out []deniedRead
	add := func(refused bool, read, hides string) {
		if refused {
			out = append(out, deniedRead{Read: read, Hides: hides})
		}
	}
	var byLabel []string
	if in.cfg != nil {
		for _, p := range in.cfg.Pools {
			if namespaceLabelsDecide(p.Allocation, ns) {
				byLabel = append(byLabel, p.Name)
			}
		}
	}
	add(h.pools, "list IPAddressPools in namespace "+ins,
		"which pools the Service may use, and which one holds its address (the pool shown is the Service's own metallb.io/ip-allocated-from-pool annotation, unchecked)")
	add(h.l2Advs, "list L2Advertisements in namespace "+ins, "whether its pool is announced over layer 2, and from which nodes")
	add(h.bgpAdvs, "list BGPAdvertisements in namespace "+ins, "whether its pool is announced over BGP, and from which nodes")
	add(h.namespace && len(byLabel) > 0, "get Namespace "+ns,
		"the namespace's labels, which the serviceAllocation of pool(s) "+strings.Join(byLabel, ", ")+" selects by: whether they admit the Service is unknown")
	add(h.events, "list Events in namespace "+ns, "the Service's Events: what the controller and the speakers reported about it")
	add(h.l2Status, "list ServiceL2Status in namespace "+ins, "which node answers ARP/NDP for it now")
	add(h.bgpStatus, "list ServiceBGPStatus in namespace "+ins, "which nodes advertise it over BGP now")
	add(h.endpoints, "list EndpointSlices in namespace "+ns,
		"the Service's serving endpoints, without which it is not announced (and, with externalTrafficPolicy: Local, announced only from their nodes)")
	return out
}

// reservedElsewhere reports whether p's serviceAllocation certainly admits
// no Service of r's namespace. Without the namespace's labels (nsKnown
// false), a pool that selects namespaces by label might admit it.
func reservedElsewhere(p *config.Pool, r *ipam.Service, nsKnown bool) bool {
	if p.Allocation.AdmitsNamespace(r.Namespace, r.NamespaceLabels) {
		return false
	}
	return nsKnown || !namespaceLabelsDecide(p.Allocation, r.Namespace)
}

// namespaceLabelsDecide reports whether a serviceAllocation admits
// namespace ns only through its namespaceSelectors, so that the
// namespace's labels decide.
func namespaceLabelsDecide(a *config.ServiceAllocation, ns string) bool {
	return a != nil && len(a.NamespaceSelectors) > 0 && !slices.Contains(a.Namespaces, ns)
}

// reasonHint says what to do about an allocation failure reason.
func reasonHint(reason string) string {
	switch ipam.Reason(reason) {
	case ipam.ReasonPoolExhausted:
		return "Add addresses to a pool it may use, or free some (keeperlb lb list)."
	case ipam.ReasonNoMatchingPool:
		return "No pool it may use has the address families it needs; see the pools below."
	case ipam.ReasonUnknownPool:
		return "Fix the metallb.io/address-pool annotation or create that pool."
	case ipam.ReasonPoolNotAllowed:
		return "The pool's serviceAllocation (namespaces, selectors) must admit this Service."
	case ipam.ReasonIPNotInPool:
		return "Request an address inside a pool, or add it to one."
	case ipam.ReasonIPInUse:
		return "Another Service holds that address; give both the same metallb.io/allow-shared-ip key with distinct ports, or request another address (the cluster operator sees which Service holds it in keeperlb lb show POOL)."
	}
	switch reason {
	case controller.ReasonNoConfig:
		return "Fix the configuration (keeperlb status shows the error)."
	case controller.ReasonInvalidService:
		return "Fix the Service's annotations or spec as the message says."
	}
	return ""
}

func describeRequest(r *ipam.Service) *requestView {
	v := &requestView{Policy: r.Policy.String(), Pool: r.Pool, SharingKey: r.SharingKey}
	for _, f := range r.Families {
		v.Families = append(v.Families, f.String())
	}
	for _, ip := range r.RequestedIPs {
		v.RequestedIPs = append(v.RequestedIPs, ip.String())
	}
	return v
}

// candidatePools weighs every pool for the request with the allocator's
// rules: requested addresses pick the pool that holds them, the
// address-pool annotation picks that pool, and otherwise autoAssign pools
// whose serviceAllocation admits the Service and that hold the needed
// families are tried, those with a serviceAllocation first by priority
// (lower first, 0 last), then the rest, each by name. nsKnown is false
// when the namespace's labels could not be read: a pool that they would
// decide is then neither usable nor refused, but unknown.
func candidatePools(cfg *config.Config, r *ipam.Service, nsKnown bool) []poolCandidate {
	need := neededFamilies(r)
	out := make([]poolCandidate, 0, len(cfg.Pools))
	for _, p := range cfg.Pools {
		c := poolCandidate{Name: p.Name}
		admits := p.Allocation.Matches(r.Namespace, r.NamespaceLabels, r.Labels)
		notAdmitted := "its serviceAllocation does not admit this Service (namespace or labels)"
		if !admits && !nsKnown && namespaceLabelsDecide(p.Allocation, r.Namespace) &&
			(&config.ServiceAllocation{ServiceSelectors: p.Allocation.ServiceSelectors}).Matches(r.Namespace, nil, r.Labels) {
			notAdmitted = "unknown whether its serviceAllocation admits this Service: it selects namespaces by label, and the namespace's labels are not readable"
		}
		missing := missingFamilies(p, need)
		switch {
		case len(r.RequestedIPs) > 0:
			var held, outside []string
			for _, ip := range r.RequestedIPs {
				if poolHolds(p, ip) {
					held = append(held, ip.String())
				} else {
					outside = append(outside, ip.String())
				}
			}
			switch {
			case len(held) == 0:
				c.Why = "does not hold the requested " + strings.Join(outside, ", ")
			case r.Pool != "" && r.Pool != p.Name:
				c.Why = fmt.Sprintf("holds %s, but the Service names pool %q in metallb.io/address-pool", strings.Join(held, ", "), r.Pool)
			case len(outside) > 0:
				c.Why = fmt.Sprintf("holds %s but not %s; both must come from one pool", strings.Join(held, ", "), strings.Join(outside, ", "))
			case !admits:
				c.Why = "holds the requested address, but " + notAdmitted
			case buggy(p, r.RequestedIPs):
				c.Why = "holds the requested address, but avoidBuggyIPs keeps addresses ending in .0 and .255 out"
			default:
				c.Eligible, c.Why = true, "holds the requested "+strings.Join(held, ", ")
			}
		case r.Pool != "":
			switch {
			case r.Pool != p.Name:
				c.Why = fmt.Sprintf("the Service names pool %q in metallb.io/address-pool", r.Pool)
			case !admits:
				c.Why = "named by the Service, but " + notAdmitted
			case missing != "":
				c.Why = "named by the Service, but it has no " + missing + " addresses, which the Service needs"
			default:
				c.Eligible, c.Why = true, "named by the Service's metallb.io/address-pool annotation (autoAssign does not matter then)"
			}
		default:
			switch {
			case !p.AutoAssign:
				c.Why = "autoAssign is false: only Services naming it in metallb.io/address-pool get its addresses"
			case !admits:
				c.Why = notAdmitted
			case missing != "":
				c.Why = "it has no " + missing + " addresses, which the Service needs"
			case p.Allocation != nil && p.Allocation.Priority > 0:
				c.Eligible, c.Why = true, fmt.Sprintf("admits the Service; serviceAllocation priority %d", p.Allocation.Priority)
			case p.Allocation != nil:
				c.Eligible, c.Why = true, "admits the Service through its serviceAllocation (no priority: after the prioritised pools)"
			default:
				c.Eligible, c.Why = true, "autoAssign pool open to every Service (tried after pools with a serviceAllocation)"
			}
		}
		out = append(out, c)
	}
	if len(r.RequestedIPs) == 0 && r.Pool == "" {
		rankPools(cfg, out)
	}
	return out
}

// rankPools numbers the eligible pools in the order the allocator tries
// them.
func rankPools(cfg *config.Config, out []poolCandidate) {
	type entry struct {
		i        int
		ranked   bool
		priority uint64
	}
	var order []entry
	for i, c := range out {
		if !c.Eligible {
			continue
		}
		p := cfg.Pool(c.Name)
		e := entry{i: i, priority: ^uint64(0)}
		if p.Allocation != nil {
			e.ranked = true
			if p.Allocation.Priority > 0 {
				e.priority = uint64(p.Allocation.Priority)
			}
		}
		order = append(order, e)
	}
	slices.SortStableFunc(order, func(a, b entry) int {
		if a.ranked != b.ranked {
			if a.ranked {
				return -1
			}
			return 1
		}
		return cmp.Or(cmp.Compare(a.priority, b.priority), strings.Compare(out[a.i].Name, out[b.i].Name))
	})
	for n, e := range order {
		out[e.i].Rank = n + 1
	}
}

// neededFamilies is what a pool must hold to serve the request on its
// own: both families for RequireDualStack, the primary one otherwise.
func neededFamilies(r *ipam.Service) []ipam.Family {
	if len(r.Families) == 0 {
		return []ipam.Family{ipam.IPv4}
	}
	if r.Policy == ipam.RequireDualStack {
		return r.Families
	}
	return r.Families[:1]
}

func missingFamilies(p *config.Pool, need []ipam.Family) string {
	v4, v6 := p.Families()
	var missing []string
	for _, f := range need {
		if f == ipam.IPv4 && !v4 || f == ipam.IPv6 && !v6 {
			missing = append(missing, f.String())
		}
	}
	return strings.Join(missing, " and ")
}

func poolHolds(p *config.Pool, ip netip.Addr) bool {
	for _, r := range p.Ranges {
		if r.First.Compare(ip) <= 0 && ip.Compare(r.Last) <= 0 {
			return true
		}
	}
	return false
}

func buggy(p *config.Pool, ips []netip.Addr) bool {
	if !p.AvoidBuggyIPs {
		return false
	}
	for _, ip := range ips {
		if ip.Is4() && (ip.As4()[3] == 0 || ip.As4()[3] == 255) {
			return true
		}
	}
	return false
}

// explainAnnouncement says who announces the Service and why, or why
// nobody does.
func explainAnnouncement(in explainInput, v *explainView) announceView {
	svc := in.svc
	av := announceView{}
	nodes := map[string]bool{}
	for _, s := range in.endpoints {
		for _, e := range s.Endpoints {
			c := e.Conditions
			if c.Ready == nil || *c.Ready || c.Serving != nil && *c.Serving {
				av.ServingEndpoints++
				if e.NodeName != nil {
					nodes[*e.NodeName] = true
				}
			}
		}
	}
	av.EndpointNodes = slices.Sorted(func(yield func(string) bool) {
		for n := range nodes {
			if !yield(n) {
				return
			}
		}
	})
	local := svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal
	if in.ann != nil {
		av.Layer2, av.BGP = in.ann.L2, in.ann.BGP
	}
	pool := v.Address.Pool
	var l2Advs, bgpAdvs []*advRef
	if in.cfg != nil && pool != "" {
		l2Advs, bgpAdvs = advertisementsFor(in.cfg, pool, svc.Labels)
	}
	epText := fmt.Sprintf("the Service has %s", plural(av.ServingEndpoints, "serving endpoint", "serving endpoints"))
	if len(av.EndpointNodes) > 0 {
		epText += " (on " + strings.Join(av.EndpointNodes, ", ") + ")"
	}
	switch {
	case len(v.Address.IPs) == 0:
		av.Verdict = "Nobody announces it: it has no address."
		return av
	case len(av.Layer2) > 0 || len(av.BGP) > 0:
		var parts []string
		for _, l := range av.Layer2 {
			s := "node " + l.Node + " answers ARP/NDP for it (layer 2)"
			if len(l.Interfaces) > 0 {
				s += " on " + strings.Join(l.Interfaces, ", ")
			}
			parts = append(parts, s)
		}
		for _, b := range av.BGP {
			parts = append(parts, fmt.Sprintf("node %s advertises it over BGP to %s", b.Node, joinOr(b.Peers, "no peer")))
		}
		av.Verdict = "Announced: " + strings.Join(parts, "; ") + "."
		if len(av.Layer2) > 0 {
			why := "Why " + av.Layer2[0].Node + ": it was elected among the live speakers allowed to announce the Service"
			if sel := selectorsOf(l2Advs); sel != "" {
				why += " (nodes matching " + sel + ")"
			}
			if local {
				why += ", and, because externalTrafficPolicy is Local, only among nodes with a serving endpoint"
			}
			why += ". Every speaker computes the same owner from that set of nodes and the address, so exactly one node answers."
			av.Why = append(av.Why, why)
		}
		if len(av.BGP) > 0 {
			why := "Over BGP every live speaker on a node selected by both the BGPAdvertisement and the BGPPeer advertises it"
			if local {
				why += ", but because externalTrafficPolicy is Local only nodes with a serving endpoint do"
			}
			av.Why = append(av.Why, why+".")
		}
		if !in.hidden.endpoints {
			av.Why = append(av.Why, "Endpoints: "+epText+".")
		}
		return av
	}
	if h := in.hidden; h.l2Status || h.bgpStatus {
		// Nothing found, but the user may not read (all) the speakers'
		// reports: the Service's own nodeAssigned Events are the next
		// best thing.
		kinds := "ServiceL2Status and ServiceBGPStatus objects"
		if !h.l2Status {
			kinds = "ServiceBGPStatus objects"
		} else if !h.bgpStatus {
			kinds = "ServiceL2Status objects"
		}
		av.Verdict = "Unknown: your permissions do not allow reading the speakers' " + kinds + ", which say who announces it."
		if ev, ok := lastEvent(in.events, "nodeAssigned"); ok {
			av.Why = append(av.Why, fmt.Sprintf("Its latest nodeAssigned Event (%s) says: %s. A speaker writes it when it starts to announce the Service (over layer 2, or over BGP); it does not prove that it still does.", ev.Last, ev.Message))
		} else if !in.hidden.events {
			av.Why = append(av.Why, "It has no nodeAssigned Event, which a speaker writes when it starts to announce the Service (over layer 2, or over BGP).")
		}
		if !in.hidden.endpoints {
			av.Why = append(av.Why, "Endpoints: "+epText+".")
		}
		return av
	}
	av.Verdict = "No speaker announces it yet (no ServiceL2Status or ServiceBGPStatus object names it)."
	if !in.speakerKinds {
		av.Verdict = "Unknown: this cluster has no ServiceL2Status/ServiceBGPStatus kinds, so the speakers cannot report who announces it."
	}
	// Without both advertisement kinds, "none selects the pool" cannot be
	// told from "the user may not see the one that does".
	advsKnown := in.cfg != nil && pool != "" && !in.hidden.l2Advs && !in.hidden.bgpAdvs
	switch {
	case advsKnown && len(l2Advs) == 0 && len(bgpAdvs) == 0:
		av.Why = append(av.Why, fmt.Sprintf("No L2Advertisement or BGPAdvertisement selects pool %s: create one (keeperlb lb create, or kubectl apply).", pool))
	case advsKnown && !anyMatch(l2Advs) && !anyMatch(bgpAdvs):
		av.Why = append(av.Why, fmt.Sprintf("The advertisements of pool %s have serviceSelectors that this Service's labels do not match.", pool))
	}
	speakers := "Check that the speakers run (kubectl get pods -l app.kubernetes.io/component=speaker in the install namespace) and that keeperlb status shows their ConfigurationState as Valid"
	switch {
	case in.hidden.endpoints:
		av.Why = append(av.Why, speakers+".")
	case av.ServingEndpoints == 0:
		av.Why = append(av.Why, "The Service has no serving endpoints, and speakers announce only Services with at least one: check its selector and pods.")
	default:
		av.Why = append(av.Why, speakers+"; "+epText+".")
	}
	return av
}

// lastEvent returns the latest of events (oldest first) with the reason.
func lastEvent(events []eventView, reason string) (eventView, bool) {
	for i := len(events) - 1; i >= 0; i-- {
		if events[i].Reason == reason {
			return events[i], true
		}
	}
	return eventView{}, false
}

// advRef is an advertisement that selects a pool, and whether its
// serviceSelectors admit the Service.
type advRef struct {
	name    string
	nodes   []labels.Selector
	matches bool
}

func anyMatch(advs []*advRef) bool {
	return slices.ContainsFunc(advs, func(a *advRef) bool { return a.matches })
}

func selectorsOf(advs []*advRef) string {
	var out []string
	for _, a := range advs {
		for _, s := range a.nodes {
			out = append(out, s.String())
		}
	}
	return strings.Join(out, " or ")
}

func advertisementsFor(cfg *config.Config, pool string, svcLabels map[string]string) (l2, bgp []*advRef) {
	match := func(sels []labels.Selector) bool {
		if len(sels) == 0 {
			return true
		}
		return slices.ContainsFunc(sels, func(s labels.Selector) bool { return s.Matches(labels.Set(svcLabels)) })
	}
	for _, a := range cfg.L2Advertisements {
		if slices.Contains(a.Pools, pool) {
			l2 = append(l2, &advRef{name: a.Name, nodes: a.NodeSelectors, matches: match(a.ServiceSelectors)})
		}
	}
	for _, a := range cfg.BGPAdvertisements {
		if slices.Contains(a.Pools, pool) {
			bgp = append(bgp, &advRef{name: a.Name, nodes: a.NodeSelectors, matches: match(a.ServiceSelectors)})
		}
	}
	return l2, bgp
}

func printExplain(w io.Writer, v *explainView) error {
	fmt.Fprintf(w, "Service %s\n\n", v.Service)
	if len(v.Unreadable) > 0 {
		fmt.Fprintln(w, "Not readable with your permissions, so not shown or not checked below:")
		for _, d := range v.Unreadable {
			fmt.Fprintf(w, "  - %s: hides %s\n", d.Read, d.Hides)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintln(w, "Address:")
	fmt.Fprintf(w, "  %s\n", v.Address.Verdict)
	if v.Address.Condition != "" {
		fmt.Fprintf(w, "  condition %s=%s reason %s since %s\n", controller.ConditionIPAllocated, v.Address.Condition, v.Address.Reason, v.Address.Since)
	}
	if r := v.Request; r != nil {
		fmt.Fprintf(w, "  request: families %s (%s)", strings.Join(r.Families, ","), r.Policy)
		if len(r.RequestedIPs) > 0 {
			fmt.Fprintf(w, ", addresses %s", strings.Join(r.RequestedIPs, ","))
		}
		if r.Pool != "" {
			fmt.Fprintf(w, ", pool %s", r.Pool)
		}
		if r.SharingKey != "" {
			fmt.Fprintf(w, ", sharing key %q", r.SharingKey)
		}
		fmt.Fprintln(w)
	}
	if v.poolsHidden {
		fmt.Fprintln(w, "\nPools:\n  not readable with your permissions (see above)")
	}
	if len(v.Pools) > 0 {
		fmt.Fprintln(w, "\nPools:")
		tw := newTable(w)
		fmt.Fprintln(tw, "  POOL\tUSABLE\tORDER\tWHY")
		for _, p := range v.Pools {
			usable, order := "no", "-"
			if p.Eligible {
				usable = "yes"
			}
			if p.Rank > 0 {
				order = fmt.Sprint(p.Rank)
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", p.Name, usable, order, p.Why)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if v.ReservedPools > 0 {
		if len(v.Pools) == 0 {
			fmt.Fprintln(w, "\nPools:")
		}
		fmt.Fprintf(w, "  (and %s reserved for other namespaces by their serviceAllocation, not shown)\n", plural(v.ReservedPools, "pool", "pools"))
	}
	fmt.Fprintln(w, "\nEvents:")
	switch {
	case v.eventsHidden:
		fmt.Fprintln(w, "  not readable with your permissions (see above)")
	case len(v.Events) == 0:
		fmt.Fprintln(w, "  none")
	}
	for _, e := range v.Events {
		n := ""
		if e.Count > 1 {
			n = fmt.Sprintf(" (x%d)", e.Count)
		}
		fmt.Fprintf(w, "  %s  %s  %s  %s%s\n", e.Last, e.Type, e.Reason, e.Message, n)
	}
	fmt.Fprintln(w, "\nAnnouncement:")
	fmt.Fprintf(w, "  %s\n", v.Announcement.Verdict)
	for _, why := range v.Announcement.Why {
		fmt.Fprintf(w, "  %s\n", why)
	}
	return nil
}
