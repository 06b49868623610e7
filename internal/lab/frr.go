package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// FRRDir is where Debian's frr package puts the daemons.
const FRRDir = "/usr/lib/frr"

// ErrNotEstablished is wrapped by FRR.Established when the session exists
// at FRR but is not in state Established.
var ErrNotEstablished = errors.New("BGP session not established")

// CheckFRR tells what running FRR in the lab is missing on this machine:
// zebra, bgpd and bfdd, vtysh and the frr user the daemons drop to.
func CheckFRR() error {
	var missing []string
	for _, d := range []string{"zebra", "bgpd", "bfdd"} {
		if _, err := os.Stat(filepath.Join(FRRDir, d)); err != nil {
			missing = append(missing, filepath.Join(FRRDir, d))
		}
	}
	if _, err := exec.LookPath("vtysh"); err != nil {
		missing = append(missing, "vtysh")
	}
	if _, err := user.Lookup("frr"); err != nil {
		missing = append(missing, "the frr user")
	}
	if len(missing) > 0 {
		return fmt.Errorf("FRR in the lab needs %s (run `bash hack/lab-deps.sh`)", strings.Join(missing, ", "))
	}
	return nil
}

// FRR is FRR's zebra, bgpd and (optionally) bfdd running as lab processes in
// one host. It is driven and read with vtysh; Lab.Down ends it with the lab.
type FRR struct {
	// Host is where the daemons run.
	Host *Host
	// Dir holds the configuration files, the vty sockets, zserv.api and
	// the PID files. It is owned by frr:frr, which the daemons drop to.
	Dir string
	// Procs are the daemons, zebra first; their output (FRR logs to
	// stdout) is in each Process's Log.
	Procs []*Process
}

// StartFRR runs FRR in the lab's router (Options.Router must have been
// set): zebra, bgpd with bgpdConf and, when bfddConf is not empty, bfdd with
// it. It returns once bgpd answers vtysh. Routes bgpd selects go into the
// router's kernel table through zebra, which is what traffic from the far
// client follows.
//
// The configurations are the bodies of bgpd.conf and bfdd.conf (e.g.
// "router bgp 64500\n ..."); a header naming the host and sending logs to
// stdout is prepended. Use explicit neighbors rather than listen ranges when
// BFD is on: FRR's BFD for dynamic neighbors does not come up reliably.
//
// zebra leaves its routes behind in the kernel when it is killed, so run
// FRR once per lab.
func (l *Lab) StartFRR(ctx context.Context, bgpdConf, bfddConf string) (*FRR, error) {
	if l.Router == nil {
		return nil, fmt.Errorf("lab %s has no router: bring it up with Options.Router", l.Name)
	}
	return l.StartFRRIn(ctx, l.Router, bgpdConf, bfddConf)
}

// StartFRRDetached is StartFRR with daemons that outlive this process
// (see Lab.StartDetached), for a lab left running after its command exits.
func (l *Lab) StartFRRDetached(ctx context.Context, bgpdConf, bfddConf string) (*FRR, error) {
	if l.Router == nil {
		return nil, fmt.Errorf("lab %s has no router: bring it up with Options.Router", l.Name)
	}
	return l.startFRR(ctx, l.Router, bgpdConf, bfddConf, l.StartDetached)
}

// StartFRRIn is StartFRR in any host of the lab, e.g. a node that should
// play a second router.
func (l *Lab) StartFRRIn(ctx context.Context, h *Host, bgpdConf, bfddConf string) (*FRR, error) {
	return l.startFRR(ctx, h, bgpdConf, bfddConf, l.Start)
}

