package layer2

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keeperlb/keeperlb/internal/netns"
)

// Options tune the announcements. The zero value means the defaults.
type Options struct {
	// GratuitousRepeats is how many gratuitous bursts are sent when an IP
	// is taken over on an interface, the first one at once (default 3).
	GratuitousRepeats int
	// GratuitousInterval is the time between those bursts (default 1.1 s,
	// just over Linux's 1 s ARP locktime, within which a second update of
	// the same neighbour entry would be ignored).
	GratuitousInterval time.Duration
	// Refresh, when positive, re-announces every owned IP this often, for
	// switches that forget a silent MAC; 0 turns it off.
	Refresh time.Duration
}

// Defaults of Options.
const (
	DefaultGratuitousRepeats  = 3
	DefaultGratuitousInterval = 1100 * time.Millisecond
)

// Internal timings: how soon an unusable interface is tried again (doubling
// up to the maximum) and how often open interfaces are checked for a new
// index or MAC address.
const (
	minRetry      = 200 * time.Millisecond
	maxRetry      = 5 * time.Second
	checkInterval = 5 * time.Second
)

func (o Options) withDefaults() (Options, error) {
	if o.GratuitousRepeats < 0 {
		return o, fmt.Errorf("layer2 options: GratuitousRepeats %d: must not be negative", o.GratuitousRepeats)
	}
	if o.GratuitousInterval < 0 {
		return o, fmt.Errorf("layer2 options: GratuitousInterval %v: must not be negative", o.GratuitousInterval)
	}
	if o.Refresh < 0 {
		return o, fmt.Errorf("layer2 options: Refresh %v: must not be negative", o.Refresh)
	}
	if o.GratuitousRepeats == 0 {
		o.GratuitousRepeats = DefaultGratuitousRepeats
	}
	if o.GratuitousInterval == 0 {
		o.GratuitousInterval = DefaultGratuitousInterval
	}
	return o, nil
}

// Announcement says that IP is owned by this node and must be answered for
// on the named interfaces (see Eligible).
type Announcement struct {
	// IP is the Service IP, IPv4 or IPv6 (an IPv4-mapped IPv6 address
	// counts as IPv4; a zone is ignored).
	IP netip.Addr
	// Interfaces are the names of the interfaces to answer on; none means
	// the IP is not announced anywhere.
	Interfaces []string
}

// ErrClosed is returned by Set after Close.
var ErrClosed = errors.New("layer2: announcer closed")

// Announcer answers ARP and NDP for the owned IPs and announces takeovers.
// Its methods are safe for concurrent use.
type Announcer struct {
	log  *slog.Logger
	opts Options
	m    *metrics
	ns   *netns.Handle

	wake     chan struct{}
	stop     chan struct{}
	loopDone chan struct{}

	mu          sync.Mutex
	closed      bool
	isolated    bool // see SetIsolated
	links       map[string]*link
	nextRefresh time.Time
	nextCheck   time.Time
}

// link is the announcer's state for one interface: the IPs wanted on it and,
// when the interface is usable, its sockets.
type link struct {
	name    string
	want    map[netip.Addr]*takeover
	socks   *sockets
	retryAt time.Time
	backoff time.Duration
	// failure is the last failure logged, so that a failure repeating on
	// every retry is logged once.
	failure string
}

// takeover counts the gratuitous bursts still due for one IP on one link.
type takeover struct {
	left int
	due  time.Time
}

// New returns an Announcer that owns nothing yet. It works in the calling
// thread's network namespace (see the package documentation). Metrics are
// registered on reg unless it is nil.
func New(log *slog.Logger, reg prometheus.Registerer, opts Options) (*Announcer, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	ns, err := netns.Current()
	if err != nil {
		return nil, fmt.Errorf("layer2: %w", err)
	}
	now := time.Now()
	a := &Announcer{
		log:         log,
		opts:        opts,
		m:           m,
		ns:          ns,
		wake:        make(chan struct{}, 1),
		stop:        make(chan struct{}),
		loopDone:    make(chan struct{}),
		links:       map[string]*link{},
		nextRefresh: now.Add(opts.Refresh),
		nextCheck:   now.Add(checkInterval),
	}
	go a.loop()
	return a, nil
}

