package e2e

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/keeperlb/keeperlb/api/v1beta1"
	"github.com/keeperlb/keeperlb/api/v1beta2"
	"github.com/keeperlb/keeperlb/internal/election"
	"github.com/keeperlb/keeperlb/internal/speaker"
)

// v4 and v6 pick the address of one family.
func v4(ips []netip.Addr) netip.Addr { return pick(ips, true) }
func v6(ips []netip.Addr) netip.Addr { return pick(ips, false) }

func pick(ips []netip.Addr, four bool) netip.Addr {
	for _, ip := range ips {
		if ip.Is4() == four {
			return ip
		}
	}
	return netip.Addr{}
}

// TestL2ClusterTrafficAndSpeakerFailover is the main story: a Service gets an
// IP, the client reaches it through the node the speakers elected, and when
// that node's speaker is killed another node takes over.
func TestL2ClusterTrafficAndSpeakerFailover(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.applyL2(e.defaultPool(), nil)
	ip := v4(e.createService("web", []string{"node1", "node2", "node3"}, nil))

	owner := e.waitAnnouncer("web", anyNode)
	if got := e.waitCurl(ip, anyNode); got != owner {
		t.Fatalf("the client reached %s, but ServiceL2Status says %s announces %s", got, owner, ip)
	}
	if got := e.neighborNode(ip); got != owner {
		t.Fatalf("the client's neighbour entry for %s points at %s, want %s", ip, got, owner)
	}
	if got := e.arpAnswerers(ip); len(got) != 1 || e.nodeOfMAC(got[0]) != owner {
		t.Fatalf("ARP answers for %s came from %v, want only %s", ip, got, owner)
	}
	// A ServiceL2Status deleted by hand comes back: the owner writes it
	// again.
	if err := e.c.DeleteAllOf(t.Context(), &v1beta1.ServiceL2Status{}, client.InNamespace(installNS),
		client.MatchingLabels{speaker.LabelServiceName: "web", speaker.LabelServiceNamespace: appNS}); err != nil {
		t.Fatal(err)
	}
	if got := e.waitAnnouncer("web", anyNode); got != owner {
		t.Fatalf("after deleting it, the ServiceL2Status came back naming %s, want %s", got, owner)
	}

	if err := e.speakers[owner].Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	// The owner's backend and DNAT rule still work: only an answer from
	// another node proves the client's traffic moved.
	next := e.waitCurl(ip, not(owner))
	t.Logf("failover %s -> %s: client answered by the new node %s after the kill", owner, next, time.Since(killed).Round(time.Millisecond))
	if got := e.neighborNode(ip); got != next {
		t.Errorf("neighbour entry points at %s, want %s", got, next)
	}
	if got := e.waitAnnouncer("web", not(owner)); got != next {
		t.Errorf("ServiceL2Status names %s, but the client reaches %s", got, next)
	}
	if got := e.arpAnswerers(ip); len(got) != 1 || e.nodeOfMAC(got[0]) != next {
		t.Errorf("after failover ARP answers came from %v, want only %s", got, next)
	}
	// `kubectl describe svc web` tells the story: one nodeAssigned Event
	// from the new owner, naming the old one and why.
	takeover := fmt.Sprintf("taken over from node %q (reason peer_dead", owner)
	msg := e.waitEventIn(appNS, "Service", "web", corev1.EventTypeNormal, "nodeAssigned",
		fmt.Sprintf("announcing from node %q with protocol \"layer2\"", next), takeover)
	t.Logf("Event on web: %s", msg)
	var evs corev1.EventList
	if err := e.c.List(t.Context(), &evs, client.InNamespace(appNS)); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, ev := range evs.Items {
		if ev.InvolvedObject.Kind == "Service" && ev.InvolvedObject.Name == "web" && ev.Reason == "nodeAssigned" && strings.Contains(ev.Message, takeover) {
			n++
			if ev.Count > 1 || (ev.Series != nil && ev.Series.Count > 1) {
				t.Errorf("the takeover Event was repeated: %+v", ev)
			}
		}
	}
	if n != 1 {
		t.Errorf("%d nodeAssigned Events say %q, want exactly 1", n, takeover)
	}
}

