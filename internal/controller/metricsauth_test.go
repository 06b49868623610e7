package controller_test

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/keeperlb/keeperlb/internal/metricsauth"
)

// TestMetricsNeedATokenAllowedToRead runs the controller with its default
// metrics settings on a real API server and scrapes it as three callers:
// nobody, a ServiceAccount without the reader role, and one bound to the
// reader role the install ships (config/rbac/metrics-reader.yaml). Only the
// last gets in. With --metrics-secure=false anyone does, over plain HTTP.
func TestMetricsNeedATokenAllowedToRead(t *testing.T) {
	e := newEnv(t)
	cs, err := kubernetes.NewForConfig(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	reader := e.readerRole(cs)
	stranger := e.serviceAccountToken(cs, "stranger")
	prometheus := e.serviceAccountToken(cs, "prometheus")
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: reader + "-" + e.app},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: reader},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: e.app, Name: "prometheus"}},
	}
	if _, err := cs.RbacV1().ClusterRoleBindings().Create(e.ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cs.RbacV1().ClusterRoleBindings().Delete(context.Background(), binding.Name, metav1.DeleteOptions{})
	})

	addr := freePort(t)
	e.opts.MetricsAddr = addr
	e.start()
	url := "https://" + addr + "/metrics"

	// The server is up once it answers anything; nobody gets a 401.
	var status int
	var proto string
	deadline := time.Now().Add(30 * time.Second)
	for {
		status, proto, _, err = get(e.ctx, url, "")
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("the metrics endpoint never answered over HTTPS: %v", err)
	}
	if status != http.StatusUnauthorized {
		t.Errorf("scrape without a token: %d, want 401", status)
	}
	if proto != "HTTP/1.1" {
		t.Errorf("a client offering HTTP/2 got %s; the endpoint must speak HTTP/1.1 only", proto)
	}
	if status, _, _, err := get(e.ctx, url, "not-a-token"); err != nil || status != http.StatusUnauthorized {
		t.Errorf("scrape with a forged token: %d %v, want 401", status, err)
	}
	if status, _, _, err := get(e.ctx, url, stranger); err != nil || status != http.StatusForbidden {
		t.Errorf("scrape with a token lacking the reader role: %d %v, want 403", status, err)
	}
	status, _, body, err := get(e.ctx, url, prometheus)
	if err != nil || status != http.StatusOK {
		t.Fatalf("scrape with a reader's token: %d %v, want 200", status, err)
	}
	if !strings.Contains(body, "# TYPE ") {
		t.Errorf("a reader's scrape returned no metrics: %.200q", body)
	}

	// Plain HTTP is an explicit opt-in, and then open to anyone.
	e.stop()
	e.opts.MetricsAuth.Secure = false
	e.opts.MetricsAddr = freePort(t)
	e.start()
	plain := "http://" + e.opts.MetricsAddr + "/metrics"
	deadline = time.Now().Add(30 * time.Second)
	for {
		status, _, _, err = get(e.ctx, plain, "")
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil || status != http.StatusOK {
		t.Errorf("with --metrics-secure=false a scrape without a token must pass over HTTP: %d %v", status, err)
	}
}

// readerRole creates the shipped metrics reader ClusterRole (once per
// control plane) and returns its name.
func (e *env) readerRole(cs kubernetes.Interface) string {
	e.t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "config", "rbac", "metrics-reader.yaml"))
	if err != nil {
		e.t.Fatal(err)
	}
	var role rbacv1.ClusterRole
	if err := yaml.UnmarshalStrict(raw, &role); err != nil {
		e.t.Fatalf("config/rbac/metrics-reader.yaml: %v", err)
	}
	if role.Name != metricsauth.ReaderRole {
		e.t.Fatalf("config/rbac/metrics-reader.yaml names %s, want %s", role.Name, metricsauth.ReaderRole)
	}
	if _, err := cs.RbacV1().ClusterRoles().Create(e.ctx, &role, metav1.CreateOptions{}); err != nil && !strings.Contains(err.Error(), "already exists") {
		e.t.Fatal(err)
	}
	return role.Name
}

// serviceAccountToken creates a ServiceAccount in the test's namespace and
// returns a token of it.
func (e *env) serviceAccountToken(cs kubernetes.Interface, name string) string {
	e.t.Helper()
	if _, err := cs.CoreV1().ServiceAccounts(e.app).Create(e.ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		e.t.Fatal(err)
	}
	tr, err := cs.CoreV1().ServiceAccounts(e.app).CreateToken(e.ctx, name, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	return tr.Status.Token
}

// get fetches url, offering HTTP/2, and returns the status, the protocol
// spoken and the body.
func get(ctx context.Context, url, token string) (int, string, string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", "", err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	tr := &http.Transport{
		// The endpoint's certificate is self-signed; who gets in is
		// under test here, not the server's name.
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2", "http/1.1"}},
		ForceAttemptHTTP2: true,
		DisableKeepAlives: true,
	}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return 0, "", "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, "", "", err
	}
	return resp.StatusCode, resp.Proto, string(b), nil
}

// freePort returns a loopback address with a port free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
