package install

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"reflect"
	"slices"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/keeperlb/keeperlb/internal/controller"
	"github.com/keeperlb/keeperlb/internal/membership"
	"github.com/keeperlb/keeperlb/internal/metricsauth"
	"github.com/keeperlb/keeperlb/internal/webhook"
)

// Fixed object names, shared with the binaries' flag defaults
// (notes/interfaces.md).
const (
	ControllerName       = "keeperlb-controller"
	SpeakerName          = "keeperlb-speaker"
	WebhookServiceName   = "keeperlb-webhook-service"
	WebhookConfigName    = "keeperlb-webhook-configuration"
	MemberlistSecretName = "keeperlb-memberlist"
	MemberlistSecretKey  = controller.MemberlistKeyField
	// MemberlistSecondaryKey is the Secret key of the second heartbeat
	// key, accepted during a rotation.
	MemberlistSecondaryKey = "secondarykey"
	BGPPeerCRDName         = "bgppeers.metallb.io"

	MetricsPort = 7472
	// MetricsReaderRole is the ClusterRole allowed to scrape.
	MetricsReaderRole = metricsauth.ReaderRole
	HealthPort        = 7473
	WebhookPort       = 9443
	WebhookCertDir    = "/tmp/k8s-webhook-server/serving-certs"
)

// KeySource says who provides the speakers' heartbeat key, the Secret
// Want.MemberlistSecret.
type KeySource int

const (
	// KeyFromController: the controller creates the Secret with a random
	// key at run time (its --memberlist-secret-name names it). The
	// manifests carry none, so rendering them twice gives the same bytes.
	KeyFromController KeySource = iota
	// KeyFromInstall: the manifests carry the Secret with a fixed key
	// (Helm's speaker.memberlist.secretKey); the controller creates none.
	KeyFromInstall
	// KeyExternal: the user made the Secret; neither the manifests nor the
	// controller create it (Helm's speaker.memberlist.existingSecret).
	KeyExternal
)

// String names the source in messages.
func (k KeySource) String() string {
	switch k {
	case KeyFromController:
		return "the controller"
	case KeyFromInstall:
		return "the install"
	case KeyExternal:
		return "an external Secret"
	}
	return fmt.Sprintf("KeySource(%d)", int(k))
}

// Want is what an install must contain; Check compares objects with it.
type Want struct {
	// Namespace is the install namespace.
	Namespace string
	// ControllerReplicas is the controller Deployment's replica count.
	ControllerReplicas int32
	// MemberlistSecret is the Secret the speaker's heartbeat key comes
	// from; empty means MemberlistSecretName.
	MemberlistSecret string
	// MemberlistKey says who provides that Secret; the zero value is the
	// controller, at run time.
	MemberlistKey KeySource
	// Webhook says the webhooks are on: their Service, the
	// ValidatingWebhookConfiguration and the BGPPeer conversion must be
	// there, and are checked against internal/webhook.
	Webhook bool
	// ServiceMonitors says the Prometheus Operator ServiceMonitors must be
	// there; otherwise there must be none.
	ServiceMonitors bool
	// CRDs are the generated CustomResourceDefinitions (config/crd); each
	// must be installed with its versions unchanged.
	CRDs []*apiextensionsv1.CustomResourceDefinition
	// CABundleInjected says the objects were read back from a cluster
	// where the controller has injected its CA; manifests must not carry
	// one, stored objects may.
	CABundleInjected bool
	// PlainHTTPMetrics says the install opted out of HTTPS metrics
	// (--metrics-secure=false): the endpoints then answer anyone.
	PlainHTTPMetrics bool
	// RBAC holds the generated roles (config/rbac/*/role.yaml); the
	// install must grant exactly their rules, bound to the components'
	// ServiceAccounts.
	RBAC []*unstructured.Unstructured
}

