package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/keeperlb/keeperlb/internal/config"
)

func newValidateCmd(g *globals) *cobra.Command {
	var files []string
	cmd := &cobra.Command{
		Use:   "validate -f FILE...",
		Short: "Check MetalLB configuration manifests offline, with the same rules the controller applies",
		Long: "validate reads metallb.io objects (and the Secrets they refer to) from files and runs the\n" +
			"controller's own validation on them, without a cluster: a way to check a MetalLB\n" +
			"configuration before switching to KeeperLB.",
		Args: cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			objs, err := readManifests(files, os.Stdin)
			if err != nil {
				return err
			}
			res, skipped, err := resourcesFrom(objs, g.namespace)
			if err != nil {
				return err
			}
			for _, s := range skipped {
				fmt.Fprintf(g.out, "skipped %s\n", s)
			}
			cfg, err := config.Parse(res)
			if err != nil {
				var errs config.Errors
				if errors.As(err, &errs) {
					for _, e := range errs {
						fmt.Fprintln(g.out, e.Error())
					}
					return fmt.Errorf("%d problem(s) found", len(errs))
				}
				return err
			}
			fmt.Fprintf(g.out, "valid: %d pools, %d L2 advertisements, %d BGP advertisements, %d peers, %d BFD profiles\n",
				len(cfg.Pools), len(cfg.L2Advertisements), len(cfg.BGPAdvertisements), len(cfg.Peers), len(cfg.BFDProfiles))
			return nil
		},
	}
	cmd.Flags().StringSliceVarP(&files, "filename", "f", nil, "manifest files or folders (- for standard input)")
	_ = cmd.MarkFlagRequired("filename")
	return cmd
}

// resourcesFrom sorts decoded objects into config.Resources. Objects without
// a namespace are taken to be in ns, as `kubectl apply -n ns` would place
// them. Kinds that are not configuration are reported as skipped.
func resourcesFrom(objs []*unstructured.Unstructured, ns string) (config.Resources, []string, error) {
	res := config.Resources{Namespace: ns}
	var skipped []string
	for _, u := range objs {
		if u.GetNamespace() == "" {
			u.SetNamespace(ns)
		}
		var err error
		switch gk := u.GroupVersionKind().GroupKind(); {
		case gk.Group == "metallb.io" && gk.Kind == "IPAddressPool":
			err = decodeInto(u, &res.Pools)
		case gk.Group == "metallb.io" && gk.Kind == "L2Advertisement":
			err = decodeInto(u, &res.L2Advs)
		case gk.Group == "metallb.io" && gk.Kind == "BGPAdvertisement":
			err = decodeInto(u, &res.BGPAdvs)
		case gk.Group == "metallb.io" && gk.Kind == "BGPPeer":
			// v1beta1 and v1beta2 share one JSON shape, so both decode
			// into the storage version.
			err = decodeInto(u, &res.Peers)
		case gk.Group == "metallb.io" && gk.Kind == "BFDProfile":
			err = decodeInto(u, &res.BFDProfiles)
		case gk.Group == "metallb.io" && gk.Kind == "Community":
			err = decodeInto(u, &res.Communities)
		case gk.Group == "" && gk.Kind == "Secret":
			err = decodeInto(u, &res.Secrets)
		default:
			skipped = append(skipped, u.GetKind()+" "+objectName(u))
		}
		if err != nil {
			return res, nil, fmt.Errorf("%s %s: %w", u.GetKind(), objectName(u), err)
		}
	}
	return res, skipped, nil
}

// decodeInto decodes u into a new T appended to list. Unknown fields are an
// error: the API server would drop them silently, and a misspelt field such
// as "autoAsign" is exactly what validation should catch.
func decodeInto[T any](u *unstructured.Unstructured, list *[]T) error {
	raw, err := json.Marshal(u.Object)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var v T
	if err := dec.Decode(&v); err != nil {
		return err
	}
	*list = append(*list, v)
	return nil
}