func (l *Lab) startFRR(ctx context.Context, h *Host, bgpdConf, bfddConf string,
	start func(h *Host, name string, argv, env []string) (*Process, error)) (_ *FRR, err error) {
	if err := CheckFRR(); err != nil {
		return nil, err
	}
	u, err := user.Lookup("frr")
	if err != nil {
		return nil, fmt.Errorf("frr in %s: %w", h.Name, err)
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return nil, fmt.Errorf("frr in %s: uid %q: %w", h.Name, u.Uid, err)
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return nil, fmt.Errorf("frr in %s: gid %q: %w", h.Name, u.Gid, err)
	}
	// The daemons drop to frr:frr and create their sockets here, so the
	// folder belongs to frr (a 0700 root folder would lock them out).
	dir, err := os.MkdirTemp(l.Dir, "frr-"+h.Name+"-")
	if err != nil {
		return nil, fmt.Errorf("frr in %s: %w", h.Name, err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, fmt.Errorf("frr in %s: %w", h.Name, err)
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		return nil, fmt.Errorf("frr in %s: %w", h.Name, err)
	}
	f := &FRR{Host: h, Dir: dir}
	defer func() {
		if err != nil {
			f.Stop()
			err = fmt.Errorf("frr in %s: %w (logs in %s)", h.Name, err, l.Dir)
		}
	}()
	type daemon struct{ name, conf string }
	daemons := []daemon{{"zebra", ""}, {"bgpd", bgpdConf}}
	if bfddConf != "" {
		daemons = append(daemons, daemon{"bfdd", bfddConf})
	}
	for _, d := range daemons {
		conf := filepath.Join(dir, d.name+".conf")
		body := fmt.Sprintf("frr defaults traditional\nhostname %s\nlog stdout informational\n!\n%s\n", h.Name, d.conf)
		if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
			return nil, err
		}
		if err := os.Chown(conf, uid, gid); err != nil {
			return nil, err
		}
		argv := []string{filepath.Join(FRRDir, d.name), "--vty_socket", dir, "-z", filepath.Join(dir, "zserv.api"),
			"-P", "0", "-u", "frr", "-g", "frr", "-f", conf, "-i", filepath.Join(dir, d.name+".pid")}
		if d.name == "bfdd" {
			argv = append(argv, "--bfdctl", filepath.Join(dir, "bfdd.sock"))
		}
		p, err := start(h, "frr-"+h.Name+"-"+d.name, argv, nil)
		if err != nil {
			return nil, err
		}
		f.Procs = append(f.Procs, p)
		// bgpd and bfdd register with zebra at start; with the socket
		// in place they do so at once instead of after a retry timer.
		if d.name == "zebra" {
			if err := f.waitReady(ctx, p, func() error {
				_, err := os.Stat(filepath.Join(dir, "zserv.api"))
				return err
			}); err != nil {
				return nil, fmt.Errorf("zebra did not open its socket: %w", err)
			}
		}
	}
	if err := f.waitReady(ctx, nil, func() error {
		_, err := f.Vtysh(ctx, "show bgp summary json")
		return err
	}); err != nil {
		return nil, fmt.Errorf("bgpd does not answer: %w", err)
	}
	return f, nil
}

// waitReady polls check for up to 10 s, giving up early when a daemon
// exits (p, or any daemon started so far when p is nil).
func (f *FRR) waitReady(ctx context.Context, p *Process, check func() error) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := check()
		if err == nil {
			return nil
		}
		for _, q := range f.Procs {
			if (p == nil || q == p) && q.Exited() {
				return fmt.Errorf("%s exited: %v (see %s)", q.Name, q.Wait(), q.Log)
			}
		}
		if time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Stop ends the daemons (SIGTERM, then SIGKILL after 5 s), bgpd and bfdd
