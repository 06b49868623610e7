package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/keeperlb/keeperlb/api/v1beta1"
	"github.com/keeperlb/keeperlb/internal/config"
	"github.com/keeperlb/keeperlb/internal/configread"
	"github.com/keeperlb/keeperlb/internal/k8smetrics"
	"github.com/keeperlb/keeperlb/internal/kubeobj"
)

// ConfigurationStateName is the name of the ConfigurationState object in which
// the controller reports whether the configuration loaded.
const ConfigurationStateName = "controller"

// ReasonInvalidConfiguration is the Event reason on a configuration object
// that was rejected.
const ReasonInvalidConfiguration = "InvalidConfiguration"

// maxErrorSummary bounds ConfigurationState.status.errorSummary so that a
// broken config with thousands of objects cannot exceed the object size limit.
const maxErrorSummary = 8 << 10

// configSync turns the metallb.io objects of the install namespace into the
// Config the allocator runs on. A config that does not parse is reported (an
// Event on each offending object, ConfigurationState Invalid) and the last
// good one stays in force, so one bad object never costs a Service its address.
type configSync struct {
	client    client.Client
	namespace string
	state     *state
	events    recorder
	// metrics gets every outcome: the config_loaded and config_stale
	// gauges.
	metrics *k8smetrics.Metrics
	log     *slog.Logger
}

// Reconcile implements reconcile.Reconciler; every request means "something
// in the config changed", so it always re-reads the whole set.
func (c *configSync) Reconcile(ctx context.Context, _ reconcile.Request) (reconcile.Result, error) {
	if err := c.state.waitReady(ctx); err != nil {
		return reconcile.Result{}, err
	}
	affected, err := c.sync(ctx)
	if err != nil {
		return reconcile.Result{}, err
	}
	c.state.requeue(affected)
	return reconcile.Result{}, nil
}

// sync loads and applies the configuration, returning the Services whose
// assignment the change may alter.
func (c *configSync) sync(ctx context.Context) ([]string, error) {
	res, objects, err := c.resources(ctx)
	if err != nil {
		return nil, err
	}
	cfg, perr := config.Parse(res)
	if perr != nil {
		c.metrics.Rejected()
		c.log.Warn("configuration rejected; keeping the last good one", "err", perr)
		c.reportInvalid(objects, perr)
		return nil, c.writeState(ctx, v1beta1.ConfigurationResultInvalid, perr.Error())
	}

	c.state.mu.Lock()
	changed := c.state.cfg == nil || !reflect.DeepEqual(c.state.cfg.Pools, cfg.Pools)
	c.state.cfg = cfg
	var affected []string
	if changed {
		affected = c.state.alloc.SetPools(cfg.Pools)
		// A new or larger pool may be what a waiting Service needs.
		affected = append(affected, c.state.pendingKeys()...)
	}
	c.state.mu.Unlock()
	c.metrics.Loaded()
	if changed {
		c.log.Info("configuration loaded", "pools", len(cfg.Pools), "services affected", len(affected))
		c.state.markPoolsDirty()
	}
	return affected, c.writeState(ctx, v1beta1.ConfigurationResultValid, "")
}

// resources lists every configuration object of the install namespace,
// through the same reader as the admission webhook (internal/configread). It
// also returns them by "Kind/name", to attach Events to rejected ones.
func (c *configSync) resources(ctx context.Context) (config.Resources, map[string]client.Object, error) {
	res, err := configread.Read(ctx, c.client, c.namespace)
	if err != nil {
		return res, nil, err
	}
	if err := configread.ListSecrets(ctx, c.client, &res); err != nil {
		return res, nil, err
	}
	return res, configread.Index(&res), nil
}

// reportInvalid records one Warning Event per rejected object, listing every
// field error found in it.
func (c *configSync) reportInvalid(objects map[string]client.Object, err error) {
	var errs config.Errors
	if !errors.As(err, &errs) {
		return
	}
	byObject := map[string][]string{}
	for _, fe := range errs {
		k := fe.Kind + "/" + fe.Name
		byObject[k] = append(byObject[k], fe.Field+": "+fe.Reason)
	}
	keys := make([]string, 0, len(byObject))
	for k := range byObject {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if obj, ok := objects[k]; ok {
			c.events.warnConfig(obj, strings.Join(byObject[k], "; "))
		}
	}
}

// writeState records the outcome in the ConfigurationState named
// "controller", creating it when missing, and writes only on change.
func (c *configSync) writeState(ctx context.Context, result, summary string) error {
	summary = kubeobj.Truncate(summary, maxErrorSummary)
	key := types.NamespacedName{Namespace: c.namespace, Name: ConfigurationStateName}
	cs := &v1beta1.ConfigurationState{}
	if err := c.client.Get(ctx, key, cs); err != nil {
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("reading ConfigurationState %s: %w", key, err)
		}
		cs = &v1beta1.ConfigurationState{ObjectMeta: metav1.ObjectMeta{Namespace: c.namespace, Name: ConfigurationStateName}}
		if err := c.client.Create(ctx, cs); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("creating ConfigurationState %s: %w", key, err)
		}
	}
	cond := metav1.Condition{Type: "Valid", Status: metav1.ConditionTrue, Reason: "ConfigurationLoaded", Message: "the configuration was loaded", ObservedGeneration: cs.Generation}
	if result != v1beta1.ConfigurationResultValid {
		cond.Status, cond.Reason, cond.Message = metav1.ConditionFalse, ReasonInvalidConfiguration, summary
	}
	conds := append([]metav1.Condition(nil), cs.Status.Conditions...)
	condChanged := meta.SetStatusCondition(&conds, cond)
	if !condChanged && cs.Status.Result == result && cs.Status.ErrorSummary == summary {
		return nil
	}
	body, err := json.Marshal(map[string]any{"status": v1beta1.ConfigurationStateStatus{Result: result, ErrorSummary: summary, Conditions: conds}})
	if err != nil {
		return fmt.Errorf("encoding ConfigurationState: %w", err)
	}
	if err := c.client.Status().Patch(ctx, cs, client.RawPatch(types.MergePatchType, body)); err != nil {
		return fmt.Errorf("writing ConfigurationState %s: %w", key, err)
	}
	return nil
}

// warnConfig records a Warning on a rejected configuration object.
func (r recorder) warnConfig(obj runtime.Object, msg string) {
	if r.rec != nil {
		r.rec.Eventf(obj, nil, corev1.EventTypeWarning, ReasonInvalidConfiguration, "LoadConfiguration", "%s", msg)
	}
}
