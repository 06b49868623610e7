package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// certReloader serves the certificate found in a directory (tls.crt and
// tls.key) and notices when the files change, so that a rotated
// certificate is used without a restart. The files may be written by
// certSync or by the kubelet, when the Secret is mounted there.
type certReloader struct {
	dir string
	// every is the least time between two looks at the files; a TLS
	// handshake pays for at most one read of two small files per period.
	every time.Duration
	now   func() time.Time

	mu        sync.Mutex
	cert      *tls.Certificate
	crt, key  []byte
	lastCheck time.Time
	lastErr   error
}

// GetCertificate implements tls.Config.GetCertificate.
func (l *certReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now := l.now(); l.cert == nil || now.Sub(l.lastCheck) >= l.every {
		l.lastCheck = now
		l.loadLocked()
	}
	if l.cert == nil {
		return nil, fmt.Errorf("no webhook serving certificate in %s yet: %w", l.dir, l.lastErr)
	}
	return l.cert, nil
}

// Reload reads the files now, as after certSync wrote them.
func (l *certReloader) Reload() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lastCheck = l.now()
	l.loadLocked()
}

// loadLocked reads the files and takes the pair when it changed and is
// valid; a half-written pair (new certificate, old key) is ignored until
// the next look, and the previous certificate keeps serving meanwhile.
func (l *certReloader) loadLocked() {
	crt, err1 := os.ReadFile(filepath.Join(l.dir, SecretCertKey))
	key, err2 := os.ReadFile(filepath.Join(l.dir, SecretKeyKey))
	if err := errors.Join(err1, err2); err != nil {
		l.lastErr = err
		return
	}
	if l.cert != nil && bytes.Equal(crt, l.crt) && bytes.Equal(key, l.key) {
		return
	}
	pair, err := tls.X509KeyPair(crt, key)
	if err != nil {
		l.lastErr = fmt.Errorf("loading the certificate in %s: %w", l.dir, err)
		return
	}
	l.cert, l.crt, l.key, l.lastErr = &pair, crt, key, nil
}

// Ready is a readiness check: a replica without a certificate would fail
// every webhook call, so it should get no traffic.
func (l *certReloader) Ready(*http.Request) error {
	_, err := l.GetCertificate(nil)
	return err
}

// certSync copies the certificate Secret, as the leader's rotator writes
// it, into the certificate directory of this replica. It runs on every
// replica: all of them serve webhooks.
type certSync struct {
	reader    client.Reader // the manager's cache: polling it costs no API call
	namespace string
	secret    string
	reloader  *certReloader
	every     time.Duration
	log       *slog.Logger

	lastVersion string // resourceVersion of the Secret last handled
}

// NeedLeaderElection implements manager.LeaderElectionRunnable.
func (s *certSync) NeedLeaderElection() bool { return false }

// Start implements manager.Runnable.
func (s *certSync) Start(ctx context.Context) error {
	t := time.NewTicker(s.every)
	defer t.Stop()
	for {
		s.sync(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// sync writes the Secret's certificate to the directory when it differs.
func (s *certSync) sync(ctx context.Context) {
	sec := &corev1.Secret{}
	if err := s.reader.Get(ctx, client.ObjectKey{Namespace: s.namespace, Name: s.secret}, sec); err != nil {
		if !apierrors.IsNotFound(err) && ctx.Err() == nil {
			s.log.Warn("reading the webhook certificate Secret", "err", err)
		}
		return
	}
	if sec.ResourceVersion == s.lastVersion {
		return
	}
	crt, key, ca := sec.Data[SecretCertKey], sec.Data[SecretKeyKey], sec.Data[SecretCAKey]
	if _, err := tls.X509KeyPair(crt, key); err != nil {
		// The leader replaces an unusable Secret; wait for that.
		s.lastVersion = sec.ResourceVersion
		s.log.Warn("the webhook certificate Secret holds no usable certificate yet", "secret", s.namespace+"/"+s.secret, "err", err)
		return
	}
	err := writeCertFiles(s.reloader.dir, map[string][]byte{SecretCertKey: crt, SecretKeyKey: key, SecretCAKey: ca})
	if err != nil {
		// A read-only directory is fine when the kubelet maintains it
		// from a Secret volume; the reloader reads whatever is there.
		s.log.Warn("writing the webhook certificate files", "dir", s.reloader.dir, "err", err)
	}
	s.lastVersion = sec.ResourceVersion
	s.reloader.Reload()
	s.log.Info("webhook serving certificate loaded", "secret", s.namespace+"/"+s.secret, "resourceVersion", sec.ResourceVersion)
}

// writeCertFiles writes each file that differs, through a temporary file
// and a rename, so that a reader never sees a half-written file.
func writeCertFiles(dir string, files map[string][]byte) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	// Between two renames the directory may hold a new certificate and
	// the old key; the reloader takes a pair only when the two match.
	for _, name := range []string{SecretCAKey, SecretCertKey, SecretKeyKey} {
		data := files[name]
		path := filepath.Join(dir, name)
		if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
			continue
		}
		tmp, err := os.CreateTemp(dir, "."+name+".*")
		if err != nil {
			return fmt.Errorf("writing %s: %w", path, err)
		}
		_, werr := tmp.Write(data)
		cerr := tmp.Close()
		if err := errors.Join(werr, cerr); err != nil {
			os.Remove(tmp.Name())
			return fmt.Errorf("writing %s: %w", path, err)
		}
		if err := os.Rename(tmp.Name(), path); err != nil {
			os.Remove(tmp.Name())
			return fmt.Errorf("writing %s: %w", path, err)
		}
	}
	return nil
}
