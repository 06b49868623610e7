// Package controlplane runs a real, throw-away Kubernetes control plane (etcd
// and kube-apiserver, built by hack/k8s-tools) for the integration tests, the
// benchmarks and the demo. Nothing here is a fake: clients talk HTTPS to a
// real API server backed by a real etcd.
package controlplane

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// BinDirEnv names the environment variable that points at the folder holding
// the etcd and kube-apiserver binaries. `make test` and `make demo` set it
// from hack/k8s-tools/build.sh.
const BinDirEnv = "KEEPERLB_K8S_BIN"

// Service CIDRs of the lab control plane. They come from the benchmarking
// and documentation ranges so that no ClusterIP can collide with a real
// network, and the IPv4 one holds 32k ClusterIPs so that the 10,000-Service
// benchmark fits; pools in tests use 198.18.0.0/16.
const (
	ServiceCIDRv4 = "198.19.128.0/17"
	ServiceCIDRv6 = "2001:db8:fff0::/112"
)

// Options configures Start.
type Options struct {
	// BinDir holds the etcd and kube-apiserver binaries; empty means the
	// value of $KEEPERLB_K8S_BIN.
	BinDir string
	// Dir is the working folder (data, certificates, logs). It must exist;
	// Stop does not remove it.
	Dir string
	// Logger receives progress messages; nil discards them.
	Logger *slog.Logger
	// BindAddress is where kube-apiserver listens and what it advertises.
	// The zero value means 127.0.0.1. A network-namespace lab sets an
	// address of its own so that processes inside the lab reach the API.
	// etcd always stays on loopback.
	BindAddress netip.Addr
}

// ControlPlane is a running etcd and kube-apiserver.
type ControlPlane struct {
	// Config is an admin (system:masters) client configuration.
	Config *rest.Config
	// Kubeconfig is the path of a kubeconfig file holding Config.
	Kubeconfig string
	// Dir is the working folder.
	Dir string

	procs []*process
	log   *slog.Logger
}

type process struct {
	name string
	cmd  *exec.Cmd
	done chan error
	log  *os.File
}

// BinDir returns the folder named by $KEEPERLB_K8S_BIN after checking that it
// holds both binaries. The error tells the user how to build them.
func BinDir() (string, error) {
	dir := os.Getenv(BinDirEnv)
	if dir == "" {
		return "", fmt.Errorf("$%s is not set: run `make test` (or `eval $(make -s k8s-env)`), which builds kube-apiserver and etcd with hack/k8s-tools/build.sh", BinDirEnv)
	}
	for _, b := range []string{"etcd", "kube-apiserver"} {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			return "", fmt.Errorf("$%s=%s has no %s: run hack/k8s-tools/build.sh: %w", BinDirEnv, dir, b, err)
		}
	}
	return dir, nil
}

// Start launches etcd and kube-apiserver on free loopback ports and waits
// until the API server is ready. On error, everything started is stopped.
func Start(ctx context.Context, opts Options) (_ *ControlPlane, err error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	bin := opts.BinDir
	if bin == "" {
		if bin, err = BinDir(); err != nil {
			return nil, err
		}
	}
	cp := &ControlPlane{Dir: opts.Dir, log: log}
	defer func() {
		if err != nil {
			cp.Stop()
		}
	}()

	bind := "127.0.0.1"
	if opts.BindAddress.IsValid() {
		bind = opts.BindAddress.String()
	}
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(ports[0])
	peerURL := "http://127.0.0.1:" + strconv.Itoa(ports[1])
	securePort := ports[2]

	start := time.Now()
	if err := cp.spawn(filepath.Join(bin, "etcd"), "etcd",
		"--name=default",
		"--data-dir="+filepath.Join(opts.Dir, "etcd"),
		"--listen-client-urls="+etcdURL,
		"--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL,
		"--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=default="+peerURL,
		"--unsafe-no-fsync",
		"--log-level=warn",
	); err != nil {
		return nil, err
	}

	token, err := randomToken()
	if err != nil {
		return nil, err
	}
	tokenFile := filepath.Join(opts.Dir, "tokens.csv")
	if err := os.WriteFile(tokenFile, []byte(token+",admin,admin,system:masters\n"), 0o600); err != nil {
		return nil, fmt.Errorf("writing token file: %w", err)
	}
	saKey := filepath.Join(opts.Dir, "sa.key")
	if err := writeRSAKey(saKey); err != nil {
		return nil, err
	}
	if err := cp.spawn(filepath.Join(bin, "kube-apiserver"), "kube-apiserver",
		"--etcd-servers="+etcdURL,
		"--bind-address="+bind,
		"--advertise-address="+bind,
		"--secure-port="+strconv.Itoa(securePort),
		"--cert-dir="+filepath.Join(opts.Dir, "certs"),
		"--token-auth-file="+tokenFile,
		"--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file="+saKey,
		"--service-account-signing-key-file="+saKey,
		"--service-cluster-ip-range="+ServiceCIDRv4+","+ServiceCIDRv6,
		"--disable-admission-plugins=ServiceAccount",
		"--endpoint-reconciler-type=none",
	); err != nil {
		return nil, err
	}

	cp.Config = &rest.Config{
		Host:            "https://" + net.JoinHostPort(bind, strconv.Itoa(securePort)),
		BearerToken:     token,
		TLSClientConfig: rest.TLSClientConfig{Insecure: true},
	}
	if err := cp.waitReady(ctx, 60*time.Second); err != nil {
		return nil, err
	}
	cp.Kubeconfig = filepath.Join(opts.Dir, "kubeconfig")
	if err := WriteKubeconfig(cp.Config, cp.Kubeconfig); err != nil {
		return nil, err
	}
	log.Info("control plane ready", "url", cp.Config.Host, "took", time.Since(start).Round(time.Millisecond))
	return cp, nil
}

