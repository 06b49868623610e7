package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/keeperlb/keeperlb/api/v1beta1"
	"github.com/keeperlb/keeperlb/api/v1beta2"
	"github.com/keeperlb/keeperlb/internal/config"
)

// Advertise modes of `lb create`, named as Azure Arc's load-balancer
// command names them.
const (
	modeARP  = "arp"
	modeBGP  = "bgp"
	modeBoth = "both"
)

func newLBCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "lb",
		Aliases: []string{"load-balancer"},
		Short:   "Create, list, show and delete load balancers: an address pool with its advertisements",
		Long: "A load balancer is an IPAddressPool together with the L2Advertisement and/or\n" +
			"BGPAdvertisement that announce it, all named after the pool, in the install namespace.",
	}
	cmd.AddCommand(newLBCreateCmd(g), newLBListCmd(g), newLBShowCmd(g), newLBDeleteCmd(g))
	return cmd
}

type lbCreateOptions struct {
	addresses  []string
	mode       string
	peers      []string
	selector   string
	autoAssign bool
	avoidBuggy bool
	dryRun     bool
}

func newLBCreateCmd(g *globals) *cobra.Command {
	o := lbCreateOptions{}
	cmd := &cobra.Command{
		Use:   "create NAME --addresses CIDR|RANGE,... --advertise-mode arp|bgp|both",
		Short: "Create an address pool and the advertisements that announce it",
		Long: "create makes the IPAddressPool NAME and, by --advertise-mode, the L2Advertisement\n" +
			"(arp), the BGPAdvertisement (bgp) or both, each named NAME and selecting only this\n" +
			"pool. Before writing anything it validates the result together with the objects\n" +
			"already in the cluster, with the controller's own rules, and refuses with the\n" +
			"reason (for example addresses that overlap another pool).\n\n" +
			"--service-selector limits the advertisements to matching Services; other Services\n" +
			"can still get addresses from the pool unless --auto-assign=false.",
		Example: "  keeperlb lb create web --addresses 198.18.0.0/24,2001:db8::/120 --advertise-mode arp\n" +
			"  keeperlb lb create edge --addresses 198.18.1.10-198.18.1.20 --advertise-mode bgp --bgp-peers tor-a,tor-b --service-selector tier=edge",
		Args: exactName("lb create"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runLBCreate(cmd.Context(), g, args[0], o)
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&o.addresses, "addresses", nil, "CIDRs or first-last ranges, comma-separated (IPv4 and IPv6)")
	f.StringVar(&o.mode, "advertise-mode", "", "how the addresses are announced: arp (layer 2), bgp or both")
	f.StringSliceVar(&o.peers, "bgp-peers", nil, "BGPPeer names to advertise to (default: every peer); bgp and both only")
	f.StringVar(&o.selector, "service-selector", "", "announce only Services matching this label selector (k=v,k2=v2)")
	f.BoolVar(&o.autoAssign, "auto-assign", true, "hand addresses to Services that do not name the pool")
	f.BoolVar(&o.avoidBuggy, "avoid-buggy-ips", false, "never hand out IPv4 addresses ending in .0 or .255")
	f.BoolVar(&o.dryRun, "dry-run", false, "validate and print the objects as YAML without writing them")
	_ = cmd.MarkFlagRequired("addresses")
	_ = cmd.MarkFlagRequired("advertise-mode")
	return cmd
}

// exactName accepts exactly one NAME argument, saying what is missing.
func exactName(what string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		switch {
		case len(args) == 0:
			return fmt.Errorf("%s needs a NAME", what)
		case len(args) > 1:
			return fmt.Errorf("%s takes one NAME, got %d arguments (%s); separate list values with commas", what, len(args), strings.Join(args, " "))
		}
		return nil
	}
}

