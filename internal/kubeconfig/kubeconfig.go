// Package kubeconfig finds the API server the KeeperLB binaries talk to.
package kubeconfig

import (
	"fmt"
	"os"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Load returns the client configuration from the kubeconfig file at path,
// or, when path is empty, from $KUBECONFIG, the in-cluster service account
// or ~/.kube/config, in that order, as kubectl does.
func Load(path string) (*rest.Config, error) {
	if path == "" {
		if _, err := os.Stat("/var/run/secrets/kubernetes.io/serviceaccount/token"); err == nil && os.Getenv("KUBECONFIG") == "" {
			cfg, err := rest.InClusterConfig()
			if err != nil {
				return nil, fmt.Errorf("loading in-cluster config: %w", err)
			}
			return cfg, nil
		}
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = path
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("loading kubeconfig: %w", err)
	}
	return cfg, nil
}
