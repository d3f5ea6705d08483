package pop3

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

// replyLine is what the proxy may send before login: a status line, an
// AUTH continuation, or a line of a CAPA or AUTH listing (capability
// names, the lone ".").
var replyLine = regexp.MustCompile(`^(\+OK .*|-ERR .*|\+ .*|\.|[A-Z][A-Z0-9 -]*)\r$`)

// FuzzPreAuth plays arbitrary client bytes against the whole pre-auth
// conversation on a secure listener: line reader, command dispatch, USER
// and PASS, AUTH PLAIN decoding (base64, SASL fields, "=", cancel) and the
// failure limit. It must never panic or hang, and every reply is a
// well-formed line.
func FuzzPreAuth(f *testing.F) {
	for _, s := range []string{
		"USER ann\r\nPASS wrong\r\n",
		"user ann\r\npass wrong words\r\nQUIT\r\n",
		"PASS x\r\nUSER\r\n\r\n",
		"AUTH PLAIN " + b64("\x00ann\x00wrong") + "\r\n",
		"AUTH PLAIN " + b64("ann\x00wrong") + "\r\n",
		"AUTH PLAIN " + b64("\x00ann\x00wrong\x00x") + "\r\n",
		"AUTH PLAIN\r\n" + b64("\x00ann\x00wrong") + "\r\n",
		"AUTH PLAIN\r\n*\r\nAUTH PLAIN =\r\n",
		"AUTH\r\nAUTH XOAUTH2 abc\r\nAUTH PLAIN !!\r\n",
		"CAPA\r\nSTLS\r\nNOOP\r\nQUIT\r\n",
		"USER a\nPASS b\nUSER a\nPASS b\nUSER a\nPASS b\nUSER a\nPASS b\n",
	} {
		f.Add([]byte(s))
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	defer ln.Close()
	f.Fuzz(func(t *testing.T, in []byte) {
		discard := slog.New(slog.DiscardHandler)
		s := New(&Options{Gate: proxy.NewGate(&proxy.GateOptions{Authenticator: proxytest.RefuseAll{}, Logger: discard}),
			Logger: discard, MaxLine: 256, PreAuthTimeout: 10 * time.Second})
		// TCP rather than net.Pipe: the client half-closes to send EOF.
		client, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		// Accepted through the Front, as Serve does: limits, tracking and
		// the pre-auth deadline apply.
		fl, unlisten, _ := s.front.Listener(ln, proxy.TLSNone)
		defer unlisten()
		server, err := fl.Accept()
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			s.serveConn(server, proxy.TLSNone)
		}()
		go func() {
			client.Write(in)
			// No more input: the proxy sees EOF once it has read it all.
			client.(*net.TCPConn).CloseWrite()
		}()
		br := bufio.NewReader(client)
		for {
			line, err := br.ReadString('\n')
			if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
				break // a reset: the proxy closed with input unread
			}
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if !replyLine.MatchString(line[:len(line)-1]) {
				t.Fatalf("malformed reply %q to %q", line, in)
			}
		}
		<-done
		client.Close()
	})
}
