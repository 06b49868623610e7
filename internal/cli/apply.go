package cli

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

func newApplyCmd(g *globals) *cobra.Command {
	var files []string
	cmd := &cobra.Command{
		Use:   "apply -f FILE...",
		Short: "Apply manifests (MetalLB's included) with server-side apply",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			objs, err := readManifests(files, os.Stdin)
			if err != nil {
				return err
			}
			c, _, err := g.client()
			if err != nil {
				return err
			}
			return apply(cmd.Context(), c, objs, g.namespace, g.out)
		},
	}
	cmd.Flags().StringSliceVarP(&files, "filename", "f", nil, "manifest files or folders (- for standard input)")
	_ = cmd.MarkFlagRequired("filename")
	return cmd
}

// apply server-side applies each object, defaulting the namespace of
// namespaced objects that name none.
func apply(ctx context.Context, c client.Client, objs []*unstructured.Unstructured, ns string, out io.Writer) error {
	for _, u := range objs {
		if u.GetNamespace() == "" {
			namespaced, err := c.IsObjectNamespaced(u)
			if err != nil {
				return fmt.Errorf("%s %s: %w", u.GetKind(), u.GetName(), err)
			}
			if namespaced {
				u.SetNamespace(ns)
			}
		}
		if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner("keeperlb"), client.ForceOwnership); err != nil {
			return fmt.Errorf("applying %s %s: %w", u.GetKind(), objectName(u), err)
		}
		fmt.Fprintf(out, "%s/%s applied\n", lower(u.GetKind()), objectName(u))
	}
	return nil
}

func objectName(u *unstructured.Unstructured) string {
	if u.GetNamespace() != "" {
		return u.GetNamespace() + "/" + u.GetName()
	}
	return u.GetName()
}

func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
