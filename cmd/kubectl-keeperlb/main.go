// Command kubectl-keeperlb is the keeperlb CLI as a kubectl plugin: put it
// on $PATH and run `kubectl keeperlb ...`.
package main

import (
	"os"

	"github.com/keeperlb/keeperlb/internal/cli"
)

func main() { os.Exit(cli.Main(cli.NewPluginRoot)) }
