package smtp

import (
	"bufio"
	"errors"
	"io"
	"log/slog"
	"net"
	"regexp"
	"syscall"
	"testing"
	"time"

	"mailgate/internal/proxytest"
	"mailgate/proxy"
)

// replyLine is a well-formed SMTP reply line (RFC 5321 section 4.2).
var replyLine = regexp.MustCompile(`^[2-5][0-9][0-9]([ -].*)?\r$`)

// FuzzSession plays arbitrary client bytes against a secure listener:
// go-smtp's command reader, AUTH PLAIN and LOGIN decoding (base64, SASL
// fields, cancel, inline and prompted forms), the failure limit and the
// commands before AUTH. It must never panic or hang, and every reply is a
// well-formed line.
func FuzzSession(f *testing.F) {
	for _, s := range []string{
		"EHLO x\r\nAUTH PLAIN " + b64("\x00a@b\x00wrong") + "\r\n",
		"EHLO x\r\nAUTH PLAIN " + b64("a@b\x00wrong") + "\r\n",
		"EHLO x\r\nAUTH PLAIN " + b64("\x00a@b\x00wrong\x00x") + "\r\n",
		"EHLO x\r\nAUTH PLAIN\r\n" + b64("\x00a@b\x00wrong") + "\r\n",
		"EHLO x\r\nAUTH PLAIN\r\n*\r\n",
		"EHLO x\r\nAUTH LOGIN\r\n" + b64("a@b") + "\r\n" + b64("wrong") + "\r\n",
		"EHLO x\r\nAUTH LOGIN " + b64("a@b") + "\r\n=\r\n",
		"EHLO x\r\nAUTH PLAIN !!\r\nMAIL FROM:<a@b>\r\nBDAT 9223372036854775808\r\nQUIT\r\n",
		"HELO x\r\nRSET\r\nNOOP\r\nVRFY a\r\nDATA\r\n",
	} {
		f.Add([]byte(s))
	}
	srv := New(&Options{Gate: proxy.NewGate(&proxy.GateOptions{Authenticator: proxytest.RefuseAll{}, Logger: slog.New(slog.DiscardHandler)}), Tokens: &fakeTokens{}, Logger: slog.New(slog.DiscardHandler),
		Hostname: "mx.test", PreAuthTimeout: 10 * time.Second})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	go srv.Serve(ln, proxy.TLSNone)
	defer srv.Close()
	f.Fuzz(func(t *testing.T, in []byte) {
		nc, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		go func() {
			nc.Write(in)
			nc.(*net.TCPConn).CloseWrite() // EOF once the proxy has read it all
		}()
		nc.SetReadDeadline(time.Now().Add(30 * time.Second))
		br := bufio.NewReader(nc)
		for {
			line, err := br.ReadString('\n')
			if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
				return // a reset: the proxy closed with input unread
			}
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if !replyLine.MatchString(line[:len(line)-1]) {
				t.Fatalf("malformed reply %q to %q", line, in)
			}
		}
	})
}
