package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"mailgate/config"
	"mailgate/internal/selfsigned"
	"mailgate/proxy"
)

// writeRSACert writes a self-signed RSA pair for "localhost": Windows 7's TLS
// 1.0 suites need an RSA certificate (docs/clients.md, "Outlook on Windows 7
// speaks only TLS 1.0").
func writeRSACert(t *testing.T, dir, cn string) (certFile, keyFile string) {
	t.Helper()
	c, err := selfsigned.New(&selfsigned.Options{Hosts: []string{"localhost"}, CommonName: cn, RSA: true, Lifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := c.WriteFiles(certFile, keyFile); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// policyListener serves TLS with the config a listener with minVersion ("" =
// default) gets from serverTLS, completing handshakes; it returns the
// address and the log.
func policyListener(t *testing.T, minVersion string) (string, *bytes.Buffer) {
	t.Helper()
	return policyListenerFor(t, config.Listener{MinVersion: minVersion})
}

// policyListenerFor is policyListener for a listener with l's min_version
// and ciphers.
func policyListenerFor(t *testing.T, l config.Listener) (string, *bytes.Buffer) {
	t.Helper()
	dir := t.TempDir()
	cf, kf := writeRSACert(t, dir, "localhost")
	certs, err := proxy.NewCertLoader(cf, kf)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{TLS: config.TLS{MinVersion: config.DefaultMinVersion}}
	var logs bytes.Buffer
	l.Address, l.TLS = "127.0.0.1:0", config.TLSImplicit
	tc, err := serverTLS(cfg, l, certs, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", tc)
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
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				if c.(*tls.Conn).Handshake() == nil {
					c.Write([]byte("ok\n"))
				}
			}()
		}
	}()
	return ln.Addr().String(), &logs
}

// win7Client dials like Outlook 2010 on an unpatched Windows 7: TLS 1.0
// only, with the suite Schannel shares with an RSA certificate.
func win7Client(addr string, suite uint16) error {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, &tls.Config{
		InsecureSkipVerify: true, // the handshake parameters are under test, not the chain
		MinVersion:         tls.VersionTLS10, MaxVersion: tls.VersionTLS10,
		CipherSuites: []uint16{suite},
	})
	if err != nil {
		return err
	}
	defer c.Close()
	st := c.ConnectionState()
	if st.Version != tls.VersionTLS10 || st.CipherSuite != suite {
		return &net.AddrError{Err: "negotiated " + tls.VersionName(st.Version) + " " + tls.CipherSuiteName(st.CipherSuite)}
	}
	return nil
}

func TestTLSPolicyWindows7(t *testing.T) {
	lowered, logs := policyListener(t, "1.0")
	if err := win7Client(lowered, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA); err != nil {
		t.Errorf("TLS 1.0 ECDHE-RSA-AES128-SHA with min_version 1.0: %v", err)
	}
	if err := win7Client(lowered, tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA); err != nil {
		t.Errorf("TLS 1.0 ECDHE-RSA-AES256-SHA with min_version 1.0: %v", err)
	}
	// Lowering the version enables exactly the ECDHE CBC suites: no RSA key
	// exchange (no forward secrecy), no 3DES.
	if err := win7Client(lowered, tls.TLS_RSA_WITH_AES_128_CBC_SHA); err == nil {
		t.Error("TLS 1.0 with RSA key exchange connected, want refused")
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), `min_version="TLS 1.0"`) {
		t.Errorf("no warning logged for min_version 1.0:\n%s", logs)
	}
	modern, logs := policyListener(t, "")
	if err := win7Client(modern, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA); err == nil {
		t.Error("TLS 1.0 client connected with the default min_version, want refused")
	}
	if logs.Len() != 0 {
		t.Errorf("default policy logged:\n%s", logs)
	}
}

// tls12Client dials with TLS 1.2 only, offering suites only, and returns
// the suite agreed on.
func tls12Client(addr string, suites ...uint16) (uint16, error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, &tls.Config{
		InsecureSkipVerify: true, // the handshake parameters are under test, not the chain
		MinVersion:         tls.VersionTLS12, MaxVersion: tls.VersionTLS12,
		CipherSuites: suites,
	})
	if err != nil {
		return 0, err
	}
	defer c.Close()
	return c.ConnectionState().CipherSuite, nil
}

// cbcSuites are the TLS 1.2 CBC suites Go's default list offers and
// Mozilla's intermediate list leaves out.
var cbcSuites = []uint16{
	tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
	tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
	tls.TLS_RSA_WITH_AES_128_GCM_SHA256, // RSA key exchange: no forward secrecy
	tls.TLS_RSA_WITH_AES_128_CBC_SHA,
}

