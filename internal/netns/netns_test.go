package netns_test

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/keeperlb/keeperlb/internal/netns"
	"github.com/keeperlb/keeperlb/internal/netns/netnstest"
)

func TestMain(m *testing.M) {
	if os.Geteuid() == 0 {
		if reaped, err := netnstest.ReapOrphans(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		} else if len(reaped) > 0 {
			fmt.Fprintf(os.Stderr, "reaped orphaned lab namespaces: %v\n", reaped)
		}
	}
	os.Exit(m.Run())
}

func TestPath(t *testing.T) {
	if got := netns.Path("kl-1-x"); got != "/run/netns/kl-1-x" {
		t.Fatalf("Path = %q", got)
	}
}

func TestOpenRejectsBadNames(t *testing.T) {
	for _, name := range []string{"", ".", "..", "a/b", "../etc"} {
		if h, err := netns.Open(name); err == nil {
			h.Close()
			t.Errorf("Open(%q) succeeded", name)
		} else if !strings.Contains(err.Error(), "invalid namespace name") {
			t.Errorf("Open(%q) error %q does not say why", name, err)
		}
	}
}

func nsInode(t *testing.T, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

func TestDoEntersAndLeaves(t *testing.T) {
	netnstest.Require(t)
	name := netnstest.New(t, netnstest.UniqueName("ns"))
	want := nsInode(t, netns.Path(name))
	before, err := netns.Current()
	if err != nil {
		t.Fatal(err)
	}
	defer before.Close()
	if before.Inode() == want {
		t.Fatal("the test already runs in the new namespace")
	}

	var inside uint64
	var ifnames []string
	err = netns.Do(name, func() error {
		cur, err := netns.Current()
		if err != nil {
			return err
		}
		defer cur.Close()
		inside = cur.Inode()
		ifs, err := net.Interfaces()
		if err != nil {
			return err
		}
		for _, i := range ifs {
			ifnames = append(ifnames, i.Name)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if inside != want {
		t.Errorf("inside Do the thread is in namespace %d, want %d", inside, want)
	}
	if strings.Join(ifnames, ",") != "lo" {
		t.Errorf("interfaces inside the new namespace = %v, want only lo", ifnames)
	}
	after, err := netns.Current()
	if err != nil {
		t.Fatal(err)
	}
	defer after.Close()
	if !after.Same(before) {
		t.Errorf("after Do the caller is in namespace %d, want %d", after.Inode(), before.Inode())
	}
}

// A socket opened inside Do belongs to that namespace after Do returns:
// SIOCGSKNS asks the kernel which namespace a socket lives in.
func TestSocketStaysInNamespace(t *testing.T) {
	netnstest.Require(t)
	name := netnstest.New(t, netnstest.UniqueName("sock"))
	var fd int
	err := netns.Do(name, func() error {
		var err error
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	nsfd, err := unix.IoctlRetInt(fd, unix.SIOCGSKNS)
	if err != nil {
		t.Fatalf("SIOCGSKNS: %v", err)
	}
	defer unix.Close(nsfd)
	var st unix.Stat_t
	if err := unix.Fstat(nsfd, &st); err != nil {
		t.Fatal(err)
	}
	if want := nsInode(t, netns.Path(name)); st.Ino != want {
		t.Errorf("socket is in namespace %d, want %d", st.Ino, want)
	}
}

func TestDoReturnsErrors(t *testing.T) {
	netnstest.Require(t)
	missing := netnstest.UniqueName("missing")
	err := netns.Do(missing, func() error { t.Error("fn ran for a missing namespace"); return nil })
	if err == nil || !strings.Contains(err.Error(), netns.Path(missing)) {
		t.Errorf("Do on a missing namespace: error %v does not name the path", err)
	}

	name := netnstest.New(t, netnstest.UniqueName("err"))
	sentinel := errors.New("boom")
	if err := netns.Do(name, func() error { return sentinel }); !errors.Is(err, sentinel) {
		t.Errorf("Do = %v, want fn's error", err)
	}

	h, err := netns.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	h.Close()
	if err := h.Do(func() error { return nil }); err == nil {
		t.Error("Do on a closed handle succeeded")
	}
}

// A Handle on the namespace the thread is already in runs fn without setns,
// which is what lets the speaker use it with CAP_NET_RAW only.
func TestDoInCurrentNamespace(t *testing.T) {
	netnstest.Require(t)
	cur, err := netns.Current()
	if err != nil {
		t.Fatal(err)
	}
	defer cur.Close()
	ran := false
	err = cur.Do(func() error {
		in, err := netns.Current()
		if err != nil {
			return err
		}
		defer in.Close()
		if !in.Same(cur) {
			return fmt.Errorf("moved to namespace %d", in.Inode())
		}
		ran = true
		return nil
	})
	if err != nil || !ran {
		t.Fatalf("Do in the current namespace: ran=%v err=%v", ran, err)
	}
}

// Many concurrent Do calls each see their namespace, and no unlocked thread
// is left behind in a foreign namespace afterwards.
func TestConcurrentDo(t *testing.T) {
	netnstest.Require(t)
	names := []string{
		netnstest.New(t, netnstest.UniqueName("c1")),
		netnstest.New(t, netnstest.UniqueName("c2")),
	}
	root, err := netns.Current()
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()

	inodes := []uint64{nsInode(t, netns.Path(names[0])), nsInode(t, netns.Path(names[1]))}
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := range 100 {
		wg.Go(func() {
			name, want := names[i%2], inodes[i%2]
			errs <- netns.Do(name, func() error {
				cur, err := netns.Current()
				if err != nil {
					return err
				}
				defer cur.Close()
				if cur.Inode() != want {
					return fmt.Errorf("in namespace %d, want %d", cur.Inode(), want)
				}
				return nil
			})
		})
		wg.Go(func() {
			cur, err := netns.Current()
			if err != nil {
				errs <- err
				return
			}
			defer cur.Close()
			if !cur.Same(root) {
				errs <- fmt.Errorf("an ordinary goroutine runs in namespace %d, want %d", cur.Inode(), root.Inode())
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}