// Check holds the install policy. It returns every way objs differ from
// want, each naming the object and field, joined; nil means none.
func Check(objs []*unstructured.Unstructured, want Want) error {
	c := &checker{objs: objs, want: want}
	if c.want.MemberlistSecret == "" {
		c.want.MemberlistSecret = MemberlistSecretName
	}
	c.namespaces()
	c.crds()
	c.rbac()
	ctrl := c.controller()
	spk := c.speaker()
	c.memberlist(ctrl, spk)
	c.metricsServices(ctrl, spk)
	c.webhook(ctrl)
	c.serviceMonitors()
	c.metricsReader()
	return errors.Join(c.errs...)
}

type checker struct {
	objs []*unstructured.Unstructured
	want Want
	errs []error
}

func (c *checker) fail(obj, format string, args ...any) {
	c.errs = append(c.errs, fmt.Errorf("%s: %s", obj, fmt.Sprintf(format, args...)))
}

// get finds kind/name and decodes it into out; a missing object is a
// failure.
func (c *checker) get(kind, name string, out any) bool {
	u := Find(c.objs, kind, name)
	if u == nil {
		c.fail(kind+" "+name, "missing")
		return false
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, out, true); err != nil {
		c.fail(kind+" "+name, "does not decode: %v", err)
		return false
	}
	return true
}

// clusterScoped lists the kinds an install may have outside its
// namespace.
var clusterScoped = map[string]bool{
	"Namespace": true, "CustomResourceDefinition": true, "ClusterRole": true,
	"ClusterRoleBinding": true, "ValidatingWebhookConfiguration": true,
}

func (c *checker) namespaces() {
	for _, o := range c.objs {
		ns := o.GetNamespace()
		switch {
		case clusterScoped[o.GetKind()] && ns != "":
			c.fail(o.GetKind()+" "+o.GetName(), "cluster-scoped but names namespace %q", ns)
		case !clusterScoped[o.GetKind()] && ns != c.want.Namespace:
			c.fail(o.GetKind()+" "+o.GetName(), "namespace is %q, want the install namespace %q", ns, c.want.Namespace)
		}
	}
}

func (c *checker) crds() {
	for _, gen := range c.want.CRDs {
		var got apiextensionsv1.CustomResourceDefinition
		if !c.get("CustomResourceDefinition", gen.Name, &got) {
			continue
		}
		what := "CustomResourceDefinition " + gen.Name
		if !reflect.DeepEqual(got.Spec.Versions, gen.Spec.Versions) || got.Spec.Group != gen.Spec.Group || !reflect.DeepEqual(got.Spec.Names, gen.Spec.Names) || got.Spec.Scope != gen.Spec.Scope {
			c.fail(what, "spec differs from the generated config/crd/bases (regenerate, or fix the overlay)")
		}
		conv := got.Spec.Conversion
		if gen.Name != BGPPeerCRDName || !c.want.Webhook {
			if conv != nil && conv.Strategy != apiextensionsv1.NoneConverter {
				c.fail(what, "spec.conversion.strategy is %s, want None", conv.Strategy)
			}
			continue
		}
		if conv == nil || conv.Strategy != apiextensionsv1.WebhookConverter || conv.Webhook == nil || conv.Webhook.ClientConfig == nil || conv.Webhook.ClientConfig.Service == nil {
			c.fail(what, "spec.conversion must be a Webhook served by Service %s", WebhookServiceName)
			continue
		}
		svc := conv.Webhook.ClientConfig.Service
		if svc.Name != WebhookServiceName || svc.Namespace != c.want.Namespace || svc.Path == nil || *svc.Path != webhook.ConvertPath {
			c.fail(what, "conversion webhook is %s/%s%s, want %s/%s%s", svc.Namespace, svc.Name, deref(svc.Path), c.want.Namespace, WebhookServiceName, webhook.ConvertPath)
		}
		if svc.Port != nil && *svc.Port != 443 {
			c.fail(what, "conversion webhook port is %d, want 443", *svc.Port)
		}
		if !slices.Equal(conv.Webhook.ConversionReviewVersions, []string{"v1"}) {
			c.fail(what, "conversionReviewVersions is %v, want [v1]", conv.Webhook.ConversionReviewVersions)
		}
		if len(conv.Webhook.ClientConfig.CABundle) > 0 && !c.want.CABundleInjected {
			c.fail(what, "the manifest sets a caBundle; the controller injects it, and an applied one would fight it")
		}
	}
}