// spawn starts one child process whose output goes to <Dir>/<name>.log. The
// child gets SIGKILL if this process dies, so an interrupted test leaves no
// server behind.
func (cp *ControlPlane) spawn(path, name string, args ...string) error {
	logFile, err := os.Create(filepath.Join(cp.Dir, name+".log"))
	if err != nil {
		return fmt.Errorf("creating %s log: %w", name, err)
	}
	cmd := exec.Command(path, args...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("starting %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, done: make(chan error, 1), log: logFile}
	go func() { p.done <- cmd.Wait() }()
	cp.procs = append(cp.procs, p)
	return nil
}

// waitReady polls /readyz until it answers ok, a child exits, or the timeout
// passes.
func (cp *ControlPlane) waitReady(ctx context.Context, timeout time.Duration) error {
	client := &http.Client{
		Timeout:   2 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, //nolint:gosec // self-signed lab server
	}
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		for _, p := range cp.procs {
			select {
			case err := <-p.done:
				p.done <- err
				return fmt.Errorf("%s exited before the API server was ready (%v); see %s", p.name, err, p.log.Name())
			default:
			}
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, cp.Config.Host+"/readyz", nil)
		if err != nil {
			return fmt.Errorf("building readyz request: %w", err)
		}
		req.Header.Set("Authorization", "Bearer "+cp.Config.BearerToken)
		resp, err := client.Do(req)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Errorf("readyz: %s: %s", resp.Status, body)
		} else {
			last = err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("API server not ready after %s: %v (logs in %s)", timeout, last, cp.Dir)
}

// Stop terminates the API server, then etcd, and waits for both. It is safe to
// call more than once.
func (cp *ControlPlane) Stop() {
	for i := len(cp.procs) - 1; i >= 0; i-- {
		p := cp.procs[i]
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-p.done:
			p.done <- err
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			err := <-p.done
			p.done <- err
		}
		p.log.Close()
	}
	cp.procs = nil
}

// WriteKubeconfig writes cfg as a kubeconfig file usable by kubectl and by
// the KeeperLB binaries' --kubeconfig flag.
func WriteKubeconfig(cfg *rest.Config, path string) error {
	kc := clientcmdapi.NewConfig()
	kc.Clusters["lab"] = &clientcmdapi.Cluster{Server: cfg.Host, InsecureSkipTLSVerify: cfg.TLSClientConfig.Insecure}
	kc.AuthInfos["admin"] = &clientcmdapi.AuthInfo{Token: cfg.BearerToken}
	kc.Contexts["lab"] = &clientcmdapi.Context{Cluster: "lab", AuthInfo: "admin"}
	kc.CurrentContext = "lab"
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		return fmt.Errorf("writing kubeconfig %s: %w", path, err)
	}
	return nil
}

func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("finding a free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func randomToken() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generating token: %w", err)
	}
	return hex.EncodeToString(b), nil
}

func writeRSAKey(path string) error {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return fmt.Errorf("generating service account key: %w", err)
	}
	block := &pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		return fmt.Errorf("writing service account key: %w", err)
	}
	return nil
}
