package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/keeperlb/keeperlb/internal/bgp"
	"github.com/keeperlb/keeperlb/internal/lab"
)

// engineRoleEnv makes this binary the bare BGP engine of the baseline.
const engineRoleEnv = "KEEPERLB_BENCH_BGP_ENGINE"

// engineMain is the baseline's helper process, started inside a lab host
// (GoBGP opens its sockets from its own goroutines, so the whole process
// must be in the namespace). It applies each bgp.Desired read from stdin
// (one JSON object a line) and answers "ok" or the error, one line each.
func engineMain() int {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	sp, err := bgp.New(log, nil, bgp.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer sp.Close()
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<20)
	for in.Scan() {
		var d bgp.Desired
		reply := "ok"
		if err := json.Unmarshal(in.Bytes(), &d); err != nil {
			reply = "decoding: " + err.Error()
		} else if err := sp.Apply(context.Background(), d); err != nil {
			reply = "apply: " + err.Error()
		}
		fmt.Println(strings.ReplaceAll(reply, "\n", " "))
	}
	return 0
}

// engine drives an engineMain process.
type engine struct {
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Scanner
	logf *os.File
	host *lab.Host
	peer bgp.PeerConfig
}

// startEngine runs the bare engine in host h, peering with the lab's
// router as AS nodeASN.
func startEngine(l *lab.Lab, h *lab.Host, logPath string) (*engine, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("ip", "netns", "exec", h.Netns, self)
	cmd.Env = append(os.Environ(), engineRoleEnv+"=1")
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	in, err := cmd.StdinPipe()
	if err != nil {
		logf.Close()
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		logf.Close()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting the engine in %s: %w", h.Name, err)
	}
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	return &engine{cmd: cmd, in: in, out: sc, logf: logf, host: h, peer: bgp.PeerConfig{
		Name: "router", Address: l.Router.IPv4, Port: 179, LocalASN: nodeASN, PeerASN: routerASN,
		IPv4: true, ConnectTime: time.Second,
	}}, nil
}

// apply sends the engine its session and prefixes, and waits until it
// applied them.
func (e *engine) apply(prefixes ...netip.Prefix) error {
	d := bgp.Desired{ASN: nodeASN, RouterID: e.host.IPv4, Peers: []bgp.PeerConfig{e.peer}}
	for _, p := range prefixes {
		d.Paths = append(d.Paths, bgp.Path{Prefix: p, Routes: []bgp.Route{{Peer: e.peer.Name}}})
	}
	b, err := json.Marshal(d)
	if err != nil {
		return err
	}
	if _, err := e.in.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("engine: %w (see %s)", err, e.logf.Name())
	}
	if !e.out.Scan() {
		return fmt.Errorf("engine exited (see %s)", e.logf.Name())
	}
	if r := e.out.Text(); r != "ok" {
		return fmt.Errorf("engine: %s", r)
	}
	return nil
}

// close ends the engine: stdin closes, it closes its sessions and exits.
func (e *engine) close() error {
	_ = e.in.Close()
	done := make(chan error, 1)
	go func() { done <- e.cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(10 * time.Second):
		_ = e.cmd.Process.Kill()
		err = errors.Join(errors.New("engine did not exit; killed"), <-done)
	}
	e.logf.Close()
	return err
}
