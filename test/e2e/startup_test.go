package e2e

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/keeperlb/keeperlb/internal/election"
	"github.com/keeperlb/keeperlb/internal/lab"
)

// TestL2StaggeredStartMakesNoAvoidableMoves starts the three speakers up to
// 2 s apart, in several orders, with Services already holding their IPs,
// and records at the client every ARP and NDP announcement: each must come
// from the node that finally owns the address. A speaker that announced
// before it knew of its peers would take Services it then hands over,
// pulling clients back and forth.
func TestL2StaggeredStartMakesNoAvoidableMoves(t *testing.T) {
	all := []string{"node1", "node2", "node3"}
	for _, order := range [][]string{
		{"node1", "node2", "node3"},
		{"node3", "node2", "node1"},
		{"node2", "node3", "node1"},
	} {
		t.Run(strings.Join(order, "-"), func(t *testing.T) {
			e := newEnv(t, envOptions{noSpeakers: true})
			e.applyL2(e.defaultPool(), nil)
			// Several Services, so that every node owns some: a speaker
			// starting alone would take them all.
			var names []string
			vips := map[string][]netip.Addr{}
			for i := range 6 {
				name := fmt.Sprintf("s%d", i)
				names = append(names, name)
				vips[name] = e.createService(name, all, func(s *corev1.Service) {
					if i == 0 {
						s.Spec.IPFamilyPolicy = new(corev1.IPFamilyPolicyRequireDualStack)
						s.Spec.IPFamilies = []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}
					}
				})
			}
			w, err := e.lab.WatchAnnouncements(e.lab.Client)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _, _ = w.Stop() })

			for i, n := range order {
				if i > 0 {
					// The stagger under test, not a wait for a state.
					time.Sleep(time.Second)
				}
				e.startSpeaker(n)
			}
			e.waitMembers()
			owner := map[netip.Addr]string{}
			for _, name := range names {
				want := election.Owner(all, vips[name][0])
				if got := e.waitAnnouncer(name, anyNode); got != want {
					t.Errorf("%s: ServiceL2Status names %s, the election says %s", name, got, want)
				}
				for _, ip := range vips[name] {
					owner[ip] = want
				}
			}
			// A stray announcement comes before the handover it causes;
			// the check runs from the start of the watch until every owner
			// has announced each of its addresses (so the watch
			// demonstrably sees announcements), then for the owners'
			// gratuitous repeats (3 bursts, 1.1 s apart).
			strays := func() error {
				return e.strayAnnouncement(w, owner, func(ip netip.Addr, n string) bool { return owner[ip] == n })
			}
			eventually(t, 10*time.Second, func() error {
				if err := strays(); err != nil {
					t.Fatal(err)
				}
				for ip, n := range owner {
					if !slices.ContainsFunc(w.Seen(), func(a lab.Announcement) bool {
						return a.Gratuitous && a.IP == ip && e.nodeOfMAC(a.MAC.String()) == n
					}) {
						return fmt.Errorf("no gratuitous announcement of %s from its owner %s yet", ip, n)
					}
				}
				return nil
			})
			never(t, 3*time.Second, "start-up announcements", strays)
			seen, err := w.Stop()
			if err != nil {
				t.Fatalf("watching announcements: %v", err)
			}
			counted := 0
			for _, a := range seen {
				if _, ours := owner[a.IP]; ours && a.Gratuitous {
					counted++
				}
			}
			t.Logf("starts %v: %d gratuitous announcements, all from the owners", order, counted)
		})
	}
}
