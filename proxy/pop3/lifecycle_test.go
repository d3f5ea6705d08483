package pop3

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"io"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"mailgate/internal/proxytest"
	"mailgate/proxy"
)

// TestUpstreamAuth: AUTH goes upstream as the command alone, then the
// initial response after the "+ " continuation, as Exchange Online needs
// it; an error challenge is answered with an empty line (XOAUTH2) or ^A
// (OAUTHBEARER, RFC 7628 section 3.2.3), and the refused token is retried
// once with a fresh one.
func TestUpstreamAuth(t *testing.T) {
	for _, tc := range []struct {
		mech       proxy.Mechanism
		ir         string
		errAnswer  string
		upstreamTo string
	}{
		{proxy.MechXOAUTH2, "user=ann@example.com\x01auth=Bearer %s\x01\x01", "", "XOAUTH2"},
		{proxy.MechOAuthBearer, "n,a=ann@example.com,\x01auth=Bearer %s\x01\x01", "AQ==", "OAUTHBEARER"},
	} {
		t.Run(tc.upstreamTo, func(t *testing.T) {
			e := newEnv(t, proxy.TLSNone, func(o *testOptions) { o.Upstream.Mechanism = tc.mech })
			e.up.set("refuse-first")
			e.login("ann@example.com", "good")
			ir := func(tok string) string { return b64(strings.Replace(tc.ir, "%s", tok, 1)) }
			want := []string{
				"AUTH " + tc.upstreamTo, ir("tok1"), tc.errAnswer,
				"AUTH " + tc.upstreamTo, ir("tok2"),
			}
			if got := e.up.received(); !slices.Equal(got, want) {
				t.Fatalf("upstream received\n%q\nwant\n%q", got, want)
			}
			if inv := e.tokens.Invalidations(); !slices.Equal(inv, []string{"tok1"}) {
				t.Fatalf("invalidated %q, want tok1", inv)
			}
		})
	}
}

// TestUpstreamSTLS: an upstream reached in clear is upgraded with STLS and
// a verified certificate before AUTH.
func TestUpstreamSTLS(t *testing.T) {
	serverTLS, clientTLS := proxytest.TLSPair(t)
	up := newSTLSUpstream(t, serverTLS)
	e := newEnv(t, proxy.TLSNone, func(o *testOptions) {
		o.Upstream = proxy.Upstream{Address: up.addr, TLS: proxy.TLSStartTLS, TLSConfig: clientTLS}
	})
	e.login("ann@example.com", "good")
	if got := up.received(); len(got) < 2 || got[0] != "STLS" || got[1] != "AUTH XOAUTH2" {
		t.Fatalf("upstream received %q", got)
	}
}

// TestRelayRETR: a large RETR reaches the client byte for byte, and the
// client's own DELE and QUIT commit the deletion upstream.
func TestRelayRETR(t *testing.T) {
	e := newEnv(t, proxy.TLSImplicit, nil)
	msg := bigMessage(t, 3<<20)
	e.up.add(msg)
	c := e.login("ann@example.com", "good")
	c.send("RETR 1")
	head := c.line()
	want := e.up.msgs[0]
	got := make([]byte, len(want)+len(".\r\n"))
	if _, err := io.ReadFull(c.br, got); err != nil {
		t.Fatal(err)
	}
	if head != "+OK "+strconv.Itoa(len(want))+" octets" || !bytes.Equal(got[:len(want)], want) || string(got[len(want):]) != ".\r\n" {
		t.Fatalf("RETR: head %q, body differs: %v", head, !bytes.Equal(got[:len(want)], want))
	}
	if r := c.cmd("DELE 1"); r != "+OK message 1 deleted" {
		t.Fatalf("DELE: %q", r)
	}
	if r := c.cmd("QUIT"); r != "+OK bye" {
		t.Fatalf("QUIT: %q", r)
	}
	c.waitClosed()
	c.nc.Close() // as clients do after QUIT's reply; the relay waits for it
	waitSessions(t, e.sessions, 0)
	if msgs, quits := e.up.count(); msgs != 0 || quits != 1 {
		t.Fatalf("upstream: %d messages, %d QUITs; want the deletion committed by the client's QUIT", msgs, quits)
	}
}

