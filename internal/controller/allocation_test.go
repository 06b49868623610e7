package controller_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/keeperlb/keeperlb/api/v1beta1"
	"github.com/keeperlb/keeperlb/internal/controller"
	"github.com/keeperlb/keeperlb/internal/request"
)

func TestAllocatesFromPoolAndReleasesOnDelete(t *testing.T) {
	e := newEnv(t)
	e.pool("web", []string{"198.18.10.0/30"})
	e.start()

	a := e.createSvc("a")
	got := e.waitIPs("a", "198.18.10.0")
	if p := got.Annotations[request.AnnotationAllocatedFromPool]; p != "web" {
		t.Fatalf("pool annotation = %q, want web", p)
	}
	e.createSvc("b")
	e.waitIPs("b", "198.18.10.1")

	if err := e.c.Delete(e.ctx, a); err != nil {
		t.Fatal(err)
	}
	// The freed address is the lowest free one again.
	e.createSvc("c")
	e.waitIPs("c", "198.18.10.0")
}

func TestRequestedIPs(t *testing.T) {
	e := newEnv(t)
	e.pool("v4", []string{"198.18.11.0/24"})
	e.pool("v6", []string{"2001:db8:11::/64"})
	e.start()

	e.createSvc("annotation", func(s *corev1.Service) {
		s.Annotations = map[string]string{request.AnnotationLoadBalancerIPs: "198.18.11.7"}
	})
	e.createSvc("legacy", func(s *corev1.Service) {
		s.Annotations = map[string]string{"metallb.universe.tf/loadBalancerIPs": "198.18.11.8"}
	})
	e.createSvc("spec", func(s *corev1.Service) { s.Spec.LoadBalancerIP = "198.18.11.9" })
	e.waitIPs("annotation", "198.18.11.7")
	e.waitIPs("legacy", "198.18.11.8")
	e.waitIPs("spec", "198.18.11.9")

	// A requested address held by a Service that does not share is refused,
	// and the message names the holder.
	e.createSvc("thief", func(s *corev1.Service) {
		s.Annotations = map[string]string{request.AnnotationLoadBalancerIPs: "198.18.11.7"}
	})
	msg := e.waitPending("thief", "IPInUse")
	if !strings.Contains(msg, "annotation") {
		t.Errorf("IPInUse message %q does not name the holder", msg)
	}
	e.waitEvent(e.app, "thief", "IPInUse")

	// From another namespace the refusal names nothing of the holder: not
	// its name, not its namespace, not its sharing key (which would let
	// the tenant join the address).
	other := "tenant-of-" + strings.TrimPrefix(e.app, "app-")
	e.create(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: other}})
	vault := e.svc("vault", func(s *corev1.Service) {
		s.Annotations = map[string]string{request.AnnotationLoadBalancerIPs: "198.18.11.30", request.AnnotationAllowSharedIP: "holders-secret"}
	})
	e.create(vault)
	e.waitIPs("vault", "198.18.11.30")
	for _, probe := range []struct{ name, ip, key string }{
		{"probe-unshared", "198.18.11.7", "guess"},
		{"probe-keyed", "198.18.11.30", "guess"},
	} {
		s := e.svc(probe.name, func(s *corev1.Service) {
			s.Namespace = other
			s.Annotations = map[string]string{request.AnnotationLoadBalancerIPs: probe.ip, request.AnnotationAllowSharedIP: probe.key}
		})
		e.create(s)
		msg := e.waitPendingIn(other, probe.name, "IPInUse")
		ev := e.waitEvent(other, probe.name, "IPInUse")
		for _, text := range []string{msg, ev} {
			for _, secret := range []string{e.app + "/", "annotation", "vault", "holders-secret"} {
				if strings.Contains(text, secret) {
					t.Errorf("%s: the refusal %q shows %q, which belongs to another namespace", probe.name, text, secret)
				}
			}
			if !strings.Contains(text, "another namespace") || !strings.Contains(text, probe.ip) {
				t.Errorf("%s: the refusal %q does not say the address is held in another namespace", probe.name, text)
			}
		}
	}

	// Both request spellings at once is an error naming the field.
	e.createSvc("both", func(s *corev1.Service) {
		s.Annotations = map[string]string{request.AnnotationLoadBalancerIPs: "198.18.11.20"}
		s.Spec.LoadBalancerIP = "198.18.11.21"
	})
	msg = e.waitPending("both", controller.ReasonInvalidService)
	if !strings.Contains(msg, "spec.loadBalancerIP") {
		t.Errorf("message %q does not name spec.loadBalancerIP", msg)
	}

	// An unparsable annotation is reported with the field and the entry.
	e.createSvc("garbage", func(s *corev1.Service) {
		s.Annotations = map[string]string{request.AnnotationLoadBalancerIPs: "198.18.11.5,not-an-ip"}
	})
	msg = e.waitPending("garbage", controller.ReasonInvalidService)
	if !strings.Contains(msg, request.AnnotationLoadBalancerIPs) || !strings.Contains(msg, "not-an-ip") {
		t.Errorf("message %q does not name the annotation and the bad entry", msg)
	}
	if ev := e.waitEvent(e.app, "garbage", controller.ReasonInvalidService); !strings.Contains(ev, "not-an-ip") {
		t.Errorf("event %q does not say what is wrong", ev)
	}

	// A message built from a huge bad value still reaches the user: the
	// API refuses an Event note over 1 KiB, and would refuse the status
	// patch carrying a condition message over 32 KiB.
	huge := strings.Repeat("x", 40<<10)
	e.createSvc("huge", func(s *corev1.Service) {
		s.Annotations = map[string]string{request.AnnotationLoadBalancerIPs: "198.18.11.5," + huge}
	})
	msg = e.waitPending("huge", controller.ReasonInvalidService)
	if !strings.Contains(msg, request.AnnotationLoadBalancerIPs) || len(msg) > 32768 {
		t.Errorf("condition message of %d bytes does not name the annotation, or is over the limit", len(msg))
	}
	if ev := e.waitEvent(e.app, "huge", controller.ReasonInvalidService); !strings.Contains(ev, request.AnnotationLoadBalancerIPs) || len(ev) > 1024 {
		t.Errorf("event note of %d bytes does not name the annotation, or is over the limit", len(ev))
	}

	// An address outside every pool.
	e.createSvc("outside", func(s *corev1.Service) { s.Spec.LoadBalancerIP = "198.18.99.1" })
	e.waitPending("outside", "IPNotInPool")

	// The family must match the Service's families.
	e.createSvc("wrongfamily", func(s *corev1.Service) {
		s.Annotations = map[string]string{request.AnnotationLoadBalancerIPs: "2001:db8:11::5"}
	})
	e.waitPending("wrongfamily", "InvalidRequest")

	// Fixing the Service lets it through: the reconciler is level based.
	fix := e.getSvc("garbage")
	fix.Annotations[request.AnnotationLoadBalancerIPs] = "198.18.11.5"
	if err := e.c.Update(e.ctx, fix); err != nil {
		t.Fatal(err)
	}
	e.waitIPs("garbage", "198.18.11.5")
	// Other Services kept their addresses throughout.
	e.waitIPs("annotation", "198.18.11.7")
}

