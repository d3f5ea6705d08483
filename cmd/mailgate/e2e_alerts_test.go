package main

import (
	"bufio"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"

	"mailgate/internal/fakeidp"
	"mailgate/internal/mailstack"
	"mailgate/internal/testenv"
	"mailgate/proxy"
)

const (
	alertSecret = "e2e-webhook-secret"
	alertPortal = "https://mail.example.com"
	alertFrom   = "it@example.com"
)

// hookPost is one webhook call the receiver got.
type hookPost struct {
	body      []byte
	signature string
	event     struct{ Mailbox, State, Reason, Time string }
}

// hookReceiver is a webhook receiver on 127.0.0.1; posts arrive in order
// on its channel.
type hookReceiver struct {
	*httptest.Server
	posts  chan hookPost
	secret string // what the signatures are checked with
}

func newHookReceiver(t *testing.T) *hookReceiver {
	r := &hookReceiver{posts: make(chan hookPost, 100), secret: alertSecret}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var p hookPost
		p.body, _ = io.ReadAll(req.Body)
		p.signature = req.Header.Get("X-Mailgate-Signature")
		json.Unmarshal(p.body, &p.event)
		r.posts <- p
	}))
	t.Cleanup(r.Close)
	return r
}

// next waits for the next post and checks its signature, computed here
// from the secret and the raw body, and its time.
func (r *hookReceiver) next(t *testing.T, mailbox, state string) hookPost {
	t.Helper()
	var p hookPost
	select {
	case p = <-r.posts:
	case <-time.After(30 * time.Second):
		t.Fatalf("no webhook call for %s %s within 30s", mailbox, state)
	}
	mac := hmac.New(sha256.New, []byte(r.secret))
	mac.Write(p.body)
	if want := "sha256=" + hex.EncodeToString(mac.Sum(nil)); p.signature != want {
		t.Fatalf("signature %q, want %q for %s", p.signature, want, p.body)
	}
	if p.event.Mailbox != mailbox || p.event.State != state {
		t.Fatalf("webhook call %s, want %s %s", p.body, mailbox, state)
	}
	if _, err := time.Parse(time.RFC3339, p.event.Time); err != nil {
		t.Fatalf("time of %s: %v", p.body, err)
	}
	return p
}