// TestL2IPv6AndDualStack checks NDP and the one-owner-per-Service rule: the
// client's kernel resolves the IPv6 VIP of a dual-stack Service and reaches
// the same node on both families, the one elected for the first IP, whatever
// the lab's addresses (and so the hashes) are.
func TestL2IPv6AndDualStack(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.applyL2(e.defaultPool(), nil)
	ips := e.createService("dual", []string{"node1", "node2", "node3"}, func(s *corev1.Service) {
		s.Spec.IPFamilyPolicy = new(corev1.IPFamilyPolicyRequireDualStack)
		s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}
	})
	ip4, ip6 := v4(ips), v6(ips)
	if !ip4.IsValid() || !ip6.IsValid() {
		t.Fatalf("dual-stack Service got %v", ips)
	}
	// One owner for the Service: the node elected for its first IP
	// announces both families, and there is one ServiceL2Status.
	owner := e.waitAnnouncer("dual", anyNode)
	if want := election.Owner([]string{"node1", "node2", "node3"}, ips[0]); owner != want {
		t.Errorf("ServiceL2Status names %s, but the election for the first IP %s says %s", owner, ips[0], want)
	}
	if got := e.waitCurl(ip4, anyNode); got != owner {
		t.Errorf("IPv4 %s answered by %s, want the Service's owner %s", ip4, got, owner)
	}
	if got := e.waitCurl(ip6, anyNode); got != owner {
		t.Errorf("IPv6 %s answered by %s, want the Service's owner %s", ip6, got, owner)
	}
	if n := e.neighborNode(ip6); n != owner {
		t.Errorf("the client's IPv6 neighbour entry for %s points at %s, want %s", ip6, n, owner)
	}
	if got := e.arpAnswerers(ip4); len(got) != 1 || e.nodeOfMAC(got[0]) != owner {
		t.Errorf("ARP answers for %s came from %v, want only %s", ip4, got, owner)
	}
	if got, err := e.announcers("dual"); err != nil || !slices.Equal(got, []string{owner}) {
		t.Errorf("ServiceL2Status nodes of dual = %v (%v), want one, %s", got, err, owner)
	}
}

// TestL2LocalTrafficPolicy checks that only a node with a serving local
// endpoint announces, that the announcement follows the endpoint, and that no
// serving endpoint at all means silence.
func TestL2LocalTrafficPolicy(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.applyL2(e.defaultPool(), nil)
	ip := v4(e.createService("local", []string{"node2"}, func(s *corev1.Service) {
		s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	}))
	if got := e.waitAnnouncer("local", anyNode); got != "node2" {
		t.Fatalf("ETP=Local Service with its endpoint on node2 announced by %s", got)
	}
	if got := e.waitCurl(ip, anyNode); got != "node2" {
		t.Fatalf("client reached %s, want node2", got)
	}

	e.setEndpoints("local", "node3")
	if got := e.waitAnnouncer("local", not("node2")); got != "node3" {
		t.Fatalf("after moving the endpoint to node3, announced by %s", got)
	}
	e.waitCurl(ip, func(n string) bool { return n == "node3" })

	e.setEndpoints("local")
	eventually(t, 10*time.Second, func() error {
		if got := e.arpAnswerers(ip); len(got) != 0 {
			return fmt.Errorf("no serving endpoint, yet ARP answers from %v", got)
		}
		if got, err := e.announcers("local"); err != nil || len(got) != 0 {
			return fmt.Errorf("no serving endpoint, yet ServiceL2Status %v (%v)", got, err)
		}
		return nil
	})
}

