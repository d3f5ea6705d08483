package web

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"strings"
	"testing"
	"time"

	"mailgate/internal/selfsigned"
	"mailgate/proxy"
)

// serve runs srv.Serve on a fresh 127.0.0.1 listener and returns its
// address and Serve's result.
func serve(t *testing.T, srv *Server, mode proxy.TLSMode) (string, <-chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln, mode) }()
	return ln.Addr().String(), done
}

// get does a GET on one kept-alive connection and reports whether the
// connection was reused.
func get(t *testing.T, c *http.Client, u, cookie string) (status int, body string, reused bool) {
	t.Helper()
	req, _ := http.NewRequest("GET", u, nil)
	if cookie != "" {
		req.Header.Set("Cookie", sessionCookie+"="+cookie)
	}
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
		GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused },
	}))
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), reused
}

func shutdown(t *testing.T, srv *Server, done <-chan error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Errorf("shutdown: %v", err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after Shutdown")
	}
}

// TestServePreAuth: through the shared lifecycle, a connection nobody has
// signed in on is closed at the pre-auth deadline; one that carried a
// session is not.
func TestServePreAuth(t *testing.T) {
	e := newEnv(t, nil)
	srv := e.srv
	srv.front = proxy.NewFront(&proxy.FrontOptions{Proto: "web", Limits: proxy.NewLimits(nil),
		PreAuthTimeout: 300 * time.Millisecond, Logger: srv.log})
	addr, done := serve(t, srv, proxy.TLSNone)
	base := "http://" + addr

	anon := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	if code, body, _ := get(t, anon, base+"/", ""); code != 200 || !strings.Contains(body, ">Sign in</button>") {
		t.Fatalf("signed out over Serve: %d", code)
	}
	id, _ := srv.mem.newSession(e.user("ann@example.com"), false)
	signed := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	if code, body, _ := get(t, signed, base+"/", id); code != 200 || !strings.Contains(body, "ann@example.com") {
		t.Fatalf("signed in over Serve: %d", code)
	}
	if n := srv.front.Conns(); n != 2 {
		t.Fatalf("front tracks %d connections", n)
	}
	time.Sleep(600 * time.Millisecond)
	if _, _, reused := get(t, anon, base+"/", ""); reused {
		t.Error("a connection nobody signed in on outlived the pre-auth deadline")
	}
	if _, _, reused := get(t, signed, base+"/", id); !reused {
		t.Error("a signed-in browser's connection was cut at the pre-auth deadline")
	}
	shutdown(t, srv, done)
}

func TestServeTLS(t *testing.T) {
	cert, err := selfsigned.New(&selfsigned.Options{Hosts: []string{"127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(o *Options) { o.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert.TLS}} })
	addr, done := serve(t, e.srv, proxy.TLSImplicit)
	roots := x509.NewCertPool()
	roots.AddCert(cert.TLS.Leaf)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	if code, body, _ := get(t, c, "https://"+addr+"/", ""); code != 200 || !strings.Contains(body, "Sign in") {
		t.Fatalf("over implicit TLS: %d", code)
	}

	// Close stops accepting; the open connection still serves.
	if err := e.srv.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve after Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after Close")
	}
	if code, _, reused := get(t, c, "https://"+addr+"/", ""); code != 200 || !reused {
		t.Fatalf("a live connection after Close: %d reused %v", code, reused)
	}
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Error("still accepting after Close")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestServeModes(t *testing.T) {
	e := newEnv(t, nil)
	for _, mode := range []proxy.TLSMode{proxy.TLSStartTLS, proxy.TLSImplicit, "bogus"} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		if err := e.srv.Serve(ln, mode); err == nil {
			t.Errorf("mode %q served (no TLS config for implicit)", mode)
		}
	}
}