func TestPoolAnnotationAndAutoAssign(t *testing.T) {
	e := newEnv(t)
	e.pool("manual", []string{"198.18.12.0/28"}, func(p *v1beta1.IPAddressPool) { p.Spec.AutoAssign = new(false) })
	e.pool("auto", []string{"198.18.12.16/28"})
	e.start()

	e.createSvc("plain")
	e.waitIPs("plain", "198.18.12.16")
	e.createSvc("named", func(s *corev1.Service) {
		s.Annotations = map[string]string{request.AnnotationAddressPool: "manual"}
	})
	e.waitIPs("named", "198.18.12.0")
	e.createSvc("legacy-named", func(s *corev1.Service) {
		s.Annotations = map[string]string{"metallb.universe.tf/address-pool": "manual"}
	})
	e.waitIPs("legacy-named", "198.18.12.1")
	e.createSvc("missing", func(s *corev1.Service) {
		s.Annotations = map[string]string{request.AnnotationAddressPool: "nope"}
	})
	e.waitPending("missing", "UnknownPool")
	// A requested address must lie in the requested pool.
	e.createSvc("mismatch", func(s *corev1.Service) {
		s.Annotations = map[string]string{request.AnnotationAddressPool: "manual"}
		s.Spec.LoadBalancerIP = "198.18.12.20"
	})
	e.waitPending("mismatch", "IPNotInPool")
}