// TestTLSPolicyTLS12 checks the default TLS 1.2 suites: Mozilla's
// intermediate list, ECDHE with AES-GCM or ChaCha20-Poly1305 only. A client
// offering only CBC suites (or RSA key exchange) fails the handshake; the
// AEAD suites and TLS 1.3 connect. A listener lowered to TLS 1.0 keeps the
// Windows 7 suites, also at TLS 1.2, and explicit ciphers still decide.
func TestTLSPolicyTLS12(t *testing.T) {
	modern, _ := policyListener(t, "")
	if got, err := tls12Client(modern, cbcSuites...); err == nil {
		t.Errorf("TLS 1.2 client offering only CBC suites agreed on %s, want a failed handshake", tls.CipherSuiteName(got))
	}
	for _, suite := range []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256} {
		if got, err := tls12Client(modern, suite); err != nil || got != suite {
			t.Errorf("TLS 1.2 with %s: %v (agreed on %s)", tls.CipherSuiteName(suite), err, tls.CipherSuiteName(got))
		}
	}
	// A client offering both gets an AEAD suite.
	if got, err := tls12Client(modern, append(slices.Clone(cbcSuites), tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)...); err != nil ||
		got != tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 {
		t.Errorf("TLS 1.2 offering CBC and GCM: %v, agreed on %s", err, tls.CipherSuiteName(got))
	}
	c, err := tls.Dial("tcp", modern, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13})
	if err != nil {
		t.Errorf("TLS 1.3: %v", err)
	} else {
		c.Close()
	}

	lowered, _ := policyListener(t, "1.0")
	if _, err := tls12Client(lowered, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA); err != nil {
		t.Errorf("TLS 1.2 ECDHE-RSA-AES128-SHA on the min_version 1.0 listener: %v", err)
	}
	if _, err := tls12Client(lowered, tls.TLS_RSA_WITH_AES_128_CBC_SHA); err == nil {
		t.Error("TLS 1.2 with RSA key exchange connected on the min_version 1.0 listener, want refused")
	}

	chosen, _ := policyListenerFor(t, config.Listener{Ciphers: []string{"TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"}})
	if _, err := tls12Client(chosen, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA); err != nil {
		t.Errorf("TLS 1.2 with the one configured cipher: %v", err)
	}
	if _, err := tls12Client(chosen, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256); err == nil {
		t.Error("TLS 1.2 with a suite outside the configured ciphers connected")
	}
}

// TestTLSPolicyOpenSSL checks the same with a different TLS stack. Debian's
// OpenSSL refuses TLS 1.0 at its default security level, hence SECLEVEL=0.
func TestTLSPolicyOpenSSL(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Fatal("openssl not found (installed by .ci/deps)")
	}
	sClient := func(addr string, args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if args == nil {
			args = []string{"-tls1", "-cipher", "ECDHE-RSA-AES128-SHA@SECLEVEL=0"}
		}
		cmd := exec.CommandContext(ctx, "openssl", append([]string{"s_client", "-connect", addr}, args...)...)
		cmd.Stdin = strings.NewReader("") // EOF: s_client exits after the handshake
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	lowered, _ := policyListener(t, "1.0")
	out, err := sClient(lowered)
	if err != nil || !strings.Contains(out, "Protocol  : TLSv1\n") || !strings.Contains(out, "ECDHE-RSA-AES128-SHA") {
		t.Errorf("openssl -tls1 against min_version 1.0: %v\n%s", err, out)
	}
	modern, _ := policyListener(t, "")
	if out, err := sClient(modern); err == nil {
		t.Errorf("openssl -tls1 against the default policy succeeded:\n%s", out)
	}
	if out, err := sClient(modern, "-tls1_2", "-cipher", "ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES256-SHA:ECDHE-RSA-AES128-SHA256"); err == nil {
		t.Errorf("openssl -tls1_2 with CBC suites only against the default policy succeeded:\n%s", out)
	}
	out, err = sClient(modern, "-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256")
	if err != nil || !strings.Contains(out, "Protocol  : TLSv1.2\n") || !strings.Contains(out, "ECDHE-RSA-AES128-GCM-SHA256") {
		t.Errorf("openssl -tls1_2 -cipher ECDHE-RSA-AES128-GCM-SHA256 against the default policy: %v\n%s", err, out)
	}
}