// Set replaces the set of owned IPs. It is level-based and idempotent. When
// it returns, IPs no longer listed for an interface are not answered on it
// any more, and each IP newly listed for an interface has had its first
// gratuitous burst sent there, with the repeats to follow. An interface
// that cannot be used now (missing, down) is logged and retried in the
// background; that is not an error of Set. Set fails, changing nothing,
// only on invalid input or after Close.
func (a *Announcer) Set(owned []Announcement) error {
	desired, err := normalize(owned)
	if err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return ErrClosed
	}
	now := time.Now()
	names := slices.Sorted(maps.Keys(desired))
	for name := range a.links {
		if _, ok := desired[name]; !ok {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		ips := desired[name]
		l := a.links[name]
		if len(ips) == 0 {
			if l != nil {
				a.closeSockets(l)
				delete(a.links, name)
				a.log.Info("stopped announcing on interface", "interface", name)
			}
			continue
		}
		if l == nil {
			l = &link{name: name, want: map[netip.Addr]*takeover{}}
			a.links[name] = l
		}
		for ip := range l.want {
			if _, ok := ips[ip]; !ok {
				delete(l.want, ip)
			}
		}
		var added []netip.Addr
		for ip := range ips {
			if _, ok := l.want[ip]; !ok {
				l.want[ip] = &takeover{}
				added = append(added, ip)
			}
		}
		slices.SortFunc(added, netip.Addr.Compare)
		if l.socks == nil {
			if !now.Before(l.retryAt) {
				a.openLink(l, now)
			}
			continue
		}
		a.syncOwned(l)
		for _, ip := range added {
			a.startTakeover(l, ip, now)
		}
	}
	a.poke()
	return nil
}

// Reannounce starts a new gratuitous burst for every owned IP on every
// usable interface, as if each had just been taken over. The speaker calls
// it when a peer comes back after a partition: while it was away, clients
// may have been told another node owns these IPs, and this node, which
// never stopped owning them in its own view, would otherwise not say so
// again until their neighbour entries expire.
func (a *Announcer) Reannounce() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return ErrClosed
	}
	now := time.Now()
	for _, name := range slices.Sorted(maps.Keys(a.links)) {
		l := a.links[name]
		if l.socks == nil {
			continue
		}
		for _, ip := range slices.SortedFunc(maps.Keys(l.want), netip.Addr.Compare) {
			a.startTakeover(l, ip, now)
		}
	}
	a.poke()
	return nil
}

// normalize validates the announcements and groups them by interface.
func normalize(owned []Announcement) (map[string]map[netip.Addr]struct{}, error) {
	out := map[string]map[netip.Addr]struct{}{}
	for i, an := range owned {
		if !an.IP.IsValid() {
			return nil, fmt.Errorf("layer2: announcement %d: no IP", i)
		}
		ip := an.IP.Unmap().WithZone("")
		if ip.IsUnspecified() || ip.IsMulticast() || ip.IsLoopback() || ip == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
			return nil, fmt.Errorf("layer2: announcement of %s: not a unicast address", an.IP)
		}
		for _, name := range an.Interfaces {
			if err := validInterfaceName(name); err != nil {
				return nil, fmt.Errorf("layer2: announcement of %s: interface %q: %w", ip, name, err)
			}
			if out[name] == nil {
				out[name] = map[netip.Addr]struct{}{}
			}
			out[name][ip] = struct{}{}
		}
	}
	return out, nil
}

// validInterfaceName applies the kernel's rules for interface names.
func validInterfaceName(name string) error {
	switch {
	case name == "":
		return errors.New("empty name")
	case len(name) > 15:
		return errors.New("longer than 15 bytes")
	case name == "." || name == "..":
		return errors.New("reserved name")
	case strings.ContainsAny(name, "/: \t\n\x00"):
		return errors.New("contains '/', ':', whitespace or NUL")
	}
	return nil
}

