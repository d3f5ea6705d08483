package devup

import (
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"mailgate/internal/selfsigned"
	"mailgate/proxy"
)

// smtpTestTLS returns server and client TLS configs for "localhost".
func smtpTestTLS(t *testing.T) (server, client *tls.Config) {
	t.Helper()
	c, err := selfsigned.New(&selfsigned.Options{Hosts: []string{"localhost"}, Lifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{c.TLS}}, &tls.Config{ServerName: "localhost", RootCAs: c.Pool}
}

func smtpTestVerify(user, token string) error {
	if user == "a@example.com" && token == "tok" {
		return nil
	}
	return errors.New("bad token")
}

// startSMTPUpstream serves opts on 127.0.0.1:0 and returns the address.
func startSMTPUpstream(t *testing.T, opts *SMTPOptions) (*SMTPServer, string) {
	t.Helper()
	opts.Verify = smtpTestVerify
	opts.Logger = slog.New(slog.DiscardHandler)
	s := NewSMTP(opts)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; err != nil {
			t.Errorf("Serve = %v", err)
		}
	})
	return s, ln.Addr().String()
}

func TestSMTPUpstreamStartTLSAndXOAUTH2(t *testing.T) {
	srvTLS, cliTLS := smtpTestTLS(t)
	s, addr := startSMTPUpstream(t, &SMTPOptions{TLSConfig: srvTLS, MaxMessageBytes: 4096})
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.SupportsAuth(proxy.XOAUTH2) {
		t.Error("AUTH offered before STARTTLS")
	}
	if err := c.Auth(proxy.NewXOAUTH2Client("a@example.com", "tok")); err == nil {
		t.Fatal("AUTH before STARTTLS succeeded")
	}
	c.Close()

	c, err = smtp.DialStartTLS(addr, cliTLS)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !c.SupportsAuth(proxy.XOAUTH2) || !c.SupportsAuth(sasl.OAuthBearer) || c.SupportsAuth("PLAIN") {
		t.Error("want exactly XOAUTH2 and OAUTHBEARER after STARTTLS")
	}
	if n, ok := c.MaxMessageSize(); !ok || n != 4096 {
		t.Errorf("SIZE = %d, %v; want 4096", n, ok)
	}
	if err := c.Mail("a@example.com", nil); !smtpIsCode(err, 530) {
		t.Errorf("MAIL before AUTH = %v, want 530", err)
	}
	// A refused token: JSON challenge, empty reply, then 535 5.7.8.
	if err := c.Auth(proxy.NewXOAUTH2Client("a@example.com", "bad")); !smtpIsCode(err, 535) {
		t.Fatalf("bad token = %v, want 535", err)
	}
	if err := c.Auth(proxy.NewXOAUTH2Client("a@example.com", "tok")); err != nil {
		t.Fatal(err)
	}
	if err := c.SendMail("a@example.com", []string{"b@example.net"}, strings.NewReader("Subject: s\r\n\r\nhi\r\n")); err != nil {
		t.Fatal(err)
	}
	msgs := s.Messages()
	if len(msgs) != 1 || msgs[0].User != "a@example.com" || string(msgs[0].Data) != "Subject: s\r\n\r\nhi\r\n" {
		t.Fatalf("recorded %+v", msgs)
	}
}

func TestSMTPUpstreamImplicitOAuthBearer(t *testing.T) {
	srvTLS, cliTLS := smtpTestTLS(t)
	_, addr := startSMTPUpstream(t, &SMTPOptions{TLSConfig: srvTLS, Implicit: true})
	c, err := smtp.DialTLS(addr, cliTLS)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	bad := sasl.NewOAuthBearerClient(&sasl.OAuthBearerOptions{Username: "a@example.com", Token: "bad"})
	if err := c.Auth(bad); err == nil {
		t.Fatal("bad OAUTHBEARER token accepted")
	}
	good := sasl.NewOAuthBearerClient(&sasl.OAuthBearerOptions{Username: "a@example.com", Token: "tok"})
	if err := c.Auth(good); err != nil {
		t.Fatal(err)
	}
}

// smtpCollector keeps what the Deliverer gets.
type smtpCollector struct {
	mu   sync.Mutex
	got  map[string]string
	fail bool
}

func (d *smtpCollector) Deliver(mailbox string, r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fail {
		return errors.New("disk full")
	}
	d.got[mailbox] = string(data)
	return nil
}

func TestSMTPUpstreamDeliverAndReject(t *testing.T) {
	d := &smtpCollector{got: make(map[string]string)}
	rejected := &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "User unknown"}
	_, addr := startSMTPUpstream(t, &SMTPOptions{Deliver: d, RejectRcpt: map[string]*smtp.SMTPError{"x@example.net": rejected}})
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Auth(proxy.NewXOAUTH2Client("a@example.com", "tok")); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("a@example.com", nil); err != nil {
		t.Fatal(err)
	}
	var se *smtp.SMTPError
	if err := c.Rcpt("X@example.net", nil); !errors.As(err, &se) || *se != *rejected {
		t.Fatalf("RCPT = %v, want %v", err, rejected)
	}
	msg := "Subject: two\r\n\r\n.dot\r\n"
	if err := c.SendMail("a@example.com", []string{"b@example.net", "c@example.net"}, strings.NewReader(msg)); err != nil {
		t.Fatal(err)
	}
	if d.got["b@example.net"] != msg || d.got["c@example.net"] != msg {
		t.Fatalf("delivered %q", d.got)
	}
	d.mu.Lock()
	d.fail = true
	d.mu.Unlock()
	if err := c.SendMail("a@example.com", []string{"b@example.net"}, strings.NewReader(msg)); !smtpIsCode(err, 451) {
		t.Fatalf("failed delivery = %v, want 451", err)
	}
}

func smtpIsCode(err error, code int) bool {
	var se *smtp.SMTPError
	return errors.As(err, &se) && se.Code == code
}
