package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/keeperlb/keeperlb/api/v1beta1"
	"github.com/keeperlb/keeperlb/api/v1beta2"
	"github.com/keeperlb/keeperlb/internal/lab"
	"github.com/keeperlb/keeperlb/internal/netns"
	"github.com/keeperlb/keeperlb/internal/speaker"
)

const (
	installNS = "metallb-system"
	appNS     = "bench"
	memberKey = "bench-bgp-heartbeat-key"
	nodeASN   = 64512
	routerASN = 64500
	// annotationIPs requests a specific address (MetalLB's annotation), so
	// that the route to wait for is known before the Service exists.
	annotationIPs = "metallb.io/loadBalancerIPs"
	// pollEvery is how often the router's kernel table is read.
	pollEvery = 2 * time.Millisecond
	// settle is the pause between trials, so that each starts from a
	// quiet system (status writes of the previous one done).
	settle = 500 * time.Millisecond
)

// mode selects how the router and the BGPPeer detect a dead node.
type mode int

const (
	// bfdMode: BFD 300 ms x 3 on every session, hold time 90 s.
	bfdMode mode = iota
	// holdMode: no BFD, keepalive 3 s and hold time 9 s on both sides.
	holdMode
)

// bench is one lab with FRR in its router, the controller and a speaker
// on every node, all nodes peering with the router.
type bench struct {
	o      options
	log    *slog.Logger
	lab    *lab.Lab
	c      client.Client
	frr    *lab.FRR
	routes *routes
	mode   mode
	nodes  []*lab.Host
}

// withLab brings up a lab in mode m, runs fn on it and takes it down.
func withLab(ctx context.Context, o options, log *slog.Logger, m mode, fn func(*bench) error) (err error) {
	l, err := lab.Up(ctx, lab.Options{Nodes: 3, Router: true, Log: log, Keep: o.keepLogs})
	if err != nil {
		return err
	}
	defer func() {
		if o.keepLogs || err != nil {
			log.Info("lab logs", "dir", l.Dir)
		}
		if derr := l.Down(); derr != nil {
			err = errors.Join(err, derr)
		}
	}()
	b, err := newBench(ctx, o, l, log, m)
	if err != nil {
		return err
	}
	defer b.routes.close()
	return fn(b)
}

// newBench starts FRR, the controller and the speakers, applies the
// configuration and waits until every session (and BFD) is up.
func newBench(ctx context.Context, o options, l *lab.Lab, log *slog.Logger, m mode) (*bench, error) {
	scheme, err := speaker.NewScheme()
	if err != nil {
		return nil, err
	}
	cfg := rest.CopyConfig(l.ControlPlane.Config)
	cfg.QPS, cfg.Burst = -1, 0
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, err
	}
	b := &bench{o: o, log: log, lab: l, c: c, mode: m, nodes: l.Nodes}
	for _, ns := range []string{installNS, appNS} {
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil && !apierrors.IsAlreadyExists(err) {
			return nil, err
		}
	}
	if err := l.ApplyNodes(ctx); err != nil {
		return nil, err
	}
	if b.frr, err = l.StartFRR(ctx, b.bgpdConf(), b.bfddConf()); err != nil {
		return nil, err
	}
	if _, err := l.Start(nil, "controller", []string{o.controllerBin,
		"--kubeconfig=" + l.ControlPlane.Kubeconfig, "--metrics-bind-address=0", "--health-probe-bind-address=0", "--disable-webhook",
	}, nil); err != nil {
		return nil, err
	}
	for _, n := range l.Nodes {
		if _, err := l.Start(n, "speaker-"+n.Name, []string{o.speakerBin, "--node-name=" + n.Name,
			"--kubeconfig=" + l.ControlPlane.Kubeconfig, "--health-probe-bind-address=0",
		}, []string{speaker.MemberKeyEnv + "=" + memberKey}); err != nil {
			return nil, err
		}
	}
	if err := b.applyConfig(ctx); err != nil {
		return nil, err
	}
	if b.routes, err = openRoutes(l.Router); err != nil {
		return nil, err
	}
	if err := b.waitSessions(ctx, true, l.Nodes...); err != nil {
		b.routes.close()
		return nil, err
	}
	return b, nil
}

