package main

import (
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"mailgate/config"
	"mailgate/internal/fakeidp"
	"mailgate/internal/proxytest"
	"mailgate/proxy"
	"mailgate/proxy/admin"
	"mailgate/proxy/web"
)

// webConfig is daemonConfig with a portal on webAddr (implicit TLS with the
// certificate in dir) whose identity provider is at issuer.
func webConfig(dir, imapAddr, smtpAddr, webAddr, issuer, admins string) string {
	return daemonConfig(imapAddr, smtpAddr) + fmt.Sprintf(`  client_secret: s
  issuer: %q
tls: {cert_file: %q, key_file: %q}
web:
  listen: [{address: %q, tls: implicit}]
  public_url: "https://localhost:%s"
  admins: [%s]
`, issuer, filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), webAddr, port(webAddr), admins)
}

func port(addr string) string { return addr[strings.LastIndexByte(addr, ':')+1:] }

// webDaemon runs "serve" in-process on a config with a portal.
type webDaemon struct {
	t      *testing.T
	file   string
	web    string // the portal's address
	client *http.Client
	logs   *proxytest.LogBuffer
}

func startWebDaemon(t *testing.T, issuer string) *webDaemon {
	t.Helper()
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "state"), 0o700); err != nil {
		t.Fatal(err)
	}
	_, ctls := writeCert(t, dir)
	ports := freePorts(t, 3)
	w := &webDaemon{t: t, file: filepath.Join(dir, "mailgate.yaml"), web: ports[0], logs: &proxytest.LogBuffer{}}
	w.client = &http.Client{
		Transport: &http.Transport{TLSClientConfig: ctls},
		// The portal's redirects are what the tests look at.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       30 * time.Second,
	}
	imapAddr, smtpAddr := ports[1], ports[2]
	w.write(webConfig(dir, imapAddr, smtpAddr, w.web, issuer, "it@example.com"))
	ctx, cancel := context.WithCancel(context.Background())
	exit := make(chan int, 1)
	go func() { exit <- run(ctx, []string{"serve", "-config", w.file}, nil, w.logs, w.logs) }()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-exit:
			if code != 0 {
				t.Errorf("exit code %d:\n%s", code, w.logs)
			}
		case <-time.After(time.Minute):
			t.Error("daemon did not stop")
		}
	})
	eventually(t, "portal listening", func() bool { return w.count(`msg=listening proto=web`) == 1 })
	return w
}

func (w *webDaemon) write(cfg string) {
	w.t.Helper()
	if err := os.WriteFile(w.file, []byte(cfg), 0o600); err != nil {
		w.t.Fatal(err)
	}
}

func (w *webDaemon) count(sub string) int { return strings.Count(w.logs.String(), sub) }