// lbObjects builds the objects `lb create` writes.
func lbObjects(name, ns string, o lbCreateOptions) (*v1beta1.IPAddressPool, *v1beta1.L2Advertisement, *v1beta1.BGPAdvertisement, error) {
	mode := strings.ToLower(o.mode)
	if mode != modeARP && mode != modeBGP && mode != modeBoth {
		return nil, nil, nil, fmt.Errorf("--advertise-mode %q: want arp, bgp or both", o.mode)
	}
	if len(o.peers) > 0 && mode == modeARP {
		return nil, nil, nil, errors.New("--bgp-peers needs --advertise-mode bgp or both: layer 2 announcements have no peers")
	}
	sels, err := parseSelector("service-selector", o.selector)
	if err != nil {
		return nil, nil, nil, err
	}
	addrs := make([]string, 0, len(o.addresses))
	for _, a := range o.addresses {
		if a = strings.TrimSpace(a); a != "" {
			addrs = append(addrs, a)
		}
	}
	if len(addrs) == 0 {
		return nil, nil, nil, errors.New("--addresses is empty: give CIDRs or ranges, e.g. --addresses 198.18.0.0/24")
	}
	om := metav1.ObjectMeta{Name: name, Namespace: ns}
	pool := &v1beta1.IPAddressPool{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1beta1.GroupVersion.String(), Kind: "IPAddressPool"},
		ObjectMeta: om,
		Spec:       v1beta1.IPAddressPoolSpec{Addresses: addrs, AvoidBuggyIPs: o.avoidBuggy},
	}
	if !o.autoAssign {
		pool.Spec.AutoAssign = &o.autoAssign
	}
	var l2 *v1beta1.L2Advertisement
	var bgp *v1beta1.BGPAdvertisement
	if mode == modeARP || mode == modeBoth {
		l2 = &v1beta1.L2Advertisement{
			TypeMeta:   metav1.TypeMeta{APIVersion: v1beta1.GroupVersion.String(), Kind: "L2Advertisement"},
			ObjectMeta: om,
			Spec:       v1beta1.L2AdvertisementSpec{IPAddressPools: []string{name}, ServiceSelectors: sels},
		}
	}
	if mode == modeBGP || mode == modeBoth {
		bgp = &v1beta1.BGPAdvertisement{
			TypeMeta:   metav1.TypeMeta{APIVersion: v1beta1.GroupVersion.String(), Kind: "BGPAdvertisement"},
			ObjectMeta: om,
			Spec:       v1beta1.BGPAdvertisementSpec{IPAddressPools: []string{name}, Peers: o.peers, ServiceSelectors: sels},
		}
	}
	return pool, l2, bgp, nil
}

// lbFlags maps the fields `lb create` sets to its flags, for error hints.
var lbFlags = map[string]string{
	"spec.addresses":        "--addresses",
	"spec.autoAssign":       "--auto-assign",
	"spec.peers":            "--bgp-peers",
	"spec.serviceSelectors": "--service-selector",
	"metadata.name":         "NAME",
}

func runLBCreate(ctx context.Context, g *globals, name string, o lbCreateOptions) error {
	pool, l2, bgp, err := lbObjects(name, g.namespace, o)
	if err != nil {
		return err
	}
	c, _, err := g.client()
	if err != nil {
		return err
	}
	before, err := loadResources(ctx, c, g.namespace)
	if err != nil {
		return err
	}
	var clash []string
	if slices.ContainsFunc(before.Pools, func(p v1beta1.IPAddressPool) bool { return p.Name == name }) {
		clash = append(clash, "IPAddressPool")
	}
	if l2 != nil && slices.ContainsFunc(before.L2Advs, func(a v1beta1.L2Advertisement) bool { return a.Name == name }) {
		clash = append(clash, "L2Advertisement")
	}
	if bgp != nil && slices.ContainsFunc(before.BGPAdvs, func(a v1beta1.BGPAdvertisement) bool { return a.Name == name }) {
		clash = append(clash, "BGPAdvertisement")
	}
	if len(clash) > 0 {
		return fmt.Errorf("%s %q already exists in namespace %s: pick another name, or remove the old one first (keeperlb lb delete %s)", strings.Join(clash, " and "), name, g.namespace, name)
	}
	after := before
	after.Pools = append(slices.Clone(before.Pools), *pool)
	objs := []client.Object{pool}
	if l2 != nil {
		after.L2Advs = append(slices.Clone(before.L2Advs), *l2)
		objs = append(objs, l2)
	}
	if bgp != nil {
		after.BGPAdvs = append(slices.Clone(before.BGPAdvs), *bgp)
		objs = append(objs, bgp)
	}
	if problems := newProblems(before, after); len(problems) > 0 {
		return rejection("load balancer "+name, problems, lbFlags)
	}
	for _, p := range o.peers {
		if !slices.ContainsFunc(before.Peers, func(x v1beta2.BGPPeer) bool { return x.Name == p }) {
			fmt.Fprintf(g.errOut(), "warning: BGPPeer %q does not exist in %s yet; the advertisement reaches it once it does (keeperlb peer create %s ...)\n", p, g.namespace, p)
		}
	}
	if o.dryRun {
		manifests := make([]runtime.Object, len(objs))
		for i, o := range objs {
			manifests[i] = o
		}
		return printManifests(g.out, manifests)
	}
	if err := createAll(ctx, c, objs, g.out); err != nil {
		return err
	}
	fmt.Fprintf(g.out, "load balancer %s created; `keeperlb lb show %s` shows its usage and Services\n", name, name)
	return nil
}

