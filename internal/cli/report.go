package cli

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"

	"github.com/keeperlb/keeperlb/internal/controller"
	"github.com/keeperlb/keeperlb/internal/request"
)

// serviceRow is one LoadBalancer Service as the operator wants to see it:
// its addresses, or why it has none.
type serviceRow struct {
	Namespace, Name string
	IPs             []string
	Pool            string
	State           string // Allocated, Pending or Unknown
	Reason, Message string
}

// serviceRowsOf turns the LoadBalancer Services among svcs into rows,
// sorted by namespace and name.
func serviceRowsOf(svcs []corev1.Service) []serviceRow {
	var rows []serviceRow
	for i := range svcs {
		s := &svcs[i]
		if s.Spec.Type != corev1.ServiceTypeLoadBalancer {
			continue
		}
		r := serviceRow{Namespace: s.Namespace, Name: s.Name, Pool: s.Annotations[request.AnnotationAllocatedFromPool], State: "Unknown"}
		for _, ing := range s.Status.LoadBalancer.Ingress {
			r.IPs = append(r.IPs, ing.IP)
		}
		if cond := meta.FindStatusCondition(s.Status.Conditions, controller.ConditionIPAllocated); cond != nil {
			r.State = "Allocated"
			if cond.Status != "True" {
				r.State = "Pending"
			}
			r.Reason, r.Message = cond.Reason, cond.Message
		} else if s.Spec.LoadBalancerClass != nil {
			r.Message = "class " + *s.Spec.LoadBalancerClass
		}
		rows = append(rows, r)
	}
	sort.Slice(rows, func(i, j int) bool {
		if rows[i].Namespace != rows[j].Namespace {
			return rows[i].Namespace < rows[j].Namespace
		}
		return rows[i].Name < rows[j].Name
	})
	return rows
}

func printServices(w io.Writer, rows []serviceRow) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAMESPACE\tNAME\tEXTERNAL-IP\tPOOL\tSTATE\tREASON")
	for _, r := range rows {
		ips := strings.Join(r.IPs, ",")
		if ips == "" {
			ips = "<pending>"
		}
		why := ""
		if r.State != "Allocated" {
			why = strings.TrimPrefix(strings.TrimSpace(r.Reason+": "+r.Message), ": ")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Namespace, r.Name, ips, dash(r.Pool), r.State, dash(why))
	}
	return tw.Flush()
}

// count prints a saturated int64 (an IPv6 /64 or wider) as "huge".
func count(n int64) string {
	if n == 1<<63-1 {
		return ">=2^63"
	}
	return fmt.Sprint(n)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
