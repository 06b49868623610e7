package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/keeperlb/keeperlb/api/v1beta1"
	"github.com/keeperlb/keeperlb/api/v1beta2"
	"github.com/keeperlb/keeperlb/internal/lab"
	"github.com/keeperlb/keeperlb/internal/lab/labtest"
	"github.com/keeperlb/keeperlb/internal/promtools"
	"github.com/keeperlb/keeperlb/internal/request"
	"github.com/keeperlb/keeperlb/internal/speaker"
)

// A real Prometheus (built from the Go module proxy, like promtool, by
// hack/prometheus-tools/build.sh) scrapes the lab's controller and speakers
// the way the chart's ServiceMonitors make the Prometheus Operator scrape
// them, evaluates the shipped alerting rules, and every alert's condition
// is produced for real: it fires, then clears. Then every query of the
// shipped Grafana dashboard must return data.

const (
	// dashboardFile is the shipped Grafana dashboard, relative to the
	// repository root.
	dashboardFile = "charts/keeperlb/files/dashboards/keeperlb.json"
	// labFor replaces every alert's `for` in the lab's copy of the rules.
	labFor = "3s"
	// otherKey is a memberlist key no other speaker has.
	otherKey = "a-different-heartbeat-key"
)

// promServer is a Prometheus server of the lab.
type promServer struct {
	t    *testing.T
	base string // http://127.0.0.1:port
}

// freePort returns a TCP port on 127.0.0.1 that nobody listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// labRules returns the canonical rules file with every `for` set to labFor
// and nothing else changed: waiting minutes per alert is not affordable
// here, and the promtool unit tests (test/rules) check the real `for`s.
func labRules(t *testing.T, root string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(root, promtools.RulesFile))
	if err != nil {
		t.Fatal(err)
	}
	var file map[string]any
	if err := yaml.Unmarshal(raw, &file); err != nil {
		t.Fatal(err)
	}
	groups, _ := file["groups"].([]any)
	for _, g := range groups {
		rules, _ := g.(map[string]any)["rules"].([]any)
		for _, r := range rules {
			if rule := r.(map[string]any); rule["for"] != nil {
				rule["for"] = labFor
			}
		}
	}
	out, err := yaml.Marshal(file)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// startPrometheus writes the scrape configuration and the lab's rules and
