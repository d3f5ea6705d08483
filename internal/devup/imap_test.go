package devup

import (
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"

	"mailgate/proxy"
)

// startIMAPUpstream serves a plaintext devup IMAP server that accepts the
// token "good" only.
func startIMAPUpstream(t *testing.T) (*IMAPServer, string) {
	t.Helper()
	srv := NewIMAP(&IMAPOptions{Verify: func(user, token string) error {
		if token != "good" {
			return errors.New("bad token")
		}
		return nil
	}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return srv, ln.Addr().String()
}

func dialIMAPUpstream(t *testing.T, addr string) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestIMAPUpstreamOAuthOnly(t *testing.T) {
	srv, addr := startIMAPUpstream(t)
	if err := srv.Deliver("Ann@Example.com", strings.NewReader("Subject: hi\r\n\r\nhello\r\n")); err != nil {
		t.Fatal(err)
	}
	c := dialIMAPUpstream(t, addr)
	if err := c.Login("ann@example.com", "good").Wait(); err == nil {
		t.Fatal("LOGIN accepted, want refused")
	}
	if err := c.Authenticate(proxy.NewXOAUTH2Client("ann@example.com", "bad")); err == nil {
		t.Fatal("bad token accepted")
	}
	if err := c.Authenticate(proxy.NewXOAUTH2Client("ann@example.com", "good")); err != nil {
		t.Fatalf("XOAUTH2: %v", err)
	}
	st, err := c.Status("INBOX", &imap.StatusOptions{NumMessages: true}).Wait()
	if err != nil || *st.NumMessages != 1 {
		t.Fatalf("STATUS = %+v, %v; want 1 message", st, err)
	}
}

func TestIMAPUpstreamOAuthBearer(t *testing.T) {
	_, addr := startIMAPUpstream(t)
	c := dialIMAPUpstream(t, addr)
	err := c.Authenticate(sasl.NewOAuthBearerClient(&sasl.OAuthBearerOptions{Username: "b@example.com", Token: "good"}))
	if err != nil {
		t.Fatalf("OAUTHBEARER: %v", err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatalf("SELECT after OAUTHBEARER: %v", err)
	}
}

func TestIMAPUpstreamDeliverError(t *testing.T) {
	srv, _ := startIMAPUpstream(t)
	if err := srv.Deliver("a@b", imapErrReader{}); err == nil {
		t.Fatal("Deliver of a failing reader succeeded")
	}
}

type imapErrReader struct{}

func (imapErrReader) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }

// TestIMAPUpstreamIdleReportsPending: a message delivered after SELECT and
// before IDLE is reported as soon as IDLE starts. go-imap's tracker alone
// reports it only with the next change (the flaky IDLE test's cause).
func TestIMAPUpstreamIdleReportsPending(t *testing.T) {
	srv, addr := startIMAPUpstream(t)
	if err := srv.Deliver("ann@example.com", strings.NewReader("Subject: one\r\n\r\n1\r\n")); err != nil {
		t.Fatal(err)
	}
	exists := make(chan uint32, 4)
	c, err := imapclient.DialInsecure(addr, &imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				exists <- *d.NumMessages
			}
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Authenticate(proxy.NewXOAUTH2Client("ann@example.com", "good")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Deliver("ann@example.com", strings.NewReader("Subject: two\r\n\r\n2\r\n")); err != nil {
		t.Fatal(err)
	}
	idle, err := c.Idle()
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	select {
	case n := <-exists:
		if n != 2 {
			t.Fatalf("EXISTS %d, want 2", n)
		}
	case <-time.After(3 * time.Second): // below idleRecheck: only the poll on entry can pass
		t.Fatal("pending message not reported when IDLE started")
	}
}
