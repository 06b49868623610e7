// Command render prints KeeperLB's install manifests as YAML, built with
// the same kustomize and Helm libraries the tests use, for machines without
// kubectl or helm:
//
//	go run ./hack/render kustomize config/default | keeperlb apply -f -
//	go run ./hack/render helm --namespace metallb-system charts/keeperlb | keeperlb apply -f -
//
// The helm mode renders like `helm template`, and the same values give the
// same bytes on every run: the chart renders no random heartbeat key (the
// controller creates it in the cluster) unless
// --set speaker.memberlist.secretKey=... gives one.
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"os"

	"helm.sh/helm/v4/pkg/chart/common"
	chartutil "helm.sh/helm/v4/pkg/chart/common/util"
	"helm.sh/helm/v4/pkg/strvals"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/keeperlb/keeperlb/internal/install"
)

const usage = `usage:
  render kustomize DIR
  render helm [--namespace NS] [--name RELEASE] [-f values.yaml]... [--set k=v]... CHART_DIR`

func main() {
	// Helm's chart loader logs every symbolic link it follows (the chart
	// links its CRDs and RBAC into config/); that is expected here.
	log.SetOutput(io.Discard)
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "render:", err)
		os.Exit(1)
	}
}

func run(args []string, out io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("missing mode\n%s", usage)
	}
	switch args[0] {
	case "kustomize":
		if len(args) != 2 {
			return fmt.Errorf("kustomize takes one folder\n%s", usage)
		}
		_, yaml, err := install.Kustomize(filesys.MakeFsOnDisk(), args[1])
		if err != nil {
			return err
		}
		_, err = out.Write(yaml)
		return err
	case "helm":
		return renderHelm(args[1:], out)
	default:
		return fmt.Errorf("unknown mode %q\n%s", args[0], usage)
	}
}

// multi collects a repeatable string flag.
type multi []string

func (m *multi) String() string     { return fmt.Sprint(*m) }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

func renderHelm(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("render helm", flag.ContinueOnError)
	ns := fs.String("namespace", "metallb-system", "release namespace")
	name := fs.String("name", "keeperlb", "release name")
	var files, sets multi
	fs.Var(&files, "f", "values file (repeatable)")
	fs.Var(&sets, "set", "value override key=value (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("helm takes one chart folder\n%s", usage)
	}
	values := map[string]any{}
	for _, f := range files {
		v, err := common.ReadValuesFile(f)
		if err != nil {
			return fmt.Errorf("reading values file %s: %w", f, err)
		}
		values = chartutil.CoalesceTables(v.AsMap(), values)
	}
	for _, s := range sets {
		if err := strvals.ParseInto(s, values); err != nil {
			return fmt.Errorf("--set %s: %w", s, err)
		}
	}
	ch, err := install.LoadChart(fs.Arg(0))
	if err != nil {
		return err
	}
	_, manifest, err := install.RenderChart(ch, install.Release{Name: *name, Namespace: *ns, Values: values})
	if err != nil {
		return err
	}
	_, err = io.WriteString(out, manifest)
	return err
}
