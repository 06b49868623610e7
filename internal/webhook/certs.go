package webhook

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"slices"
	"time"
)

// Bundle is the webhook's TLS material, each part PEM-encoded as stored in
// the Secret.
type Bundle struct {
	// Cert is the serving certificate (tls.crt).
	Cert []byte
	// Key is the serving certificate's private key (tls.key).
	Key []byte
	// CA is the CA bundle clients trust (ca.crt): the CA that signed Cert
	// first, then the previous CAs that are still valid, so that a replica
	// still serving the previous certificate keeps working while the new
	// one spreads.
	CA []byte
}

// Identity is what the serving certificate must be valid for.
type Identity struct {
	// DNSNames are the host names clients use, such as
	// keeperlb-webhook-service.metallb-system.svc.
	DNSNames []string
	// IPs are the addresses clients use (tests, host-network setups).
	IPs []net.IP
}

// maxCAs bounds the CA bundle: the new CA and two predecessors cover a
// rotation in progress and one forced early (a changed service name).
const maxCAs = 3

// Generate creates a new CA and a serving certificate signed by it, both
// valid for validity from now. The CA is used once: each rotation makes a
// new one, so no long-lived CA key has to be kept anywhere. previousCA is
// the bundle being replaced; its CAs that are still valid are kept after
// the new one.
func Generate(now time.Time, validity time.Duration, id Identity, previousCA []byte) (Bundle, error) {
	if validity <= 0 {
		return Bundle{}, fmt.Errorf("certificate validity %s must be positive", validity)
	}
	if len(id.DNSNames) == 0 && len(id.IPs) == 0 {
		return Bundle{}, errors.New("the serving certificate needs at least one DNS name or IP address")
	}
	// Backdated a little, so that an API server whose clock runs behind
	// ours still accepts the certificate at once.
	notBefore := now.Add(-min(validity/10, time.Hour)).UTC().Truncate(time.Second)
	notAfter := now.Add(validity).UTC().Truncate(time.Second)

	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Bundle{}, fmt.Errorf("generating the CA key: %w", err)
	}
	caTmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: fmt.Sprintf("keeperlb-webhook-ca@%d", now.Unix())},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	if caTmpl.SerialNumber, err = serial(); err != nil {
		return Bundle{}, err
	}
	if caTmpl.SubjectKeyId, err = keyID(&caKey.PublicKey); err != nil {
		return Bundle{}, err
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return Bundle{}, fmt.Errorf("signing the CA certificate: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return Bundle{}, fmt.Errorf("reading back the CA certificate: %w", err)
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Bundle{}, fmt.Errorf("generating the serving key: %w", err)
	}
	cn := ""
	if len(id.DNSNames) > 0 {
		cn = id.DNSNames[0]
	} else {
		cn = id.IPs[0].String()
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn},
		DNSNames:    slices.Clone(id.DNSNames),
		IPAddresses: slices.Clone(id.IPs),
		NotBefore:   notBefore,
		NotAfter:    notAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if tmpl.SerialNumber, err = serial(); err != nil {
		return Bundle{}, err
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return Bundle{}, fmt.Errorf("signing the serving certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return Bundle{}, fmt.Errorf("encoding the serving key: %w", err)
	}

	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	kept := 1
	for _, old := range parseCerts(previousCA) {
		if kept >= maxCAs {
			break
		}
		if old.IsCA && now.Before(old.NotAfter) && !bytes.Equal(old.Raw, caDER) {
			caPEM = append(caPEM, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: old.Raw})...)
			kept++
		}
	}
	return Bundle{
		Cert: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		Key:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		CA:   caPEM,
	}, nil
}

// Check tells whether b can serve id at now and when it should be renewed:
// when a third of its lifetime is left, early enough that a controller
// down for a while on the way still renews it before it expires. An error
// means b cannot be used at all (missing, corrupt, expired, not matching
// its key, not signed by a CA of b.CA, or not valid for a name in id).
func Check(b Bundle, now time.Time, id Identity) (renewAt time.Time, err error) {
	if len(b.Cert) == 0 || len(b.Key) == 0 || len(b.CA) == 0 {
		return time.Time{}, errors.New("the certificate, key or CA bundle is missing")
	}
	pair, err := tls.X509KeyPair(b.Cert, b.Key)
	if err != nil {
		return time.Time{}, fmt.Errorf("the certificate and key do not form a pair: %w", err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return time.Time{}, fmt.Errorf("reading the certificate: %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(b.CA) {
		return time.Time{}, errors.New("the CA bundle holds no certificate")
	}
	opts := x509.VerifyOptions{Roots: roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	if _, err := leaf.Verify(opts); err != nil {
		return time.Time{}, fmt.Errorf("the certificate does not verify against the CA bundle: %w", err)
	}
	for _, name := range id.DNSNames {
		if err := leaf.VerifyHostname(name); err != nil {
			return time.Time{}, fmt.Errorf("the certificate is not valid for %s", name)
		}
	}
	for _, ip := range id.IPs {
		if !slices.ContainsFunc(leaf.IPAddresses, ip.Equal) {
			return time.Time{}, fmt.Errorf("the certificate is not valid for %s", ip)
		}
	}
	lifetime := leaf.NotAfter.Sub(leaf.NotBefore)
	return leaf.NotBefore.Add(lifetime - lifetime/3), nil
}

// serial returns a random 128-bit certificate serial number.
func serial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("generating a serial number: %w", err)
	}
	return n, nil
}

// keyID is the SHA-1 of the public key, the usual subject key identifier
// (RFC 5280, 4.2.1.2); it lets verifiers pick the right CA out of a bundle
// of CAs with similar names.
func keyID(pub *ecdsa.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("encoding the CA public key: %w", err)
	}
	sum := sha1.Sum(der)
	return sum[:], nil
}

// parseCerts returns the certificates of a PEM bundle, skipping anything
// that does not parse.
func parseCerts(pemData []byte) []*x509.Certificate {
	var out []*x509.Certificate
	for len(pemData) > 0 {
		var block *pem.Block
		block, pemData = pem.Decode(pemData)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		if c, err := x509.ParseCertificate(block.Bytes); err == nil {
			out = append(out, c)
		}
	}
	return out
}