func (c *checker) rbac() {
	for _, gen := range c.want.RBAC {
		what := gen.GetKind() + " " + gen.GetName()
		// Role and ClusterRole share the fields compared here.
		var genRole, got rbacv1.ClusterRole
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(gen.Object, &genRole); err != nil {
			c.fail(what, "generated role does not decode: %v", err)
			continue
		}
		if !c.get(gen.GetKind(), gen.GetName(), &got) {
			continue
		}
		if !reflect.DeepEqual(got.Rules, genRole.Rules) {
			c.fail(what, "rules differ from the generated config/rbac (least privilege is what the markers ask for, no more)")
		}
		// The component's ServiceAccount must be bound to it.
		sa := gen.GetName()
		if !c.get("ServiceAccount", sa, &corev1.ServiceAccount{}) {
			continue
		}
		var b rbacv1.ClusterRoleBinding
		if !c.get(gen.GetKind()+"Binding", gen.GetName(), &b) {
			continue
		}
		if b.RoleRef.Kind != gen.GetKind() || b.RoleRef.Name != gen.GetName() {
			c.fail(gen.GetKind()+"Binding "+b.Name, "binds %s %s, want %s", b.RoleRef.Kind, b.RoleRef.Name, what)
		}
		wantSubject := rbacv1.Subject{Kind: "ServiceAccount", Name: sa, Namespace: c.want.Namespace}
		if !slices.Equal(b.Subjects, []rbacv1.Subject{wantSubject}) {
			c.fail(gen.GetKind()+"Binding "+b.Name, "subjects are %v, want only ServiceAccount %s/%s", b.Subjects, c.want.Namespace, sa)
		}
	}
}

// podChecks are the rules every KeeperLB container follows.
func (c *checker) container(what string, pod *corev1.PodSpec, ct *corev1.Container) {
	sc := ct.SecurityContext
	if sc == nil {
		c.fail(what, "container %s has no securityContext", ct.Name)
		return
	}
	if sc.Privileged != nil && *sc.Privileged {
		c.fail(what, "container %s is privileged", ct.Name)
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		c.fail(what, "container %s must set allowPrivilegeEscalation: false", ct.Name)
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		c.fail(what, "container %s must set readOnlyRootFilesystem: true", ct.Name)
	}
	if sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		c.fail(what, "container %s must drop ALL capabilities", ct.Name)
	}
	seccomp := sc.SeccompProfile
	if seccomp == nil && pod.SecurityContext != nil {
		seccomp = pod.SecurityContext.SeccompProfile
	}
	if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
		c.fail(what, "container %s must run with the RuntimeDefault seccomp profile", ct.Name)
	}
	if pod.HostPID || pod.HostIPC {
		c.fail(what, "pod shares the host PID or IPC namespace")
	}
	c.probe(what, ct, ct.LivenessProbe, "livenessProbe", "/healthz")
	c.probe(what, ct, ct.ReadinessProbe, "readinessProbe", "/readyz")
	if port(ct, "metrics") == 0 {
		c.fail(what, "container %s has no port named metrics", ct.Name)
	}
	plain := slices.Contains(ct.Args, "--metrics-secure=false")
	if plain && !c.want.PlainHTTPMetrics {
		c.fail(what, "container %s serves metrics over plain HTTP (--metrics-secure=false) to anyone who reaches the port; that must be asked for", ct.Name)
	}
	if !plain && c.want.PlainHTTPMetrics {
		c.fail(what, "container %s serves metrics over HTTPS but plain HTTP was asked for", ct.Name)
	}
}

// metricsReader checks the role that lets a scraper in: get on /metrics,
// nothing else.
func (c *checker) metricsReader() {
	var r rbacv1.ClusterRole
	if !c.get("ClusterRole", MetricsReaderRole, &r) {
		return
	}
	want := []rbacv1.PolicyRule{{NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}}}
	if !reflect.DeepEqual(r.Rules, want) {
		c.fail("ClusterRole "+MetricsReaderRole, "rules are %v, want only get on /metrics", r.Rules)
	}
}