func TestPoolPriorityAndSelectors(t *testing.T) {
	e := newEnv(t)
	prio := func(n int, nss ...string) func(*v1beta1.IPAddressPool) {
		return func(p *v1beta1.IPAddressPool) {
			p.Spec.ServiceAllocation = &v1beta1.ServiceAllocation{Priority: n, Namespaces: nss}
		}
	}
	e.pool("z-plain", []string{"198.18.13.0/30"})
	e.pool("a-plain", []string{"198.18.13.4/30"})
	e.pool("low", []string{"198.18.13.8/30"}, prio(20, e.app))
	e.pool("high", []string{"198.18.13.12/31"}, prio(10, e.app))
	e.pool("other-ns", []string{"198.18.13.16/30"}, prio(1, "somewhere-else"))
	e.pool("by-label", []string{"198.18.13.20/30"}, func(p *v1beta1.IPAddressPool) {
		p.Spec.ServiceAllocation = &v1beta1.ServiceAllocation{
			Priority:         5,
			ServiceSelectors: []metav1.LabelSelector{{MatchLabels: map[string]string{"tier": "gold"}}},
		}
	})
	e.start()

	// Priority 10 before 20; the other namespace's pool never.
	e.createSvc("s1")
	e.waitIPs("s1", "198.18.13.12")
	e.createSvc("s2")
	e.waitIPs("s2", "198.18.13.13")
	e.createSvc("s3")
	e.waitIPs("s3", "198.18.13.8")
	// A labelled Service matches the higher-priority selector pool.
	e.createSvc("gold", func(s *corev1.Service) { s.Labels = map[string]string{"tier": "gold"} })
	e.waitIPs("gold", "198.18.13.20")

	// Plain pools come after the matching ones, by name.
	for _, n := range []string{"f1", "f2", "f3"} {
		e.createSvc(n)
	}
	e.waitIPs("f1", "198.18.13.9")
	e.waitIPs("f2", "198.18.13.10")
	e.waitIPs("f3", "198.18.13.11")
	e.createSvc("f4")
	e.waitIPs("f4", "198.18.13.4")
}

func TestSharing(t *testing.T) {
	e := newEnv(t)
	e.pool("shared", []string{"198.18.14.0/30"})
	e.start()
	share := func(key string, port int32) func(*corev1.Service) {
		return func(s *corev1.Service) {
			s.Annotations = map[string]string{request.AnnotationAllowSharedIP: key}
			s.Spec.Ports[0].Port = port
			s.Spec.Selector = map[string]string{"app": "shared"}
		}
	}
	e.createSvc("http", share("k", 80))
	e.waitIPs("http", "198.18.14.0")
	e.createSvc("dns", share("k", 53))
	e.waitIPs("dns", "198.18.14.0")
	// Same port: cannot share, gets the next address.
	e.createSvc("http2", share("k", 80))
	e.waitIPs("http2", "198.18.14.1")
	// Requesting the shared address with an overlapping port is refused.
	e.createSvc("clash", share("k", 53), func(s *corev1.Service) {
		s.Annotations[request.AnnotationLoadBalancerIPs] = "198.18.14.0"
	})
	e.waitPending("clash", "IPInUse")
	// Local and Cluster traffic policies never share.
	e.createSvc("local", share("k", 443), func(s *corev1.Service) {
		s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
		s.Annotations[request.AnnotationLoadBalancerIPs] = "198.18.14.0"
	})
	e.waitPending("local", "IPInUse")

	// Deleting one sharer keeps the address for the other.
	if err := e.c.Delete(e.ctx, e.getSvc("http")); err != nil {
		t.Fatal(err)
	}
	e.createSvc("other")
	e.waitIPs("other", "198.18.14.2")
	e.waitIPs("dns", "198.18.14.0")
}