// before zebra. Lab.Down does the same; Stop is for ending FRR early.
func (f *FRR) Stop() error {
	var errs []error
	for _, p := range slices.Backward(f.Procs) {
		if err := p.Stop(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Vtysh runs one vtysh command against this FRR and returns its output.
// Never `write`: the configuration files are the test's.
func (f *FRR) Vtysh(ctx context.Context, command string) (string, error) {
	cmd := exec.CommandContext(ctx, "vtysh", "--vty_socket", f.Dir, "-c", command)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("vtysh -c %q in %s: %w: %s%s", command, f.Host.Name, err,
			strings.TrimSpace(stderr.String()), strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

// JSON runs a vtysh command (ending in "json") and decodes its answer.
func (f *FRR) JSON(ctx context.Context, command string, v any) error {
	out, err := f.Vtysh(ctx, command)
	if err != nil {
		return err
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		return fmt.Errorf("vtysh -c %q in %s: decoding %q: %w", command, f.Host.Name, out, err)
	}
	return nil
}

// Neighbor is one BGP neighbor as FRR sees it.
type Neighbor struct {
	// Address is the neighbor's address.
	Address netip.Addr
	// State is FRR's FSM state: Idle, Connect, Active, OpenSent,
	// OpenConfirm or Established.
	State string
	// RemoteAS and RemoteRouterID are what the neighbor announced.
	RemoteAS       uint32
	RemoteRouterID string
	// Uptime is how long the session has been Established (zero when it
	// is not).
	Uptime time.Duration
	// Established and Dropped count the session's ups and downs since
	// FRR started: a change that must not disturb the session leaves both
	// unchanged.
	Established, Dropped int
	// HoldTime is the negotiated hold time.
	HoldTime time.Duration
	// LastReset and LastNotification say why the session last went down.
	LastReset, LastNotification string
}

// neighborJSON is the part of `show bgp neighbors X json` Neighbor uses.
type neighborJSON struct {
	State            string `json:"bgpState"`
	RemoteAS         uint32 `json:"remoteAs"`
	RemoteRouterID   string `json:"remoteRouterId"`
	UpMsec           int64  `json:"bgpTimerUpMsec"`
	Established      int    `json:"connectionsEstablished"`
	Dropped          int    `json:"connectionsDropped"`
	HoldMsecs        int64  `json:"bgpTimerHoldTimeMsecs"`
	LastReset        string `json:"lastResetDueTo"`
	LastNotification string `json:"lastNotificationReason"`
}

// Neighbor returns FRR's view of a configured neighbor; an error when FRR
// does not know it.
func (f *FRR) Neighbor(ctx context.Context, addr netip.Addr) (Neighbor, error) {
	addr = addr.Unmap()
	var m map[string]json.RawMessage
	if err := f.JSON(ctx, "show bgp neighbors "+addr.String()+" json", &m); err != nil {
		return Neighbor{}, err
	}
	raw, ok := m[addr.String()]
	if !ok {
		return Neighbor{}, fmt.Errorf("FRR in %s has no neighbor %s", f.Host.Name, addr)
	}
	var n neighborJSON
	if err := json.Unmarshal(raw, &n); err != nil {
		return Neighbor{}, fmt.Errorf("neighbor %s at FRR in %s: %w", addr, f.Host.Name, err)
	}
	out := Neighbor{Address: addr, State: n.State, RemoteAS: n.RemoteAS, RemoteRouterID: n.RemoteRouterID,
		Established: n.Established, Dropped: n.Dropped, HoldTime: time.Duration(n.HoldMsecs) * time.Millisecond,
		LastReset: n.LastReset, LastNotification: n.LastNotification}
	if n.State == "Established" {
		out.Uptime = time.Duration(n.UpMsec) * time.Millisecond
	}
	return out, nil
}

// Established returns nil when FRR's session with neighbor is Established,
// and otherwise an error naming the state (wrapping ErrNotEstablished) or
// saying why FRR could not be asked. It suits polling loops.
func (f *FRR) Established(ctx context.Context, neighbor netip.Addr) error {
	n, err := f.Neighbor(ctx, neighbor)
	if err != nil {
		return err
	}
	if n.State != "Established" {
		return fmt.Errorf("FRR in %s: neighbor %s is %s (last reset: %s): %w", f.Host.Name, neighbor, n.State, n.LastReset, ErrNotEstablished)
	}
	return nil
}

// Path is one path of a prefix in FRR's BGP table.
type Path struct {
	// Peer is the neighbor the path came from; the unspecified address
	// for a path FRR originates itself.
	Peer netip.Addr
	// Valid, Best and Multipath are FRR's flags: Best is the selected
	// path, Multipath one installed alongside it (ECMP).
	Valid, Best, Multipath bool
	// Stale marks a path kept by graceful restart while its neighbor
	// restarts.
	Stale bool
	// LocalPref is LOCAL_PREF (iBGP); 0 when the path has none.
	LocalPref uint32
	// Communities and LargeCommunities are the attribute values as FRR
	// prints them ("65000:100", "64512:1:2"), in FRR's order.
	Communities, LargeCommunities []string
	// NextHops are the path's next hops (for IPv6, the global one and, when
	// sent, the link-local one).
	NextHops []netip.Addr
	// ASPath is the AS path as FRR prints it: "64512 64513", or "Local"
	// when it is empty (a path from an iBGP neighbor in the same AS).
	ASPath string
}

// pathJSON is one element of "paths" in `show bgp <afi> unicast P json`.
type pathJSON struct {
	Valid     bool   `json:"valid"`
	Stale     bool   `json:"stale"`
	Multipath bool   `json:"multipath"`
	LocPrf    uint32 `json:"locPrf"`
	BestPath  *struct {
		Overall bool `json:"overall"`
	} `json:"bestpath"`
	ASPath *struct {
		String string `json:"string"`
	} `json:"aspath"`
	Community *struct {
		String string `json:"string"`
	} `json:"community"`
	LargeCommunity *struct {
		String string `json:"string"`
	} `json:"largeCommunity"`
	Nexthops []struct {
		IP string `json:"ip"`
	} `json:"nexthops"`
	Peer *struct {
		PeerID string `json:"peerId"`
	} `json:"peer"`
}

// Paths returns the paths FRR's BGP table holds for exactly prefix; none
// (and no error) when the prefix is not in the table.
func (f *FRR) Paths(ctx context.Context, prefix netip.Prefix) ([]Path, error) {
	prefix = prefix.Masked()
	afi := "ipv4"
	if prefix.Addr().Is6() {
		afi = "ipv6"
	}
	var r struct {
		Paths []pathJSON `json:"paths"`
	}
	if err := f.JSON(ctx, fmt.Sprintf("show bgp %s unicast %s json", afi, prefix), &r); err != nil {
		return nil, err
	}
	out := make([]Path, 0, len(r.Paths))
	for _, p := range r.Paths {
		path := Path{Valid: p.Valid, Stale: p.Stale, Multipath: p.Multipath, LocalPref: p.LocPrf,
			Best: p.BestPath != nil && p.BestPath.Overall}
		if p.ASPath != nil {
			path.ASPath = p.ASPath.String
		}
		if p.Community != nil {
			path.Communities = strings.Fields(p.Community.String)
		}
		if p.LargeCommunity != nil {
			path.LargeCommunities = strings.Fields(p.LargeCommunity.String)
		}
		if p.Peer != nil {
			if a, err := netip.ParseAddr(p.Peer.PeerID); err == nil {
				path.Peer = a
			}
		}
		for _, nh := range p.Nexthops {
			a, err := netip.ParseAddr(nh.IP)
			if err != nil {
				return nil, fmt.Errorf("FRR in %s: %s: next hop %q: %w", f.Host.Name, prefix, nh.IP, err)
			}
			path.NextHops = append(path.NextHops, a)
		}
		out = append(out, path)
	}
	return out, nil
}

// routeJSON is one route of `ip -j route show`.
type routeJSON struct {
	Gateway  string    `json:"gateway"`
	Via      *viaJSON  `json:"via"`
	Type     string    `json:"type"`
	Nexthops []hopJSON `json:"nexthops"`
}

// viaJSON is a next hop of the other family (an IPv4 route via IPv6).
type viaJSON struct {
	Host string `json:"host"`
}

type hopJSON struct {
	Gateway string   `json:"gateway"`
	Via     *viaJSON `json:"via"`
}

// KernelNextHops returns the next hops of h's kernel route (main table) for
// exactly prefix, sorted and without repeats: one for a single-path route,
// several for a multipath (ECMP) one, none when there is no such route.
func (l *Lab) KernelNextHops(ctx context.Context, h *Host, prefix netip.Prefix) ([]netip.Addr, error) {
	prefix = prefix.Masked()
	fam := "-4"
	if prefix.Addr().Is6() {
		fam = "-6"
	}
	out, err := run(ctx, "", "ip", "-n", h.Netns, "-j", fam, "route", "show", "exact", prefix.String())
	if err != nil {
		return nil, fmt.Errorf("kernel route for %s in %s: %w", prefix, h.Name, err)
	}
	return parseNextHops(out)
}

// parseNextHops extracts the gateways of `ip -j route show` output. A
// multipath route lists them in "nexthops"; older iproute2 prints IPv6
// multipath routes as one entry per next hop, which this handles too.
func parseNextHops(out []byte) ([]netip.Addr, error) {
	if len(bytes.TrimSpace(out)) == 0 {
		return nil, nil
	}
	var routes []routeJSON
	if err := json.Unmarshal(out, &routes); err != nil {
		return nil, fmt.Errorf("parsing ip route output %q: %w", out, err)
	}
	var hops []netip.Addr
	add := func(gw string, via *viaJSON) error {
		if gw == "" && via != nil {
			gw = via.Host
		}
		if gw == "" {
			return nil
		}
		a, err := netip.ParseAddr(gw)
		if err != nil {
			return fmt.Errorf("parsing next hop %q: %w", gw, err)
		}
		hops = append(hops, a)
		return nil
	}
	for _, r := range routes {
		if r.Type != "" && r.Type != "unicast" {
			continue // unreachable, blackhole: no next hop
		}
		if err := add(r.Gateway, r.Via); err != nil {
			return nil, err
		}
		for _, nh := range r.Nexthops {
			if err := add(nh.Gateway, nh.Via); err != nil {
				return nil, err
			}
		}
	}
	slices.SortFunc(hops, func(a, b netip.Addr) int { return a.Compare(b) })
	return slices.Compact(hops), nil
}

// BFDPeers returns the state of each of bfdd's sessions ("up", "down",
// "init"...), by peer address; empty when bfdd runs none (or does not run).
func (f *FRR) BFDPeers(ctx context.Context) (map[netip.Addr]string, error) {
	var peers []struct {
		Peer   string `json:"peer"`
		Status string `json:"status"`
	}
	if err := f.JSON(ctx, "show bfd peers json", &peers); err != nil {
		return nil, err
	}
	out := make(map[netip.Addr]string, len(peers))
	for _, p := range peers {
		a, err := netip.ParseAddr(p.Peer)
		if err != nil {
			return nil, fmt.Errorf("FRR in %s: BFD peer %q: %w", f.Host.Name, p.Peer, err)
		}
		out[a] = p.Status
	}
	return out, nil
}

// LinkLocal is the IPv6 link-local address the kernel derives (EUI-64)
// from h's MAC address. Routers may install it, rather than the global
// address, as the next hop of routes learned over IPv6 on a shared link.
func (h *Host) LinkLocal() netip.Addr {
	mac := h.MAC
	if len(mac) != 6 {
		return netip.Addr{}
	}
	var b [16]byte
	b[0], b[1] = 0xfe, 0x80
	b[8], b[9], b[10], b[11] = mac[0]^2, mac[1], mac[2], 0xff
	b[12], b[13], b[14], b[15] = 0xfe, mac[3], mac[4], mac[5]
	return netip.AddrFrom16(b)
}
