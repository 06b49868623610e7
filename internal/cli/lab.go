package cli

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/keeperlb/keeperlb/internal/lab"
)

// newLabCmd is `keeperlb lab`: network-namespace labs on this machine.
func newLabCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "lab",
		Short: "Run network-namespace labs (nodes, client, router, a real API server) on this machine",
		Long: "A lab is a set of network namespaces on a bridge: N nodes, a client, optionally a\n" +
			"router with a far client behind it, and a kube-apiserver reachable from all of them.\n" +
			"Addresses come only from 198.18.0.0/15 and 2001:db8::/32. Needs root, ip and nft\n" +
			"(bash hack/lab-deps.sh) and $KEEPERLB_K8S_BIN (hack/k8s-tools/build.sh). See docs/lab.md.",
	}
	cmd.AddCommand(newLabUpCmd(g), newLabDownCmd(g), newLabStatusCmd(g))
	return cmd
}

func newLabUpCmd(g *globals) *cobra.Command {
	var opts lab.Options
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Build a lab and leave it running in the background",
		Long: "up builds a lab owned by a background keeperlb process, prints how to reach it\n" +
			"and exits. The lab runs until `keeperlb lab down NAME`.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := lab.UpDetached(cmd.Context(), opts)
			if err != nil {
				return err
			}
			printLab(g.out, s, cmd.Root().DisplayName())
			return nil
		},
	}
	cmd.Flags().IntVar(&opts.Nodes, "nodes", lab.DefaultNodes, fmt.Sprintf("number of nodes (1..%d)", lab.MaxNodes))
	cmd.Flags().BoolVar(&opts.Router, "router", false, "add a router (eth0 on the bridge) and a far client behind it (router eth1)")
	cmd.Flags().BoolVar(&opts.NoControlPlane, "network-only", false, "no API server: namespaces, bridge and backends only")
	cmd.Flags().BoolVar(&opts.Keep, "keep-logs", false, "keep the lab folder (logs, kubeconfig) after lab down")
	cmd.Flags().StringVar(&opts.K8sBin, "k8s-bin", "", "folder with etcd and kube-apiserver (default $KEEPERLB_K8S_BIN)")
	return cmd
}

// printLab shows what a user needs to work with a lab; self is this
// command as the user typed it (keeperlb, or kubectl keeperlb).
func printLab(w io.Writer, s *lab.State, self string) {
	fmt.Fprintf(w, "lab %s is up (owner pid %d)\n\n", s.Name, s.OwnerPID)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tNETNS\tIPV4\tIPV6\tMAC")
	hosts := append([]*lab.Host{}, s.Nodes...)
	hosts = append(hosts, s.Client)
	if s.Router != nil {
		hosts = append(hosts, s.Router, s.Far)
	}
	for _, h := range hosts {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", h.Name, h.Netns, h.IPv4, h.IPv6, h.MAC)
	}
	fmt.Fprintf(tw, "(root)\t-\t%s\t%s\t-\n", s.HostIPv4, s.HostIPv6)
	tw.Flush()
	if layout, err := lab.Plan(s.Index, len(s.Nodes), s.Router != nil); err == nil {
		fmt.Fprintf(w, "\nL2 VIP pool:   %s, %s\n", layout.L2Pool4, layout.L2Pool6)
		fmt.Fprintf(w, "BGP VIP pool:  %s, %s\n", layout.BGPPool4, layout.BGPPool6)
	}
	if s.Kubeconfig != "" {
		fmt.Fprintf(w, "API server:    %s\n", s.APIServer)
		fmt.Fprintf(w, "kubeconfig:    %s\n", s.Kubeconfig)
	}
	fmt.Fprintf(w, "logs:          %s\n", s.Dir)
	fmt.Fprintf(w, "\nrun a command: ip netns exec %s ping %s\n", s.Client.Netns, s.Nodes[0].IPv4)
	if s.Kubeconfig != "" {
		fmt.Fprintf(w, "use it:        %s --kubeconfig %s status\n", self, s.Kubeconfig)
	}
	fmt.Fprintf(w, "take it down:  %s lab down %s\n", self, s.Name)
}

func newLabDownCmd(g *globals) *cobra.Command {
	var all, force bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "down [NAME...]",
		Short: "Take labs down (their processes, namespaces, veths and folders)",
		RunE: func(cmd *cobra.Command, args []string) error {
			if all == (len(args) > 0) {
				return errors.New("name the labs to take down, or pass --all")
			}
			names := args
			if all {
				states, err := lab.List()
				if err != nil {
					return err
				}
				for _, s := range states {
					names = append(names, s.Name)
				}
			}
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn}))
			var errs []error
			for _, name := range names {
				err := lab.Remove(name, timeout, force, log)
				if all && errors.Is(err, lab.ErrInUse) {
					fmt.Fprintf(g.out, "lab %s skipped: %v\n", name, err)
					continue
				}
				if err != nil {
					errs = append(errs, err)
					continue
				}
				fmt.Fprintf(g.out, "lab %s is down\n", name)
			}
			return errors.Join(errs...)
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "take every lab down (labs of running tests are skipped unless --force)")
	cmd.Flags().BoolVar(&force, "force", false, "also tear down labs that a running test or program owns")
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "how long the owner may take before it is killed")
	return cmd
}

func newLabStatusCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "List labs with their owner process and whether it is alive",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			states, err := lab.List()
			if err != nil {
				return err
			}
			if len(states) == 0 {
				fmt.Fprintln(g.out, "no labs")
				return nil
			}
			tw := tabwriter.NewWriter(g.out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tOWNER\tKIND\tSTATE\tNODES\tROUTER\tAPI SERVER\tAGE")
			for _, s := range states {
				state := "ready"
				switch {
				case !s.Alive():
					state = "dead (lab down " + s.Name + " removes it)"
				case !s.Ready:
					state = "starting"
				}
				api := s.APIServer
				if api == "" {
					api = "-"
				}
				kind := "process"
				if s.Detached {
					kind = "lab up"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", s.Name, strconv.Itoa(s.OwnerPID), kind, state, len(s.Nodes),
					strconv.FormatBool(s.Router != nil), api, time.Since(s.Created).Round(time.Second))
			}
			return tw.Flush()
		},
	}
}
