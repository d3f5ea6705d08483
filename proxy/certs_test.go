package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"mailgate/internal/selfsigned"
)

// writeCert writes a fresh self-signed pair for cn and returns the paths.
func writeCert(t *testing.T, dir, cn string) (string, string) {
	t.Helper()
	c, err := selfsigned.New(&selfsigned.Options{Hosts: []string{cn}, Lifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	cf, kf := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := c.WriteFiles(cf, kf); err != nil {
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

// peerCN dials addr and returns the common name of the served certificate.
func peerCN(t *testing.T, addr string) (string, *tls.Conn) {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true}) // the name is under test, not the chain
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.ConnectionState().PeerCertificates[0].Subject.CommonName, c
}

// echoTLS serves an echo over TLS with the loader's certificate.
func echoTLS(t *testing.T, c *CertLoader) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{GetCertificate: c.GetCertificate})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer nc.Close(); io.Copy(nc, nc) }()
		}
	}()
	return ln.Addr().String()
}

func echo(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatalf("live session after reload: %v", err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != msg {
		t.Fatalf("live session after reload: read %q, %v", buf, err)
	}
}

// TestCertWatch changes the files under a running listener: new connections
// get the new certificate, the live session goes on, and a broken file
// keeps the old certificate and says why in the log.
func TestCertWatch(t *testing.T) {
	dir := t.TempDir()
	cf, kf := writeCert(t, dir, "old.example")
	c, err := NewCertLoader(cf, kf)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go c.Watch(ctx, 10*time.Millisecond, slog.New(slog.NewTextHandler(logs, nil)))
	addr := echoTLS(t, c)
	cn, live := peerCN(t, addr)
	if cn != "old.example" {
		t.Fatalf("first certificate %q, want old.example", cn)
	}
	echo(t, live, "before")

	writeCert(t, dir, "new.example")
	waitFor(t, "new certificate served", func() bool { cn, _ := peerCN(t, addr); return cn == "new.example" })
	echo(t, live, "after reload")

	// Replacing the pair is two writes, and a poll between them may log a
	// mismatch: forget the log so that only the broken file can satisfy
	// the wait below.
	logs.Reset()
	if err := os.WriteFile(cf, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "bad certificate logged", func() bool { return strings.Contains(logs.String(), "keeping the old one") })
	if cn, _ := peerCN(t, addr); cn != "new.example" {
		t.Errorf("after a bad file: served %q, want new.example kept", cn)
	}
	if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), cf) {
		t.Errorf("log does not say which file failed:\n%s", logs)
	}
	echo(t, live, "after bad file")
}

// waitFor polls cond until it holds; the bound only stops a hung test.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("gave up waiting: %s", what)
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b.Reset()
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