// createAll creates objs in order. When one fails, the ones already
// created are deleted again, so that a half-made load balancer is never
// left behind.
func createAll(ctx context.Context, c client.Client, objs []client.Object, out io.Writer) error {
	for i, o := range objs {
		kind := o.GetObjectKind().GroupVersionKind().Kind
		if err := c.Create(ctx, o); err != nil {
			for _, done := range slices.Backward(objs[:i]) {
				if derr := c.Delete(ctx, done); derr != nil && !apierrors.IsNotFound(derr) {
					fmt.Fprintf(out, "could not undo %s/%s: %v; delete it by hand\n", lower(done.GetObjectKind().GroupVersionKind().Kind), done.GetName(), derr)
				}
			}
			return apiError(fmt.Sprintf("creating %s %s/%s (nothing was kept)", kind, o.GetNamespace(), o.GetName()), err)
		}
		fmt.Fprintf(out, "%s/%s created\n", lower(kind), o.GetName())
	}
	return nil
}

// poolView is one load balancer as `lb list`, `lb show` and `status`
// show it.
type poolView struct {
	Name              string       `json:"name"`
	Addresses         []string     `json:"addresses"`
	AutoAssign        bool         `json:"autoAssign"`
	AvoidBuggyIPs     bool         `json:"avoidBuggyIPs"`
	AdvertiseMode     string       `json:"advertiseMode"`
	L2Advertisements  []string     `json:"l2Advertisements,omitempty"`
	BGPAdvertisements []string     `json:"bgpAdvertisements,omitempty"`
	Usage             *usageView   `json:"usage"`
	Services          []serviceRef `json:"services"`
}

// usageView is the pool status the controller writes; nil in poolView
// when the controller has not written it yet.
type usageView struct {
	IPv4 familyUsage `json:"ipv4"`
	IPv6 familyUsage `json:"ipv6"`
}

type familyUsage struct {
	Assigned  int64 `json:"assigned"`
	Available int64 `json:"available"`
}

func (f familyUsage) String() string { return fmt.Sprintf("%d/%s", f.Assigned, count(f.Available)) }

// loadPools reads the pools with their advertisements, usage and Services.
func loadPools(ctx context.Context, c client.Client, ns string) ([]poolView, error) {
	res, err := loadResources(ctx, c, ns)
	if err != nil {
		return nil, err
	}
	svcs, err := loadBalancerServices(ctx, c)
	if err != nil {
		return nil, err
	}
	return poolViews(res, svcs), nil
}

// poolViews builds the views of every pool, sorted by name.
func poolViews(res config.Resources, svcs []corev1.Service) []poolView {
	cfg, _ := config.Parse(res)
	l2, bgp := poolsOfAdvertisements(res, cfg)
	bySvc := servicesByPool(svcs)
	pools := slices.Clone(res.Pools)
	slices.SortFunc(pools, func(a, b v1beta1.IPAddressPool) int { return strings.Compare(a.Name, b.Name) })
	out := make([]poolView, 0, len(pools))
	for _, p := range pools {
		v := poolView{
			Name:              p.Name,
			Addresses:         p.Spec.Addresses,
			AutoAssign:        p.Spec.AutoAssign == nil || *p.Spec.AutoAssign,
			AvoidBuggyIPs:     p.Spec.AvoidBuggyIPs,
			L2Advertisements:  l2[p.Name],
			BGPAdvertisements: bgp[p.Name],
			AdvertiseMode:     advertiseMode(l2[p.Name], bgp[p.Name]),
			Services:          bySvc[p.Name],
		}
		if v.Services == nil {
			v.Services = []serviceRef{}
		}
		st := p.Status
		if st.AssignedIPv4 != 0 || st.AvailableIPv4 != 0 || st.AssignedIPv6 != 0 || st.AvailableIPv6 != 0 {
			v.Usage = &usageView{
				IPv4: familyUsage{Assigned: st.AssignedIPv4, Available: st.AvailableIPv4},
				IPv6: familyUsage{Assigned: st.AssignedIPv6, Available: st.AvailableIPv6},
			}
		}
		out = append(out, v)
	}
	return out
}

