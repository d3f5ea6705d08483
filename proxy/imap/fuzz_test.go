package imap

import (
	"log/slog"
	"net"
	"regexp"
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
		// Accepted through the Front, as Serve does.
		fl, unlisten, _ := s.front.Listener(ln, proxy.TLSNone)
		defer unlisten()
		proxytest.Converse(t, ln.Addr().String(), fl.Accept,
			func(c net.Conn) { s.serveConn(c, proxy.TLSNone) }, in, replyLine)
	})
}
