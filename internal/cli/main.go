package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/keeperlb/keeperlb/internal/lab"
)

// Main is the whole main of keeperlb (newRoot = NewRoot) and of the kubectl
// plugin kubectl-keeperlb (NewPluginRoot); it returns the exit code. Being
// a main, it does what a library must not: it may turn the process into a
// lab role and exit (the lab re-executes this binary as a node's backend
// and as the owner of a detached lab, for `lab up` and `demo`), and it
// handles SIGINT and SIGTERM. Both binaries start here so that neither can
// forget the role dispatch.
func Main(newRoot func(io.Writer) *cobra.Command) int {
	lab.RunRoleIfRequested()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	root := newRoot(os.Stdout)
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", root.DisplayName(), err)
		return 1
	}
	return 0
}