func dualStack(policy corev1.IPFamilyPolicy, fams ...corev1.IPFamily) func(*corev1.Service) {
	return func(s *corev1.Service) {
		s.Spec.IPFamilyPolicy = &policy
		s.Spec.IPFamilies = fams
	}
}

func TestDualStack(t *testing.T) {
	e := newEnv(t)
	e.pool("dual", []string{"198.18.15.0/30", "2001:db8:15::/126"})
	e.pool("v4only", []string{"198.18.15.8/30"}, func(p *v1beta1.IPAddressPool) { p.Spec.AutoAssign = new(false) })
	e.start()

	e.createSvc("require", dualStack(corev1.IPFamilyPolicyRequireDualStack, corev1.IPv4Protocol, corev1.IPv6Protocol))
	e.waitIPs("require", "198.18.15.0", "2001:db8:15::")
	e.createSvc("v6first", dualStack(corev1.IPFamilyPolicyRequireDualStack, corev1.IPv6Protocol, corev1.IPv4Protocol))
	got := e.waitIPs("v6first", "198.18.15.1", "2001:db8:15::1")
	if ips(got)[0] != "2001:db8:15::1" {
		t.Errorf("ingress order %v: the primary family (IPv6) should come first", ips(got))
	}
	e.createSvc("single6", dualStack(corev1.IPFamilyPolicySingleStack, corev1.IPv6Protocol))
	e.waitIPs("single6", "2001:db8:15::2")

	// RequireDualStack from a pool with one family cannot be served.
	e.createSvc("require-v4pool", dualStack(corev1.IPFamilyPolicyRequireDualStack, corev1.IPv4Protocol, corev1.IPv6Protocol),
		func(s *corev1.Service) { s.Annotations = map[string]string{request.AnnotationAddressPool: "v4only"} })
	e.waitPending("require-v4pool", "NoMatchingPool")
	if err := e.c.Delete(e.ctx, e.getSvc("require-v4pool")); err != nil {
		t.Fatal(err)
	}

	// PreferDualStack falls back to the primary family, then gains the
	// other one when its pool does.
	e.createSvc("prefer", dualStack(corev1.IPFamilyPolicyPreferDualStack, corev1.IPv4Protocol, corev1.IPv6Protocol),
		func(s *corev1.Service) { s.Annotations = map[string]string{request.AnnotationAddressPool: "v4only"} })
	e.waitIPs("prefer", "198.18.15.8")
	e.updatePool("v4only", func(p *v1beta1.IPAddressPool) {
		p.Spec.Addresses = append(p.Spec.Addresses, "2001:db8:15::100/126")
	})
	e.waitIPs("prefer", "198.18.15.8", "2001:db8:15::100")

	// Both families requested by annotation.
	e.createSvc("requested", dualStack(corev1.IPFamilyPolicyRequireDualStack, corev1.IPv4Protocol, corev1.IPv6Protocol),
		func(s *corev1.Service) {
			s.Annotations = map[string]string{request.AnnotationLoadBalancerIPs: "198.18.15.3,2001:db8:15::3"}
		})
	e.waitIPs("requested", "198.18.15.3", "2001:db8:15::3")
}

