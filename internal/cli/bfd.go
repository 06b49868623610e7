package cli

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/keeperlb/keeperlb/api/v1beta1"
	"github.com/keeperlb/keeperlb/internal/config"
)

func newBFDProfileCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "bfd-profile",
		Aliases: []string{"bfd"},
		Short:   "Create, list and delete BFD profiles that BGP peers refer to",
	}
	cmd.AddCommand(newBFDCreateCmd(g), newBFDListCmd(g), newBFDDeleteCmd(g))
	return cmd
}

// bfdFlag is one optional number of a BFD profile.
type bfdFlag struct {
	flag, field, help string
	value             uint32
	dst               func(*v1beta1.BFDProfileSpec) **uint32
}

func newBFDCreateCmd(g *globals) *cobra.Command {
	nums := []*bfdFlag{
		{flag: "receive-interval", field: "spec.receiveInterval", help: "least interval between received control packets, ms (10-60000, default 300)",
			dst: func(s *v1beta1.BFDProfileSpec) **uint32 { return &s.ReceiveInterval }},
		{flag: "transmit-interval", field: "spec.transmitInterval", help: "least interval between sent control packets, ms (10-60000, default 300)",
			dst: func(s *v1beta1.BFDProfileSpec) **uint32 { return &s.TransmitInterval }},
		{flag: "detect-multiplier", field: "spec.detectMultiplier", help: "packets missed before the session is down (2-255, default 3)",
			dst: func(s *v1beta1.BFDProfileSpec) **uint32 { return &s.DetectMultiplier }},
		{flag: "echo-interval", field: "spec.echoInterval", help: "least interval between echo packets, ms (10-60000, default 50)",
			dst: func(s *v1beta1.BFDProfileSpec) **uint32 { return &s.EchoInterval }},
		{flag: "minimum-ttl", field: "spec.minimumTtl", help: "lowest TTL accepted on incoming packets, multi-hop only (1-254)",
			dst: func(s *v1beta1.BFDProfileSpec) **uint32 { return &s.MinimumTTL }},
	}
	var echo, passive bool
	cmd := &cobra.Command{
		Use:     "create NAME",
		Short:   "Create a BFD profile",
		Example: "  keeperlb bfd-profile create fast --receive-interval 100 --transmit-interval 100 --detect-multiplier 3",
		Args:    exactName("bfd-profile create"),
	}
	for _, n := range nums {
		cmd.Flags().Uint32Var(&n.value, n.flag, 0, n.help)
	}
	cmd.Flags().BoolVar(&echo, "echo-mode", false, "send echo packets")
	cmd.Flags().BoolVar(&passive, "passive-mode", false, "wait for the peer to start the session")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		p := &v1beta1.BFDProfile{
			TypeMeta:   metav1.TypeMeta{APIVersion: v1beta1.GroupVersion.String(), Kind: "BFDProfile"},
			ObjectMeta: metav1.ObjectMeta{Name: args[0], Namespace: g.namespace},
		}
		flags := map[string]string{"metadata.name": "NAME", "spec.echoMode": "--echo-mode", "spec.passiveMode": "--passive-mode"}
		for _, n := range nums {
			flags[n.field] = "--" + n.flag
			if cmd.Flags().Changed(n.flag) {
				v := n.value
				*n.dst(&p.Spec) = &v
			}
		}
		if cmd.Flags().Changed("echo-mode") {
			p.Spec.EchoMode = &echo
		}
		if cmd.Flags().Changed("passive-mode") {
			p.Spec.PassiveMode = &passive
		}
		return runBFDCreate(cmd.Context(), g, p, flags)
	}
	return cmd
}

func runBFDCreate(ctx context.Context, g *globals, p *v1beta1.BFDProfile, flags map[string]string) error {
	c, _, err := g.client()
	if err != nil {
		return err
	}
	before, err := loadResources(ctx, c, g.namespace)
	if err != nil {
		return err
	}
	if slices.ContainsFunc(before.BFDProfiles, func(x v1beta1.BFDProfile) bool { return x.Name == p.Name }) {
		return fmt.Errorf("BFDProfile %q already exists in namespace %s: pick another name, or delete it first (keeperlb bfd-profile delete %s)", p.Name, g.namespace, p.Name)
	}
	after := before
	after.BFDProfiles = append(slices.Clone(before.BFDProfiles), *p)
	if problems := newProblems(before, after); len(problems) > 0 {
		return rejection("BFDProfile "+p.Name, problems, flags)
	}
	return createAll(ctx, c, []client.Object{p}, g.out)
}

