// Command kubectl-keeperlb is the keeperlb CLI as a kubectl plugin: put it
// on $PATH and run `kubectl keeperlb ...`.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/keeperlb/keeperlb/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := cli.NewPluginRoot(os.Stdout).ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "kubectl keeperlb:", err)
		stop()
		os.Exit(1)
	}
}