// bgpdConf is the router's configuration: explicit neighbors (BFD needs
// them), ECMP, and in bfdMode the lab's client as a neighbor too, for the
// engine baseline.
func (b *bench) bgpdConf() string {
	var s strings.Builder
	fmt.Fprintf(&s, "router bgp %d\n bgp router-id %s\n no bgp ebgp-requires-policy\n", routerASN, b.lab.Router.IPv4)
	if b.mode == holdMode {
		s.WriteString(" timers bgp 3 9\n")
	}
	for _, n := range b.nodes {
		fmt.Fprintf(&s, " neighbor %s remote-as %d\n", n.IPv4, nodeASN)
		if b.mode == bfdMode {
			fmt.Fprintf(&s, " neighbor %s bfd profile fast\n", n.IPv4)
		}
	}
	if b.mode == bfdMode {
		fmt.Fprintf(&s, " neighbor %s remote-as %d\n", b.lab.Client.IPv4, nodeASN)
	}
	s.WriteString(" address-family ipv4 unicast\n  maximum-paths 8\n exit-address-family\n!\n")
	return s.String()
}

func (b *bench) bfddConf() string {
	if b.mode != bfdMode {
		return ""
	}
	return "bfd\n profile fast\n  receive-interval 300\n  transmit-interval 300\n  detect-multiplier 3\n !\n!\n"
}

// applyConfig creates the pool (the lab's BGP range), the BGPPeer, the
// BFDProfile and one BGPAdvertisement for everything.
func (b *bench) applyConfig(ctx context.Context) error {
	peer := &v1beta2.BGPPeer{ObjectMeta: metav1.ObjectMeta{Namespace: installNS, Name: "router"}, Spec: v1beta2.BGPPeerSpec{
		MyASN: nodeASN, PeerASN: routerASN, PeerAddress: b.lab.Router.IPv4.String(),
		ConnectTime: &metav1.Duration{Duration: time.Second},
	}}
	objs := []client.Object{
		&v1beta1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Namespace: installNS, Name: "bench"},
			Spec: v1beta1.IPAddressPoolSpec{Addresses: []string{b.lab.BGPPool4.String()}}},
		&v1beta1.BGPAdvertisement{ObjectMeta: metav1.ObjectMeta{Namespace: installNS, Name: "all"}},
	}
	switch b.mode {
	case bfdMode:
		ms := func(v uint32) *uint32 { return &v }
		objs = append(objs, &v1beta1.BFDProfile{ObjectMeta: metav1.ObjectMeta{Namespace: installNS, Name: "fast"},
			Spec: v1beta1.BFDProfileSpec{ReceiveInterval: ms(300), TransmitInterval: ms(300), DetectMultiplier: ms(3)}})
		peer.Spec.BFDProfile = "fast"
	case holdMode:
		peer.Spec.HoldTime = &metav1.Duration{Duration: 9 * time.Second}
		peer.Spec.KeepaliveTime = &metav1.Duration{Duration: 3 * time.Second}
	}
	objs = append(objs, peer)
	for _, o := range objs {
		if err := b.c.Create(ctx, o); err != nil {
			return fmt.Errorf("creating %T %s: %w", o, o.GetName(), err)
		}
	}
	return nil
}

// waitSessions waits until FRR's sessions with the hosts are Established
// and, with withBFD in bfdMode, their BFD sessions Up.
func (b *bench) waitSessions(ctx context.Context, withBFD bool, hosts ...*lab.Host) error {
	return poll(ctx, 60*time.Second, 20*time.Millisecond, func() error {
		var bfd map[netip.Addr]string
		if withBFD && b.mode == bfdMode {
			var err error
			if bfd, err = b.frr.BFDPeers(ctx); err != nil {
				return err
			}
		}
		for _, h := range hosts {
			if err := b.frr.Established(ctx, h.IPv4); err != nil {
				return err
			}
			if bfd != nil && bfd[h.IPv4] != "up" {
				return fmt.Errorf("BFD with %s is %q", h.Name, bfd[h.IPv4])
			}
		}
		return nil
	})
}