// bfdView is one BFD profile with its defaults applied, and the peers
// that use it.
type bfdView struct {
	Name             string   `json:"name"`
	ReceiveInterval  *uint32  `json:"receiveInterval"`
	TransmitInterval *uint32  `json:"transmitInterval"`
	DetectMultiplier *uint32  `json:"detectMultiplier"`
	EchoInterval     *uint32  `json:"echoInterval"`
	EchoMode         bool     `json:"echoMode"`
	PassiveMode      bool     `json:"passiveMode"`
	MinimumTTL       *uint32  `json:"minimumTtl,omitempty"`
	UsedBy           []string `json:"usedBy"`
}

func loadBFDProfiles(ctx context.Context, c client.Client, ns string) ([]bfdView, error) {
	res, err := loadResources(ctx, c, ns)
	if err != nil {
		return nil, err
	}
	// The validated configuration has the defaults filled in; when it
	// does not validate, the profiles are shown as written.
	effective := map[string]*config.BFDProfile{}
	if cfg, err := config.Parse(res); err == nil {
		for _, p := range cfg.BFDProfiles {
			effective[p.Name] = p
		}
	}
	profiles := slices.Clone(res.BFDProfiles)
	slices.SortFunc(profiles, func(a, b v1beta1.BFDProfile) int { return strings.Compare(a.Name, b.Name) })
	out := make([]bfdView, 0, len(profiles))
	for _, p := range profiles {
		v := bfdView{
			Name: p.Name, ReceiveInterval: p.Spec.ReceiveInterval, TransmitInterval: p.Spec.TransmitInterval,
			DetectMultiplier: p.Spec.DetectMultiplier, EchoInterval: p.Spec.EchoInterval, MinimumTTL: p.Spec.MinimumTTL,
			EchoMode: p.Spec.EchoMode != nil && *p.Spec.EchoMode, PassiveMode: p.Spec.PassiveMode != nil && *p.Spec.PassiveMode,
			UsedBy: config.ProfileInUse(res, p.Name),
		}
		if e := effective[p.Name]; e != nil {
			v.ReceiveInterval, v.TransmitInterval = &e.ReceiveInterval, &e.TransmitInterval
			v.DetectMultiplier, v.EchoInterval = &e.DetectMultiplier, &e.EchoInterval
		}
		if v.UsedBy == nil {
			v.UsedBy = []string{}
		}
		out = append(out, v)
	}
	return out, nil
}

func num(p *uint32) string {
	if p == nil {
		return "-"
	}
	return fmt.Sprint(*p)
}

func printBFDTable(w io.Writer, profiles []bfdView) error {
	if len(profiles) == 0 {
		_, err := fmt.Fprintln(w, "no BFD profiles (create one with: keeperlb bfd-profile create NAME)")
		return err
	}
	tw := newTable(w)
	fmt.Fprintln(tw, "NAME\tRECEIVE-MS\tTRANSMIT-MS\tMULTIPLIER\tECHO\tECHO-MS\tPASSIVE\tMIN-TTL\tUSED-BY")
	for _, p := range profiles {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\t%s\t%v\t%s\t%s\n", p.Name, num(p.ReceiveInterval), num(p.TransmitInterval),
			num(p.DetectMultiplier), p.EchoMode, num(p.EchoInterval), p.PassiveMode, num(p.MinimumTTL), joinOr(p.UsedBy, "-"))
	}
	return tw.Flush()
}

func newBFDListCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List BFD profiles, defaults filled in, with the peers using each",
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
		profiles, err := loadBFDProfiles(cmd.Context(), c, g.namespace)
		if err != nil {
			return err
		}
		return render(g.out, *format, profiles, func(w io.Writer) error { return printBFDTable(w, profiles) })
	}
	return cmd
}

func newBFDDeleteCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a BFD profile that no BGP peer uses",
		Args:  exactName("bfd-profile delete"),
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
			name := args[0]
			i := slices.IndexFunc(res.BFDProfiles, func(p v1beta1.BFDProfile) bool { return p.Name == name })
			if i < 0 {
				var names []string
				for _, p := range res.BFDProfiles {
					names = append(names, p.Name)
				}
				slices.Sort(names)
				return notFound("BFDProfile", name, g.namespace, names, "keeperlb bfd-profile list")
			}
			// The same rule as the admission webhook: a session cannot
			// be configured without its profile.
			if users := config.ProfileInUse(res, name); len(users) > 0 {
				kind := "BGPPeer"
				if len(users) > 1 {
					kind = "BGPPeers"
				}
				return fmt.Errorf("BFDProfile %s is used by %s %s: remove bfdProfile from %s, or delete %s (keeperlb peer delete NAME), then try again",
					name, kind, strings.Join(users, ", "), them(len(users)), them(len(users)))
			}
			if err := c.Delete(ctx, &res.BFDProfiles[i]); err != nil && !apierrors.IsNotFound(err) {
				return apiError("deleting BFDProfile "+name, err)
			}
			fmt.Fprintf(g.out, "bfdprofile/%s deleted\n", name)
			return nil
		},
	}
}

func them(n int) string {
	if n == 1 {
		return "it"
	}
	return "them"
}