// printPoolTable prints pools one a line.
func printPoolTable(w io.Writer, pools []poolView) error {
	if len(pools) == 0 {
		_, err := fmt.Fprintln(w, "no load balancers (create one with: keeperlb lb create NAME --addresses CIDR --advertise-mode arp)")
		return err
	}
	tw := newTable(w)
	fmt.Fprintln(tw, "NAME\tADDRESSES\tMODE\tAUTO-ASSIGN\tIPV4 USED/FREE\tIPV6 USED/FREE\tSERVICES")
	for _, p := range pools {
		v4, v6 := "-", "-"
		if p.Usage != nil {
			v4, v6 = p.Usage.IPv4.String(), p.Usage.IPv6.String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%s\t%s\t%d\n", p.Name, strings.Join(p.Addresses, ","), p.AdvertiseMode, p.AutoAssign, v4, v6, len(p.Services))
	}
	return tw.Flush()
}

func newLBListCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List load balancers with their usage and the number of Services on each",
		Args:    cobra.NoArgs,
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
		pools, err := loadPools(cmd.Context(), c, g.namespace)
		if err != nil {
			return err
		}
		return render(g.out, *format, pools, func(w io.Writer) error { return printPoolTable(w, pools) })
	}
	return cmd
}

func newLBShowCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "show NAME",
		Short: "Show one load balancer: addresses, advertisements, usage and its Services",
		Args:  exactName("lb show"),
	}
	format := addOutputFlag(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := checkOutput(*format); err != nil {
			return err
		}
		c, _, err := g.client()
		if err != nil {
			return err
		}
		pools, err := loadPools(cmd.Context(), c, g.namespace)
		if err != nil {
			return err
		}
		i := slices.IndexFunc(pools, func(p poolView) bool { return p.Name == args[0] })
		if i < 0 {
			return notFound("load balancer (IPAddressPool)", args[0], g.namespace, poolNames(pools), "keeperlb lb list")
		}
		p := pools[i]
		return render(g.out, *format, p, func(w io.Writer) error { return printPool(w, p, g.namespace) })
	}
	return cmd
}

func poolNames(pools []poolView) []string {
	var out []string
	for _, p := range pools {
		out = append(out, p.Name)
	}
	return out
}

// notFound says an object is missing and what exists instead.
func notFound(kind, name, ns string, existing []string, list string) error {
	if len(existing) == 0 {
		return fmt.Errorf("no %s %q in namespace %s, and none exist there (wrong --namespace?)", kind, name, ns)
	}
	return fmt.Errorf("no %s %q in namespace %s; existing: %s (see %s)", kind, name, ns, strings.Join(existing, ", "), list)
}

func printPool(w io.Writer, p poolView, ns string) error {
	tw := newTable(w)
	fmt.Fprintf(tw, "Name:\t%s\n", p.Name)
	fmt.Fprintf(tw, "Namespace:\t%s\n", ns)
	fmt.Fprintf(tw, "Addresses:\t%s\n", strings.Join(p.Addresses, ", "))
	fmt.Fprintf(tw, "Auto-assign:\t%v\n", p.AutoAssign)
	fmt.Fprintf(tw, "Avoid buggy IPs:\t%v\n", p.AvoidBuggyIPs)
	fmt.Fprintf(tw, "Advertise mode:\t%s\n", p.AdvertiseMode)
	fmt.Fprintf(tw, "L2Advertisements:\t%s\n", joinOr(p.L2Advertisements, "-"))
	fmt.Fprintf(tw, "BGPAdvertisements:\t%s\n", joinOr(p.BGPAdvertisements, "-"))
	if p.Usage == nil {
		fmt.Fprintf(tw, "Usage:\tnot reported yet (the controller writes it; is it running?)\n")
	} else {
		fmt.Fprintf(tw, "IPv4 used/free:\t%s\n", p.Usage.IPv4)
		fmt.Fprintf(tw, "IPv6 used/free:\t%s\n", p.Usage.IPv6)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if p.AdvertiseMode == "none" {
		fmt.Fprintln(w, "Warning: no advertisement selects this pool, so its addresses are handed out but never announced.")
	}
	fmt.Fprintf(w, "\nServices (%d):\n", len(p.Services))
	if len(p.Services) == 0 {
		_, err := fmt.Fprintln(w, "  none")
		return err
	}
	tw = newTable(w)
	fmt.Fprintln(tw, "  NAMESPACE\tNAME\tEXTERNAL-IP")
	for _, s := range p.Services {
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", s.Namespace, s.Name, joinOr(s.IPs, "-"))
	}
	return tw.Flush()
}

func newLBDeleteCmd(g *globals) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a load balancer: its pool and the advertisements that select only it",
		Long: "delete removes the IPAddressPool NAME and every L2Advertisement and BGPAdvertisement\n" +
			"that lists only this pool. Advertisements that also select other pools are kept.\n" +
			"Services holding addresses from the pool lose them; delete lists them and, if there\n" +
			"are any, refuses unless --force is given.",
		Args: exactName("lb delete"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runLBDelete(cmd.Context(), g, args[0], force)
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "delete even when Services hold addresses from the pool")
	return cmd
}