// TestL2SharedIPOneNode checks that Services sharing an IP are announced by
// one node.
func TestL2SharedIPOneNode(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.applyL2(e.defaultPool(), nil)
	share := func(port int32) func(*corev1.Service) {
		return func(s *corev1.Service) {
			s.Annotations = map[string]string{"metallb.io/allow-shared-ip": "team"}
			s.Spec.Ports[0].Port = port
		}
	}
	a := v4(e.createService("a", []string{"node1", "node2", "node3"}, share(80)))
	b := v4(e.createService("b", []string{"node1", "node2", "node3"}, share(81)))
	if a != b {
		t.Fatalf("shared Services got %s and %s", a, b)
	}
	na, nb := e.waitAnnouncer("a", anyNode), e.waitAnnouncer("b", anyNode)
	if na != nb {
		t.Fatalf("Services sharing %s announced by %s and %s", a, na, nb)
	}
	if got := e.arpAnswerers(a); len(got) != 1 || e.nodeOfMAC(got[0]) != na {
		t.Fatalf("ARP answers for shared %s from %v, want only %s", a, got, na)
	}
}

// TestL2NodeSelectorsAndInterfaces checks the L2Advertisement's
// nodeSelectors and interfaces.
func TestL2NodeSelectorsAndInterfaces(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.applyL2(e.defaultPool(), func(a *v1beta1.L2Advertisement) {
		a.Spec.NodeSelectors = []metav1.LabelSelector{{MatchLabels: map[string]string{"kubernetes.io/hostname": "node3"}}}
		a.Spec.Interfaces = []string{"eth7"}
	})
	ip := v4(e.createService("sel", []string{"node1", "node2", "node3"}, nil))
	// eth7 does not exist: node3 is elected but answers nowhere, and
	// says so on the Service.
	never(t, 2*time.Second, "announcing on an interface the advertisement does not list", func() error {
		if got := e.arpAnswerers(ip); len(got) != 0 {
			return fmt.Errorf("ARP answers from %v", got)
		}
		return nil
	})
	msg := e.waitEventIn(appNS, "Service", "sel", corev1.EventTypeWarning, "NoEligibleInterface",
		`node "node3"`, ip.String(), "allowed: eth7")
	t.Logf("Event on the Service: %s", msg)
	var adv v1beta1.L2Advertisement
	if err := e.c.Get(t.Context(), client.ObjectKey{Namespace: installNS, Name: "l2"}, &adv); err != nil {
		t.Fatal(err)
	}
	adv.Spec.Interfaces = []string{"eth0"}
	if err := e.c.Update(t.Context(), &adv); err != nil {
		t.Fatal(err)
	}
	if got := e.waitCurl(ip, anyNode); got != "node3" {
		t.Fatalf("nodeSelectors pick node3, but the client reached %s", got)
	}
	if got := e.waitAnnouncer("sel", anyNode); got != "node3" {
		t.Fatalf("ServiceL2Status names %s, want node3", got)
	}
}

// TestL2NodeConditionAndExcludeLabel checks that NetworkUnavailable and the
// exclude label take a node out of the election.
func TestL2NodeConditionAndExcludeLabel(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.applyL2(e.defaultPool(), nil)
	ip := v4(e.createService("web", []string{"node1", "node2", "node3"}, nil))
	first := e.waitAnnouncer("web", anyNode)

	if err := e.lab.SetNodeCondition(t.Context(), first, corev1.NodeNetworkUnavailable, corev1.ConditionTrue); err != nil {
		t.Fatal(err)
	}
	second := e.waitCurl(ip, not(first))
	if got := e.waitAnnouncer("web", not(first)); got != second {
		t.Fatalf("status names %s, client reaches %s", got, second)
	}

	if err := e.lab.SetNodeLabel(t.Context(), second, election.ExcludeLabel, "true"); err != nil {
		t.Fatal(err)
	}
	third := e.waitCurl(ip, func(n string) bool { return n != first && n != second })
	t.Logf("%s (NetworkUnavailable) -> %s (excluded) -> %s", first, second, third)
}

// TestL2DeletedServiceIsSilent checks that a deleted Service's IP is no
// longer answered.
func TestL2DeletedServiceIsSilent(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.applyL2(e.defaultPool(), nil)
	ip := v4(e.createService("gone", []string{"node1", "node2", "node3"}, nil))
	e.waitCurl(ip, anyNode)
	if err := e.c.Delete(t.Context(), &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: appNS, Name: "gone"}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() error {
		if got := e.arpAnswerers(ip); len(got) != 0 {
			return fmt.Errorf("deleted Service's %s still answered by %v", ip, got)
		}
		if got, err := e.announcers("gone"); err != nil || len(got) != 0 {
			return fmt.Errorf("ServiceL2Status left: %v (%v)", got, err)
		}
		return nil
	})
}

