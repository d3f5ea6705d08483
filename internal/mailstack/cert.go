package mailstack

import (
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"mailgate/internal/selfsigned"
)

// tlsFiles are the PEM files written for one stack.
type tlsFiles struct {
	CA, Cert, Key string
	Pool          *x509.CertPool
}

// writeCerts creates a throwaway CA and a leaf certificate for "localhost",
// 127.0.0.1, 127.0.0.2 and host, and writes them under dir. The key never
// leaves the stack's temp dir and is regenerated on every start.
func writeCerts(dir, host string) (*tlsFiles, error) {
	ca, err := selfsigned.New(&selfsigned.Options{CommonName: "mailstack test CA"})
	if err != nil {
		return nil, fmt.Errorf("ca: %w", err)
	}
	hosts := []string{"localhost", "127.0.0.1", "127.0.0.2"}
	if ip := net.ParseIP(host); ip != nil && !ip.Equal(net.IPv4(127, 0, 0, 1)) && !ip.Equal(net.IPv4(127, 0, 0, 2)) {
		hosts = append(hosts, host)
	}
	// The leaf's PEM carries the chain so clients that only trust the CA
	// can verify it (Dovecot and Postfix send the whole file).
	leaf, err := selfsigned.New(&selfsigned.Options{Hosts: hosts, Issuer: ca})
	if err != nil {
		return nil, fmt.Errorf("leaf: %w", err)
	}
	f := &tlsFiles{
		CA:   filepath.Join(dir, "ca.pem"),
		Cert: filepath.Join(dir, "cert.pem"),
		Key:  filepath.Join(dir, "key.pem"),
		Pool: leaf.Pool, // trusts the CA only
	}
	// Only the root-run masters read the key; the CA is public.
	if err := leaf.WriteFiles(f.Cert, f.Key); err != nil {
		return nil, err
	}
	if err := os.WriteFile(f.CA, ca.CertPEM, 0o644); err != nil {
		return nil, fmt.Errorf("write %s: %w", f.CA, err)
	}
	return f, nil
}
