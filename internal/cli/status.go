package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/keeperlb/keeperlb/api/v1beta1"
)

// statusView is everything `keeperlb status` reports.
type statusView struct {
	Namespace string `json:"namespace"`
	// Controller says whether a controller leads, so that state left by
	// replicas that no longer run is not taken for live.
	Controller    leaderView       `json:"controller"`
	Configuration []componentState `json:"configuration"`
	Pools         []poolView       `json:"pools"`
	Services      []serviceStatus  `json:"services"`
	Pending       int              `json:"pending"`
	// SpeakerStatus is false when the cluster lacks the ServiceL2Status
	// and ServiceBGPStatus kinds, so announcers cannot be shown.
	SpeakerStatus bool `json:"speakerStatus"`
}

// componentState is one ConfigurationState: whether a component (the
// controller, each speaker) loaded the configuration.
type componentState struct {
	Component string `json:"component"`
	Result    string `json:"result"`
	Error     string `json:"error,omitempty"`
}

// serviceStatus is one LoadBalancer Service as status shows it.
type serviceStatus struct {
	Namespace string        `json:"namespace"`
	Name      string        `json:"name"`
	IPs       []string      `json:"ips"`
	Pool      string        `json:"pool,omitempty"`
	State     string        `json:"state"`
	Reason    string        `json:"reason,omitempty"`
	Message   string        `json:"message,omitempty"`
	Announced *announcement `json:"announcedBy,omitempty"`
}

func statusOf(r serviceRow, a *announcement) serviceStatus {
	s := serviceStatus{Namespace: r.Namespace, Name: r.Name, IPs: r.IPs, Pool: r.Pool, State: r.State, Announced: a}
	if s.IPs == nil {
		s.IPs = []string{}
	}
	if r.State != "Allocated" {
		s.Reason, s.Message = r.Reason, r.Message
	}
	return s
}

func newStatusCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Configuration state, pool usage, every LoadBalancer Service with its announcers, and why the pending ones wait",
		Args:  cobra.NoArgs,
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
		v, err := loadStatus(cmd.Context(), c, g.namespace)
		if err != nil {
			return err
		}
		return render(g.out, *format, v, func(w io.Writer) error { return printStatus(w, v) })
	}
	return cmd
}

func loadStatus(ctx context.Context, c client.Client, ns string) (*statusView, error) {
	now := time.Now()
	v := &statusView{Namespace: ns, Configuration: []componentState{}, Controller: loadLeader(ctx, c, ns, now)}
	var states v1beta1.ConfigurationStateList
	if err := c.List(ctx, &states, client.InNamespace(ns)); err != nil {
		return nil, apiError("reading configuration states in "+ns, err)
	}
	for _, s := range states.Items {
		v.Configuration = append(v.Configuration, componentState{Component: s.Name, Result: s.Status.Result, Error: s.Status.ErrorSummary})
	}
	slices.SortFunc(v.Configuration, func(a, b componentState) int { return strings.Compare(a.Component, b.Component) })
	res, err := loadResources(ctx, c, ns)
	if err != nil {
		return nil, err
	}
	svcs, err := loadBalancerServices(ctx, c)
	if err != nil {
		return nil, err
	}
	v.Pools = poolViews(res, svcs)
	ann, known, err := announcers(ctx, c, ns)
	if err != nil {
		return nil, err
	}
	v.SpeakerStatus = known
	v.Services = []serviceStatus{}
	for _, r := range serviceRowsOf(svcs) {
		s := statusOf(r, ann[r.Namespace+"/"+r.Name])
		if s.State == "Pending" {
			v.Pending++
		}
		v.Services = append(v.Services, s)
	}
	return v, nil
}

func printStatus(w io.Writer, v *statusView) error {
	fmt.Fprintf(w, "Controller: %s\n\n", v.Controller.summary(time.Now()))
	fmt.Fprintf(w, "Configuration (namespace %s):\n", v.Namespace)
	if len(v.Configuration) == 0 {
		fmt.Fprintln(w, "  no component has reported yet: is keeperlb-controller running, and is --namespace its install namespace?")
	} else {
		tw := newTable(w)
		fmt.Fprintln(tw, "  COMPONENT\tRESULT\tERROR")
		for _, s := range v.Configuration {
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", s.Component, dash(s.Result), dash(s.Error))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	fmt.Fprintln(w, "\nPools:")
	var pools bytes.Buffer
	if err := printPoolTable(&pools, v.Pools); err != nil {
		return err
	}
	fmt.Fprintln(w, "  "+strings.ReplaceAll(strings.TrimSuffix(pools.String(), "\n"), "\n", "\n  "))
	fmt.Fprintf(w, "\nServices: %d LoadBalancer, %d waiting for an address\n", len(v.Services), v.Pending)
	if len(v.Services) == 0 {
		return nil
	}
	tw := newTable(w)
	fmt.Fprintln(tw, "  NAMESPACE\tNAME\tEXTERNAL-IP\tPOOL\tSTATE\tANNOUNCED-BY\tREASON")
	for _, s := range v.Services {
		ann := "-"
		if s.Announced != nil {
			ann = s.Announced.summary()
		}
		why := s.Reason
		if s.Message != "" {
			why = strings.TrimPrefix(why+": "+s.Message, ": ")
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Namespace, s.Name, joinOr(s.IPs, "<pending>"), dash(s.Pool), s.State, ann, dash(why))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if !v.SpeakerStatus {
		fmt.Fprintln(w, "\nANNOUNCED-BY is unknown: this cluster has no ServiceL2Status/ServiceBGPStatus kinds (install KeeperLB's CRDs).")
	}
	if v.Pending > 0 {
		fmt.Fprintln(w, "\nFor one Service in detail: keeperlb explain svc/NAME -n NAMESPACE")
	}
	return nil
}