// vip returns the lab BGP pool's address with the given last byte.
func (b *bench) vip(last int) netip.Addr {
	a := b.lab.BGPPool4.Addr().As4()
	a[3] = byte(last)
	return netip.AddrFrom4(a)
}

// createService creates a LoadBalancer Service for ip with serving
// endpoints on every node (written first, so that the Service is
// advertised as soon as it has its address).
func (b *bench) createService(ctx context.Context, name string, ip netip.Addr) error {
	all := map[string]bool{}
	for _, n := range b.nodes {
		all[n.Name] = true
	}
	if err := b.lab.SetEndpoints(ctx, appNS, name, lab.BackendPort, all); err != nil {
		return err
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: appNS, Name: name, Annotations: map[string]string{annotationIPs: ip.String()}},
		Spec: corev1.ServiceSpec{
			Type:                          corev1.ServiceTypeLoadBalancer,
			AllocateLoadBalancerNodePorts: new(false),
			Ports: []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP,
				TargetPort: intstr.FromInt32(lab.BackendPort)}},
		},
	}
	return b.c.Create(ctx, svc)
}

func (b *bench) deleteService(ctx context.Context, name string) error {
	return b.c.Delete(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: appNS, Name: name}})
}

// routes reads the router's kernel routing table over a netlink socket
// opened in its namespace: a dump is one system call, cheap enough to
// repeat every 2 ms (forking `ip route` would take longer than that).
type routes struct {
	mu sync.Mutex
	h  *netlink.Handle
}

func openRoutes(h *lab.Host) (*routes, error) {
	r := &routes{}
	err := netns.Do(h.Netns, func() error {
		var err error
		r.h, err = netlink.NewHandle(unix.NETLINK_ROUTE)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("netlink socket in %s: %w", h.Netns, err)
	}
	return r, nil
}

func (r *routes) close() { r.h.Close() }

// hops returns the next hops of the main table's route for exactly p,
// sorted; none without such a route.
func (r *routes) hops(p netip.Prefix) ([]netip.Addr, error) {
	fam := netlink.FAMILY_V4
	if p.Addr().Is6() {
		fam = netlink.FAMILY_V6
	}
	dst := &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
	r.mu.Lock()
	list, err := r.h.RouteListFiltered(fam, &netlink.Route{Dst: dst, Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_DST|netlink.RT_FILTER_TABLE)
	r.mu.Unlock()
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return nil, fmt.Errorf("route dump: %w", err)
	}
	var out []netip.Addr
	add := func(ip net.IP) {
		if a, ok := netip.AddrFromSlice(ip); ok {
			out = append(out, a.Unmap())
		}
	}
	for _, rt := range list {
		if rt.Gw != nil {
			add(rt.Gw)
		}
		for _, nh := range rt.MultiPath {
			add(nh.Gw)
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out), nil
}

// until polls the route for p until ok accepts its next hops, and
// returns when that was first seen; an error after timeout.
func (r *routes) until(ctx context.Context, p netip.Prefix, timeout time.Duration, what string, ok func([]netip.Addr) bool) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	for {
		hops, err := r.hops(p)
		seen := time.Now()
		if err != nil {
			return time.Time{}, err
		}
		if ok(hops) {
			return seen, nil
		}
		if seen.After(deadline) {
			return time.Time{}, fmt.Errorf("%s: after %v the router's route for %s has next hops %v", what, timeout, p, hops)
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-time.After(pollEvery):
		}
	}
}

func hostRoute(a netip.Addr) netip.Prefix { return netip.PrefixFrom(a, a.BitLen()) }

// poll retries check every interval until it passes or timeout elapses.
func poll(ctx context.Context, timeout, interval time.Duration, check func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %v: %w", timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
	}
}

// logPath is where the lab keeps a process's log.
func (b *bench) logPath(name string) string { return filepath.Join(b.lab.Dir, name+".log") }