func (c *checker) probe(what string, ct *corev1.Container, p *corev1.Probe, field, path string) {
	if p == nil || p.HTTPGet == nil {
		c.fail(what, "container %s: %s must be an httpGet of %s", ct.Name, field, path)
		return
	}
	if p.HTTPGet.Path != path {
		c.fail(what, "container %s: %s path is %s, want %s", ct.Name, field, p.HTTPGet.Path, path)
	}
	if resolvePort(ct, p.HTTPGet.Port) != port(ct, "health") || port(ct, "health") == 0 {
		c.fail(what, "container %s: %s must use the health port", ct.Name, field)
	}
}

func (c *checker) controller() *appsv1.Deployment {
	var d appsv1.Deployment
	if !c.get("Deployment", ControllerName, &d) {
		return nil
	}
	what := "Deployment " + ControllerName
	if d.Spec.Replicas == nil || *d.Spec.Replicas != c.want.ControllerReplicas {
		c.fail(what, "spec.replicas is %v, want %d", deref(d.Spec.Replicas), c.want.ControllerReplicas)
	}
	pod := &d.Spec.Template.Spec
	if pod.ServiceAccountName != ControllerName {
		c.fail(what, "serviceAccountName is %q, want %s", pod.ServiceAccountName, ControllerName)
	}
	if pod.HostNetwork {
		c.fail(what, "the controller must not use the host network")
	}
	psc := pod.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
		c.fail(what, "pod securityContext must set runAsNonRoot: true")
	}
	if psc != nil && psc.RunAsUser != nil && *psc.RunAsUser == 0 {
		c.fail(what, "pod runs as user 0")
	}
	if len(pod.Containers) != 1 {
		c.fail(what, "has %d containers, want 1", len(pod.Containers))
		return &d
	}
	ct := &pod.Containers[0]
	c.container(what, pod, ct)
	if ct.SecurityContext != nil && ct.SecurityContext.Capabilities != nil && len(ct.SecurityContext.Capabilities.Add) > 0 {
		c.fail(what, "the controller adds capabilities %v; it needs none", ct.SecurityContext.Capabilities.Add)
	}
	if ct.SecurityContext != nil && ct.SecurityContext.RunAsUser != nil && *ct.SecurityContext.RunAsUser == 0 {
		c.fail(what, "container runs as user 0")
	}
	if !slices.Contains(ct.Args, "--leader-elect=true") && !slices.Contains(ct.Args, "--leader-elect") {
		c.fail(what, "args %v do not turn leader election on (--leader-elect=true)", ct.Args)
	}
	c.namespaceArg(what, ct)
	// The leader makes its Pod the Lease's owner, so that uninstalling
	// deletes the Lease (see internal/controller/leaseowner.go).
	c.downwardArg(what, ct, "--pod-name", "POD_NAME", "metadata.name")
	c.downwardArg(what, ct, "--pod-uid", "POD_UID", "metadata.uid")
	if port(ct, "metrics") != MetricsPort || port(ct, "health") != HealthPort {
		c.fail(what, "metrics and health ports are %d and %d, want %d and %d", port(ct, "metrics"), port(ct, "health"), MetricsPort, HealthPort)
	}
	if c.want.Webhook {
		if port(ct, "webhook") != WebhookPort {
			c.fail(what, "no port webhook %d", WebhookPort)
		}
		for _, arg := range []string{
			"--webhook-service-name=" + WebhookServiceName,
			"--webhook-configuration-name=" + WebhookConfigName,
		} {
			if !slices.Contains(ct.Args, arg) {
				c.fail(what, "args %v lack %s", ct.Args, arg)
			}
		}
		// The certificate folder must be writable on a read-only root.
		mounted := false
		for _, m := range ct.VolumeMounts {
			if m.MountPath == WebhookCertDir && !m.ReadOnly {
				mounted = true
			}
		}
		if !mounted {
			c.fail(what, "no writable volume at %s for the webhook certificate", WebhookCertDir)
		}
	} else if !slices.Contains(ct.Args, "--disable-webhook") {
		c.fail(what, "webhooks are off but args %v lack --disable-webhook", ct.Args)
	}
	return &d
}

