package config

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/keeperlb/keeperlb/api/v1beta1"
	"github.com/keeperlb/keeperlb/api/v1beta2"
)

// TestReservedAddressesAndLongPasswords checks the rules that keep a pool
// or a peer from naming an address that can never be one, and a TCP-MD5
// password the kernel would refuse (the session would silently never come
// up). Each refusal names the object and the field.
func TestReservedAddressesAndLongPasswords(t *testing.T) {
	bad := []struct{ entry, what string }{
		{"0.0.0.0/0", "unspecified address 0.0.0.0"},
		{"0.0.0.0-0.0.0.9", "unspecified address 0.0.0.0"},
		{"127.0.0.1/32", "loopback"},
		{"126.255.255.0-127.0.0.0", "loopback"},
		{"239.1.1.0/24", "multicast"},
		{"255.255.255.255/32", "broadcast"},
		{"255.255.255.0/24", "broadcast"},
		{"::/120", "unspecified address ::"},
		{"::1/128", "loopback address ::1"},
		{"ff02::/16", "multicast"},
	}
	for _, b := range bad {
		_, err := Parse(Resources{Namespace: ns, Pools: []v1beta1.IPAddressPool{pool("p", "198.18.0.0/24", b.entry)}})
		checkErrors(t, err, []wantErr{poolErr("p", "spec.addresses[1]", "contains")})
		if err == nil || !strings.Contains(err.Error(), b.what) {
			t.Errorf("pool entry %s: error %v does not say %q", b.entry, err, b.what)
		}
	}
	for _, good := range []string{"198.18.0.0/24", "126.0.0.0/8", "128.0.0.0/8", "223.255.255.0/24", "2001:db8::/64", "::2-::ff", "fe80::/64"} {
		if _, err := Parse(Resources{Namespace: ns, Pools: []v1beta1.IPAddressPool{pool("p", good)}}); err != nil {
			t.Errorf("pool entry %s refused: %v", good, err)
		}
	}

	for _, addr := range []string{"0.0.0.0", "127.0.0.1", "224.0.0.5", "255.255.255.255", "::", "::1", "ff02::2"} {
		_, err := Parse(Resources{Namespace: ns, Peers: []v1beta2.BGPPeer{peer("r", addr, nil)}})
		checkErrors(t, err, []wantErr{peerErr("r", "spec.peerAddress", "can never be a BGP peer")})
	}

	long := strings.Repeat("p", 81)
	_, err := Parse(Resources{Namespace: ns, Peers: []v1beta2.BGPPeer{peer("r", "198.18.0.1", func(s *v1beta2.BGPPeerSpec) { s.Password = long })}})
	checkErrors(t, err, []wantErr{peerErr("r", "spec.password", "81 bytes; TCP-MD5 keys are at most 80")})
	_, err = Parse(Resources{Namespace: ns,
		Peers: []v1beta2.BGPPeer{peer("r", "198.18.0.1", func(s *v1beta2.BGPPeerSpec) {
			s.PasswordSecret = corev1.SecretReference{Name: "pw"}
		})},
		Secrets: []corev1.Secret{secret("pw", corev1.SecretTypeBasicAuth, map[string]string{"password": long})},
	})
	checkErrors(t, err, []wantErr{peerErr("r", "spec.passwordSecret.name", "81 bytes")})
	if _, err := Parse(Resources{Namespace: ns, Peers: []v1beta2.BGPPeer{peer("r", "198.18.0.1", func(s *v1beta2.BGPPeerSpec) {
		s.Password = strings.Repeat("p", 80)
	})}}); err != nil {
		t.Errorf("an 80-byte password was refused: %v", err)
	}
}