func TestConfigReloadKeepsValidIPs(t *testing.T) {
	e := newEnv(t)
	e.pool("a", []string{"198.18.16.0/29"})
	e.pool("b", []string{"198.18.16.64/29"}, func(p *v1beta1.IPAddressPool) { p.Spec.AutoAssign = new(false) })
	e.start()
	for _, n := range []string{"s0", "s1", "s2"} {
		e.createSvc(n)
	}
	e.waitIPs("s0", "198.18.16.0")
	e.waitIPs("s1", "198.18.16.1")
	e.waitIPs("s2", "198.18.16.2")

	// Grow: nothing moves.
	e.updatePool("a", func(p *v1beta1.IPAddressPool) { p.Spec.Addresses = append(p.Spec.Addresses, "198.18.16.8/29") })
	// Shrink below s2: only s2 moves, to the new entry.
	e.updatePool("a", func(p *v1beta1.IPAddressPool) {
		p.Spec.Addresses = []string{"198.18.16.0-198.18.16.1", "198.18.16.8/29"}
	})
	e.waitIPs("s2", "198.18.16.8")
	e.waitIPs("s0", "198.18.16.0")
	e.waitIPs("s1", "198.18.16.1")

	// Rename: the same addresses under a new name keep every address and
	// the pool annotation follows the name. The new pool is created first:
	// while both exist they overlap, the config is invalid and the last
	// good one stays, so no address is ever without a pool.
	old := &v1beta1.IPAddressPool{}
	if err := e.c.Get(e.ctx, client.ObjectKey{Namespace: e.ns, Name: "a"}, old); err != nil {
		t.Fatal(err)
	}
	e.pool("renamed", old.Spec.Addresses)
	waitConfigState(t, e, v1beta1.ConfigurationResultInvalid, "renamed")
	if err := e.c.Delete(e.ctx, old); err != nil {
		t.Fatal(err)
	}
	for name, ip := range map[string]string{"s0": "198.18.16.0", "s1": "198.18.16.1", "s2": "198.18.16.8"} {
		e.waitFor(name, "pool annotation renamed", func(s *corev1.Service) bool {
			return s.Annotations[request.AnnotationAllocatedFromPool] == "renamed" && len(ips(s)) == 1 && ips(s)[0] == ip
		})
	}

	// Remove: the Services lose their addresses and say why.
	if err := e.c.Delete(e.ctx, &v1beta1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "renamed"}}); err != nil {
		t.Fatal(err)
	}
	e.waitIPs("s0")
	e.waitPending("s0", "NoMatchingPool")

	// Selector change: a pool that stops admitting the namespace releases.
	e.updatePool("b", func(p *v1beta1.IPAddressPool) { p.Spec.AutoAssign = new(true) })
	e.waitFor("s0", "an address from pool b", func(s *corev1.Service) bool {
		return len(ips(s)) == 1 && strings.HasPrefix(ips(s)[0], "198.18.16.6") && s.Annotations[request.AnnotationAllocatedFromPool] == "b"
	})
	e.updatePool("b", func(p *v1beta1.IPAddressPool) {
		p.Spec.ServiceAllocation = &v1beta1.ServiceAllocation{Namespaces: []string{"elsewhere"}}
	})
	e.waitIPs("s0")
}

func TestInvalidConfigKeepsLastGood(t *testing.T) {
	e := newEnv(t)
	e.pool("good", []string{"198.18.17.0/30"})
	e.start()
	e.createSvc("s")
	e.waitIPs("s", "198.18.17.0")

	// An overlapping pool makes the config invalid: reported on the object
	// and in the ConfigurationState, and the last good config stays.
	e.pool("overlap", []string{"198.18.17.0/29"})
	msg := e.waitEvent(e.ns, "overlap", controller.ReasonInvalidConfiguration)
	if !strings.Contains(msg, "spec.addresses") {
		t.Errorf("event %q does not name the field", msg)
	}
	waitConfigState(t, e, v1beta1.ConfigurationResultInvalid, "overlap")
	e.createSvc("t")
	e.waitIPs("t", "198.18.17.1")
	e.waitIPs("s", "198.18.17.0")

	if err := e.c.Delete(e.ctx, &v1beta1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Namespace: e.ns, Name: "overlap"}}); err != nil {
		t.Fatal(err)
	}
	waitConfigState(t, e, v1beta1.ConfigurationResultValid, "")
}

