package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"sigs.k8s.io/yaml"
)

// Output formats accepted by -o.
const (
	outputTable = ""
	outputYAML  = "yaml"
	outputJSON  = "json"
)

// addOutputFlag registers -o on a command that shows something, and
// returns where the chosen format lands.
func addOutputFlag(cmd *cobra.Command) *string {
	var format string
	cmd.Flags().StringVarP(&format, "output", "o", outputTable, "output format: yaml or json (default: a table for people)")
	return &format
}

// checkOutput refuses an unknown -o before any API call is made.
func checkOutput(format string) error {
	switch format {
	case outputTable, outputYAML, outputJSON:
		return nil
	}
	return fmt.Errorf("unknown output format %q: use -o yaml or -o json, or leave -o out for a table", format)
}

// render writes v as YAML or JSON, or calls table for the human format.
// YAML and JSON come from the same JSON field names, so scripts can switch
// between them.
func render(w io.Writer, format string, v any, table func(io.Writer) error) error {
	switch format {
	case outputYAML:
		b, err := yaml.Marshal(v)
		if err != nil {
			return fmt.Errorf("rendering YAML: %w", err)
		}
		_, err = w.Write(b)
		return err
	case outputJSON:
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return fmt.Errorf("rendering JSON: %w", err)
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	case outputTable:
		return table(w)
	}
	return checkOutput(format)
}

// newTable returns the tab writer every table uses.
func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
}

// parseSelector reads a label selector in kubectl's syntax
// ("app=web,tier in (a,b),!canary"); empty means none.
func parseSelector(flag, s string) ([]metav1.LabelSelector, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	sel, err := metav1.ParseToLabelSelector(s)
	if err != nil {
		return nil, fmt.Errorf("--%s %q: %w (want k=v,k2=v2 or kubectl's selector syntax)", flag, s, err)
	}
	return []metav1.LabelSelector{*sel}, nil
}

// apiError wraps an API error with what the user can do about it.
func apiError(action string, err error) error {
	switch {
	case err == nil:
		return nil
	case meta.IsNoMatchError(err):
		return fmt.Errorf("%s: %w: the metallb.io CRDs are not installed in this cluster; install KeeperLB first (docs/install.md)", action, err)
	case apierrors.IsForbidden(err):
		return fmt.Errorf("%s: %w: your user lacks this permission; use an account allowed to manage metallb.io objects, or another --kubeconfig", action, err)
	case apierrors.IsUnauthorized(err):
		return fmt.Errorf("%s: %w: the API server rejected the credentials; refresh them or pass another --kubeconfig", action, err)
	case utilnet.IsConnectionRefused(err) || isNetError(err):
		return fmt.Errorf("%s: %w: cannot reach the API server; is the cluster running, and do --kubeconfig or KUBECONFIG point at it?", action, err)
	}
	return fmt.Errorf("%s: %w", action, err)
}

func isNetError(err error) bool {
	var ne net.Error
	var oe *net.OpError
	return errors.As(err, &oe) || errors.As(err, &ne) && ne.Timeout()
}

// joinOr joins items, or returns none when there are none.
func joinOr(items []string, none string) string {
	if len(items) == 0 {
		return none
	}
	return strings.Join(items, ",")
}

// plural returns "1 thing" or "n things".
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
