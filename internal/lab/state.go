package lab

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// StateDir holds one JSON file per lab (kl-lab<K>.json) and the lock that
// serialises index allocation between processes.
const StateDir = "/run/keeperlb/labs"

// State is what a lab's owner records about it, so that other processes (the
// CLI, a later test run's reaper) can find, use and remove it.
type State struct {
	// Name is kl-lab<Index>.
	Name  string `json:"name"`
	Index int    `json:"index"`
	// OwnerPID is the process that created the lab and holds its children;
	// OwnerStart is that process's start time in clock ticks since boot, so
	// that a recycled PID is not mistaken for the owner.
	OwnerPID   int       `json:"ownerPID"`
	OwnerStart uint64    `json:"ownerStart"`
	Created    time.Time `json:"created"`
	// Ready is set once Up finished; a lab that is not ready and has a live
	// owner is still being built.
	Ready bool `json:"ready"`
	// Dir holds logs, the control plane's data and the kubeconfig.
	Dir string `json:"dir"`
	// Keep leaves Dir in place when the lab is removed.
	Keep bool `json:"keep,omitempty"`
	// Detached is set when the owner is a background process started by
	// UpDetached (`keeperlb lab up`) that exists only to hold the lab; a
	// lab without it belongs to a test or program still using it.
	Detached bool `json:"detached,omitempty"`
	// OwnerLog is the log of a detached owner.
	OwnerLog string `json:"ownerLog,omitempty"`
	// Netns lists every network namespace of the lab, the switch first.
	Netns []string `json:"netns"`
	// RootLink is the veth in the root namespace.
	RootLink string     `json:"rootLink"`
	HostIPv4 netip.Addr `json:"hostIPv4"`
	HostIPv6 netip.Addr `json:"hostIPv6"`
	Nodes    []*Host    `json:"nodes"`
	Client   *Host      `json:"client"`
	Router   *Host      `json:"router,omitempty"`
	Far      *Host      `json:"far,omitempty"`
	// APIServer and Kubeconfig are empty for a lab without a control plane.
	APIServer  string `json:"apiServer,omitempty"`
	Kubeconfig string `json:"kubeconfig,omitempty"`
}

// Alive reports whether the lab's owner process is still running.
func (s *State) Alive() bool {
	start, err := processStart(s.OwnerPID)
	return err == nil && start == s.OwnerStart
}

func statePath(name string) string { return filepath.Join(StateDir, name+".json") }

// processStart returns the start time of pid (field 22 of /proc/PID/stat).
func processStart(pid int) (uint64, error) {
	if pid <= 0 {
		return 0, fmt.Errorf("invalid pid %d", pid)
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may contain spaces,
	// so count fields from the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	return strconv.ParseUint(f[19], 10, 64)
}

// readState reads one state file.
func readState(path string) (*State, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("reading lab state %s: %w", path, err)
	}
	return &s, nil
}

// writeState replaces the state file atomically, so that readers never see
// half a file.
func writeState(s *State) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding lab state: %w", err)
	}
	path := statePath(s.Name)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing lab state: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("writing lab state: %w", err)
	}
	return nil
}

