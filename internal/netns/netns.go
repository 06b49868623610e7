// Package netns runs code inside a Linux network namespace.
//
// A network namespace belongs to an OS thread, not to a process or a
// goroutine, while Go moves goroutines between threads freely. So the only
// safe way to "enter" a namespace is: lock a goroutine to its thread, switch
// that thread, run the code, switch back, unlock. Do does exactly that, on a
// fresh goroutine, so that if switching back ever fails the damaged thread
// dies with that goroutine (the runtime discards a thread whose goroutine
// exits while locked) instead of carrying the caller off in the wrong
// namespace.
//
// Sockets are tied to the namespace they were created in, for life: a socket
// opened inside fn keeps working in that namespace after Do returns, from any
// goroutine. Goroutines started by fn do not inherit the namespace; they run
// on other threads, in the process's own namespace.
//
// Tests use this to run several "nodes" in one process. In production the
// speaker runs in the node's namespace already and never switches: a Handle
// for the namespace the thread is already in runs fn directly, without the
// setns(2) call that would need CAP_SYS_ADMIN.
package netns

import (
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"
)

// Dir is where `ip netns add` bind-mounts named network namespaces.
const Dir = "/run/netns"

// Path returns the file that names the network namespace called name, as
// `ip netns add name` creates it.
func Path(name string) string {
	return filepath.Join(Dir, name)
}

// Handle is an open reference to one network namespace. It keeps the
// namespace alive while open, even if its name is deleted.
type Handle struct {
	fd  int
	dev uint64
	ino uint64
}

// Open returns a Handle on the named network namespace (see Path).
func Open(name string) (*Handle, error) {
	if name == "" || name == "." || name == ".." || strings.ContainsRune(name, '/') {
		return nil, fmt.Errorf("netns: invalid namespace name %q", name)
	}
	return openPath(Path(name))
}

// Current returns a Handle on the network namespace of the calling thread.
// Inside Do that is the namespace Do switched to; elsewhere it is the
// process's own.
func Current() (*Handle, error) {
	return openPath(threadPath())
}

// threadPath names the calling thread's namespace; it differs from
// /proc/self/ns/net (the main thread's) while another thread is switched.
func threadPath() string {
	return "/proc/thread-self/ns/net"
}

func openPath(path string) (*Handle, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("netns: open %s: %w", path, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("netns: stat %s: %w", path, err)
	}
	return &Handle{fd: fd, dev: st.Dev, ino: st.Ino}, nil
}

// Close releases the Handle.
func (h *Handle) Close() error {
	if h == nil || h.fd < 0 {
		return nil
	}
	err := unix.Close(h.fd)
	h.fd = -1
	if err != nil {
		return fmt.Errorf("netns: close: %w", err)
	}
	return nil
}

// Inode returns the namespace's inode number, the identity `ip netns
// identify` and `/proc/PID/ns/net` show.
func (h *Handle) Inode() uint64 { return h.ino }

// Same reports whether two handles refer to the same namespace.
func (h *Handle) Same(o *Handle) bool {
	return h.dev == o.dev && h.ino == o.ino
}

// Do runs fn on a locked OS thread inside the namespace and returns its
// error. fn runs on a goroutine of its own: it must not call t.FailNow or
// runtime.Goexit on behalf of the caller.
func (h *Handle) Do(fn func() error) error {
	if h == nil || h.fd < 0 {
		return errors.New("netns: Do on a closed handle")
	}
	errc := make(chan error, 1)
	go func() { errc <- h.run(fn) }()
	return <-errc
}

// run is the body of Do's goroutine. Every path that leaves the thread in its
// original namespace unlocks it; the one that cannot returns with the thread
// still locked, so the runtime throws the thread away.
func (h *Handle) run(fn func() error) error {
	runtime.LockOSThread()
	orig, err := openPath(threadPath())
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer orig.Close()
	if orig.Same(h) {
		err := fn()
		runtime.UnlockOSThread()
		return err
	}
	if err := unix.Setns(h.fd, unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("netns: enter namespace (inode %d): %w", h.ino, err)
	}
	fnErr := fn()
	if err := unix.Setns(orig.fd, unix.CLONE_NEWNET); err != nil {
		return errors.Join(fnErr, fmt.Errorf("netns: switch back to namespace (inode %d), thread discarded: %w", orig.ino, err))
	}
	runtime.UnlockOSThread()
	return fnErr
}

// Do runs fn on a locked OS thread inside the named network namespace
// (/run/netns/<name>), switching back afterwards. See Handle.Do.
func Do(name string, fn func() error) error {
	h, err := Open(name)
	if err != nil {
		return err
	}
	defer h.Close()
	return h.Do(fn)
}
