package pop3

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"mailgate/internal/devup"
	"mailgate/internal/proxytest"
	"mailgate/proxy"
)

// The same front end against the in-process upstream stand-in
// (internal/devup), which accepts only XOAUTH2 and OAUTHBEARER like
// Exchange Online and Gmail. The fake upstream of fakeup_test.go checks
// the wire details; these check the sessions.

// devupEnv is an env whose upstream is a devup POP3 server (implicit TLS,
// or STLS when startTLS is set); verify, if set, is its token check.
type devupEnv struct {
	*env
	pop *devup.POP3Server
}

func newDevupEnv(t *testing.T, mode proxy.TLSMode, startTLS bool, verify devup.XOAUTH2Verifier) *devupEnv {
	t.Helper()
	serverTLS, clientTLS := proxytest.TLSPair(t)
	pop := devup.NewPOP3(&devup.POP3Options{Verify: verify, TLSConfig: serverTLS, StartTLS: startTLS, Logger: proxytest.Logger(t)})
	ln := proxytest.Listen(t)
	go pop.Serve(ln)
	t.Cleanup(func() { pop.Close() })
	upMode := proxy.TLSImplicit
	if startTLS {
		upMode = proxy.TLSStartTLS
	}
	e := newEnv(t, mode, func(o *testOptions) {
		o.Upstream = proxy.Upstream{Address: ln.Addr().String(), TLS: upMode, TLSConfig: clientTLS}
		o.ShutdownQuiet = 50 * time.Millisecond
	})
	return &devupEnv{env: e, pop: pop}
}

// TestDevupSession: both login forms over STLS to a devup upstream behind
// STLS, RETR byte for byte, DELE committed by the client's own QUIT.
func TestDevupSession(t *testing.T) {
	for _, form := range []string{"user-pass", "auth-plain"} {
		t.Run(form, func(t *testing.T) {
			e := newDevupEnv(t, proxy.TLSStartTLS, true, nil)
			msg := bigMessage(t, 1<<20)
			if err := e.pop.Deliver("ann@example.com", bytes.NewReader(msg)); err != nil {
				t.Fatal(err)
			}
			c := e.dial()
			c.send("STLS")
			c.startTLS(e.clientTLS)
			if form == "user-pass" {
				c.cmd("USER ann@example.com")
				c.expectCmd("PASS good", "+OK Logged in")
			} else {
				c.expectCmd("AUTH PLAIN", "+ ")
				c.expectCmd(b64("\x00ann@example.com\x00good"), "+OK Logged in")
			}
			c.send("RETR 1")
			if head := c.line(); !strings.HasPrefix(head, "+OK") {
				t.Fatalf("RETR: %q", head)
			}
			if got := readDotted(t, c); !bytes.Equal(got, msg) {
				t.Fatalf("RETR body differs: %d bytes, want %d", len(got), len(msg))
			}
			c.expectCmd("DELE 1", "+OK")
			c.expectCmd("QUIT", "+OK")
			c.nc.Close()
			waitSessions(t, e.sessions, 0)
			if n := len(e.pop.Messages("ann@example.com")); n != 0 {
				t.Fatalf("%d messages upstream after DELE and QUIT, want 0", n)
			}
		})
	}
}

// TestDevupNoQuit: a client that vanishes, a revoke and a shutdown close
// the upstream connection without QUIT: the DELE is not applied.
func TestDevupNoQuit(t *testing.T) {
	for _, end := range []string{"client-gone", "revoked", "shutdown"} {
		t.Run(end, func(t *testing.T) {
			e := newDevupEnv(t, proxy.TLSImplicit, false, nil)
			e.pop.Deliver("ann@example.com", strings.NewReader("Subject: keep\r\n\r\nme\r\n"))
			c := e.login("ann@example.com", "good")
			c.expectCmd("DELE 1", "+OK")
			switch end {
			case "client-gone":
				c.nc.Close()
			case "revoked":
				e.sessions.ClosePassword("pw-ann@example.com")
				c.waitClosed()
			case "shutdown":
				e.srv.Shutdown(t.Context())
				c.waitClosed()
			}
			waitSessions(t, e.sessions, 0)
			time.Sleep(50 * time.Millisecond) // the upstream notices the close
			if cmds := e.pop.Commands("ann@example.com"); slices.Contains(cmds, "QUIT") {
				t.Fatalf("upstream got %q", cmds)
			}
			if n := len(e.pop.Messages("ann@example.com")); n != 1 {
				t.Fatalf("%d messages upstream, want the undeleted 1", n)
			}
		})
	}
}

// TestDevupRefusedToken: a token the upstream refuses is dropped and the
// login retried once with a fresh one; a second refusal is the fixed
// failure.
func TestDevupRefusedToken(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	refuse := "tok1"
	e := newDevupEnv(t, proxy.TLSNone, false, func(user, token string) error {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, token)
		if refuse == "all" || token == refuse {
			return errors.New("expired")
		}
		return nil
	})
	e.login("ann@example.com", "good")
	mu.Lock()
	got := slices.Clone(seen)
	refuse = "all"
	mu.Unlock()
	if !slices.Equal(got, []string{"tok1", "tok2"}) {
		t.Fatalf("upstream saw %q, want tok1 then tok2", got)
	}
	c := e.dial()
	c.cmd("USER ann@example.com")
	c.expectCmd("PASS good", textAuthFailed)
	if n := len(e.tokens.Invalidations()); n != 3 {
		t.Fatalf("%d invalidations, want 3", n)
	}
}

// expectCmd sends a command and checks that its reply starts with want.
func (c *client) expectCmd(cmd, want string) {
	c.t.Helper()
	if r := c.cmd("%s", cmd); !strings.HasPrefix(r, want) {
		c.t.Fatalf("%q: %q, want %q", cmd, r, want)
	}
}

// readDotted reads a multi-line reply's body up to the lone "." and undoes
// the dot-stuffing (RFC 1939 section 3).
func readDotted(t *testing.T, c *client) []byte {
	t.Helper()
	var b bytes.Buffer
	for {
		l, err := c.br.ReadBytes('\n')
		if err != nil {
			t.Fatalf("reading the body: %v", err)
		}
		if string(l) == ".\r\n" {
			return b.Bytes()
		}
		b.Write(bytes.TrimPrefix(l, []byte(".")))
	}
}