// get fetches path from the portal, as a browser at its public URL would.
func (w *webDaemon) do(method, path string) (*http.Response, string) {
	w.t.Helper()
	req, err := http.NewRequest(method, "https://"+w.web+path, nil)
	if err != nil {
		w.t.Fatal(err)
	}
	req.Host = "localhost:" + port(w.web)
	req.Header.Set("Sec-Fetch-Site", "same-origin") // a form of the portal's own page
	resp, err := w.client.Do(req)
	if err != nil {
		w.t.Fatalf("%s %s: %v\n%s", method, path, err, w.logs)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// TestWebPortal starts the daemon with a web listener whose identity
// provider cannot be reached: it starts anyway (discovery waits for the
// first sign-in), the signed-out page says "Sign in" over implicit TLS, a
// sign-in fails with a page instead of hanging, and a reload that changes
// web.admins replaces the portal's front end and nothing else.
func TestWebPortal(t *testing.T) {
	w := startWebDaemon(t, "http://127.0.0.1:1")
	resp, body := w.do("GET", "/")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "Sign in") {
		t.Fatalf("GET /: %s\n%s", resp.Status, body)
	}
	if resp.TLS == nil {
		t.Error("GET / was not over TLS")
	}
	if resp, _ := w.do("POST", "/auth/signin"); resp.StatusCode < 400 {
		t.Errorf("sign-in with the provider down: %s, want an error page", resp.Status)
	}

	cfg, err := os.ReadFile(w.file)
	if err != nil {
		t.Fatal(err)
	}
	w.write(strings.Replace(string(cfg), "admins: [it@example.com]", "admins: [it@example.com, boss@example.com]", 1))
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	eventually(t, "config reloaded", func() bool { return w.count("config reloaded") == 1 })
	if n := w.count(`msg=listening proto=web`); n != 2 {
		t.Errorf("%d web listeners opened, want 2 (one replaced at the reload):\n%s", n, w.logs)
	}
	if n := w.count(`listener closed; its sessions continue" proto=web`); n != 1 {
		t.Errorf("%d web listeners closed, want 1:\n%s", n, w.logs)
	}
	if n := w.count("listener closed"); n != 1 {
		t.Errorf("imap or smtp replaced by a change to web.admins:\n%s", w.logs)
	}
	if resp, body := w.do("GET", "/"); !strings.Contains(body, "Sign in") {
		t.Errorf("GET / after the reload: %s\n%s", resp.Status, body)
	}
}

// TestWebSignInRedirect: the portal sends the browser to the provider's
// authorization endpoint, found through oauth.issuer, with the redirect URI
// web.public_url + "/auth/callback", PKCE and the delegated scopes.
func TestWebSignInRedirect(t *testing.T) {
	idp, err := fakeidp.NewServer(&fakeidp.Options{ClientSecret: "s"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(idp.Close)
	w := startWebDaemon(t, idp.Issuer())
	resp, body := w.do("POST", "/auth/signin")
	// A redirect, or a page that goes on by itself (a form may not lead to
	// another origin under the portal's form-action 'self').
	next := resp.Header.Get("Location")
	if m := regexp.MustCompile(`url=([^"]+)"`).FindStringSubmatch(body); next == "" && m != nil {
		next = html.UnescapeString(m[1])
	}
	loc, err := url.Parse(next)
	if next == "" || err != nil {
		t.Fatalf("POST /auth/signin: %s, Location %q\n%s\n%s", resp.Status, resp.Header.Get("Location"), body, w.logs)
	}
	q := loc.Query()
	if !strings.HasPrefix(loc.String(), idp.URL()) || q.Get("client_id") != "test" ||
		q.Get("redirect_uri") != "https://localhost:"+port(w.web)+"/auth/callback" ||
		q.Get("code_challenge_method") != "S256" || q.Get("state") == "" || q.Get("nonce") == "" {
		t.Errorf("authorization request %s", loc)
	}
	scopes := strings.Fields(q.Get("scope"))
	for _, s := range []string{"openid", "email", "profile", "offline_access"} {
		if !slices.Contains(scopes, s) {
			t.Errorf("scope %q lacks %s", q.Get("scope"), s)
		}
	}
}

func TestPortalScopes(t *testing.T) {
	ms := []string{"https://outlook.office.com/IMAP.AccessAsUser.All", "https://outlook.office.com/SMTP.Send",
		"offline_access", "openid", "email", "profile"}
	tests := []struct {
		o    config.OAuth
		want []string
	}{
		{config.OAuth{Provider: config.ProviderMicrosoft, Flow: config.FlowDelegated, Scopes: ms}, ms},
		{config.OAuth{Provider: config.ProviderMicrosoft, Flow: config.FlowApp, Scopes: []string{"x/.default"}},
			[]string{"openid", "email", "profile"}},
		{config.OAuth{Provider: config.ProviderGoogle, Flow: config.FlowDelegated,
			Scopes: []string{"https://mail.google.com/", "openid", "email"}},
			[]string{"https://mail.google.com/", "openid", "email", "profile"}},
		{config.OAuth{Provider: config.ProviderGeneric, Flow: config.FlowDelegated},
			[]string{"openid", "email", "profile", "offline_access"}},
	}
	for _, tt := range tests {
		if got := portalScopes(tt.o); !slices.Equal(got, tt.want) {
			t.Errorf("%s %s: %q, want %q", tt.o.Provider, tt.o.Flow, got, tt.want)
		}
	}
}

func TestAllowMailbox(t *testing.T) {
	domains := []string{"example.com"}
	allow := allowMailbox(func() []string { return domains })
	if err := allow("a@example.com"); err != nil {
		t.Errorf("a@example.com: %v", err)
	}
	if err := allow("a@other.com"); !errors.Is(err, web.ErrMailboxRefused) {
		t.Errorf("a@other.com: %v, want ErrMailboxRefused", err)
	}
	domains = nil // a reload emptied accounts.domains
	if err := allow("a@other.com"); err != nil {
		t.Errorf("a@other.com with any domain allowed: %v", err)
	}
}

// TestWebFrontKey: the web section, and the client settings the portal
// shows, replace the web front end at a reload; upstream changes do not.
func TestWebFrontKey(t *testing.T) {
	base := func() *config.Config {
		return &config.Config{Hostname: "mail.example.com",
			IMAP: config.Proto{Listen: []config.Listener{{Address: ":993", TLS: config.TLSImplicit}}},
			Web:  config.Web{PublicURL: "https://mail.example.com", Admins: []string{"it@example.com"}}}
	}
	l := config.Listener{Address: ":443", TLS: config.TLSImplicit}
	key := frontKey(base(), protoWeb, l)
	for name, change := range map[string]func(*config.Config){
		"admins":      func(c *config.Config) { c.Web.Admins = append(c.Web.Admins, "boss@example.com") },
		"admin_role":  func(c *config.Config) { c.Web.AdminRole = "mailgate.admin" },
		"require_mfa": func(c *config.Config) { c.Web.RequireMFA = true },
		"public_url":  func(c *config.Config) { c.Web.PublicURL = "https://portal.example.com" },
		"imap port":   func(c *config.Config) { c.IMAP.Listen[0].Address = ":994" },
		"hostname":    func(c *config.Config) { c.Hostname = "imap.example.com" },
	} {
		c := base()
		change(c)
		if frontKey(c, protoWeb, l) == key {
			t.Errorf("a change of %s keeps the web front end", name)
		}
	}
	c := base()
	c.IMAP.Upstream.Address = "imap.example.net:993"
	if frontKey(c, protoWeb, l) != key {
		t.Error("an imap upstream change replaces the web front end")
	}
	if frontKey(base(), "imap", c.IMAP.Listen[0]) != frontKey(func() *config.Config {
		c := base()
		c.Web.Admins = nil
		return c
	}(), "imap", c.IMAP.Listen[0]) {
		t.Error("a change of web.admins replaces an imap front end")
	}
}

// TestBoundSettings: the portal shows the ports the listeners bound, in
// config order, so a port 0 in the config shows as the real one.
func TestBoundSettings(t *testing.T) {
	tcp := func(port int) net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port} }
	got := boundSettings("mail.example.com", []boundListener{
		{proto: "imap", mode: proxy.TLSImplicit, addr: tcp(41993)},
		{proto: "imap", mode: proxy.TLSStartTLS, addr: tcp(41143)},
		{proto: "smtp", mode: proxy.TLSStartTLS, addr: tcp(41587)},
		{proto: protoWeb, mode: proxy.TLSImplicit, addr: tcp(41443)},
	})
	want := admin.Settings{Hostname: "mail.example.com",
		IMAP: []admin.Endpoint{{Port: 41993, Security: "SSL/TLS"}, {Port: 41143, Security: "STARTTLS"}},
		SMTP: []admin.Endpoint{{Port: 41587, Security: "STARTTLS"}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("settings %+v, want %+v", got, want)
	}
	cfg := &config.Config{Hostname: "mail.example.com",
		IMAP: config.Proto{Listen: []config.Listener{{Address: ":41993", TLS: config.TLSImplicit}, {Address: ":41143", TLS: config.TLSStartTLS}}},
		SMTP: config.SMTP{Proto: config.Proto{Listen: []config.Listener{{Address: ":41587", TLS: config.TLSStartTLS}}}}}
	if c := clientSettings(cfg); !reflect.DeepEqual(c, want) {
		t.Errorf("clientSettings %+v, want the same as bound: %+v", c, want)
	}
}