// TestL2CutOffAndHeal cuts the owner off the network: another node takes
// over, and after the partition heals exactly one node answers.
func TestL2CutOffAndHeal(t *testing.T) {
	e := newEnv(t, envOptions{})
	ip, owner := e.webOnOwner()

	if err := e.lab.Cut(e.lab.Node(owner)); err != nil {
		t.Fatal(err)
	}
	cut := time.Now()
	// Heal as soon as the client's entry moves: the cut node may not even
	// have counted its peers dead yet, the hardest case for getting the
	// client back afterwards.
	var next string
	eventually(t, 10*time.Second, func() error {
		if next = e.neighborNode(ip); next == owner || next == "" {
			return fmt.Errorf("the client's entry still points at %q", next)
		}
		return nil
	})
	t.Logf("cut %s: the client's entry moved to %s after %s", owner, next, time.Since(cut).Round(time.Millisecond))

	if err := e.lab.Heal(e.lab.Node(owner)); err != nil {
		t.Fatal(err)
	}
	want := election.Owner([]string{"node1", "node2", "node3"}, ip)
	// The client follows by itself: the owner re-announces when its peers
	// come back, so the client's entry, moved away during the partition,
	// returns without waiting for it to expire.
	// (Checked before any arping: an ARP reply to arping would update
	// the entry too.)
	eventually(t, 5*time.Second, func() error {
		if got := e.neighborNode(ip); got != want {
			return fmt.Errorf("after healing the client's entry points at %q, want %s", got, want)
		}
		return nil
	})
	// A second after healing, one node answers ARP, and it is the one the
	// election picks with every node alive again.
	time.Sleep(time.Second)
	if got := e.arpAnswerers(ip); len(got) != 1 || e.nodeOfMAC(got[0]) != want {
		t.Fatalf("after healing, ARP answers from %v, want only %s", got, want)
	}
	e.waitCurl(ip, func(n string) bool { return n == want })
}

// TestL2RestartsDoNotMoveTheIP restarts the controller and a speaker that
// does not own the IP: the IP, its owner and the client's neighbour entry
// stay put throughout.
func TestL2RestartsDoNotMoveTheIP(t *testing.T) {
	e := newEnv(t, envOptions{})
	ip, owner := e.webOnOwner()

	stable := func() error {
		if got := e.neighborNode(ip); got != owner {
			return fmt.Errorf("client's neighbour entry moved to %q", got)
		}
		if got, err := e.announcers("web"); err != nil || !slices.Equal(got, []string{owner}) {
			return fmt.Errorf("announcers %v (%v)", got, err)
		}
		return nil
	}

	if err := e.ctrl.Stop(); err != nil {
		t.Fatal(err)
	}
	e.startController()
	never(t, 3*time.Second, "controller restart", stable)
	if got := v4(e.waitIPs("web")); got != ip {
		t.Fatalf("controller restart changed the IP from %s to %s", ip, got)
	}

	var other string
	for _, n := range e.lab.Nodes {
		if n.Name != owner {
			other = n.Name
			break
		}
	}
	if err := e.speakers[other].Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	e.startSpeaker(other)
	never(t, 3*time.Second, "non-owner speaker restart", stable)
	if n, err := e.curl(ip); err != nil || n != owner {
		t.Fatalf("after restarts the client reached %q (%v), want %s", n, err, owner)
	}
}