// lockRegistry takes the registry-wide lock; the returned function releases
// it. The kernel drops a flock when its holder dies, so a crash never leaves
// the registry locked.
func lockRegistry() (func(), error) {
	if err := os.MkdirAll(StateDir, 0o755); err != nil {
		return nil, fmt.Errorf("creating %s: %w", StateDir, err)
	}
	f, err := os.OpenFile(filepath.Join(StateDir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening the lab registry lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking the lab registry: %w", err)
	}
	return func() { f.Close() }, nil
}

// reserve picks the lowest free index, tearing down labs whose owner died on
// the way, and records s under it. s must have its owner fields set; reserve
// fills Name and Index.
func reserve(s *State, fill func(k int), log *slog.Logger) error {
	unlock, err := lockRegistry()
	if err != nil {
		return err
	}
	defer unlock()
	for k := 1; k <= MaxIndex; k++ {
		name := plan{k}.name()
		old, err := readState(statePath(name))
		switch {
		case errors.Is(err, os.ErrNotExist):
		case err != nil:
			// A file we cannot read is left alone: it is not provably dead.
			log.Warn("skipping unreadable lab state", "err", err)
			continue
		case old.Alive():
			continue
		default:
			log.Info("reaping lab of a dead owner", "lab", old.Name, "owner", old.OwnerPID)
			if err := teardown(old, log); err != nil {
				log.Warn("reaping failed; trying the next index", "lab", old.Name, "err", err)
				continue
			}
		}
		fill(k)
		return writeState(s)
	}
	return fmt.Errorf("all %d lab indexes are in use (see `keeperlb lab status`)", MaxIndex)
}

// List returns the state of every recorded lab, by index.
func List() ([]State, error) {
	entries, err := os.ReadDir(StateDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing labs: %w", err)
	}
	var out []State
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		s, err := readState(filepath.Join(StateDir, e.Name()))
		if errors.Is(err, os.ErrNotExist) {
			continue // removed while we listed
		}
		if err != nil {
			return nil, err
		}
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Index < out[j].Index })
	return out, nil
}

