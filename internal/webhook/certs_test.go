package webhook

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var testID = Identity{
	DNSNames: []string{"keeperlb-webhook-service.metallb-system.svc", "keeperlb-webhook-service.metallb-system.svc.cluster.local"},
	IPs:      []net.IP{net.ParseIP("127.0.0.1")},
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func mustGenerate(t *testing.T, now time.Time, validity time.Duration, id Identity, prev []byte) Bundle {
	t.Helper()
	b, err := Generate(now, validity, id, prev)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestGenerateAndCheck(t *testing.T) {
	b := mustGenerate(t, t0, 89*time.Hour, testID, nil)
	renewAt, err := Check(b, t0, testID)
	if err != nil {
		t.Fatalf("a fresh bundle does not check: %v", err)
	}
	// Backdated 1h, 89h ahead: a 90h lifetime, renewed when 30h are left.
	if want := t0.Add(59 * time.Hour); !renewAt.Equal(want) {
		t.Errorf("renewAt = %s, want %s", renewAt, want)
	}
	leaf := parseCerts(b.Cert)[0]
	if leaf.IsCA || leaf.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth || leaf.Subject.CommonName != testID.DNSNames[0] {
		t.Errorf("leaf: isCA %v, usages %v, CN %q", leaf.IsCA, leaf.ExtKeyUsage, leaf.Subject.CommonName)
	}
	if len(parseCerts(b.CA)) != 1 || !parseCerts(b.CA)[0].IsCA {
		t.Errorf("CA bundle of a first issue: %d certs", len(parseCerts(b.CA)))
	}

	other := mustGenerate(t, t0, 89*time.Hour, testID, nil)
	tests := []struct {
		name string
		b    Bundle
		now  time.Time
		id   Identity
		want string
	}{
		{"empty", Bundle{}, t0, testID, "missing"},
		{"another key", Bundle{Cert: b.Cert, Key: other.Key, CA: b.CA}, t0, testID, "do not form a pair"},
		{"another CA", Bundle{Cert: b.Cert, Key: b.Key, CA: other.CA}, t0, testID, "does not verify"},
		{"garbage CA", Bundle{Cert: b.Cert, Key: b.Key, CA: []byte("nope")}, t0, testID, "no certificate"},
		{"expired", b, t0.Add(90 * time.Hour), testID, "does not verify"},
		{"not yet valid", b, t0.Add(-2 * time.Hour), testID, "does not verify"},
		{"a new service name", b, t0, Identity{DNSNames: []string{"other.metallb-system.svc"}}, "not valid for other.metallb-system.svc"},
		{"a new IP", b, t0, Identity{IPs: []net.IP{net.ParseIP("::1")}}, "not valid for ::1"},
	}
	for _, tc := range tests {
		if _, err := Check(tc.b, tc.now, tc.id); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want one mentioning %q", tc.name, err, tc.want)
		}
	}
}

func TestGenerateRefusesBadInput(t *testing.T) {
	if _, err := Generate(t0, 0, testID, nil); err == nil {
		t.Error("zero validity accepted")
	}
	if _, err := Generate(t0, time.Hour, Identity{}, nil); err == nil {
		t.Error("a certificate for nothing accepted")
	}
}

// A rotation keeps the previous CAs that are still valid after the new one,
// at most maxCAs in all, and drops expired ones.
func TestGenerateCABundle(t *testing.T) {
	first := mustGenerate(t, t0, 10*time.Hour, testID, nil)
	second := mustGenerate(t, t0.Add(7*time.Hour), 10*time.Hour, testID, first.CA)
	cas := parseCerts(second.CA)
	if len(cas) != 2 || !bytes.Equal(cas[1].Raw, parseCerts(first.CA)[0].Raw) {
		t.Fatalf("second bundle: %d CAs, want the new one then the first", len(cas))
	}
	// Both serving certificates verify against the new bundle: a replica
	// still serving the first one keeps working during the rotation.
	for i, b := range []Bundle{first, second} {
		if _, err := Check(Bundle{Cert: b.Cert, Key: b.Key, CA: second.CA}, t0.Add(8*time.Hour), testID); err != nil {
			t.Errorf("certificate %d against the new bundle: %v", i, err)
		}
	}
	third := mustGenerate(t, t0.Add(9*time.Hour), 10*time.Hour, testID, second.CA)
	fourth := mustGenerate(t, t0.Add(9*time.Hour), 10*time.Hour, testID, third.CA)
	if n := len(parseCerts(fourth.CA)); n != maxCAs {
		t.Errorf("fourth bundle holds %d CAs, want %d", n, maxCAs)
	}
	// Past the first CA's expiry it is dropped.
	late := mustGenerate(t, t0.Add(11*time.Hour), 10*time.Hour, testID, second.CA)
	if n := len(parseCerts(late.CA)); n != 2 {
		t.Errorf("after the first CA expired the bundle holds %d CAs, want 2", n)
	}
	// Non-CA certificates and garbage in the old bundle are not carried.
	mixed := append(append([]byte("junk\n"), first.Cert...), first.CA...)
	if n := len(parseCerts(mustGenerate(t, t0, time.Hour, testID, mixed).CA)); n != 2 {
		t.Errorf("bundle from a mixed old one holds %d certs, want 2", n)
	}
}

// The reloader serves the files of its directory and picks up new ones
// without a restart, over a real TLS connection.
func TestCertReloaderServesRotatedCertificate(t *testing.T) {
	dir := t.TempDir()
	now := t0
	l := &certReloader{dir: dir, every: time.Second, now: func() time.Time { return now }}
	if err := l.Ready(nil); err == nil {
		t.Fatal("ready without a certificate")
	}
	first := mustGenerate(t, time.Now(), time.Hour, testID, nil)
	if err := writeCertFiles(dir, map[string][]byte{SecretCertKey: first.Cert, SecretKeyKey: first.Key, SecretCAKey: first.CA}); err != nil {
		t.Fatal(err)
	}
	if err := l.Ready(nil); err != nil {
		t.Fatalf("not ready with a certificate: %v", err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{GetCertificate: l.GetCertificate})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				_ = c.(*tls.Conn).Handshake()
				c.Close()
			}()
		}
	}()
	served := func(ca []byte) (*x509.Certificate, error) {
		roots := x509.NewCertPool()
		roots.AppendCertsFromPEM(ca)
		c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"})
		if err != nil {
			return nil, err
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0], nil
	}
	if got, err := served(first.CA); err != nil || !bytes.Equal(got.Raw, parseCerts(first.Cert)[0].Raw) {
		t.Fatalf("first certificate not served: %v", err)
	}

	second := mustGenerate(t, time.Now(), time.Hour, testID, first.CA)
	if err := writeCertFiles(dir, map[string][]byte{SecretCertKey: second.Cert, SecretKeyKey: second.Key, SecretCAKey: second.CA}); err != nil {
		t.Fatal(err)
	}
	// Within the look-again period the old certificate stays.
	if got, err := served(second.CA); err != nil || !bytes.Equal(got.Raw, parseCerts(first.Cert)[0].Raw) {
		t.Fatalf("certificate changed before the reloader looked again: %v", err)
	}
	now = now.Add(time.Second)
	if got, err := served(second.CA); err != nil || !bytes.Equal(got.Raw, parseCerts(second.Cert)[0].Raw) {
		t.Fatalf("rotated certificate not served: %v", err)
	}

	// A half-written pair (new certificate, old key) keeps the last good one.
	third := mustGenerate(t, time.Now(), time.Hour, testID, nil)
	if err := os.WriteFile(filepath.Join(dir, SecretCertKey), third.Cert, 0o600); err != nil {
		t.Fatal(err)
	}
	l.Reload()
	if got, err := served(second.CA); err != nil || !bytes.Equal(got.Raw, parseCerts(second.Cert)[0].Raw) {
		t.Fatalf("a mismatched pair replaced the served certificate: %v", err)
	}
}

func TestWriteCertFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	files := map[string][]byte{SecretCertKey: []byte("c"), SecretKeyKey: []byte("k"), SecretCAKey: []byte("ca")}
	if err := writeCertFiles(dir, files); err != nil {
		t.Fatal(err)
	}
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s = %q, %v; want %q", name, got, err, want)
		}
		if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, %v; want 0600", name, fi.Mode(), err)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 3 {
		t.Errorf("%d files left in the directory, want 3 (no temporaries)", len(entries))
	}
	// Unchanged files are not rewritten (a new file would be a new
	// inode), so a read-only directory that already holds them is fine.
	before, err := os.Stat(filepath.Join(dir, SecretKeyKey))
	if err != nil {
		t.Fatal(err)
	}
	if err := writeCertFiles(dir, files); err != nil {
		t.Errorf("rewriting identical files: %v", err)
	}
	if after, err := os.Stat(filepath.Join(dir, SecretKeyKey)); err != nil || !os.SameFile(before, after) {
		t.Errorf("an unchanged file was replaced (%v)", err)
	}
	files[SecretKeyKey] = []byte("k2")
	if err := writeCertFiles(dir, files); err != nil {
		t.Fatal(err)
	}
	if after, err := os.Stat(filepath.Join(dir, SecretKeyKey)); err != nil || os.SameFile(before, after) {
		t.Errorf("a changed file was not replaced (%v)", err)
	}
}