// starts Prometheus on a loopback port, with its data in a temporary
// folder; it is stopped (and the folder removed) when the test ends.
func startPrometheus(t *testing.T, e *env, controllerMetrics string) *promServer {
	t.Helper()
	bin, err := promtools.Binary("prometheus")
	if err != nil {
		t.Fatalf("the Prometheus lab test needs the Prometheus server: %v", err)
	}
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte(e.metricsToken), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "rules.yaml"), labRules(t, root), 0o600); err != nil {
		t.Fatal(err)
	}
	// What the Prometheus Operator generates for the chart's
	// ServiceMonitors, with the targets its Kubernetes discovery would
	// find written out: HTTPS, Prometheus's own token, the self-signed
	// certificates trusted, the series' own labels kept over the
	// target's (honorLabels), and the target labels it sets (job as the
	// ServiceMonitors' relabeling makes it, namespace, service, endpoint
	// (the port's name), pod, container; instance is the address).
	type target struct {
		Targets []string          `json:"targets"`
		Labels  map[string]string `json:"labels"`
	}
	labels := func(component, pod string) map[string]string {
		return map[string]string{
			"job": "metallb-" + component, "namespace": installNS, "service": "keeperlb-" + component + "-metrics",
			"endpoint": "metrics", "pod": pod, "container": component,
		}
	}
	speakers := make([]target, 0, len(e.lab.Nodes))
	for _, n := range e.lab.Nodes {
		speakers = append(speakers, target{
			Targets: []string{netip.AddrPortFrom(n.IPv4, 7472).String()},
			Labels:  labels("speaker", "keeperlb-speaker-"+n.Name),
		})
	}
	job := func(name string, targets []target) map[string]any {
		return map[string]any{
			"job_name": name, "scheme": "https", "metrics_path": "/metrics",
			// honorLabels: true in the ServiceMonitors.
			"honor_labels":   true,
			"authorization":  map[string]any{"type": "Bearer", "credentials_file": token},
			"tls_config":     map[string]any{"insecure_skip_verify": true},
			"static_configs": targets,
		}
	}
	cfg := map[string]any{
		"global":     map[string]any{"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
		"rule_files": []string{filepath.Join(dir, "rules.yaml")},
		"scrape_configs": []any{
			job("serviceMonitor/metallb-system/keeperlb-controller/0", []target{{Targets: []string{controllerMetrics}, Labels: labels("controller", "keeperlb-controller-0")}}),
			job("serviceMonitor/metallb-system/keeperlb-speaker/0", speakers),
		},
	}
	raw, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), raw, 0o600); err != nil {
		t.Fatal(err)
	}
	listen := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	p, err := e.lab.Start(nil, "prometheus", []string{
		bin, "--config.file=" + filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path=" + filepath.Join(dir, "data"),
		"--web.listen-address=" + listen,
		"--log.level=warn",
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Registered after TempDir, so it runs first: Prometheus is gone
	// before its data folder is removed.
	t.Cleanup(func() { _ = p.Stop() })
	s := &promServer{t: t, base: "http://" + listen}
	eventually(t, 30*time.Second, func() error {
		if p.Exited() {
			t.Fatalf("prometheus exited: %v", p.Wait())
		}
		_, err := s.get("/-/ready", nil)
		return err
	})
	return s
}

// get fetches path from the server and returns the body of a 200 answer.
func (s *promServer) get(path string, q url.Values) ([]byte, error) {
	ctx, cancel := context.WithTimeout(s.t.Context(), 5*time.Second)
	defer cancel()
	u := s.base + path
	if q != nil {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", u, resp.Status, body)
	}
	return body, nil
}

// alert is one entry of /api/v1/alerts.
type alert struct {
	Labels map[string]string `json:"labels"`
	State  string            `json:"state"`
}

// alerts returns the active (pending or firing) alerts.
func (s *promServer) alerts() ([]alert, error) {
	body, err := s.get("/api/v1/alerts", nil)
	if err != nil {
		return nil, err
	}
	var resp struct {
		Data struct {
			Alerts []alert `json:"alerts"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		return nil, fmt.Errorf("decoding alerts: %w", err)
	}
	return resp.Data.Alerts, nil
}

// matching returns the alerts named name whose labels include match.
func matching(all []alert, name string, match map[string]string) []alert {
	var out []alert
	for _, a := range all {
		if a.Labels["alertname"] != name {
			continue
		}
		ok := true
		for k, v := range match {
			ok = ok && a.Labels[k] == v
		}
		if ok {
			out = append(out, a)
		}
	}
	return out
}

// waitFiring waits until an alert named name whose labels include each
// label set of matches fires.
func (s *promServer) waitFiring(timeout time.Duration, name string, matches ...map[string]string) {
	s.t.Helper()
	if len(matches) == 0 {
		matches = []map[string]string{nil}
	}
	start := time.Now()
	eventually(s.t, timeout, func() error {
		all, err := s.alerts()
		if err != nil {
			return err
		}
		for _, m := range matches {
			if !slices.ContainsFunc(matching(all, name, m), func(a alert) bool { return a.State == "firing" }) {
				return fmt.Errorf("%s%v is not firing; active alerts: %v", name, m, summarize(all))
			}
		}
		return nil
	})
	s.t.Logf("%s%v firing after %v", name, matches, time.Since(start).Round(100*time.Millisecond))
}

// waitClear waits until no alert named name whose labels include match
// is pending or firing.
func (s *promServer) waitClear(timeout time.Duration, name string, match map[string]string) {
	s.t.Helper()
	start := time.Now()
	eventually(s.t, timeout, func() error {
		all, err := s.alerts()
		if err != nil {
			return err
		}
		if got := matching(all, name, match); len(got) > 0 {
			return fmt.Errorf("%s%v still active: %v", name, match, got)
		}
		return nil
	})
	s.t.Logf("%s%v clear after %v", name, match, time.Since(start).Round(100*time.Millisecond))
}

// summarize names each alert with the labels that tell them apart here.
func summarize(all []alert) []string {
	var out []string
	for _, a := range all {
		l := map[string]string{}
		for _, k := range []string{"pod", "pool", "peer", "service", "ip", "reason"} {
			if v, ok := a.Labels[k]; ok && !strings.HasSuffix(v, "-metrics") {
				l[k] = v
			}
		}
		out = append(out, fmt.Sprintf("%s%v=%s", a.Labels["alertname"], l, a.State))
	}
	slices.Sort(out)
	return out
}

// query runs an instant PromQL query and returns how many series it gave.
func (s *promServer) query(expr string) (int, error) {
	body, err := s.get("/api/v1/query", url.Values{"query": {expr}})
	if err != nil {
		return 0, err
	}
	var resp struct {
		Data struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		return 0, fmt.Errorf("decoding the answer to %s: %w", expr, err)
	}
	switch resp.Data.ResultType {
	case "vector", "matrix":
		var series []json.RawMessage
		if err := json.Unmarshal(resp.Data.Result, &series); err != nil {
			return 0, err
		}
		return len(series), nil
	default: // scalar or string: a value
		return 1, nil
	}
}

// waitTargetsUp waits until Prometheus scrapes n targets successfully.
func (s *promServer) waitTargetsUp(n int) {
	s.t.Helper()
	eventually(s.t, 30*time.Second, func() error {
		got, err := s.query("up == 1")
		if err != nil {
			return err
		}
		if got != n {
			body, _ := s.get("/api/v1/targets", nil)
			return fmt.Errorf("%d targets up, want %d: %s", got, n, body)
		}
		return nil
	})
}

func TestPrometheusAlertsAndDashboard(t *testing.T) {
	if _, err := promtools.Binary("prometheus"); err != nil {
		// Before the lab: a missing binary must not cost a lab.
		if os.Getenv(labtest.SkipEnv) == "1" {
			t.Skipf("%v (skipped: %s=1)", err, labtest.SkipEnv)
		}
		t.Fatalf("the Prometheus lab test needs the Prometheus server: %v; set %s=1 to skip lab tests", err, labtest.SkipEnv)
	}
	start := time.Now()
	controllerMetrics := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	e := newBGPEnvWith(t, router{bfd: true}, envOptions{controllerArgs: []string{"--metrics-bind-address=" + controllerMetrics}})
	nodes := allNodes(e.env)

	// Configuration: a layer 2 pool and advertisement, a BGP pool
	// advertised to FRR with BFD, and a pool of one address.
	l2Pool := e.lab.L2Pool4.String()
	bgpPool := netip.PrefixFrom(e.lab.BGPPool4.Addr(), 25)
	// tiny is one address of the BGP range's upper half, which pool bgp
	// leaves out.
	tinyIP := e.lab.BGPPool4.Addr()
	for range 200 {
		tinyIP = tinyIP.Next()
	}
	tiny := netip.PrefixFrom(tinyIP, 32)
	e.pool("l2", l2Pool)
	e.pool("bgp", bgpPool.String())
	e.pool("tiny", tiny.String())
	e.create(&v1beta1.L2Advertisement{ObjectMeta: metav1.ObjectMeta{Name: "l2"}, Spec: v1beta1.L2AdvertisementSpec{IPAddressPools: []string{"l2"}}})
	e.create(&v1beta1.BFDProfile{ObjectMeta: metav1.ObjectMeta{Name: "fast"}, Spec: v1beta1.BFDProfileSpec{
		ReceiveInterval: new(uint32(300)), TransmitInterval: new(uint32(300)), DetectMultiplier: new(uint32(3))}})
	e.peer("router", e.lab.Router.IPv4, func(s *v1beta2.BGPPeerSpec) { s.BFDProfile = "fast" })
	e.advertise("bgp", func(s *v1beta1.BGPAdvertisementSpec) { s.IPAddressPools = []string{"bgp"} })
	inPool := func(pool string) func(*corev1.Service) {
		return func(s *corev1.Service) { s.Annotations = map[string]string{request.AnnotationAddressPool: pool} }
	}
	webIP := v4(e.createService("web", nodes, inPool("l2")))
	bgpIP := v4(e.createService("web-bgp", nodes, inPool("bgp")))
	// Only node1 may announce solo: its one endpoint runs there, and its
	// traffic policy is Local.
	e.createService("solo", []string{"node1"}, func(s *corev1.Service) {
		inPool("l2")(s)
		s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	})
	e.waitAnnouncer("solo", func(n string) bool { return n == "node1" })
	e.waitHops(hostPrefix(bgpIP), nodes...)
	e.waitSessions(sessionKeys("router", nodes...), established(e.lab.Router.IPv4, "Up"))

	p := startPrometheus(t, e.env, controllerMetrics)
	p.waitTargetsUp(1 + len(nodes))
	t.Logf("lab, KeeperLB, FRR and Prometheus ready after %v", time.Since(start).Round(100*time.Millisecond))
	const fire, clear = 30 * time.Second, 30 * time.Second
	pod := func(node string) map[string]string { return map[string]string{"pod": "keeperlb-speaker-" + node} }

	// Nothing fires in the steady state.
	eventually(t, 20*time.Second, func() error {
		all, err := p.alerts()
		if err != nil {
			return err
		}
		if len(all) > 0 {
			return fmt.Errorf("alerts active in the steady state: %v", summarize(all))
		}
		return nil
	})

	// A speaker with another memberlist key: its heartbeats fail
	// authentication at the others, theirs at it, and it hears none of
	// its peers. The failure alert looks back 2 minutes, so it is checked
	// clear at the end.
	t.Log("node3 restarts with another memberlist key")
	if err := e.speakers["node3"].Stop(); err != nil {
		t.Fatal(err)
	}
	e.startSpeakerEnv("node3", []string{speaker.MemberKeyEnv + "=" + otherKey})
	p.waitFiring(fire, "KeeperLBHeartbeatAuthFailures", pod("node1"), pod("node2"), pod("node3"))
	p.waitFiring(fire, "KeeperLBSpeakerIsolated", pod("node3"))
	authFixed := time.Now()
	if err := e.speakers["node3"].Stop(); err != nil {
		t.Fatal(err)
	}
	e.startSpeaker("node3")
	e.waitMembers()
	p.waitClear(clear, "KeeperLBSpeakerIsolated", nil)

	// Kill the only node that may announce solo: no node announces it.
	t.Log("the speaker of node1, solo's only candidate, is killed")
	if err := e.speakers["node1"].Kill(); err != nil {
		t.Fatal(err)
	}
	delete(e.speakers, "node1")
	soloAlert := map[string]string{"service": appNS + "/solo", "reason": "NoEligibleNode"}
	p.waitFiring(fire, "KeeperLBAddressNotAnnounced", soloAlert)
	e.startSpeaker("node1")
	e.waitAnnouncer("solo", func(n string) bool { return n == "node1" })
	p.waitClear(clear, "KeeperLBAddressNotAnnounced", nil)

	// Exhaust pool tiny, and make a Service wait for it.
	t.Log("pool tiny is exhausted and a Service waits for it")
	for _, name := range []string{"MetalLBAddressPoolExhausted", "MetalLBAddressPoolUsage95Percent", "KeeperLBServicePending"} {
		p.waitClear(clear, name, nil)
	}
	e.createService("fill", nodes, inPool("tiny"))
	waiting := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: appNS, Name: "overflow", Annotations: map[string]string{request.AnnotationAddressPool: "tiny"}},
		Spec: corev1.ServiceSpec{
			Type:                          corev1.ServiceTypeLoadBalancer,
			AllocateLoadBalancerNodePorts: new(false),
			Ports:                         []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(lab.BackendPort), Protocol: corev1.ProtocolTCP}},
		},
	}
	if err := e.c.Create(t.Context(), waiting); err != nil {
		t.Fatal(err)
	}
	tinyAlert := map[string]string{"pool": "tiny", "job": "metallb-controller"}
	for _, name := range []string{"MetalLBAddressPoolExhausted", "MetalLBAddressPoolUsage75Percent", "MetalLBAddressPoolUsage85Percent", "MetalLBAddressPoolUsage95Percent"} {
		p.waitFiring(fire, name, tinyAlert)
	}
	p.waitFiring(fire, "KeeperLBServicePending", map[string]string{"reason": "PoolExhausted"})
	for _, name := range []string{"fill", "overflow"} {
		if err := e.c.Delete(t.Context(), &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: appNS, Name: name}}); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"MetalLBAddressPoolExhausted", "MetalLBAddressPoolUsage75Percent", "MetalLBAddressPoolUsage85Percent", "MetalLBAddressPoolUsage95Percent"} {
		p.waitClear(clear, name, tinyAlert)
	}
	p.waitClear(clear, "KeeperLBServicePending", nil)

	// Break the configuration (a pool overlapping another), and start a
	// speaker while it is broken: it never loads one.
	t.Log("a pool overlapping l2 breaks the configuration; node2's speaker restarts meanwhile")
	e.pool("overlap", netip.PrefixFrom(e.lab.L2Pool4.Addr(), 30).String())
	p.waitFiring(fire, "MetalLBStaleConfig", map[string]string{"job": "metallb-controller"}, map[string]string{"job": "metallb-speaker"})
	p.waitFiring(fire, "KeeperLBConfigurationInvalid", map[string]string{"namespace": installNS})
	if err := e.speakers["node2"].Stop(); err != nil {
		t.Fatal(err)
	}
	e.startSpeaker("node2")
	p.waitFiring(fire, "MetalLBConfigNotLoaded", pod("node2"))
	if err := e.c.Delete(t.Context(), &v1beta1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Namespace: installNS, Name: "overlap"}}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"MetalLBStaleConfig", "KeeperLBConfigurationInvalid", "MetalLBConfigNotLoaded"} {
		p.waitClear(clear, name, nil)
	}
	e.waitMembers()
	// node2's speaker was restarted above: its BGP session and, above all,
	// its BFD session must be up again before the cut. A session whose BFD
	// never came up is not taken down by BFD, only by the BGP hold timer,
	// far beyond this test's wait (seen once: node2 stayed Established).
	// The router's view first: node2's BGPSessionState may still be the
	// stopped speaker's until the new one writes it.
	e.waitRouterBFDUp()
	e.waitSessions(sessionKeys("router", nodes...), established(e.lab.Router.IPv4, "Up"))

	// Cut the router off: BFD notices within a second and takes the BGP
	// sessions down with it, on every node.
	t.Log("the router is cut off")
	if err := e.lab.Cut(e.lab.Router); err != nil {
		t.Fatal(err)
	}
	peer := netip.AddrPortFrom(e.lab.Router.IPv4, 179).String()
	var speakerPods []map[string]string
	for _, n := range nodes {
		speakerPods = append(speakerPods, map[string]string{"pod": "keeperlb-speaker-" + n, "peer": peer})
	}
	p.waitFiring(fire, "MetalLBBGPSessionDown", speakerPods...)
	p.waitFiring(fire, "KeeperLBBGPPeerDown", map[string]string{"peer": peer})
	p.waitFiring(fire, "KeeperLBBFDSessionDown", map[string]string{"peer": e.lab.Router.IPv4.String()})
	if err := e.lab.Heal(e.lab.Router); err != nil {
		t.Fatal(err)
	}
	e.waitSessions(sessionKeys("router", nodes...), established(e.lab.Router.IPv4, "Up"))
	for _, name := range []string{"MetalLBBGPSessionDown", "KeeperLBBGPPeerDown", "KeeperLBBFDSessionDown"} {
		p.waitClear(clear, name, nil)
	}

	// The authentication failures leave the alert's 2-minute window.
	p.waitClear(time.Until(authFixed.Add(2*time.Minute+30*time.Second)), "KeeperLBHeartbeatAuthFailures", nil)
	t.Logf("every alert fired and cleared; %v since the start", time.Since(start).Round(100*time.Millisecond))

	t.Run("dashboard", func(t *testing.T) {
		root, err := moduleRoot()
		if err != nil {
			t.Fatal(err)
		}
		exprs, err := dashboardQueries(filepath.Join(root, dashboardFile))
		if err != nil {
			t.Fatal(err)
		}
		// The client asks web's owner for its address afresh (ARP
		// requests and answers, for the layer 2 panels): the owner may
		// have changed during the alerts above.
		if err := e.lab.FlushNeighbor(t.Context(), e.lab.Client, webIP); err != nil {
			t.Fatal(err)
		}
		e.waitCurl(webIP, anyNode)
		// Each query gets a few scrapes' time: a rate needs two samples
		// of a series that has just appeared.
		ok := 0
		for _, q := range exprs {
			deadline := time.Now().Add(10 * time.Second)
			for {
				got, err := p.query(q.expr)
				if err == nil && got > 0 {
					ok++
					break
				}
				if time.Now().After(deadline) {
					if err == nil {
						err = errors.New("no data")
					}
					t.Errorf("panel %q: %s: %v", q.panel, q.expr, err)
					break
				}
				time.Sleep(200 * time.Millisecond)
			}
		}
		t.Logf("%d of %d dashboard queries return data", ok, len(exprs))
	})
}

// panelQuery is one query of a dashboard panel, ready for Prometheus.
type panelQuery struct {
	panel, expr string
}

// dashboardVars are what the lab gives the dashboard's variables: its
// namespace, and windows that hold several of its 1 s scrapes.
var dashboardVars = map[string]string{
	"__rate_interval": "1m",
	"__interval":      "15s",
	"namespace":       installNS,
}

var dashboardVar = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)`)

// dashboardQueries reads a Grafana dashboard (the JSON model: panels,
// possibly nested in rows, each with targets) and returns every target's
// expression with the variables substituted. Any other variable is an
// error: the lab could not give it a value.
func dashboardQueries(path string) ([]panelQuery, error) {
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("the shipped Grafana dashboard %s does not exist: every panel's query is checked against this Prometheus, so it must be there", dashboardFile)
	}
	if err != nil {
		return nil, err
	}
	type panel struct {
		Title   string `json:"title"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
		Panels []json.RawMessage `json:"panels"`
	}
	var dash struct {
		Panels []json.RawMessage `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		return nil, fmt.Errorf("%s: %w", dashboardFile, err)
	}
	var out []panelQuery
	var walk func([]json.RawMessage) error
	walk = func(panels []json.RawMessage) error {
		for _, r := range panels {
			var p panel
			if err := json.Unmarshal(r, &p); err != nil {
				return fmt.Errorf("%s: a panel: %w", dashboardFile, err)
			}
			for _, tg := range p.Targets {
				if strings.TrimSpace(tg.Expr) == "" {
					continue
				}
				var unknown []string
				expr := dashboardVar.ReplaceAllStringFunc(tg.Expr, func(m string) string {
					name := strings.Trim(m, "${}")
					v, ok := dashboardVars[name]
					if !ok {
						unknown = append(unknown, m)
						return m
					}
					return v
				})
				if len(unknown) > 0 {
					return fmt.Errorf("%s: panel %q uses %v; only $__rate_interval, $__interval and $namespace have a value here", dashboardFile, p.Title, unknown)
				}
				out = append(out, panelQuery{panel: p.Title, expr: expr})
			}
			if err := walk(p.Panels); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(dash.Panels); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s has no panel query", dashboardFile)
	}
	return out, nil
}

// TestDashboardQueries checks the reading of a dashboard, without a lab:
// panels nested in rows, the variables the lab gives, and a clear error
// for a missing file or a variable it cannot give.
func TestDashboardQueries(t *testing.T) {
	dir := t.TempDir()
	write := func(body string) string {
		p := filepath.Join(dir, "d.json")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	got, err := dashboardQueries(write(`{"panels":[
		{"title":"a","targets":[{"expr":"rate(x{namespace=~\"$namespace\"}[$__rate_interval])"},{"expr":""}]},
		{"type":"row","title":"r","panels":[{"title":"b","targets":[{"expr":"sum(y{namespace=~\"${namespace}\"}) by (le) / $__interval"}]}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	want := []panelQuery{
		{"a", `rate(x{namespace=~"metallb-system"}[1m])`},
		{"b", `sum(y{namespace=~"metallb-system"}) by (le) / 15s`},
	}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	if _, err := dashboardQueries(write(`{"panels":[{"title":"c","targets":[{"expr":"up{job=\"$job\"}"}]}]}`)); err == nil || !strings.Contains(err.Error(), "$job") {
		t.Errorf("an unknown variable: %v, want an error naming it", err)
	}
	if _, err := dashboardQueries(write(`{"panels":[]}`)); err == nil {
		t.Error("a dashboard without queries was accepted")
	}
	if _, err := dashboardQueries(filepath.Join(dir, "missing.json")); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("a missing dashboard: %v, want an error saying so", err)
	}
}
