// Package cli is the keeperlb command (also the kubectl plugin
// kubectl-keeperlb): it creates and removes load balancers (address pools
// and their advertisements), BGP peers and BFD profiles, shows what the
// load balancer is doing and explains why, imports MetalLB's legacy
// configuration, applies and validates MetalLB manifests, and runs the
// local demo.
package cli

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/keeperlb/keeperlb/internal/controller"
	"github.com/keeperlb/keeperlb/internal/kubeconfig"
)

// globals are the flags every command shares.
type globals struct {
	kubeconfig string
	namespace  string
	out        io.Writer
	root       *cobra.Command
}

// errOut is where warnings go: standard error unless a test redirects it,
// so that -o yaml output stays clean for a pipe.
func (g *globals) errOut() io.Writer {
	return g.root.ErrOrStderr()
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
	g.root = root
	root.PersistentFlags().StringVar(&g.kubeconfig, "kubeconfig", "", "kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
	root.PersistentFlags().StringVarP(&g.namespace, "namespace", "n", "metallb-system", "KeeperLB install namespace")
	// One line per command, so that adding one is a one-line change.
	root.AddCommand(
		newLBCmd(g),
		newPeerCmd(g),
		newBFDProfileCmd(g),
		newStatusCmd(g),
		newExplainCmd(g),
		newImportCmd(g),
		newServicesCmd(g),
		newPoolsCmd(g),
		newApplyCmd(g),
		newValidateCmd(g),
		newDemoCmd(g),
		newLabCmd(g),
	)
	return root
}

// NewPluginRoot returns the command tree as the kubectl plugin
// kubectl-keeperlb, so that help and errors read "kubectl keeperlb".
func NewPluginRoot(out io.Writer) *cobra.Command {
	root := NewRoot(out)
	root.Use = "kubectl-keeperlb"
	root.Annotations = map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl keeperlb"}
	return root
}

// client connects to the cluster named by the flags.
func (g *globals) client() (client.Client, *rest.Config, error) {
	cfg, err := kubeconfig.Load(g.kubeconfig)
	if err != nil {
		return nil, nil, kubeconfigError(g.kubeconfig, err)
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

// kubeconfigError says what to do when no cluster could be found.
func kubeconfigError(path string, err error) error {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if clientcmd.IsEmptyConfig(e) {
			return errors.New("no kubeconfig: pass --kubeconfig or set KUBECONFIG (kubectl's ~/.kube/config is read too)")
		}
	}
	if path != "" {
		return fmt.Errorf("%w: check the file given to --kubeconfig", err)
	}
	return fmt.Errorf("%w: pass --kubeconfig, or fix KUBECONFIG or ~/.kube/config", err)
}