// Reap removes every lab whose owner process is dead: its processes, network
// namespaces, root veth, folder and state. Test binaries call it from
// TestMain so that a run killed half way is cleaned up by the next one.
func Reap(log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	unlock, err := lockRegistry()
	if err != nil {
		return err
	}
	defer unlock()
	states, err := List()
	if err != nil {
		return err
	}
	var errs []error
	for i := range states {
		s := &states[i]
		if s.Alive() {
			continue
		}
		log.Info("reaping lab of a dead owner", "lab", s.Name, "owner", s.OwnerPID)
		if err := teardown(s, log); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// ErrInUse is returned by Remove for a lab whose owner is a live process
// other than a detached owner: a test or program still using it.
var ErrInUse = errors.New("lab in use")

// Remove takes down the named lab from any process. A live detached owner is
// asked to do it (SIGTERM) so that its control plane stops cleanly; one that
// does not finish within timeout is killed and the lab torn down here. A lab
// owned by another live process (a running test) is left alone with an error
// wrapping ErrInUse, unless force is set: then it is torn down under its
// owner, whose processes in the lab die, but the owner itself is not
// signalled.
func Remove(name string, timeout time.Duration, force bool, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s, err := readState(statePath(name))
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("no lab named %q (see `keeperlb lab status`)", name)
	}
	if err != nil {
		return err
	}
	if s.Alive() && !s.Detached && s.OwnerPID != os.Getpid() && !force {
		return fmt.Errorf("lab %s belongs to running process %d, which removes it when done (force to tear it down anyway): %w", name, s.OwnerPID, ErrInUse)
	}
	if s.Alive() && s.Detached && s.OwnerPID != os.Getpid() {
		if err := syscall.Kill(s.OwnerPID, syscall.SIGTERM); err == nil {
			deadline := time.Now().Add(timeout)
			for time.Now().Before(deadline) {
				if _, err := os.Stat(statePath(name)); errors.Is(err, os.ErrNotExist) {
					return nil
				}
				time.Sleep(50 * time.Millisecond)
			}
			log.Warn("lab owner did not finish in time; killing it", "lab", name, "owner", s.OwnerPID)
		}
		if s.Alive() {
			_ = syscall.Kill(s.OwnerPID, syscall.SIGKILL)
		}
	}
	unlock, err := lockRegistry()
	if err != nil {
		return err
	}
	defer unlock()
	return teardown(s, log)
}

// teardown removes everything a lab may have created, in an order that works
// for a lab that was only half built: processes first (they pin namespaces),
// then the root veth, the namespaces, the folder and finally the state file.
// Everything missing is skipped, so it is idempotent.
func teardown(s *State, log *slog.Logger) error {
	var errs []error
	killLabProcesses(s, log)
	if s.RootLink != "" {
		if err := deleteLink(s.RootLink); err != nil {
			errs = append(errs, err)
		}
	}
	for _, ns := range s.Netns {
		if err := deleteNetns(ns); err != nil {
			errs = append(errs, err)
		}
	}
	if ours(s.Dir, "keeperlb-"+s.Name+"-") && !s.Keep {
		if err := os.RemoveAll(s.Dir); err != nil {
			errs = append(errs, fmt.Errorf("removing %s: %w", s.Dir, err))
		}
	}
	if ours(s.OwnerLog, "keeperlb-lab-owner-") && !s.Keep {
		_ = os.Remove(s.OwnerLog)
	}
	if len(errs) > 0 {
		// Keep the state so that a later Reap can try again.
		return fmt.Errorf("tearing down lab %s: %w", s.Name, errors.Join(errs...))
	}
	if err := os.Remove(statePath(s.Name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing lab state: %w", err)
	}
	return nil
}

// ours guards every recursive removal and process search by path: only an
// absolute path whose last element starts with prefix (as the lab made it)
// qualifies, never "/" or a user's folder.
func ours(path, prefix string) bool {
	return path != "" && filepath.IsAbs(path) && strings.HasPrefix(filepath.Base(path), prefix)
}

// killLabProcesses SIGKILLs every process of the lab and waits until they are
// gone: those inside its namespaces, those started by Lab.Start (they carry
// KEEPERLB_LAB_NAME=<name> in their environment) and those whose command line
// names the lab folder (etcd and kube-apiserver).
func killLabProcesses(s *State, log *slog.Logger) {
	pids := map[int]bool{}
	for _, ns := range s.Netns {
		for _, pid := range netnsPids(ns) {
			pids[pid] = true
		}
	}
	marker := []byte(envLabName + "=" + s.Name + "\x00")
	dirArg := []byte(s.Dir + string(filepath.Separator))
	searchDir := ours(s.Dir, "keeperlb-"+s.Name+"-")
	if entries, err := os.ReadDir("/proc"); err == nil {
		for _, e := range entries {
			pid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			if env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ")); err == nil &&
				(bytes.HasPrefix(env, marker) || bytes.Contains(env, append([]byte{0}, marker...))) {
				pids[pid] = true
			}
			if searchDir {
				if cmd, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline")); err == nil && bytes.Contains(cmd, dirArg) {
					pids[pid] = true
				}
			}
		}
	}
	delete(pids, os.Getpid())
	if len(pids) == 0 {
		return
	}
	keys := make([]int, 0, len(pids))
	for pid := range pids {
		keys = append(keys, pid)
	}
	sort.Ints(keys)
	log.Debug("killing lab processes", "lab", s.Name, "pids", keys)
	for _, pid := range keys {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	// A killed process leaves its namespaces when it exits, even before its
	// parent reaps it; wait for that so that no veth outlives Down.
	deadline := time.Now().Add(5 * time.Second)
	for _, pid := range keys {
		for time.Now().Before(deadline) && running(pid) {
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// running reports whether pid exists and is not a zombie.
func running(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i < 0 || i+2 >= len(b) || b[i+2] != 'Z'
}

// hostJSON is Host on disk, with the MAC as text.
type hostJSON struct {
	Name      string     `json:"name"`
	Netns     string     `json:"netns"`
	IPv4      netip.Addr `json:"ipv4"`
	IPv6      netip.Addr `json:"ipv6"`
	MAC       string     `json:"mac"`
	Interface string     `json:"interface"`
}

// MarshalJSON writes the MAC address as text.
func (h *Host) MarshalJSON() ([]byte, error) {
	return json.Marshal(hostJSON{h.Name, h.Netns, h.IPv4, h.IPv6, h.MAC.String(), h.Interface})
}

// UnmarshalJSON reads what MarshalJSON wrote.
func (h *Host) UnmarshalJSON(b []byte) error {
	var j hostJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	mac, err := net.ParseMAC(j.MAC)
	if err != nil {
		return fmt.Errorf("host %s: mac: %w", j.Name, err)
	}
	*h = Host{Name: j.Name, Netns: j.Netns, IPv4: j.IPv4, IPv6: j.IPv6, MAC: mac, Interface: j.Interface}
	return nil
}