// newAlertsE2E runs the daemon with the alerts section on: the webhook to
// r, the mail from alertFrom, and the portal's address for the mail.
func newAlertsE2E(t *testing.T, r *hookReceiver) *e2e {
	t.Helper()
	if err := mailstack.Available(); err != nil {
		testenv.Missing(t, "%v", err)
	}
	mailgateBinary(t)
	idp, err := fakeidp.NewServer(nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(idp.Close)
	e := &e2e{t: t, idp: idp, stack: mailstack.StartForTest(t, idp.IntrospectURL()), dir: t.TempDir()}
	e.ca, e.tls = writeCert(t, e.dir)
	e.writeConfig()
	secret := filepath.Join(e.dir, "webhook.secret")
	if err := os.WriteFile(secret, []byte(alertSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(e.cfg, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.WriteString("web:\n  public_url: " + alertPortal + "\nalerts:\n  webhook:\n    url: " + r.URL +
		"/hook\n    secret_file: webhook.secret\n  mail:\n    from: " + alertFrom + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	e.start()
	return e
}

// TestE2EAlerts: a daemon whose alerts.mail.from is not linked warns at
// start. A linked mailbox whose grant the provider revokes while several
// clients log in makes one signed webhook call and one mail to its user,
// read back from Dovecot over IMAP; a restarted daemon does not announce it
// again; a re-link makes one more call (linked), an unlink another
// (unlinked).
func TestE2EAlerts(t *testing.T) {
	t.Parallel()
	r := newHookReceiver(t)
	e := newAlertsE2E(t, r)
	e.d.waitLog(t, "alerts.mail.from is not linked", alertFrom) // the start warns
	e.user(alertFrom)
	r.next(t, alertFrom, "linked")
	const user = "gone@example.com"
	pass := e.user(user)
	r.next(t, user, "linked")
	if code := e.imapLoginCode(user, pass); code != "" {
		t.Fatalf("first login: NO [%s]", code)
	}

	e.idp.RevokeRefreshTokens(user)
	e.idp.ExpireAccessTokens() // the cached token is refused: the next login refreshes
	failingLogins(t, e, user, pass, 6)
	p := r.next(t, user, "needs_relink")
	if !strings.Contains(p.event.Reason, "invalid_grant") {
		t.Errorf("reason %q, want the provider's invalid_grant", p.event.Reason)
	}
	checkAlertMail(t, e, user)
	if n := strings.Count(e.d.logText(), `"msg":"link state changed: the mailbox must be linked again"`); n != 1 {
		t.Errorf("%d log lines for the dead link, want 1", n)
	}

	e.restart()
	if strings.Contains(e.d.logText(), "alerts.mail.from is not linked") {
		t.Error("the restarted daemon warns that alerts.mail.from, linked now, is not")
	}
	failingLogins(t, e, user, pass, 3)
	e.mustLink(user)
	r.next(t, user, "linked") // and not a second needs_relink before it
	if code := e.imapLoginCode(user, pass); code != "" {
		t.Fatalf("login after re-linking: NO [%s]", code)
	}
	e.mustCLI("account", "unlink", user)
	r.next(t, user, "unlinked") // and not a second linked before it
	if n := maildirCount(e.stack.Maildir(user)); n != 1 {
		t.Errorf("%d mails to %s, want 1", n, user)
	}

	// A reload with another receiver and a rotated secret: the next change
	// goes there, signed with the new secret, and nothing to the old one.
	r2 := newHookReceiver(t)
	r2.secret = "rotated-" + alertSecret
	if err := os.WriteFile(filepath.Join(e.dir, "webhook.secret"), []byte(r2.secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := os.ReadFile(e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	// And a new alerts.mail.from, not linked: the reload warns as the start does.
	const newFrom = "helpdesk@example.com"
	next := strings.Replace(strings.Replace(string(cfg), r.URL, r2.URL, 1), "from: "+alertFrom, "from: "+newFrom, 1)
	if err := os.WriteFile(e.cfg, []byte(next), 0o600); err != nil {
		t.Fatal(err)
	}
	e.d.cmd.Process.Signal(syscall.SIGHUP)
	e.d.waitLog(t, "alerts: reloaded")
	e.d.waitLog(t, "alerts.mail.from is not linked", newFrom)
	e.mustLink(user)
	r2.next(t, user, "linked")
	select {
	case p := <-r.posts:
		t.Errorf("the old receiver got %s after the reload", p.body)
	default:
	}
}

// failingLogins runs n IMAP logins at once on a dead grant: each is
// refused, as a client's retries would be.
func failingLogins(t *testing.T, e *e2e, user, pass string, n int) {
	t.Helper()
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			c, err := imapclient.DialTLS(e.imaps, &imapclient.Options{TLSConfig: e.tls})
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			if err := c.Login(user, pass).Wait(); err == nil {
				t.Errorf("login of %s on a revoked grant succeeded", user)
			}
		})
	}
	wg.Wait()
}

// checkAlertMail reads the mail to user straight from Dovecot, logged in
// with a token from the provider, and checks what it says.
func checkAlertMail(t *testing.T, e *e2e, user string) {
	t.Helper()
	waitMaildir(t, e.stack.Maildir(user), 1)
	c := dialStack(t, e, user)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	raw := fetchBody(t, c, 1)
	msg, err := mail.ReadMessage(bufio.NewReader(strings.NewReader(string(raw))))
	if err != nil {
		t.Fatal(err)
	}
	from, err := mail.ParseAddress(msg.Header.Get("From"))
	if err != nil || from.Address != alertFrom || msg.Header.Get("To") != user ||
		msg.Header.Get("Content-Type") != "text/plain; charset=utf-8" || msg.Header.Get("Message-Id") == "" {
		t.Fatalf("mail headers: %v %v", msg.Header, err)
	}
	if _, err := msg.Header.Date(); err != nil {
		t.Fatalf("Date: %v", err)
	}
	body, _ := io.ReadAll(msg.Body)
	for _, want := range []string{user, alertPortal, "invalid_grant"} {
		if !strings.Contains(string(body), want) {
			t.Fatalf("mail body lacks %q:\n%s", want, body)
		}
	}
}

// dialStack logs in to Dovecot's IMAPS as mailbox with XOAUTH2 and a token
// minted at the provider, past mailgate.
func dialStack(t *testing.T, e *e2e, mailbox string) *imapclient.Client {
	t.Helper()
	pem, err := os.ReadFile(e.stack.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	c, err := imapclient.DialTLS(e.stack.IMAPS, &imapclient.Options{
		TLSConfig: &tls.Config{RootCAs: roots, ServerName: "localhost"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Authenticate(proxy.NewXOAUTH2Client(mailbox, e.idp.MintAccessToken(mailbox))); err != nil {
		t.Fatalf("XOAUTH2 to Dovecot as %s: %v", mailbox, err)
	}
	return c
}

func maildirCount(dir string) int {
	a, _ := filepath.Glob(filepath.Join(dir, "new", "*"))
	b, _ := filepath.Glob(filepath.Join(dir, "cur", "*"))
	return len(a) + len(b)
}