// bigMessage returns n bytes of message lines, some starting with a dot.
func bigMessage(t *testing.T, n int) []byte {
	t.Helper()
	raw := make([]byte, n/2)
	rand.Read(raw)
	var b bytes.Buffer
	b.WriteString("Subject: big\r\n\r\n")
	enc := base64.StdEncoding.EncodeToString(raw)
	for i := 0; i < len(enc); i += 76 {
		if i%(76*100) == 0 {
			b.WriteString(".dot line\r\n")
		}
		b.WriteString(enc[i:min(i+76, len(enc))] + "\r\n")
	}
	return b.Bytes()
}

// TestNoQuitUpstream: when the client vanishes, is revoked or its password
// expires, the upstream connection is closed without QUIT, so uncommitted
// deletions are not applied (RFC 1939 section 6).
func TestNoQuitUpstream(t *testing.T) {
	for _, tc := range []struct {
		name, pass string
		end        func(e *env, c *client)
	}{
		{"client-gone", "good", func(e *env, c *client) { c.nc.Close() }},
		{"revoked", "good", func(e *env, c *client) {
			if n := e.sessions.ClosePassword("pw-ann@example.com"); n != 1 {
				t.Fatalf("ClosePassword ended %d sessions", n)
			}
			c.waitClosed()
		}},
		{"expired", "expiring", func(e *env, c *client) { c.waitClosed() }},
		{"shutdown", "good", func(e *env, c *client) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := e.srv.Shutdown(ctx); err != nil {
				t.Fatalf("Shutdown: %v", err)
			}
			c.waitClosed()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, proxy.TLSNone, func(o *testOptions) { o.ShutdownQuiet = 50 * time.Millisecond })
			e.up.add([]byte("Subject: keep\r\n\r\nme\r\n"))
			c := e.login("ann@example.com", tc.pass)
			if r := c.cmd("DELE 1"); r != "+OK message 1 deleted" {
				t.Fatalf("DELE: %q", r)
			}
			tc.end(e, c)
			select {
			case <-e.up.closed:
			case <-time.After(20 * time.Second):
				t.Fatal("upstream connection still open")
			}
			waitSessions(t, e.sessions, 0)
			if msgs, quits := e.up.count(); msgs != 1 || quits != 0 {
				t.Fatalf("upstream: %d messages, %d QUITs; want the message kept and no QUIT", msgs, quits)
			}
		})
	}
}

// TestRevokeDuringUpstreamLogin: a password revoked while its login waits
// for the upstream fails that login, and no relayed session remains.
func TestRevokeDuringUpstreamLogin(t *testing.T) {
	e := newEnv(t, proxy.TLSNone, nil)
	hold := make(chan struct{})
	e.up.mu.Lock()
	e.up.hold, e.up.entered = hold, make(chan struct{}, 1)
	e.up.mu.Unlock()
	defer close(hold)
	c := e.dial()
	c.cmd("USER ann@example.com")
	c.send("PASS good")
	<-e.up.entered // the upstream is in AUTH
	if n := e.sessions.ClosePassword("pw-ann@example.com"); n != 1 {
		t.Fatalf("ClosePassword ended %d sessions, want the one logging in", n)
	}
	c.expect(textAuthFailed)
	if r := c.cmd("STAT"); r != "-ERR Unknown command" {
		t.Fatalf("STAT: %q; nothing may be relayed", r)
	}
	waitSessions(t, e.sessions, 0)
}

// TestShutdownWaitsForQuiet: Shutdown does not cut a RETR in flight; it
// closes the session once the upstream is quiet.
func TestShutdownWaitsForQuiet(t *testing.T) {
	e := newEnv(t, proxy.TLSNone, func(o *testOptions) { o.ShutdownQuiet = 200 * time.Millisecond })
	e.up.add(bigMessage(t, 1<<20))
	c := e.login("ann@example.com", "good")
	c.send("RETR 1")
	c.line()
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		done <- e.srv.Shutdown(ctx)
	}()
	time.Sleep(100 * time.Millisecond) // the client reads slowly at first
	want := e.up.msgs[0]
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c.br, got); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("RETR during shutdown: %v, equal %v", err, bytes.Equal(got, want))
	}
	c.expect(".")
	c.waitClosed()
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}