// Close stops answering on every interface, closes the sockets and stops
// the background goroutine. It is idempotent.
func (a *Announcer) Close() error {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil
	}
	a.closed = true
	for _, name := range slices.Sorted(maps.Keys(a.links)) {
		a.closeSockets(a.links[name])
	}
	a.links = nil
	a.mu.Unlock()
	close(a.stop)
	<-a.loopDone
	return a.ns.Close()
}

// poke wakes the background loop to recompute its next deadline.
func (a *Announcer) poke() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// SetIsolated says whether this node hears none of its peers. While it
// does, takeovers send one gratuitous burst and no repeats, and the repeats
// still due when it becomes isolated are dropped.
//
// A node that hears nobody cannot tell whether the others died or its own
// link did. If its link is cut, it takes every IP over and its repeats wait
// for the link to come back: the first one after a heal, sent before it
// hears its peers again, pulls clients away from the real owners (and the
// owners' answer may fall within the clients' ARP locktime). If instead it
// is the last node standing, its link works, and the one burst reaches the
// clients, whose entries are in locktime only if a dead owner announced
// in the second before it died. Clients that miss it ask once their entry
// goes stale, and are answered.
func (a *Announcer) SetIsolated(isolated bool) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return ErrClosed
	}
	if isolated == a.isolated {
		return nil
	}
	a.isolated = isolated
	if !isolated {
		a.log.Info("hearing peers again; takeovers send repeated gratuitous announcements")
		return nil
	}
	dropped := 0
	for _, l := range a.links {
		for _, t := range l.want {
			if t.left > 0 {
				dropped++
			}
			t.left = 0
		}
	}
	a.log.Info("hearing no peer; takeovers send one gratuitous announcement, no repeats", "repeats_dropped", dropped)
	return nil
}

// loop runs the timed work: repeated bursts, refreshes, retries of
// unusable interfaces, and the periodic interface check.
func (a *Announcer) loop() {
	defer close(a.loopDone)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		a.mu.Lock()
		if a.closed {
			a.mu.Unlock()
			return
		}
		next := a.tick(time.Now())
		a.mu.Unlock()
		timer.Reset(max(time.Until(next), 0))
		select {
		case <-a.stop:
			return
		case <-a.wake:
		case <-timer.C:
		}
	}
}

