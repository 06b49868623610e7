package cli

import (
	"fmt"

	"github.com/spf13/cobra"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/keeperlb/keeperlb/api/v1beta1"
)

func newServicesCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "services",
		Aliases: []string{"svc", "lb"},
		Short:   "List LoadBalancer Services with their addresses, or why they have none",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, _, err := g.client()
			if err != nil {
				return err
			}
			rows, err := serviceRows(cmd.Context(), c)
			if err != nil {
				return err
			}
			return printServices(g.out, rows)
		},
	}
}

func newPoolsCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "pools",
		Short: "List address pools and their usage",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, _, err := g.client()
			if err != nil {
				return err
			}
			return printPools(cmd.Context(), g.out, c, g.namespace)
		},
	}
}

func newStatusCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show whether each component loaded the configuration, the pools, and the Services waiting for an address",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, _, err := g.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			var states v1beta1.ConfigurationStateList
			if err := c.List(ctx, &states, client.InNamespace(g.namespace)); err != nil {
				return fmt.Errorf("listing configuration states: %w", err)
			}
			fmt.Fprintln(g.out, "Configuration:")
			if len(states.Items) == 0 {
				fmt.Fprintln(g.out, "  no component has reported yet (is the controller running?)")
			}
			for _, s := range states.Items {
				fmt.Fprintf(g.out, "  %-24s %s\n", s.Name, s.Status.Result)
				if s.Status.ErrorSummary != "" {
					fmt.Fprintf(g.out, "    %s\n", s.Status.ErrorSummary)
				}
			}
			fmt.Fprintln(g.out, "\nPools:")
			if err := printPools(ctx, g.out, c, g.namespace); err != nil {
				return err
			}
			rows, err := serviceRows(ctx, c)
			if err != nil {
				return err
			}
			var pending []serviceRow
			for _, r := range rows {
				if r.State == "Pending" {
					pending = append(pending, r)
				}
			}
			fmt.Fprintf(g.out, "\nServices: %d LoadBalancer, %d waiting for an address\n", len(rows), len(pending))
			if len(pending) > 0 {
				return printServices(g.out, pending)
			}
			return nil
		},
	}
}
