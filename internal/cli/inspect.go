package cli

import (
	"io"

	"github.com/spf13/cobra"
)

func newServicesCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "services",
		Aliases: []string{"svc"},
		Short:   "List LoadBalancer Services with their addresses, or why they have none",
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
		svcs, err := loadBalancerServices(cmd.Context(), c)
		if err != nil {
			return err
		}
		rows := serviceRowsOf(svcs)
		views := make([]serviceStatus, 0, len(rows))
		for _, r := range rows {
			views = append(views, statusOf(r, nil))
		}
		return render(g.out, *format, views, func(w io.Writer) error { return printServices(w, rows) })
	}
	return cmd
}

// newPoolsCmd keeps the first CLI's `pools` command; it is `lb list`.
func newPoolsCmd(g *globals) *cobra.Command {
	cmd := newLBListCmd(g)
	cmd.Use = "pools"
	cmd.Aliases = nil
	cmd.Short = "List address pools and their usage (the same as lb list)"
	return cmd
}
