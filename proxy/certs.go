package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultCertPoll is how often Watch looks at the certificate files: a
// renewed certificate (certbot, ACME clients) is in use within seconds.
const DefaultCertPoll = 5 * time.Second

// CertLoader serves the TLS certificate through tls.Config.GetCertificate, so
// that Reload can swap it without restarting listeners or dropping sessions
// (docs/clients.md, "Apple Mail and certificate changes"): a handshake picks the
// certificate once, so live sessions keep theirs and only new ones get the new
// certificate.
type CertLoader struct {
	certFile, keyFile string
	cert              atomic.Pointer[tls.Certificate]

	mu   sync.Mutex
	seen fileStamp // of the files last read, good or bad
}

// fileStamp identifies a version of the two files without reading them.
type fileStamp struct {
	certMod, keyMod   time.Time
	certSize, keySize int64
}

// NewCertLoader loads the key pair once; a missing or bad pair is an error.
func NewCertLoader(certFile, keyFile string) (*CertLoader, error) {
	c := &CertLoader{certFile: certFile, keyFile: keyFile}
	return c, c.Reload()
}

// Reload reads the files again. On error the old certificate stays in use.
func (c *CertLoader) Reload() error {
	c.mu.Lock()
	c.seen = c.stamp()
	c.mu.Unlock()
	cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return fmt.Errorf("load certificate %s: %w", c.certFile, err)
	}
	c.cert.Store(&cert)
	return nil
}

// Watch reloads the pair whenever either file's modification time or size
// changes, looking every interval (DefaultCertPoll if <= 0), until ctx ends.
// Polling needs no inotify and also sees files replaced by rename, as
// certbot does. A bad new pair is logged and the old one stays in use;
// it is tried again when the files change again.
func (c *CertLoader) Watch(ctx context.Context, interval time.Duration, log *slog.Logger) {
	if interval <= 0 {
		interval = DefaultCertPoll
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !c.changed() {
			continue
		}
		if err := c.Reload(); err != nil {
			log.Error("certificate changed but cannot be used; keeping the old one", "err", err)
			continue
		}
		log.Info("certificate reloaded", "file", c.certFile)
	}
}

func (c *CertLoader) changed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stamp() != c.seen
}

// stamp reads the files' metadata; a missing file gets a zero entry, so
// that its reappearance counts as a change.
func (c *CertLoader) stamp() fileStamp {
	var s fileStamp
	if fi, err := os.Stat(c.certFile); err == nil {
		s.certMod, s.certSize = fi.ModTime(), fi.Size()
	}
	if fi, err := os.Stat(c.keyFile); err == nil {
		s.keyMod, s.keySize = fi.ModTime(), fi.Size()
	}
	return s
}

// GetCertificate implements tls.Config.GetCertificate. One certificate covers
// every name: Outlook may send no SNI (docs/clients.md, "Outlook may send no
// SNI").
func (c *CertLoader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if cert := c.cert.Load(); cert != nil {
		return cert, nil
	}
	return nil, errors.New("no certificate loaded")
}