func (c *checker) speaker() *appsv1.DaemonSet {
	var ds appsv1.DaemonSet
	if !c.get("DaemonSet", SpeakerName, &ds) {
		return nil
	}
	what := "DaemonSet " + SpeakerName
	pod := &ds.Spec.Template.Spec
	if pod.ServiceAccountName != SpeakerName {
		c.fail(what, "serviceAccountName is %q, want %s", pod.ServiceAccountName, SpeakerName)
	}
	if !pod.HostNetwork {
		c.fail(what, "the speaker must use the host network (it announces the node's addresses)")
	}
	cpTolerated := false
	for _, t := range pod.Tolerations {
		if t.Key == "node-role.kubernetes.io/control-plane" && t.Operator == corev1.TolerationOpExists && (t.Effect == corev1.TaintEffectNoSchedule || t.Effect == "") {
			cpTolerated = true
		}
	}
	if !cpTolerated {
		c.fail(what, "does not tolerate node-role.kubernetes.io/control-plane:NoSchedule")
	}
	if len(pod.Containers) != 1 {
		c.fail(what, "has %d containers, want 1", len(pod.Containers))
		return &ds
	}
	ct := &pod.Containers[0]
	c.container(what, pod, ct)
	if sc := ct.SecurityContext; sc != nil && sc.Capabilities != nil && !slices.Equal(sc.Capabilities.Add, []corev1.Capability{"NET_RAW"}) {
		c.fail(what, "adds capabilities %v, want exactly [NET_RAW]", sc.Capabilities.Add)
	}
	c.namespaceArg(what, ct)
	env := map[string]corev1.EnvVar{}
	for _, e := range ct.Env {
		env[e.Name] = e
	}
	if e, ok := env["NODE_NAME"]; !ok || e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != "spec.nodeName" {
		c.fail(what, "env NODE_NAME must come from fieldRef spec.nodeName")
	}
	e, ok := env["METALLB_ML_SECRET_KEY"]
	if !ok || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil ||
		e.ValueFrom.SecretKeyRef.Name != c.want.MemberlistSecret || e.ValueFrom.SecretKeyRef.Key != MemberlistSecretKey ||
		(e.ValueFrom.SecretKeyRef.Optional != nil && *e.ValueFrom.SecretKeyRef.Optional) {
		c.fail(what, "env METALLB_ML_SECRET_KEY must come from Secret %s key %s (not optional)", c.want.MemberlistSecret, MemberlistSecretKey)
	}
	return &ds
}

// memberlist checks that exactly one party provides the speakers'
// heartbeat key, the one Want names: the controller (no Secret in the
// manifests, and the controller creates the Secret the speakers read), the
// install (the Secret with a long enough key, and the controller creates
// none) or the user (no Secret, and the controller creates none).
func (c *checker) memberlist(ctrl *appsv1.Deployment, spk *appsv1.DaemonSet) {
	name := c.want.MemberlistSecret
	secret := "Secret " + name
	rendered := Find(c.objs, "Secret", name) != nil
	creates, known := c.controllerCreates(ctrl)
	ctrlWhat := "Deployment " + ControllerName
	switch c.want.MemberlistKey {
	case KeyFromController:
		if rendered {
			c.fail(secret, "is in the manifests, but the controller provides the heartbeat key at run time: a key the install renders is new on every `helm template`, and each GitOps sync would roll the speakers")
		}
		if !known {
			return
		}
		switch reads := speakerKeyRef(spk); {
		case creates == "":
			c.fail(ctrlWhat, "args: --memberlist-secret-name is empty, so nothing creates Secret %s and the speakers never start", name)
		case creates != name:
			c.fail(ctrlWhat, "args: --memberlist-secret-name is %q, but the speakers read Secret %s", creates, name)
		case reads != "" && reads != creates:
			c.fail(ctrlWhat, "args: --memberlist-secret-name is %q, but the speakers' METALLB_ML_SECRET_KEY reads Secret %s", creates, reads)
		}
	case KeyFromInstall:
		var s corev1.Secret
		if c.get("Secret", name, &s) {
			for _, k := range []string{MemberlistSecretKey, MemberlistSecondaryKey} {
				key, ok := s.Data[k]
				if !ok {
					str, inString := s.StringData[k]
					key, ok = []byte(str), inString
				}
				switch {
				case k == MemberlistSecretKey && len(key) < membership.MinKeyLen:
					c.fail(secret, "data.%s holds %d bytes; a speaker refuses a key shorter than %d", k, len(key), membership.MinKeyLen)
				case k == MemberlistSecondaryKey && ok && len(key) < membership.MinKeyLen:
					c.fail(secret, "data.%s holds %d bytes; want none or at least %d", k, len(key), membership.MinKeyLen)
				}
			}
		}
		if known && creates != "" {
			c.fail(ctrlWhat, "args: --memberlist-secret-name=%s: the controller would create a second key, but the install provides Secret %s; it must be empty", creates, name)
		}
	case KeyExternal:
		if rendered {
			c.fail(secret, "is external (the user's) but the install creates it")
		}
		if known && creates != "" {
			c.fail(ctrlWhat, "args: --memberlist-secret-name=%s: the controller would create a key, but the user provides Secret %s; it must be empty", creates, name)
		}
	default:
		c.fail("Want", "MemberlistKey %v is not a key source", c.want.MemberlistKey)
	}
}

