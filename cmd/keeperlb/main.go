// Command keeperlb inspects and operates KeeperLB.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/keeperlb/keeperlb/internal/cli"
	"github.com/keeperlb/keeperlb/internal/lab"
)

func main() {
	lab.RunRoleIfRequested() // lab backends and detached lab owners are this binary
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := cli.NewRoot(os.Stdout).ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "keeperlb:", err)
		stop()
		os.Exit(1)
	}
}
