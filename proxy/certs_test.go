package proxy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// writeCert writes a fresh self-signed pair for cn and returns the paths.
func writeCert(t *testing.T, dir, cn string) (string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		DNSNames: []string{cn}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	cf, kf := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := os.WriteFile(cf, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kf, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return cf, kf
}

func leafCN(t *testing.T, c *CertLoader) string {
	t.Helper()
	cert, err := c.GetCertificate(nil)
	if err != nil {
		t.Fatal(err)
	}
	x, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return x.Subject.CommonName
}

func TestCertLoaderReload(t *testing.T) {
	dir := t.TempDir()
	cf, kf := writeCert(t, dir, "old.example")
	c, err := NewCertLoader(cf, kf)
	if err != nil {
		t.Fatal(err)
	}
	writeCert(t, dir, "new.example")
	if err := c.Reload(); err != nil || leafCN(t, c) != "new.example" {
		t.Fatalf("after reload: cn %q err %v, want new.example", leafCN(t, c), err)
	}
	// A broken file keeps the certificate in use.
	if err := os.WriteFile(cf, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := c.Reload(); err == nil || leafCN(t, c) != "new.example" {
		t.Fatalf("bad reload: err %v cn %q, want an error and new.example kept", err, leafCN(t, c))
	}
	if _, err := NewCertLoader(filepath.Join(dir, "missing"), kf); err == nil {
		t.Fatal("NewCertLoader with a missing file: want error")
	}
}
