package imap

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

// replyLine is what the proxy may send before login: untagged, a
// continuation, or a tagged OK/NO/BAD.
var replyLine = regexp.MustCompile(`^(\* (OK|BAD|BYE|CAPABILITY|ID) .*|\+ .*|[^ ]+ (OK|NO|BAD) .*)\r$`)

// FuzzPreAuth plays arbitrary client bytes against the whole pre-auth
// conversation on a secure listener: command reader, parser, LOGIN, the
// AUTHENTICATE PLAIN and LOGIN decoding (base64, SASL fields, cancel) and
// the failure limit. It must never panic or hang, and every reply is a
// well-formed line.
func FuzzPreAuth(f *testing.F) {
	for _, s := range []string{
		"a LOGIN ann wrong\r\n",
		"a AUTHENTICATE PLAIN " + b64("\x00ann\x00wrong") + "\r\n",
		"a AUTHENTICATE PLAIN " + b64("ann\x00wrong") + "\r\n",
		"a AUTHENTICATE PLAIN " + b64("\x00ann\x00wrong\x00x") + "\r\n",
		"a AUTHENTICATE PLAIN\r\n" + b64("\x00ann\x00wrong") + "\r\n",
		"a AUTHENTICATE PLAIN\r\n*\r\n",
		"a AUTHENTICATE LOGIN\r\n" + b64("ann") + "\r\n" + b64("wrong") + "\r\n",
		"a AUTHENTICATE LOGIN " + b64("ann") + "\r\n=\r\n",
		"a AUTHENTICATE PLAIN !!\r\n",
		"a LOGIN {3}\r\nann {5+}\r\nwrong\r\n",
		"a ID (\"name\" \"x\")\r\nb CAPABILITY\r\nc LOGOUT\r\n",
		"a LOGIN {9223372036854775808}\r\n",
	} {
		f.Add([]byte(s))
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	defer ln.Close()
	f.Fuzz(func(t *testing.T, in []byte) {
		s := New(&Options{Gate: proxy.NewGate(&proxy.GateOptions{Authenticator: proxytest.RefuseAll{}, Logger: slog.New(slog.DiscardHandler)}), Logger: slog.New(slog.DiscardHandler),
			MaxLine: 256, MaxLiteral: 64, PreAuthTimeout: 10 * time.Second})
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
