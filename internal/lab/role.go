package lab

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

// Environment of role processes: the lab re-executes the current binary
// with envRole set, and RunRoleIfRequested turns it into that role.
const (
	envRole         = "KEEPERLB_LAB_ROLE"
	envBackendName  = "KEEPERLB_LAB_BACKEND_NAME"
	envBackendAddr  = "KEEPERLB_LAB_BACKEND_ADDR"
	envOwnerOptions = "KEEPERLB_LAB_OWNER_OPTIONS"

	roleProbe   = "probe"
	roleBackend = "backend"
	roleOwner   = "owner"

	probeReply = "keeperlb-lab-roles-ok"
)

// RunRoleIfRequested turns this process into a lab role process (a node's
// HTTP backend, or the owner of a detached lab) when the lab started it for
// that, and then exits; otherwise it returns at once. Every binary that uses
// the lab must call it first thing: cli.Main (the main of keeperlb and of
// kubectl-keeperlb), and TestMain of every test package that calls Up
// (labtest.Main does it).
func RunRoleIfRequested() {
	role := os.Getenv(envRole)
	if role == "" {
		return
	}
	// Role processes must not pass their role on to what they start.
	os.Unsetenv(envRole)
	var err error
	switch role {
	case roleProbe:
		fmt.Println(probeReply)
	case roleBackend:
		err = runBackend(os.Getenv(envBackendName), os.Getenv(envBackendAddr))
	case roleOwner:
		err = runOwner()
	default:
		err = fmt.Errorf("unknown role %q", role)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "keeperlb lab %s: %v\n", role, err)
		os.Exit(1)
	}
	os.Exit(0)
}

// roleExecutable returns the current executable after checking that it
// handles roles. The probe passes -test.run=^$ so that a test binary whose
// TestMain forgot RunRoleIfRequested runs no test instead of recursing.
func roleExecutable(ctx context.Context) (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("lab: finding the current executable: %w", err)
	}
	if err := CheckRoles(ctx, self); err != nil {
		return "", err
	}
	return self, nil
}

// CheckRoles runs executable exe as the lab's role probe and fails unless it
// answers as a binary whose main calls RunRoleIfRequested does. The lab asks
// this of its own executable before it re-executes it as a node's backend or
// a detached lab's owner; tests ask it of the shipped binaries.
func CheckRoles(ctx context.Context, exe string) error {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), envRole+"="+roleProbe)
	out, err := cmd.Output()
	if got := strings.TrimSpace(string(out)); err != nil || got != probeReply {
		return fmt.Errorf("lab: %s does not run lab roles (%v; it answered the probe with %d bytes: %.80q): its main, or TestMain, must call lab.RunRoleIfRequested() first (labtest.Main does)", exe, err, len(got), got)
	}
	return nil
}

// runBackend serves the node's name over HTTP until SIGTERM.
func runBackend(name, addr string) error {
	if name == "" || addr == "" {
		return errors.New("backend: node name or address not set")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("backend %s: %w", name, err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("X-Keeperlb-Node", name)
			fmt.Fprintln(w, name)
		}),
		ReadHeaderTimeout: 5 * time.Second,
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sig
		srv.Close()
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("backend %s: %w", name, err)
	}
	return nil
}

// ownerOptions is Options as passed to a detached owner.
type ownerOptions struct {
	Nodes          int    `json:"nodes"`
	Router         bool   `json:"router"`
	K8sBin         string `json:"k8sBin"`
	NoControlPlane bool   `json:"noControlPlane"`
	Keep           bool   `json:"keep"`
	Log            string `json:"log"`
}

// ownerReport is what a detached owner tells UpDetached on fd 3.
type ownerReport struct {
	Name  string `json:"name,omitempty"`
	Error string `json:"error,omitempty"`
}