func runLBDelete(ctx context.Context, g *globals, name string, force bool) error {
	c, _, err := g.client()
	if err != nil {
		return err
	}
	res, err := loadResources(ctx, c, g.namespace)
	if err != nil {
		return err
	}
	i := slices.IndexFunc(res.Pools, func(p v1beta1.IPAddressPool) bool { return p.Name == name })
	if i < 0 {
		var names []string
		for _, p := range res.Pools {
			names = append(names, p.Name)
		}
		slices.Sort(names)
		return notFound("load balancer (IPAddressPool)", name, g.namespace, names, "keeperlb lb list")
	}
	svcs, err := loadBalancerServices(ctx, c)
	if err != nil {
		return err
	}
	users := servicesByPool(svcs)[name]
	if len(users) > 0 {
		names := make([]string, len(users))
		for i, u := range users {
			names[i] = fmt.Sprintf("%s (%s)", u, joinOr(u.IPs, "no address yet"))
		}
		if !force {
			return fmt.Errorf("%s would lose their addresses: %s\npass --force to delete anyway, or move them to another pool first", plural(len(users), "Service", "Services"), strings.Join(names, ", "))
		}
		fmt.Fprintf(g.errOut(), "warning: %s lose their addresses: %s\n", plural(len(users), "Service", "Services"), strings.Join(names, ", "))
	}
	var objs []client.Object
	var kept []string
	for i := range res.L2Advs {
		a := &res.L2Advs[i]
		switch ownership(a.Spec.IPAddressPools, a.Spec.IPAddressPoolSelectors, name) {
		case owned:
			objs = append(objs, a)
		case shared:
			kept = append(kept, "L2Advertisement "+a.Name)
		}
	}
	for i := range res.BGPAdvs {
		a := &res.BGPAdvs[i]
		switch ownership(a.Spec.IPAddressPools, a.Spec.IPAddressPoolSelectors, name) {
		case owned:
			objs = append(objs, a)
		case shared:
			kept = append(kept, "BGPAdvertisement "+a.Name)
		}
	}
	// The pool goes first: once it is gone no Service can get one of its
	// addresses, whatever happens to the rest.
	objs = append([]client.Object{&res.Pools[i]}, objs...)
	for _, o := range objs {
		kind := kindOf(o)
		if err := c.Delete(ctx, o); err != nil && !apierrors.IsNotFound(err) {
			return apiError(fmt.Sprintf("deleting %s %s/%s", kind, o.GetNamespace(), o.GetName()), err)
		}
		fmt.Fprintf(g.out, "%s/%s deleted\n", lower(kind), o.GetName())
	}
	for _, k := range kept {
		fmt.Fprintf(g.out, "%s kept: it also selects other pools (it still names %s; edit it if you want that gone)\n", k, name)
	}
	return nil
}

// kindOf names a typed object's kind; typed objects read from the API
// server have an empty TypeMeta.
func kindOf(o client.Object) string {
	switch o.(type) {
	case *v1beta1.IPAddressPool:
		return "IPAddressPool"
	case *v1beta1.L2Advertisement:
		return "L2Advertisement"
	case *v1beta1.BGPAdvertisement:
		return "BGPAdvertisement"
	case *v1beta1.BFDProfile:
		return "BFDProfile"
	case *v1beta2.BGPPeer:
		return "BGPPeer"
	}
	return o.GetObjectKind().GroupVersionKind().Kind
}

type advOwnership int

const (
	unrelated advOwnership = iota
	owned
	shared
)

// ownership says whether an advertisement belongs to the pool alone (it
// lists only that pool and selects no others), also serves other pools,
// or does not name the pool.
func ownership(pools []string, sels []metav1.LabelSelector, name string) advOwnership {
	if !slices.Contains(pools, name) {
		return unrelated
	}
	for _, p := range pools {
		if p != name {
			return shared
		}
	}
	if len(sels) > 0 {
		return shared
	}
	return owned
}
