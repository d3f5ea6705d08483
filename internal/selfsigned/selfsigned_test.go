package selfsigned

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestNew(t *testing.T) {
	root, err := New(&Options{CommonName: "test CA"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		opts     *Options
		dns, ips []string
		cn       string
		rsa      bool
	}{
		{name: "defaults", opts: nil, dns: []string{"localhost"}, cn: "localhost"},
		{name: "names and IPs", opts: &Options{Hosts: []string{"localhost", "127.0.0.1", "::1", "mail.test"}},
			dns: []string{"localhost", "mail.test"}, ips: []string{"127.0.0.1", "::1"}, cn: "localhost"},
		{name: "rsa", opts: &Options{Hosts: []string{"localhost"}, CommonName: "win7", RSA: true},
			dns: []string{"localhost"}, cn: "win7", rsa: true},
		{name: "issued", opts: &Options{Hosts: []string{"localhost", "127.0.0.2"}, Issuer: root},
			dns: []string{"localhost"}, ips: []string{"127.0.0.2"}, cn: "localhost"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			leaf := c.TLS.Leaf
			if !slices.Equal(leaf.DNSNames, tt.dns) || leaf.Subject.CommonName != tt.cn {
				t.Errorf("DNS names %q, CN %q; want %q, %q", leaf.DNSNames, leaf.Subject.CommonName, tt.dns, tt.cn)
			}
			var ips []string
			for _, ip := range leaf.IPAddresses {
				ips = append(ips, ip.String())
			}
			if !slices.Equal(ips, tt.ips) {
				t.Errorf("IP addresses %q, want %q", ips, tt.ips)
			}
			switch c.TLS.PrivateKey.(type) {
			case *rsa.PrivateKey:
				if !tt.rsa || leaf.KeyUsage&x509.KeyUsageKeyEncipherment == 0 {
					t.Errorf("RSA key with key usage %b, want rsa=%v and key encipherment", leaf.KeyUsage, tt.rsa)
				}
			case *ecdsa.PrivateKey:
				if tt.rsa {
					t.Error("ECDSA key, want RSA")
				}
			default:
				t.Errorf("key type %T", c.TLS.PrivateKey)
			}
			if leaf.IsCA != (tt.opts == nil || tt.opts.Issuer == nil) {
				t.Errorf("IsCA = %v, want a root exactly when there is no issuer", leaf.IsCA)
			}
			for _, h := range append(tt.dns, tt.ips...) {
				if _, err := leaf.Verify(x509.VerifyOptions{DNSName: h, Roots: c.Pool, Intermediates: x509.NewCertPool()}); err != nil {
					t.Errorf("verify for %s: %v", h, err)
				}
			}
			if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "other.test", Roots: c.Pool}); err == nil {
				t.Error("verified for a host not in the certificate")
			}
			if _, err := leaf.Verify(x509.VerifyOptions{DNSName: tt.dns[0], Roots: x509.NewCertPool()}); err == nil {
				t.Error("verified without the pool")
			}
			if pair, err := tls.X509KeyPair(c.CertPEM, c.KeyPEM); err != nil || len(pair.Certificate) != len(c.TLS.Certificate) {
				t.Errorf("PEM pair: %v, chain of %d, want %d", err, len(pair.Certificate), len(c.TLS.Certificate))
			}
		})
	}
}

// TestHandshake serves an issued certificate and dials it trusting only
// the pool: the chain the server sends must be complete.
func TestHandshake(t *testing.T) {
	root, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(&Options{Hosts: []string{"localhost"}, Issuer: root})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{c.TLS}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		nc, err := ln.Accept()
		if err == nil {
			nc.(*tls.Conn).Handshake()
			nc.Close()
		}
	}()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", ln.Addr().String(),
		&tls.Config{RootCAs: c.Pool, ServerName: "localhost"})
	if err != nil {
		t.Fatalf("handshake trusting the root: %v", err)
	}
	conn.Close()
}

func TestIssuerMustBeRoot(t *testing.T) {
	root, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := New(&Options{Issuer: root})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(&Options{Issuer: leaf}); err == nil {
		t.Error("an issued certificate signed another, want an error")
	}
	if _, err := New(&Options{Issuer: &Cert{}}); err == nil {
		t.Error("an empty Cert signed a certificate, want an error")
	}
}

func TestLifetime(t *testing.T) {
	c, err := New(&Options{Lifetime: 30 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(c.TLS.Leaf.NotAfter); d < 29*24*time.Hour || d > 30*24*time.Hour {
		t.Errorf("valid for another %v, want about 30 days", d)
	}
	if !c.TLS.Leaf.NotBefore.Before(time.Now()) {
		t.Errorf("NotBefore %v is not in the past", c.TLS.Leaf.NotBefore)
	}
}

func TestWriteFiles(t *testing.T) {
	c, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cf, kf := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := c.WriteFiles(cf, kf); err != nil {
		t.Fatal(err)
	}
	if _, err := tls.LoadX509KeyPair(cf, kf); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]os.FileMode{cf: 0o644, kf: 0o600} {
		fi, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", name, fi.Mode().Perm(), want)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Errorf("%d files in the directory, want 2 (no temporary files left)", len(ents))
	}
	if err := c.WriteFiles(filepath.Join(dir, "missing", "c"), kf); err == nil {
		t.Error("write into a missing directory: want an error")
	}
}
