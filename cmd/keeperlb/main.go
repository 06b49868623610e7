// Command keeperlb inspects and operates KeeperLB.
package main

import (
	"os"

	"github.com/keeperlb/keeperlb/internal/cli"
)

func main() { os.Exit(cli.Main(cli.NewRoot)) }