// TestL2ServiceEventsAndMetrics checks what an operator reads: an Event on
// the Service naming the announcing node, and the speaker's metrics.
func TestL2ServiceEventsAndMetrics(t *testing.T) {
	e := newEnv(t, envOptions{speakerArgs: []string{"--metrics-bind-address=:7472"}})
	e.applyL2(e.defaultPool(), nil)
	ip := v4(e.createService("web", []string{"node1", "node2", "node3"}, nil))
	owner := e.waitAnnouncer("web", anyNode)
	e.waitCurl(ip, anyNode)
	eventually(t, 10*time.Second, func() error {
		var evs corev1.EventList
		if err := e.c.List(t.Context(), &evs, client.InNamespace(appNS)); err != nil {
			return err
		}
		for _, ev := range evs.Items {
			if ev.InvolvedObject.Name == "web" && ev.Reason == "nodeAssigned" && strings.Contains(ev.Message, owner) {
				return nil
			}
		}
		return fmt.Errorf("no nodeAssigned Event naming %s among %d events", owner, len(evs.Items))
	})
	body, err := e.scrape(owner)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf(`metallb_speaker_announced{ip="%s",node="%s",protocol="layer2",service="%s/web"} 1`, ip, owner, appNS)
	for _, w := range []string{want, "metallb_layer2_requests_received", "metallb_layer2_gratuitous_sent"} {
		if !strings.Contains(body, w) {
			t.Errorf("metrics of %s lack %q", owner, w)
		}
	}
}

// TestL2LastSurvivorTakesOver kills two of the three speakers at once, the
// owner among them: the start-up waits must not hold back a speaker that was
// already running, so the last one standing takes the Service over (the
// failover benchmark times it) and says so in the ServiceL2Status.
func TestL2LastSurvivorTakesOver(t *testing.T) {
	e := newEnv(t, envOptions{})
	ip, owner := e.webOnOwner()

	var survivor string
	var victims []string
	for _, n := range e.lab.Nodes {
		if n.Name != owner && survivor == "" {
			survivor = n.Name
			continue
		}
		victims = append(victims, n.Name)
	}
	for _, v := range victims {
		if err := e.speakers[v].Kill(); err != nil {
			t.Fatal(err)
		}
	}
	killed := time.Now()
	if got := e.waitCurl(ip, func(n string) bool { return n == survivor }); got != survivor {
		t.Fatalf("answered by %s, want the survivor %s", got, survivor)
	}
	t.Logf("speakers of %v killed: the survivor %s answered after %s", victims, survivor, time.Since(killed).Round(time.Millisecond))
	if got := e.waitAnnouncer("web", func(n string) bool { return n == survivor }); got != survivor {
		t.Fatalf("ServiceL2Status names %s, want %s", got, survivor)
	}
	if got := e.arpAnswerers(ip); len(got) != 1 || e.nodeOfMAC(got[0]) != survivor {
		t.Errorf("ARP answers for %s from %v, want only %s", ip, got, survivor)
	}
}

// TestL2InvalidConfigurationKeepsVIPsAnswered breaks the configuration (a
// BGPPeer whose password Secret does not exist makes the whole set invalid)
// and restarts the owner's speaker: starting with no configuration that
// parses, it must not be a candidate, so another node takes the address
// over and keeps it answered; once the configuration parses again the
// owner takes it back.
func TestL2InvalidConfigurationKeepsVIPsAnswered(t *testing.T) {
	e := newEnv(t, envOptions{})
	ip, owner := e.webOnOwner()

	bad := &v1beta2.BGPPeer{ObjectMeta: metav1.ObjectMeta{Namespace: installNS, Name: "broken"}, Spec: v1beta2.BGPPeerSpec{
		MyASN: 64512, PeerASN: 64500, PeerAddress: e.lab.Client.IPv4.String(), // never dialled: the set is invalid
		PasswordSecret: corev1.SecretReference{Name: "does-not-exist"},
	}}
	if err := e.c.Create(t.Context(), bad); err != nil {
		t.Fatal(err)
	}
	// The running speakers keep their last good configuration: nothing
	// moves.
	never(t, 2*time.Second, "breaking the configuration", func() error {
		if got := e.arpAnswerers(ip); len(got) != 1 || e.nodeOfMAC(got[0]) != owner {
			return fmt.Errorf("ARP answers for %s from %v, want only %s", ip, got, owner)
		}
		return nil
	})

	if err := e.speakers[owner].Kill(); err != nil {
		t.Fatal(err)
	}
	e.startSpeaker(owner)
	next := e.waitCurl(ip, not(owner))
	if got := e.neighborNode(ip); got != next {
		t.Fatalf("the client's entry points at %s, but %s answered", got, next)
	}
	// The restarted speaker runs, hears its peers and is heard, but has
	// no configuration: the address must stay with next all along.
	never(t, 5*time.Second, "the owner restarting with an invalid configuration", func() error {
		if got := e.arpAnswerers(ip); len(got) != 1 || e.nodeOfMAC(got[0]) != next {
			return fmt.Errorf("ARP answers for %s from %v, want only %s", ip, got, next)
		}
		return nil
	})

	if err := e.c.Delete(t.Context(), bad); err != nil {
		t.Fatal(err)
	}
	if got := e.waitCurl(ip, func(n string) bool { return n == owner }); got != owner {
		t.Fatalf("after the configuration was fixed, answered by %s, want %s", got, owner)
	}
	e.waitMembers()
	if got := e.waitAnnouncer("web", func(n string) bool { return n == owner }); got != owner {
		t.Fatalf("ServiceL2Status names %s, want %s", got, owner)
	}
}

