package pop3

import (
	"log/slog"
	"net"
	"regexp"
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
		// Accepted through the Front, as Serve does.
		fl, unlisten, _ := s.front.Listener(ln, proxy.TLSNone)
		defer unlisten()
		proxytest.Converse(t, ln.Addr().String(), fl.Accept,
			func(c net.Conn) { s.serveConn(c, proxy.TLSNone) }, in, replyLine)
	})
}