func waitConfigState(t *testing.T, e *env, result, mention string) {
	t.Helper()
	var last v1beta1.ConfigurationStateStatus
	err := wait.PollUntilContextTimeout(e.ctx, 50*time.Millisecond, 20*time.Second, true, func(ctx context.Context) (bool, error) {
		cs := &v1beta1.ConfigurationState{}
		if err := e.c.Get(ctx, client.ObjectKey{Namespace: e.ns, Name: controller.ConfigurationStateName}, cs); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		last = cs.Status
		return cs.Status.Result == result && strings.Contains(cs.Status.ErrorSummary, mention), nil
	})
	if err != nil {
		t.Fatalf("ConfigurationState: want result %s mentioning %q, last %+v", result, mention, last)
	}
}

func TestExhaustionAndRecovery(t *testing.T) {
	e := newEnv(t)
	e.pool("tiny", []string{"198.18.18.0/31"})
	e.start()
	e.createSvc("a")
	e.createSvc("b")
	e.waitIPs("a", "198.18.18.0")
	e.waitIPs("b", "198.18.18.1")
	e.createSvc("c")
	msg := e.waitPending("c", "PoolExhausted")
	if !strings.Contains(msg, "tiny") {
		t.Errorf("exhaustion message %q does not name the pool", msg)
	}
	e.waitEvent(e.app, "c", "PoolExhausted")
	// Freeing an address hands it to the waiting Service without any
	// change to the waiting Service itself.
	if err := e.c.Delete(e.ctx, e.getSvc("a")); err != nil {
		t.Fatal(err)
	}
	e.waitIPs("c", "198.18.18.0")
	e.waitFor("c", "condition true", func(s *corev1.Service) bool {
		for _, c := range s.Status.Conditions {
			if c.Type == controller.ConditionIPAllocated {
				return c.Status == metav1.ConditionTrue
			}
		}
		return false
	})
}

func TestTypeChangeReleases(t *testing.T) {
	e := newEnv(t)
	e.pool("p", []string{"198.18.19.0/31"})
	e.start()
	e.createSvc("a")
	e.waitIPs("a", "198.18.19.0")
	s := e.getSvc("a")
	s.Spec.Type = corev1.ServiceTypeClusterIP
	s.Spec.LoadBalancerClass = nil
	s.Spec.AllocateLoadBalancerNodePorts = nil
	if err := e.c.Update(e.ctx, s); err != nil {
		t.Fatal(err)
	}
	e.waitFor("a", "no address and no pool annotation", func(s *corev1.Service) bool {
		return len(ips(s)) == 0 && s.Annotations[request.AnnotationAllocatedFromPool] == ""
	})
	e.createSvc("b")
	e.waitIPs("b", "198.18.19.0")
}

func TestRestartKeepsEveryIP(t *testing.T) {
	e := newEnv(t)
	e.pool("p", []string{"198.18.20.0/24"})
	e.start()
	const n = 30
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("s%02d", i)
		e.createSvc(names[i])
	}
	before := map[string]string{}
	for _, name := range names {
		s := e.waitFor(name, "an address", func(s *corev1.Service) bool { return len(ips(s)) == 1 })
		before[name] = ips(s)[0]
	}
	// Punch holes, stop, and create Services while the controller is down:
	// on restart they must not take any address that is still held.
	for i := 0; i < n; i += 4 {
		if err := e.c.Delete(e.ctx, e.getSvc(names[i])); err != nil {
			t.Fatal(err)
		}
		delete(before, names[i])
	}
	e.stop()
	for i := range 5 {
		e.createSvc(fmt.Sprintf("new%d", i))
	}
	e.start()
	seen := map[string]string{}
	for name, ip := range before {
		got := e.waitFor(name, "its address", func(s *corev1.Service) bool { return len(ips(s)) == 1 })
		if ips(got)[0] != ip {
			t.Errorf("%s: address changed across restart: %s -> %s", name, ip, ips(got)[0])
		}
		seen[ips(got)[0]] = name
	}
	for i := range 5 {
		name := fmt.Sprintf("new%d", i)
		got := e.waitFor(name, "an address", func(s *corev1.Service) bool { return len(ips(s)) == 1 })
		if other, dup := seen[ips(got)[0]]; dup {
			t.Errorf("%s got %s, still held by %s", name, ips(got)[0], other)
		}
		seen[ips(got)[0]] = name
	}
}