// controllerCreates returns the Secret the controller creates a heartbeat
// key in, its effective --memberlist-secret-name: the manifest's args
// parsed by the controller's own flag definitions, defaults included.
// known is false when there is no controller or its args do not parse.
func (c *checker) controllerCreates(d *appsv1.Deployment) (name string, known bool) {
	if d == nil || len(d.Spec.Template.Spec.Containers) != 1 {
		return "", false
	}
	fs := flag.NewFlagSet(ControllerName, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	opts := controller.DefaultOptions()
	opts.BindFlags(fs)
	args := d.Spec.Template.Spec.Containers[0].Args
	if err := fs.Parse(args); err != nil {
		c.fail("Deployment "+ControllerName, "args %v do not parse with the controller's flags: %v", args, err)
		return "", false
	}
	return opts.MemberlistSecret, true
}

// speakerKeyRef returns the Secret the speaker's METALLB_ML_SECRET_KEY
// comes from, or "".
func speakerKeyRef(ds *appsv1.DaemonSet) string {
	if ds == nil || len(ds.Spec.Template.Spec.Containers) != 1 {
		return ""
	}
	for _, e := range ds.Spec.Template.Spec.Containers[0].Env {
		if e.Name == "METALLB_ML_SECRET_KEY" && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			return e.ValueFrom.SecretKeyRef.Name
		}
	}
	return ""
}

// namespaceArg checks that the component is told its install namespace
// by the API (the downward API), so that a namespace override in kustomize
// or Helm cannot leave it reading another namespace.
func (c *checker) namespaceArg(what string, ct *corev1.Container) {
	if !slices.Contains(ct.Args, "--namespace=$(POD_NAMESPACE)") {
		c.fail(what, "args %v lack --namespace=$(POD_NAMESPACE)", ct.Args)
		return
	}
	for _, e := range ct.Env {
		if e.Name == "POD_NAMESPACE" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.namespace" {
			return
		}
	}
	c.fail(what, "env POD_NAMESPACE must come from fieldRef metadata.namespace")
}

// downwardArg checks that flag is set to $(env) and env comes from the
// downward API's field.
func (c *checker) downwardArg(what string, ct *corev1.Container, flag, env, field string) {
	if !slices.Contains(ct.Args, flag+"=$("+env+")") {
		c.fail(what, "args %v lack %s=$(%s)", ct.Args, flag, env)
		return
	}
	for _, e := range ct.Env {
		if e.Name == env && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == field {
			return
		}
	}
	c.fail(what, "env %s must come from fieldRef %s", env, field)
}

func (c *checker) metricsServices(ctrl *appsv1.Deployment, spk *appsv1.DaemonSet) {
	for _, m := range []struct {
		name string
		pod  *corev1.PodTemplateSpec
	}{
		{ControllerName + "-metrics", podTemplate(ctrl)},
		{SpeakerName + "-metrics", podTemplateDS(spk)},
	} {
		var svc corev1.Service
		if !c.get("Service", m.name, &svc) || m.pod == nil {
			continue
		}
		c.serviceSelects("Service "+m.name, &svc, m.pod, "metrics")
	}
}