// tick does the work due at now and returns when the next is due. a.mu is
// held.
func (a *Announcer) tick(now time.Time) time.Time {
	next := now.Add(time.Hour)
	if len(a.links) > 0 && !now.Before(a.nextCheck) {
		a.checkLinks(now)
		a.nextCheck = now.Add(checkInterval)
	}
	refresh := a.opts.Refresh > 0 && !now.Before(a.nextRefresh)
	if refresh {
		a.nextRefresh = now.Add(a.opts.Refresh)
	}
	for _, name := range slices.Sorted(maps.Keys(a.links)) {
		l := a.links[name]
		if l.socks != nil {
			if err := l.socks.failure(); err != nil {
				a.closeSockets(l)
				a.noteFailure(l, "socket failed; reopening", err)
				l.retryAt = now
			}
		}
		if l.socks == nil {
			if !now.Before(l.retryAt) {
				a.openLink(l, now)
			}
			if l.socks == nil {
				next = minTime(next, l.retryAt)
				continue
			}
		}
		for _, ip := range slices.SortedFunc(maps.Keys(l.want), netip.Addr.Compare) {
			t := l.want[ip]
			switch {
			case t.left > 0 && !now.Before(t.due):
				a.announce(l, ip)
				t.left--
				t.due = now.Add(a.opts.GratuitousInterval)
			case refresh:
				a.announce(l, ip)
			}
			if t.left > 0 {
				next = minTime(next, t.due)
			}
		}
	}
	if a.opts.Refresh > 0 {
		next = minTime(next, a.nextRefresh)
	}
	if len(a.links) > 0 {
		next = minTime(next, a.nextCheck)
	}
	return next
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// openLink tries to open the sockets of l; on success it starts answering
// and announces every wanted IP, since the interface is new or came back.
// On failure it schedules a retry. a.mu is held.
func (a *Announcer) openLink(l *link, now time.Time) {
	s, err := a.openSockets(l.name)
	if err != nil {
		l.backoff = min(max(l.backoff*2, minRetry), maxRetry)
		l.retryAt = now.Add(l.backoff)
		a.noteFailure(l, "cannot announce on interface; retrying", err)
		return
	}
	if l.failure != "" {
		a.log.Info("interface usable again", "interface", l.name)
	} else {
		a.log.Info("announcing on interface", "interface", l.name, "mac", s.mac.String())
	}
	l.failure, l.backoff, l.socks = "", 0, s
	a.syncOwned(l)
	s.start(a)
	for _, ip := range slices.SortedFunc(maps.Keys(l.want), netip.Addr.Compare) {
		a.startTakeover(l, ip, now)
	}
}

// noteFailure logs a failure of l unless it is the same as the last one.
func (a *Announcer) noteFailure(l *link, msg string, err error) {
	if err.Error() == l.failure {
		a.log.Debug(msg, "interface", l.name, "error", err)
		return
	}
	l.failure = err.Error()
	if l.backoff > 0 {
		a.log.Warn(msg, "interface", l.name, "error", err, "retry_in", l.backoff)
		return
	}
	a.log.Warn(msg, "interface", l.name, "error", err)
}

// closeSockets stops answering on l and closes its sockets. a.mu is held.
func (a *Announcer) closeSockets(l *link) {
	if l.socks == nil {
		return
	}
	l.socks.close()
	l.socks = nil
}

// syncOwned makes l's sockets answer exactly for l.want. a.mu is held.
func (a *Announcer) syncOwned(l *link) {
	owned := make(map[netip.Addr]struct{}, len(l.want))
	for ip := range l.want {
		owned[ip] = struct{}{}
	}
	if err := l.socks.setOwned(owned); err != nil {
		a.log.Warn("cannot join the solicited-node groups; IPv6 solicitations may not arrive", "interface", l.name, "error", err)
	}
}

// startTakeover sends the first gratuitous burst for ip on l now and
// schedules the rest, unless the node is isolated. a.mu is held.
func (a *Announcer) startTakeover(l *link, ip netip.Addr, now time.Time) {
	t := l.want[ip]
	a.announce(l, ip)
	t.left = a.opts.GratuitousRepeats - 1
	if a.isolated {
		t.left = 0
	}
	t.due = now.Add(a.opts.GratuitousInterval)
	a.log.Debug("announced takeover", "interface", l.name, "ip", ip)
}

// announce sends one gratuitous burst for ip on l. a.mu is held.
func (a *Announcer) announce(l *link, ip netip.Addr) {
	label := ip.String()
	for _, f := range l.socks.gratuitous(ip) {
		if err := l.socks.write(ip, f); err != nil {
			a.log.Debug("cannot send gratuitous announcement", "interface", l.name, "ip", label, "error", err)
			continue
		}
		a.m.gratuitous.WithLabelValues(label).Inc()
	}
}

// checkLinks reopens the sockets of every open interface whose index or MAC
// changed, or that disappeared or went down without the socket noticing.
// a.mu is held.
func (a *Announcer) checkLinks(now time.Time) {
	var ifs []net.Interface
	err := a.ns.Do(func() error {
		var err error
		ifs, err = net.Interfaces()
		return err
	})
	if err != nil {
		a.log.Warn("cannot list interfaces to check them", "error", err)
		return
	}
	for _, name := range slices.Sorted(maps.Keys(a.links)) {
		l := a.links[name]
		if l.socks == nil {
			continue
		}
		i := slices.IndexFunc(ifs, func(i net.Interface) bool { return i.Name == name })
		var why string
		switch {
		case i < 0:
			why = "interface disappeared"
		case ifs[i].Flags&net.FlagUp == 0:
			why = "interface is down"
		case ifs[i].Index != l.socks.index:
			why = "interface was re-created"
		case !bytes.Equal(ifs[i].HardwareAddr, l.socks.mac):
			why = "interface MAC address changed"
		default:
			continue
		}
		a.closeSockets(l)
		a.noteFailure(l, "reopening interface", errors.New(why))
		l.retryAt = now
		a.openLink(l, now)
	}
}