// TestL2HeartbeatKeyRotation rolls a new memberlist key through the three
// speakers in the documented three steps (new key as secondary, swap, drop
// the old one), one speaker at a time with a planned restart: no two
// speakers ever fail to understand each other (no authentication failure
// anywhere, every speaker sees all three again after each restart), and
// after each restart exactly one node answers for the address, the one the
// election names.
func TestL2HeartbeatKeyRotation(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.applyL2(e.defaultPool(), nil)
	ip := v4(e.createService("web", []string{"node1", "node2", "node3"}, nil))
	want := election.Owner([]string{"node1", "node2", "node3"}, ip)
	e.waitCurl(ip, func(n string) bool { return n == want })

	const next = "e2e-rotated-heartbeat-key"
	for step, environ := range [][]string{
		{speaker.MemberKeyEnv + "=" + memberKey, speaker.MemberSecondaryKeyEnv + "=" + next},
		{speaker.MemberKeyEnv + "=" + next, speaker.MemberSecondaryKeyEnv + "=" + memberKey},
		{speaker.MemberKeyEnv + "=" + next},
	} {
		for _, n := range e.lab.Nodes {
			if err := e.speakers[n.Name].Stop(); err != nil {
				t.Fatal(err)
			}
			e.startSpeakerEnv(n.Name, environ)
			e.waitMembers()
			for _, m := range e.lab.Nodes {
				if got, err := e.metricValue(m.Name, "keeperlb_speaker_heartbeat_auth_failures_total"); err != nil || got != 0 {
					t.Fatalf("step %d, after restarting %s: %s counted %d authentication failures (%v)", step+1, n.Name, m.Name, got, err)
				}
			}
			e.waitCurl(ip, func(n string) bool { return n == want })
			if got := e.arpAnswerers(ip); len(got) != 1 || e.nodeOfMAC(got[0]) != want {
				t.Fatalf("step %d, after restarting %s: ARP answers for %s from %v, want only %s", step+1, n.Name, ip, got, want)
			}
		}
	}
	// A speaker with a key nobody shares is seen by nobody, and says so.
	if err := e.speakers["node1"].Stop(); err != nil {
		t.Fatal(err)
	}
	e.startSpeakerEnv("node1", []string{speaker.MemberKeyEnv + "=an-entirely-different-key"})
	eventually(t, 10*time.Second, func() error {
		got, err := e.metricValue("node2", "keeperlb_speaker_heartbeat_auth_failures_total")
		if err != nil || got == 0 {
			return fmt.Errorf("node2 counts %d authentication failures (%v) from a speaker with another key", got, err)
		}
		if n, err := e.liveMembers("node2"); err != nil || n != 2 {
			return fmt.Errorf("node2 sees %d live speakers (%v), want 2", n, err)
		}
		return nil
	})
}