// serviceSelects checks that svc selects the pods of tmpl and that its
// single port reaches the named container port.
func (c *checker) serviceSelects(what string, svc *corev1.Service, tmpl *corev1.PodTemplateSpec, portName string) {
	if len(svc.Spec.Selector) == 0 {
		c.fail(what, "has no selector")
	}
	for k, v := range svc.Spec.Selector {
		if tmpl.Labels[k] != v {
			c.fail(what, "selector %s=%s does not match the pods", k, v)
		}
	}
	if len(svc.Spec.Ports) != 1 || len(tmpl.Spec.Containers) == 0 {
		c.fail(what, "want exactly one port")
		return
	}
	ct := &tmpl.Spec.Containers[0]
	if got := resolvePort(ct, svc.Spec.Ports[0].TargetPort); got == 0 || got != port(ct, portName) {
		c.fail(what, "targetPort %s does not reach the pods' %s port", svc.Spec.Ports[0].TargetPort.String(), portName)
	}
}

func (c *checker) webhook(ctrl *appsv1.Deployment) {
	svcObj := Find(c.objs, "Service", WebhookServiceName)
	vwcObj := Find(c.objs, "ValidatingWebhookConfiguration", WebhookConfigName)
	if !c.want.Webhook {
		if svcObj != nil || vwcObj != nil {
			c.fail("webhooks", "are off, but the Service or ValidatingWebhookConfiguration is installed")
		}
		return
	}
	var svc corev1.Service
	if c.get("Service", WebhookServiceName, &svc) && ctrl != nil {
		c.serviceSelects("Service "+WebhookServiceName, &svc, &ctrl.Spec.Template, "webhook")
		if len(svc.Spec.Ports) == 1 && svc.Spec.Ports[0].Port != 443 {
			c.fail("Service "+WebhookServiceName, "port is %d, want 443", svc.Spec.Ports[0].Port)
		}
	}
	var vwc admissionregistrationv1.ValidatingWebhookConfiguration
	if !c.get("ValidatingWebhookConfiguration", WebhookConfigName, &vwc) {
		return
	}
	want := webhook.ValidatingWebhooks(func(path string) admissionregistrationv1.WebhookClientConfig {
		return admissionregistrationv1.WebhookClientConfig{Service: &admissionregistrationv1.ServiceReference{
			Namespace: c.want.Namespace, Name: WebhookServiceName, Path: &path,
		}}
	})
	for _, wh := range vwc.Webhooks {
		if len(wh.ClientConfig.CABundle) > 0 && !c.want.CABundleInjected {
			c.fail("ValidatingWebhookConfiguration "+WebhookConfigName, "webhook %s sets a caBundle; the controller injects it", wh.Name)
		}
	}
	got, exp := projectWebhooks(vwc.Webhooks), projectWebhooks(want)
	if !reflect.DeepEqual(got, exp) {
		c.fail("ValidatingWebhookConfiguration "+WebhookConfigName, "webhooks differ from internal/webhook.ValidatingWebhooks:\n got: %+v\nwant: %+v", got, exp)
	}
}

// webhookView is the part of a validating webhook that is the contract
// with the controller; fields the API server defaults (timeoutSeconds,
// empty selectors, rule scope, port 443) are left out so that stored
// objects compare too.
type webhookView struct {
	Name, Service, Path, FailurePolicy, MatchPolicy, SideEffects string
	ReviewVersions                                               []string
	Operations, Groups, Versions, Resources                      []string
}

