package lab

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strconv"
	"strings"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/keeperlb/keeperlb/internal/metricsauth"
)

// MetricsReader creates what a Prometheus in the cluster would have: the
// ClusterRole the install ships (get on /metrics), a ServiceAccount ns/name
// bound to it, and returns a token of that account. It can run again.
func (l *Lab) MetricsReader(ctx context.Context, ns, name string) (string, error) {
	if err := l.kube(); err != nil {
		return "", err
	}
	cs := l.Clientset
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: metricsauth.ReaderRole},
		Rules:      []rbacv1.PolicyRule{{NonResourceURLs: []string{"/metrics"}, Verbs: []string{"get"}}},
	}
	if _, err := cs.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return "", fmt.Errorf("creating ClusterRole %s: %w", role.Name, err)
	}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return "", fmt.Errorf("creating namespace %s: %w", ns, err)
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	if _, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return "", fmt.Errorf("creating ServiceAccount %s/%s: %w", ns, name, err)
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: metricsauth.ReaderRole + "-" + ns + "-" + name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: metricsauth.ReaderRole},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: name}},
	}
	if _, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return "", fmt.Errorf("creating ClusterRoleBinding %s: %w", binding.Name, err)
	}
	return l.Token(ctx, ns, name)
}

// Token returns a fresh token of the ServiceAccount ns/name (TokenRequest),
// valid for an hour: longer than any lab run.
func (l *Lab) Token(ctx context.Context, ns, name string) (string, error) {
	if err := l.kube(); err != nil {
		return "", err
	}
	hour := int64(3600)
	tr, err := l.Clientset.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &hour}}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("requesting a token of ServiceAccount %s/%s: %w", ns, name, err)
	}
	return tr.Status.Token, nil
}

// ScrapeError is a metrics endpoint's refusal: its HTTP status.
type ScrapeError struct {
	URL    string
	Status int
}

func (e *ScrapeError) Error() string {
	return fmt.Sprintf("GET %s: %d %s", e.URL, e.Status, http.StatusText(e.Status))
}

// Scrape reads the metrics endpoint at addr from h (the root namespace when
// nil) over HTTPS, with token as the bearer token when it is not empty.
// The certificate is not verified: the lab's processes make self-signed
// ones, and what is under test is who gets in, not the server's name.
func (l *Lab) Scrape(ctx context.Context, from *Host, addr netip.AddrPort, token string) (string, error) {
	url := "https://" + addr.String() + "/metrics"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	client := &http.Client{Transport: &http.Transport{
		DialContext:       l.Dialer(from),
		DisableKeepAlives: true,
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // see above
	}}
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("GET %s from %s: %w", url, from.label(), err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return "", fmt.Errorf("GET %s from %s: %w", url, from.label(), err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", &ScrapeError{URL: url, Status: resp.StatusCode}
	}
	return string(body), nil
}

// ErrNoSeries says a scrape has no sample of the asked series.
var ErrNoSeries = errors.New("no such series")

// MetricValue returns the value of the unlabelled series name in a
// Prometheus text exposition.
func MetricValue(body, name string) (float64, error) {
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		v, ok := strings.CutPrefix(sc.Text(), name+" ")
		if !ok {
			continue
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil {
			return 0, fmt.Errorf("%s: parsing %q: %w", name, v, err)
		}
		return f, nil
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("%s: %w", name, ErrNoSeries)
}