func TestPoolStatusAndClasses(t *testing.T) {
	e := newEnv(t)
	e.pool("p", []string{"198.18.21.0/30", "2001:db8:21::/120"})
	e.start()
	e.createSvc("a")
	e.createSvc("b", dualStack(corev1.IPFamilyPolicyRequireDualStack, corev1.IPv4Protocol, corev1.IPv6Protocol))
	e.waitIPs("a", "198.18.21.0")
	e.waitIPs("b", "198.18.21.1", "2001:db8:21::")
	// A Service of another class is left alone.
	e.createSvc("foreign", func(s *corev1.Service) { s.Spec.LoadBalancerClass = new("example.com/other") })

	want := v1beta1.IPAddressPoolStatus{AssignedIPv4: 2, AvailableIPv4: 2, AssignedIPv6: 1, AvailableIPv6: 255}
	var last v1beta1.IPAddressPoolStatus
	err := wait.PollUntilContextTimeout(e.ctx, 50*time.Millisecond, 20*time.Second, true, func(ctx context.Context) (bool, error) {
		p := &v1beta1.IPAddressPool{}
		if err := e.c.Get(ctx, client.ObjectKey{Namespace: e.ns, Name: "p"}, p); err != nil {
			return false, err
		}
		last = p.Status
		return p.Status == want, nil
	})
	if err != nil {
		t.Fatalf("pool status = %+v, want %+v", last, want)
	}
	if s := e.getSvc("foreign"); len(ips(s)) != 0 || len(s.Status.Conditions) != 0 {
		t.Errorf("service of another class was touched: %v %v", ips(s), s.Status.Conditions)
	}
}

// TestMemberlistKey checks that the controller creates the speakers'
// heartbeat key when it is missing, long enough for the speakers, and never
// replaces it: a restarted controller, demonstrably up (it allocates), has
// left the Secret as it was.
func TestMemberlistKey(t *testing.T) {
	e := newEnv(t)
	e.opts.MemberlistSecret = "keeperlb-memberlist"
	e.pool("ml", []string{"198.18.15.0/28"})
	e.start()
	secret := func() corev1.Secret {
		t.Helper()
		var s corev1.Secret
		err := wait.PollUntilContextTimeout(e.ctx, 50*time.Millisecond, 20*time.Second, true, func(ctx context.Context) (bool, error) {
			return e.c.Get(ctx, client.ObjectKey{Namespace: e.ns, Name: "keeperlb-memberlist"}, &s) == nil, nil
		})
		if err != nil {
			t.Fatalf("no memberlist Secret: %v", err)
		}
		return s
	}
	first := secret()
	if n := len(first.Data[controller.MemberlistKeyField]); n < 16 {
		t.Fatalf("the generated key has %d bytes", n)
	}
	e.stop()
	e.start()
	e.createSvc("after-restart")
	e.waitFor("after-restart", "an address", func(s *corev1.Service) bool { return len(s.Status.LoadBalancer.Ingress) > 0 })
	if got := secret(); got.ResourceVersion != first.ResourceVersion || string(got.Data[controller.MemberlistKeyField]) != string(first.Data[controller.MemberlistKeyField]) {
		t.Errorf("a controller restart rewrote the memberlist Secret")
	}
}
