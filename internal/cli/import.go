package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"github.com/keeperlb/keeperlb/internal/config"
	"github.com/keeperlb/keeperlb/internal/legacyconfig"
)

// maxImportFile bounds what import reads; a MetalLB configuration is a few
// kilobytes.
const maxImportFile = 8 << 20

func newImportCmd(g *globals) *cobra.Command {
	var file string
	var doApply bool
	cmd := &cobra.Command{
		Use:   "import -f metallb-config.yaml [--apply]",
		Short: "Convert MetalLB's legacy ConfigMap configuration to metallb.io objects",
		Long: "import reads MetalLB's legacy configuration (the ConfigMap, usually\n" +
			"metallb-system/config, whose data.config holds peers, address-pools,\n" +
			"bgp-communities and bfd-profiles; or that YAML alone) and prints the equivalent\n" +
			"IPAddressPool, L2Advertisement, BGPAdvertisement, BGPPeer, BFDProfile and Community\n" +
			"objects, in the install namespace (--namespace). Whatever it could not convert is\n" +
			"listed with the reason, at the top of the output and on standard error. The result\n" +
			"is checked with the controller's own validation.\n\n" +
			"With --apply the objects are applied to the cluster instead of printed, provided\n" +
			"they validate together with what the cluster already holds.",
		Example: "  kubectl get configmap config -n metallb-system -o yaml > metallb-config.yaml\n" +
			"  keeperlb import -f metallb-config.yaml > keeperlb-config.yaml\n" +
			"  keeperlb import -f metallb-config.yaml --apply",
		Args: cobra.NoArgs,
	}
	format := addOutputFlag(cmd)
	cmd.Flags().StringVarP(&file, "filename", "f", "", "the ConfigMap manifest or the configuration YAML (- for standard input)")
	cmd.Flags().BoolVar(&doApply, "apply", false, "apply the converted objects to the cluster")
	_ = cmd.MarkFlagRequired("filename")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := checkOutput(*format); err != nil {
			return err
		}
		data, err := readInput(file, cmd.InOrStdin())
		if err != nil {
			return err
		}
		res, err := legacyconfig.Import(data, g.namespace)
		if err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		var problems []string
		if _, err := config.Parse(res.Resources(g.namespace)); err != nil {
			for _, fe := range fieldErrors(err) {
				problems = append(problems, fe.Error())
			}
		}
		objs := res.Objects()
		for _, n := range res.Notes {
			fmt.Fprintf(g.errOut(), "not converted: %s\n", n)
		}
		for _, p := range problems {
			fmt.Fprintf(g.errOut(), "invalid after conversion: %s\n", p)
		}
		fmt.Fprintf(g.errOut(), "converted %s; %s on what was not\n", plural(len(objs), "object", "objects"), plural(len(res.Notes), "note", "notes"))
		if doApply {
			return importApply(cmd.Context(), g, res, problems)
		}
		return printImport(g.out, *format, res, objs, problems)
	}
	return cmd
}

func readInput(file string, stdin io.Reader) ([]byte, error) {
	var r io.Reader = stdin
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return nil, fmt.Errorf("reading the MetalLB configuration: %w", err)
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, maxImportFile+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", file, err)
	}
	if len(data) > maxImportFile {
		return nil, fmt.Errorf("%s is larger than %d bytes; that is no MetalLB configuration", file, maxImportFile)
	}
	return data, nil
}

// printImport writes the objects as a YAML stream headed by comments that
// list what was not converted, or as a JSON v1 List (notes then go to
// standard error only, JSON having no comments).
func printImport(w io.Writer, format string, res *legacyconfig.Result, objs []runtime.Object, problems []string) error {
	if format == outputJSON {
		l := map[string]any{"apiVersion": "v1", "kind": "List", "items": objs}
		b, err := json.MarshalIndent(l, "", "  ")
		if err != nil {
			return fmt.Errorf("rendering JSON: %w", err)
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	}
	fmt.Fprintln(w, "# Converted from MetalLB's legacy configuration by `keeperlb import`.")
	if len(res.Notes) > 0 {
		fmt.Fprintf(w, "# Not converted (%d); redo these by hand:\n", len(res.Notes))
		for _, n := range res.Notes {
			fmt.Fprintf(w, "#   %s\n", oneLine(n.String()))
		}
	}
	if len(problems) > 0 {
		fmt.Fprintf(w, "# The controller would reject this configuration (%d):\n", len(problems))
		for _, p := range problems {
			fmt.Fprintf(w, "#   %s\n", oneLine(p))
		}
	}
	return printManifests(w, objs)
}

// printManifests writes objects as a YAML stream that kubectl apply takes.
func printManifests(w io.Writer, objs []runtime.Object) error {
	for _, o := range objs {
		b, err := yaml.Marshal(cleanObject(o))
		if err != nil {
			return fmt.Errorf("rendering YAML: %w", err)
		}
		if _, err := fmt.Fprintf(w, "---\n%s", b); err != nil {
			return err
		}
	}
	return nil
}

// cleanObject drops the empty status and creationTimestamp that typed
// objects carry, so that the manifest holds only what the user would write.
func cleanObject(o runtime.Object) map[string]any {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(o)
	if err != nil {
		return map[string]any{"error": err.Error()}
	}
	delete(m, "status")
	if md, ok := m["metadata"].(map[string]any); ok {
		delete(md, "creationTimestamp")
	}
	return m
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " ") }

// importApply applies the converted objects after checking them together
// with what the cluster holds: an imported pool that overlaps a pool
// already there is refused before anything is written.
func importApply(ctx context.Context, g *globals, res *legacyconfig.Result, problems []string) error {
	if len(problems) > 0 {
		return errors.New("not applied: the converted configuration does not validate (see above); fix the MetalLB configuration, or print the objects without --apply and edit them")
	}
	c, _, err := g.client()
	if err != nil {
		return err
	}
	before, err := loadResources(ctx, c, g.namespace)
	if err != nil {
		return err
	}
	after := mergeResources(before, res.Resources(g.namespace))
	if p := newProblems(before, after); len(p) > 0 {
		return rejection("the imported configuration, together with the objects already in "+g.namespace+",", p, nil)
	}
	var objs []*unstructured.Unstructured
	for _, o := range res.Objects() {
		objs = append(objs, &unstructured.Unstructured{Object: cleanObject(o)})
	}
	if err := apply(ctx, c, objs, g.namespace, g.out); err != nil {
		return apiError("applying the imported configuration", err)
	}
	if len(res.Notes) > 0 {
		fmt.Fprintf(g.out, "applied; the %s above say what was not converted: redo those parts by hand\n", plural(len(res.Notes), "note", "notes"))
	}
	return nil
}

// mergeResources returns base with add's objects, replacing objects of
// the same kind and name as apply would.
func mergeResources(base, add config.Resources) config.Resources {
	out := base
	out.Pools = merge(base.Pools, add.Pools)
	out.L2Advs = merge(base.L2Advs, add.L2Advs)
	out.BGPAdvs = merge(base.BGPAdvs, add.BGPAdvs)
	out.Peers = merge(base.Peers, add.Peers)
	out.BFDProfiles = merge(base.BFDProfiles, add.BFDProfiles)
	out.Communities = merge(base.Communities, add.Communities)
	return out
}

func merge[T any, P interface {
	*T
	GetName() string
}](base, add []T) []T {
	out := slices.Clone(base)
	for _, a := range add {
		name := P(&a).GetName()
		if i := slices.IndexFunc(out, func(x T) bool { return P(&x).GetName() == name }); i >= 0 {
			out[i] = a
		} else {
			out = append(out, a)
		}
	}
	return out
}
