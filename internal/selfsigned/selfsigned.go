// Package selfsigned makes throwaway certificates for loopback: tests,
// `mailgate serve -dev` and the test upstreams (internal/devup,
// internal/mailstack). Keys are fresh on every call and live only as long as
// the process or its temporary directory. Never use it for production
// listeners: nothing a real client trusts signs these certificates.
package selfsigned

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// DefaultLifetime is how long a certificate is valid when Options.Lifetime
// is zero. Certificates also start an hour in the past, so a clock that is
// slightly behind still accepts them.
const DefaultLifetime = 24 * time.Hour

// Options say what certificate New makes. A nil *Options or zero fields
// give an ECDSA P-256 certificate for "localhost", valid for a day.
type Options struct {
	// Hosts are DNS names and IP literals put in the subject alternative names;
	// default "localhost". Clients check DNS names and often ignore IP addresses
	// (docs/clients.md, "Clients ignore IP addresses in certificates"), so keep
	// a name in the list.
	Hosts []string
	// CommonName is the subject's CN; default Hosts[0].
	CommonName string
	// RSA makes an RSA 2048 key instead of ECDSA P-256, e.g. for the TLS 1.0
	// ECDHE-RSA suites Windows 7 clients need (docs/clients.md, "Outlook on
	// Windows 7 speaks only TLS 1.0").
	RSA bool
	// Lifetime is how long the certificate is valid; default DefaultLifetime.
	Lifetime time.Duration
	// Issuer, when set, signs the certificate, which is then an end-entity
	// certificate chaining to Issuer. Issuer must itself come from New
	// without an Issuer. When nil the certificate is its own root: a CA
	// that clients (Go, OpenSSL, mbsync) can be told to trust directly.
	Issuer *Cert
}

// Cert is a certificate New made, in the forms callers need.
type Cert struct {
	// CertPEM is the certificate followed by its issuer's, if any: the
	// chain a server presents.
	CertPEM []byte
	// KeyPEM is the PKCS #8 private key.
	KeyPEM []byte
	// TLS is the chain and key for tls.Config.Certificates; TLS.Leaf is set.
	TLS tls.Certificate
	// Pool trusts the root: the certificate itself, or its Issuer.
	Pool *x509.CertPool

	key crypto.Signer
}

// New makes a fresh key and certificate.
func New(opts *Options) (*Cert, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if len(o.Hosts) == 0 {
		o.Hosts = []string{"localhost"}
	}
	if o.CommonName == "" {
		o.CommonName = o.Hosts[0]
	}
	if o.Lifetime <= 0 {
		o.Lifetime = DefaultLifetime
	}
	if o.Issuer != nil && (o.Issuer.TLS.Leaf == nil || !o.Issuer.TLS.Leaf.IsCA || o.Issuer.key == nil) {
		return nil, errors.New("selfsigned: issuer is not a root made by New")
	}
	key, err := newKey(o.RSA)
	if err != nil {
		return nil, err
	}
	tmpl, err := template(&o, key)
	if err != nil {
		return nil, err
	}
	parent, signer := tmpl, key
	if o.Issuer != nil {
		parent, signer = o.Issuer.TLS.Leaf, o.Issuer.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), signer)
	if err != nil {
		return nil, fmt.Errorf("selfsigned: sign certificate: %w", err)
	}
	return assemble(der, key, o.Issuer)
}

func newKey(useRSA bool) (crypto.Signer, error) {
	var key crypto.Signer
	var err error
	if useRSA {
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	} else {
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if err != nil {
		return nil, fmt.Errorf("selfsigned: generate key: %w", err)
	}
	return key, nil
}

// template is the certificate to sign: a root CA (so that it can be
// trusted as an anchor) unless o.Issuer is set.
func template(o *Options, key crypto.Signer) (*x509.Certificate, error) {
	// A random serial: clients such as Firefox and Thunderbird refuse two
	// different certificates with the same issuer and serial.
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("selfsigned: serial: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial.Add(serial, big.NewInt(1)), // RFC 5280 4.1.2.2: positive
		Subject:      pkix.Name{CommonName: o.CommonName},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(o.Lifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if _, ok := key.(*rsa.PrivateKey); ok {
		// RSA key exchange suites encrypt to the key (RFC 5280 4.2.1.3).
		tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment
	}
	for _, h := range o.Hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	if o.Issuer == nil {
		tmpl.IsCA, tmpl.BasicConstraintsValid, tmpl.MaxPathLenZero = true, true, true
		tmpl.KeyUsage |= x509.KeyUsageCertSign
	}
	return tmpl, nil
}

func assemble(der []byte, key crypto.Signer, issuer *Cert) (*Cert, error) {
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("selfsigned: parse certificate: %w", err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("selfsigned: marshal key: %w", err)
	}
	c := &Cert{
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}),
		TLS:     tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf},
		Pool:    x509.NewCertPool(),
		key:     key,
	}
	if issuer == nil {
		c.Pool.AddCert(leaf)
		return c, nil
	}
	c.CertPEM = append(c.CertPEM, issuer.CertPEM...)
	c.TLS.Certificate = append(c.TLS.Certificate, issuer.TLS.Leaf.Raw)
	c.Pool = issuer.Pool
	return c, nil
}

// WriteFiles writes CertPEM to certFile (mode 0644: it is public) and
// KeyPEM to keyFile (0600). Each file is written under a temporary name
// and renamed into place, so that a reader (a certificate watcher) never
// sees half a file.
func (c *Cert) WriteFiles(certFile, keyFile string) error {
	if err := writeFile(keyFile, c.KeyPEM, 0o600); err != nil {
		return err
	}
	return writeFile(certFile, c.CertPEM, 0o644)
}

func writeFile(name string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".tmp*")
	if err != nil {
		return fmt.Errorf("selfsigned: %w", err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(mode)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), name)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("selfsigned: write %s: %w", name, err)
	}
	return nil
}
