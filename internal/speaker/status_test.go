package speaker

import (
	"context"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/keeperlb/keeperlb/api/v1beta1"
)

func TestLabelValue(t *testing.T) {
	long := strings.Repeat("worker-", 20) + "a.example.internal" // 158 characters, a valid Node name
	twin := strings.Repeat("worker-", 20) + "b.example.internal"
	for _, name := range []string{"node1", strings.Repeat("n", 63), long, twin, strings.Repeat("n", 45) + "-.x" + strings.Repeat("y", 60)} {
		v := LabelValue(name)
		if errs := validation.IsValidLabelValue(v); len(errs) != 0 {
			t.Errorf("LabelValue(%q) = %q, not a valid label value: %v", name, v, errs)
		}
		if len(name) <= 63 && v != name {
			t.Errorf("LabelValue(%q) = %q, want the name itself", name, v)
		}
		if LabelValue(name) != v {
			t.Errorf("LabelValue(%q) is not stable", name)
		}
	}
	if LabelValue(long) == LabelValue(twin) {
		t.Errorf("two long names with one prefix got one label value %q", LabelValue(long))
	}
}

// TestStatusesForLongNodeNames writes ServiceL2Status objects for a node
// whose name is too long for a label value, and checks that the node finds
// them again as its own (it rewrites rather than duplicates), and that a
// live peer with a long name keeps its objects.
func TestStatusesForLongNodeNames(t *testing.T) {
	scheme, err := NewScheme()
	if err != nil {
		t.Fatal(err)
	}
	c := fake.NewClientBuilder().WithScheme(scheme).WithStatusSubresource(&v1beta1.ServiceL2Status{}).Build()
	ctx := context.Background()
	node := strings.Repeat("very-long-node-name-", 6) + "1"
	peer := strings.Repeat("very-long-node-name-", 6) + "2"
	want := map[string]l2Status{"ns/web": {service: "ns/web", interfaces: []string{"eth0"}}}
	for range 2 {
		if err := syncL2Statuses(ctx, statusAPI{c: c, live: c, workers: statusWorkers}, "metallb-system", node, want, []string{node, peer}); err != nil {
			t.Fatal(err)
		}
	}
	if err := syncL2Statuses(ctx, statusAPI{c: c, live: c, workers: statusWorkers}, "metallb-system", peer, map[string]l2Status{"ns/db": {service: "ns/db"}}, []string{node, peer}); err != nil {
		t.Fatal(err)
	}
	// node now also announces ns/db; peer is alive, so its object stays.
	want["ns/db"] = l2Status{service: "ns/db"}
	if err := syncL2Statuses(ctx, statusAPI{c: c, live: c, workers: statusWorkers}, "metallb-system", node, want, []string{node, peer}); err != nil {
		t.Fatal(err)
	}
	var list v1beta1.ServiceL2StatusList
	if err := c.List(ctx, &list, client.MatchingLabels{LabelNode: LabelValue(node)}); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 2 {
		t.Fatalf("node has %d ServiceL2Status objects, want 2 (ns/web, ns/db)", len(list.Items))
	}
	for _, st := range list.Items {
		if errs := validation.IsValidLabelValue(st.Labels[LabelNode]); len(errs) != 0 || st.Status.Node != node {
			t.Errorf("%s: label %q (%v), status node %q", st.Name, st.Labels[LabelNode], errs, st.Status.Node)
		}
	}
	var all v1beta1.ServiceL2StatusList
	if err := c.List(ctx, &all); err != nil {
		t.Fatal(err)
	}
	if len(all.Items) != 3 {
		t.Errorf("%d ServiceL2Status objects in all, want 3: the live peer's must stay", len(all.Items))
	}
}
