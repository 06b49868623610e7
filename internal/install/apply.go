package install

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
)

// ApplyOptions configures Apply.
type ApplyOptions struct {
	// FieldManager owns the applied fields; empty means "keeperlb-install".
	FieldManager string
	// DryRun asks the API server to validate and admit every object
	// without storing it (dryRun=All). CRDs are not waited for.
	DryRun bool
	// EstablishTimeout bounds the wait for each CRD; zero means 30s.
	EstablishTimeout time.Duration
}

// Applied is what Apply did.
type Applied struct {
	// Objects are the objects as the API server returned them.
	Objects []*unstructured.Unstructured
	// Warnings are the API server's warnings (deprecated APIs, fields it
	// would drop, ...), in the order received.
	Warnings []string
}

// Apply server-side applies objs the way `kubectl apply --server-side
// --force-conflicts --validate=strict` does: CustomResourceDefinitions
// first, waiting until each is established, then Namespaces, then
// everything else in order. Unknown or duplicate fields are errors
// (fieldValidation=Strict), so a typo in a manifest cannot pass unnoticed.
// The first refused object stops it, with an error naming the object.
func Apply(ctx context.Context, cfg *rest.Config, objs []*unstructured.Unstructured, opts ApplyOptions) (*Applied, error) {
	if opts.FieldManager == "" {
		opts.FieldManager = "keeperlb-install"
	}
	if opts.EstablishTimeout == 0 {
		opts.EstablishTimeout = 30 * time.Second
	}
	warn := &warnings{}
	cfg = rest.CopyConfig(cfg)
	cfg.WarningHandler = warn
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("building dynamic client: %w", err)
	}
	disc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("building discovery client: %w", err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disc))

	var crds, namespaces, rest []*unstructured.Unstructured
	for _, o := range objs {
		switch o.GroupVersionKind().GroupKind() {
		case schema.GroupKind{Group: "apiextensions.k8s.io", Kind: "CustomResourceDefinition"}:
			crds = append(crds, o)
		case schema.GroupKind{Kind: "Namespace"}:
			namespaces = append(namespaces, o)
		default:
			rest = append(rest, o)
		}
	}
	out := &Applied{}
	applyAll := func(list []*unstructured.Unstructured) error {
		for _, o := range list {
			got, err := applyOne(ctx, dyn, mapper, o, opts)
			if err != nil {
				return err
			}
			out.Objects = append(out.Objects, got)
		}
		return nil
	}
	if err := applyAll(crds); err != nil {
		return nil, err
	}
	if !opts.DryRun && len(crds) > 0 {
		for _, o := range crds {
			if err := waitEstablished(ctx, dyn, o.GetName(), opts.EstablishTimeout); err != nil {
				return nil, err
			}
		}
		// The new kinds are served now; forget what discovery said before.
		mapper.Reset()
	}
	if err := applyAll(namespaces); err != nil {
		return nil, err
	}
	if err := applyAll(rest); err != nil {
		return nil, err
	}
	out.Warnings = warn.list()
	return out, nil
}

var crdResource = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

func applyOne(ctx context.Context, dyn dynamic.Interface, mapper meta.RESTMapper, o *unstructured.Unstructured, opts ApplyOptions) (*unstructured.Unstructured, error) {
	gvk := o.GroupVersionKind()
	what := fmt.Sprintf("%s %s", gvk.Kind, objectName(o))
	mapping, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return nil, fmt.Errorf("applying %s: the API server does not serve %s: %w", what, gvk, err)
	}
	var ri dynamic.ResourceInterface = dyn.Resource(mapping.Resource)
	if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
		if o.GetNamespace() == "" {
			return nil, fmt.Errorf("applying %s: namespaced but names no namespace", what)
		}
		ri = dyn.Resource(mapping.Resource).Namespace(o.GetNamespace())
	}
	body, err := json.Marshal(o.Object)
	if err != nil {
		return nil, fmt.Errorf("applying %s: encoding: %w", what, err)
	}
	force := true
	po := metav1.PatchOptions{FieldManager: opts.FieldManager, Force: &force, FieldValidation: "Strict"}
	if opts.DryRun {
		po.DryRun = []string{metav1.DryRunAll}
	}
	got, err := ri.Patch(ctx, o.GetName(), types.ApplyPatchType, body, po)
	if err != nil {
		return nil, fmt.Errorf("applying %s: %w", what, err)
	}
	return got, nil
}

func waitEstablished(ctx context.Context, dyn dynamic.Interface, name string, timeout time.Duration) error {
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		crd, err := dyn.Resource(crdResource).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
		for _, c := range conds {
			m, _ := c.(map[string]any)
			if m["type"] == "Established" && m["status"] == "True" {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for CustomResourceDefinition %s to be established: %w", name, err)
	}
	return nil
}

func objectName(o *unstructured.Unstructured) string {
	if o.GetNamespace() != "" {
		return o.GetNamespace() + "/" + o.GetName()
	}
	return o.GetName()
}

// warnings records the API server's Warning headers.
type warnings struct {
	mu   sync.Mutex
	msgs []string
}

// HandleWarningHeader implements rest.WarningHandler.
func (w *warnings) HandleWarningHeader(code int, _ string, text string) {
	if code != 299 || text == "" {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, text)
}

func (w *warnings) list() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.msgs...)
}