func projectWebhooks(whs []admissionregistrationv1.ValidatingWebhook) []webhookView {
	out := make([]webhookView, 0, len(whs))
	for _, wh := range whs {
		v := webhookView{
			Name:           wh.Name,
			FailurePolicy:  fmt.Sprint(deref(wh.FailurePolicy)),
			MatchPolicy:    fmt.Sprint(deref(wh.MatchPolicy)),
			SideEffects:    fmt.Sprint(deref(wh.SideEffects)),
			ReviewVersions: wh.AdmissionReviewVersions,
		}
		if s := wh.ClientConfig.Service; s != nil {
			v.Service = s.Namespace + "/" + s.Name
			if s.Port != nil && *s.Port != 443 {
				v.Service += fmt.Sprintf(":%d", *s.Port)
			}
			v.Path = fmt.Sprint(deref(s.Path))
		}
		if wh.ClientConfig.URL != nil {
			v.Service = "url " + *wh.ClientConfig.URL
		}
		for _, r := range wh.Rules {
			for _, op := range r.Operations {
				v.Operations = append(v.Operations, string(op))
			}
			v.Groups = append(v.Groups, r.APIGroups...)
			v.Versions = append(v.Versions, r.APIVersions...)
			v.Resources = append(v.Resources, r.Resources...)
		}
		out = append(out, v)
	}
	return out
}

func (c *checker) serviceMonitors() {
	for _, name := range []string{ControllerName, SpeakerName} {
		sm := Find(c.objs, "ServiceMonitor", name)
		switch {
		case sm == nil && c.want.ServiceMonitors:
			c.fail("ServiceMonitor "+name, "missing")
		case sm != nil && !c.want.ServiceMonitors:
			c.fail("ServiceMonitor "+name, "installed but not asked for (it needs the Prometheus Operator's CRDs)")
		case sm != nil:
			sel, _, _ := unstructured.NestedStringMap(sm.Object, "spec", "selector", "matchLabels")
			svc := Find(c.objs, "Service", name+"-metrics")
			if svc == nil {
				c.fail("ServiceMonitor "+name, "its metrics Service %s-metrics is missing", name)
				continue
			}
			labels := svc.GetLabels()
			for k, v := range sel {
				if labels[k] != v {
					c.fail("ServiceMonitor "+name, "selector %s=%s does not match Service %s", k, v, svc.GetName())
				}
			}
			if len(sel) == 0 {
				c.fail("ServiceMonitor "+name, "has no selector")
			}
			c.scrapeAuth(sm)
		}
	}
}

// scrapeAuth checks that a ServiceMonitor scrapes the way the endpoints
// serve: HTTPS with Prometheus's own token, or plain HTTP when asked.
func (c *checker) scrapeAuth(sm *unstructured.Unstructured) {
	eps, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
	for i, raw := range eps {
		ep, _ := raw.(map[string]any)
		scheme, _, _ := unstructured.NestedString(ep, "scheme")
		token, _, _ := unstructured.NestedString(ep, "bearerTokenFile")
		field := fmt.Sprintf("spec.endpoints[%d]", i)
		switch {
		case c.want.PlainHTTPMetrics && scheme == "https":
			c.fail("ServiceMonitor "+sm.GetName(), "%s.scheme is https but the endpoints serve plain HTTP", field)
		case !c.want.PlainHTTPMetrics && scheme != "https":
			c.fail("ServiceMonitor "+sm.GetName(), "%s.scheme is %q, want https (the endpoints serve HTTPS)", field, scheme)
		case !c.want.PlainHTTPMetrics && token == "":
			c.fail("ServiceMonitor "+sm.GetName(), "%s has no bearerTokenFile: the endpoints refuse a scrape without a token", field)
		}
	}
}

func podTemplate(d *appsv1.Deployment) *corev1.PodTemplateSpec {
	if d == nil {
		return nil
	}
	return &d.Spec.Template
}

func podTemplateDS(d *appsv1.DaemonSet) *corev1.PodTemplateSpec {
	if d == nil {
		return nil
	}
	return &d.Spec.Template
}

// port returns the container port with the given name, or 0.
func port(ct *corev1.Container, name string) int32 {
	for _, p := range ct.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	return 0
}

// resolvePort turns a named or numbered port into a number, 0 when the
// name is unknown.
func resolvePort(ct *corev1.Container, p intstr.IntOrString) int32 {
	if p.Type == intstr.String {
		return port(ct, p.StrVal)
	}
	return p.IntVal
}

func deref[T any](p *T) any {
	if p == nil {
		return "<unset>"
	}
	return *p
}
