package lab

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// envLabName marks every process Lab.Start runs, so that a reaper can find
// the ones outside the lab's namespaces too.
const envLabName = "KEEPERLB_LAB_NAME"

// spawner runs functions on one OS thread that stays locked for the life of
// the lab. Children get SIGKILL through PR_SET_PDEATHSIG when the thread that
// forked them exits, not the process; Go ends threads of goroutines that exit
// while locked (as namespace code does), so forking from an arbitrary thread
// could kill a child at random. Forking from this thread ties children to the
// lab's owner process, as intended.
type spawner struct {
	reqs chan func()
	done chan struct{}
}

func newSpawner() *spawner {
	s := &spawner{reqs: make(chan func()), done: make(chan struct{})}
	go func() {
		runtime.LockOSThread()
		for f := range s.reqs {
			f()
		}
		runtime.UnlockOSThread()
		close(s.done)
	}()
	return s
}

// do runs f on the spawner's thread and waits for it.
func (s *spawner) do(f func()) {
	ch := make(chan struct{})
	s.reqs <- func() { f(); close(ch) }
	<-ch
}

// stop ends the thread; the caller must have stopped every child first.
func (s *spawner) stop() {
	close(s.reqs)
	<-s.done
}

// Process is a long-running command of the lab.
type Process struct {
	// Name is the name given to Start; the output goes to Log.
	Name string
	Log  string
	PID  int

	cmd  *exec.Cmd
	done chan struct{}
	err  error
	logf *os.File
}

// Start runs argv as a long-running process inside h's namespace (the root
// namespace when h is nil), with env added to this process's environment and
// stdout and stderr in <Dir>/<name>.log. The process dies with the lab's
// owner, and Down kills it. Always end it with Kill, Stop or Wait.
func (l *Lab) Start(h *Host, name string, argv []string, env []string) (*Process, error) {
	return l.start(h, name, argv, env, false)
}

// StartDetached is Start for a process that must outlive this one: it runs
// in a session of its own, without the parent-death signal, e.g. in a lab
// that `keeperlb lab up` or `demo --keep` leaves to a background owner.
// Down still kills it while this process lives; afterwards `keeperlb lab
// down` does, since it runs inside the lab's namespaces or carries the lab's
// name in its environment. Until this process exits, end it with Kill, Stop
// or Wait as usual.
func (l *Lab) StartDetached(h *Host, name string, argv []string, env []string) (*Process, error) {
	return l.start(h, name, argv, env, true)
}

func (l *Lab) start(h *Host, name string, argv []string, env []string, detached bool) (*Process, error) {
	if len(argv) == 0 {
		return nil, errors.New("start: empty argv")
	}
	if name == "" || strings.ContainsAny(name, "/\x00") {
		return nil, fmt.Errorf("start: invalid process name %q", name)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.down {
		return nil, fmt.Errorf("start %s: lab %s is down", name, l.Name)
	}
	if l.sp == nil {
		l.sp = newSpawner()
	}
	logPath := filepath.Join(l.Dir, name+".log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	var cmd *exec.Cmd
	if h == nil {
		cmd = exec.Command(argv[0], argv[1:]...)
	} else {
		cmd = exec.Command("ip", append([]string{"netns", "exec", h.Netns}, argv...)...)
	}
	cmd.Env = append(append(environWithout(envLabName), env...), envLabName+"="+l.Name)
	cmd.Stdout, cmd.Stderr = logf, logf
	var startErr error
	if detached {
		// Its own session (and so its own group, which Signal needs),
		// and no tie to the thread that forks it.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		startErr = cmd.Start()
	} else {
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
		l.sp.do(func() { startErr = cmd.Start() })
	}
	if startErr != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s in %s: %w", name, h.label(), startErr)
	}
	p := &Process{Name: name, Log: logPath, PID: cmd.Process.Pid, cmd: cmd, done: make(chan struct{}), logf: logf}
	go func() {
		p.err = cmd.Wait()
		logf.Close()
		close(p.done)
	}()
	l.procs = append(l.procs, p)
	l.log.Debug("started", "lab", l.Name, "process", name, "pid", p.PID, "host", h.label())
	return p, nil
}

// Wait waits for the process to exit and returns its exit error.
func (p *Process) Wait() error {
	<-p.done
	return p.err
}

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Signal sends sig to the process's group.
func (p *Process) Signal(sig syscall.Signal) error {
	if p.Exited() {
		return nil
	}
	if err := syscall.Kill(-p.PID, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signal %s: %w", p.Name, err)
	}
	return nil
}

// Kill sends SIGKILL to the process's group and waits for it to exit.
func (p *Process) Kill() error {
	err := p.Signal(syscall.SIGKILL)
	<-p.done
	return err
}

// Stop sends SIGTERM, waits up to 5 s for the process to exit, then kills
// it. It returns the process's exit error when it exited by itself.
func (p *Process) Stop() error {
	if err := p.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case <-p.done:
		var exit *exec.ExitError
		if errors.As(p.err, &exit) {
			if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGTERM {
				return nil // it did what it was asked
			}
		}
		return p.err
	case <-time.After(5 * time.Second):
		return p.Kill()
	}
}
