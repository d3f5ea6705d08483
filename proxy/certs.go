package proxy

import (
	"crypto/tls"
	"errors"
	"fmt"
	"sync/atomic"
)

// CertLoader serves the TLS certificate through tls.Config.GetCertificate,
// so that Reload can swap it without restarting listeners or dropping
// sessions (field note 22).
type CertLoader struct {
	certFile, keyFile string
	cert              atomic.Pointer[tls.Certificate]
}

// NewCertLoader loads the key pair once; a missing or bad pair is an error.
func NewCertLoader(certFile, keyFile string) (*CertLoader, error) {
	c := &CertLoader{certFile: certFile, keyFile: keyFile}
	return c, c.Reload()
}

// Reload reads the files again. On error the old certificate stays in use.
func (c *CertLoader) Reload() error {
	cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return fmt.Errorf("load certificate %s: %w", c.certFile, err)
	}
	c.cert.Store(&cert)
	return nil
}

// GetCertificate implements tls.Config.GetCertificate. One certificate
// covers every name: Outlook may send no SNI (field note 21).
func (c *CertLoader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if cert := c.cert.Load(); cert != nil {
		return cert, nil
	}
	return nil, errors.New("no certificate loaded")
}