// runOwner builds a lab, reports on fd 3 and holds the lab until SIGTERM or
// SIGINT, then takes it down.
func runOwner() error {
	report := os.NewFile(3, "report")
	if report == nil {
		return errors.New("owner: no report pipe")
	}
	var o ownerOptions
	if err := json.Unmarshal([]byte(os.Getenv(envOwnerOptions)), &o); err != nil {
		return fmt.Errorf("owner: reading options: %w", err)
	}
	os.Unsetenv(envOwnerOptions)
	signal.Ignore(syscall.SIGHUP)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	l, err := Up(ctx, Options{Nodes: o.Nodes, Router: o.Router, K8sBin: o.K8sBin, NoControlPlane: o.NoControlPlane,
		Keep: o.Keep, Log: log, ownerLog: o.Log})
	rep := ownerReport{}
	if err != nil {
		rep.Error = err.Error()
	} else {
		rep.Name = l.Name
	}
	_ = json.NewEncoder(report).Encode(rep)
	report.Close()
	if err != nil {
		return err
	}
	<-ctx.Done()
	log.Info("signalled; taking the lab down", "lab", l.Name)
	return l.Down()
}

// UpDetached builds a lab owned by a new background process (this
// executable in the owner role), which keeps it until `keeperlb lab down`
// (Remove) signals it. It returns once the lab is ready. This is how
// `keeperlb lab up` leaves a lab running after the command exits.
func UpDetached(ctx context.Context, opts Options) (*State, error) {
	if err := CheckPrerequisites(); err != nil {
		return nil, err
	}
	self, err := roleExecutable(ctx)
	if err != nil {
		return nil, err
	}
	logf, err := os.CreateTemp("", "keeperlb-lab-owner-*.log")
	if err != nil {
		return nil, fmt.Errorf("lab: creating the owner log: %w", err)
	}
	defer logf.Close()
	o, err := json.Marshal(ownerOptions{Nodes: opts.Nodes, Router: opts.Router, K8sBin: opts.K8sBin,
		NoControlPlane: opts.NoControlPlane, Keep: opts.Keep, Log: logf.Name()})
	if err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	defer r.Close()
	cmd := exec.Command(self)
	// A lab started from inside another lab's process must not carry that
	// lab's marker, or taking the other lab down would kill this owner.
	cmd.Env = append(environWithout(envLabName), envRole+"="+roleOwner, envOwnerOptions+"="+string(o))
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.ExtraFiles = []*os.File{w}
	// A session of its own: no terminal signals, no Pdeathsig; it outlives us.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		w.Close()
		return nil, fmt.Errorf("lab: starting the owner: %w", err)
	}
	w.Close()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	type result struct {
		rep ownerReport
		err error
	}
	got := make(chan result, 1)
	go func() {
		line, err := bufio.NewReader(r).ReadBytes('\n')
		if err != nil && !(errors.Is(err, io.EOF) && len(line) > 0) {
			got <- result{err: fmt.Errorf("the owner exited without reporting (see %s)", logf.Name())}
			return
		}
		var rep ownerReport
		if err := json.Unmarshal(line, &rep); err != nil {
			got <- result{err: fmt.Errorf("the owner's report %q: %w (see %s)", line, err, logf.Name())}
			return
		}
		got <- result{rep: rep}
	}()
	var res result
	select {
	case res = <-got:
	case <-ctx.Done():
		// The owner cleans up after itself on SIGTERM.
		_ = cmd.Process.Signal(syscall.SIGTERM)
		<-exited
		return nil, ctx.Err()
	}
	if res.err == nil && res.rep.Error != "" {
		res.err = fmt.Errorf("%s (see %s)", res.rep.Error, logf.Name())
	}
	if res.err != nil {
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		return nil, res.err
	}
	s, err := readState(statePath(res.rep.Name))
	if err != nil {
		return nil, fmt.Errorf("lab %s: %w", res.rep.Name, err)
	}
	return s, nil
}

// environWithout returns this process's environment minus variable key.
func environWithout(key string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, key+"=") {
			env = append(env, kv)
		}
	}
	return env
}
