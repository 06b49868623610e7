// Package cli is the keeperlb command: it shows what the load balancer is
// doing (services, pools, status), applies and validates MetalLB manifests,
// and runs the local demo.
package cli

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/keeperlb/keeperlb/internal/controller"
	"github.com/keeperlb/keeperlb/internal/kubeconfig"
)

// globals are the flags every command shares.
type globals struct {
	kubeconfig string
	namespace  string
	out        io.Writer
}

// NewRoot returns the keeperlb command tree, writing to out.
func NewRoot(out io.Writer) *cobra.Command {
	g := &globals{out: out}
	root := &cobra.Command{
		Use:           "keeperlb",
		Short:         "Inspect and operate KeeperLB, the bare-metal load balancer for Kubernetes",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(out)
	root.PersistentFlags().StringVar(&g.kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
	root.PersistentFlags().StringVarP(&g.namespace, "namespace", "n", "metallb-system", "KeeperLB install namespace")
	root.AddCommand(
		newServicesCmd(g),
		newPoolsCmd(g),
		newStatusCmd(g),
		newApplyCmd(g),
		newValidateCmd(g),
		newDemoCmd(g),
		newLabCmd(g),
	)
	return root
}

// client connects to the cluster named by the flags.
func (g *globals) client() (client.Client, *rest.Config, error) {
	cfg, err := kubeconfig.Load(g.kubeconfig)
	if err != nil {
		return nil, nil, err
	}
	c, err := newClient(cfg)
	return c, cfg, err
}

func newClient(cfg *rest.Config) (client.Client, error) {
	scheme, err := controller.NewScheme()
	if err != nil {
		return nil, err
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, fmt.Errorf("connecting to the API server: %w", err)
	}
	return c, nil
}
