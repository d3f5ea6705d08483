package imap

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"mailgate/internal/proxytest"
	"mailgate/proxy"
)

// Transcripts in testdata/imap/*.txt are replayed against the proxy in
// front of the devup upstream. Each line is one step:
//
//	# text              a comment
//	@mode M             listener: implicit (default), starttls or none
//	@upstream P         refuse-first, refuse-always or down
//	@tokens P           unavailable or relink: Token fails that way
//	@deliver MAILBOX    deliver a small test message before connecting
//	@auth-calls N       at the end: the Authenticator was called N times
//	@invalidations N    at the end: Tokens.Invalidate was called N times
//	C: text             the client sends text CRLF
//	P: text             the client sends text with Go escapes (\r\n), as one write
//	S: text             the proxy sends exactly this line
//	S~ regexp           the proxy sends a line matching regexp (anchored)
//	S> regexp           untagged lines ("* ...") and then a line matching regexp
//	! starttls          the client starts TLS
//	! closed            the proxy closes the connection
//	! connect           a new connection (the old one is closed)
func TestConversations(t *testing.T) {
	files, err := filepath.Glob("../../testdata/imap/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no transcripts: %v", err)
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".txt"), func(t *testing.T) {
			runTranscript(t, f)
		})
	}
}

type step struct {
	line int
	kind string // "C:", "P:", "S:", "S~", "!"
	text string
}

type transcript struct {
	mode                      proxy.TLSMode
	upstream, tokens, deliver string
	authCalls, invalidations  int // -1: not checked
	steps                     []step
}

func parseTranscript(t *testing.T, path string) *transcript {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	tr := &transcript{mode: proxy.TLSImplicit, authCalls: -1, invalidations: -1}
	for i, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if key, val, ok := strings.Cut(strings.TrimPrefix(line, "@"), " "); ok && line[0] == '@' {
			tr.header(t, i+1, key, val)
			continue
		}
		kind, text, ok := strings.Cut(line, " ")
		if !ok || !strings.Contains("C: P: S: S~ S> !", kind) {
			t.Fatalf("%s:%d: bad line %q", path, i+1, line)
		}
		tr.steps = append(tr.steps, step{line: i + 1, kind: kind, text: text})
	}
	return tr
}

func (tr *transcript) header(t *testing.T, line int, key, val string) {
	var err error
	switch key {
	case "mode":
		tr.mode, err = proxy.ParseTLSMode(val)
	case "upstream":
		tr.upstream = val
	case "tokens":
		tr.tokens = val
	case "deliver":
		tr.deliver = val
	case "auth-calls":
		tr.authCalls, err = strconv.Atoi(val)
	case "invalidations":
		tr.invalidations, err = strconv.Atoi(val)
	default:
		err = fmt.Errorf("unknown header %q", key)
	}
	if err != nil {
		t.Fatalf("line %d: %v", line, err)
	}
}

// setup builds the environment a transcript asks for.
func (tr *transcript) setup(t *testing.T) *env {
	dead := ""
	if tr.upstream == "down" {
		ln := proxytest.Listen(t)
		dead = ln.Addr().String()
		ln.Close()
	}
	e := newEnv(t, tr.mode, func(o *testOptions) {
		if dead != "" {
			o.Upstream.Address = dead
		}
	})
	e.verifier.policy = tr.upstream
	switch tr.tokens {
	case "unavailable":
		e.tokens.Err = fmt.Errorf("idp: %w", proxy.ErrUnavailable)
	case "relink":
		e.tokens.Err = fmt.Errorf("invalid_grant: %w", proxy.ErrAuthFailed)
	}
	if tr.deliver != "" {
		e.deliver(tr.deliver, strings.NewReader("From: a@example.com\r\nSubject: test\r\n\r\nhello\r\n"))
	}
	return e
}

func runTranscript(t *testing.T, path string) {
	tr := parseTranscript(t, path)
	e := tr.setup(t)
	p := &player{t: t, e: e, path: path}
	p.connect()
	for _, s := range tr.steps {
		p.step(s)
	}
	if tr.authCalls >= 0 && int(e.auth.calls.Load()) != tr.authCalls {
		t.Errorf("Authenticator called %d times, want %d", e.auth.calls.Load(), tr.authCalls)
	}
	if tr.invalidations >= 0 && len(e.tokens.Invalidations()) != tr.invalidations {
		t.Errorf("Invalidate called %d times, want %d", len(e.tokens.Invalidations()), tr.invalidations)
	}
}

// player is the client side of a transcript.
type player struct {
	t    *testing.T
	e    *env
	path string
	nc   net.Conn
	br   *bufio.Reader
}

func (p *player) connect() {
	if p.nc != nil {
		p.nc.Close()
	}
	p.nc = p.e.dial()
	p.br = bufio.NewReader(p.nc)
}

func (p *player) step(s step) {
	p.t.Helper()
	where := fmt.Sprintf("%s:%d", filepath.Base(p.path), s.line)
	// A guard against hangs only; nothing here asserts on timing.
	p.nc.SetDeadline(time.Now().Add(20 * time.Second))
	switch s.kind {
	case "C:":
		p.write(where, s.text+"\r\n")
	case "P:":
		text, err := strconv.Unquote(`"` + strings.ReplaceAll(s.text, `"`, `\"`) + `"`)
		if err != nil {
			p.t.Fatalf("%s: %v", where, err)
		}
		p.write(where, text)
	case "S:", "S~", "S>":
		p.expect(where, s)
	case "!":
		p.action(where, s.text)
	}
}

func (p *player) write(where, text string) {
	if _, err := io.WriteString(p.nc, text); err != nil {
		p.t.Fatalf("%s: write: %v", where, err)
	}
}

func (p *player) expect(where string, s step) {
	var re *regexp.Regexp
	if s.kind != "S:" {
		re = regexp.MustCompile("^(?:" + s.text + ")$")
	}
	for {
		line, err := p.br.ReadString('\n')
		if err != nil {
			p.t.Fatalf("%s: read: %v (want %q)", where, err, s.text)
		}
		line = strings.TrimSuffix(line, "\r\n")
		switch {
		case s.kind == "S:" && line == s.text, s.kind != "S:" && re.MatchString(line):
			return
		case s.kind == "S>" && strings.HasPrefix(line, "* "):
			continue
		}
		p.t.Fatalf("%s:\n got %q\nwant %s %q", where, line, s.kind, s.text)
	}
}

func (p *player) action(where, what string) {
	switch what {
	case "starttls":
		tc := tls.Client(p.nc, p.e.clientTLS)
		if err := tc.Handshake(); err != nil {
			p.t.Fatalf("%s: handshake: %v", where, err)
		}
		p.nc, p.br = tc, bufio.NewReader(tc)
	case "closed":
		line, err := p.br.ReadString('\n')
		if err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			p.t.Fatalf("%s: connection still open (read %q, %v)", where, line, err)
		}
	case "connect":
		p.connect()
	default:
		p.t.Fatalf("%s: unknown action %q", where, what)
	}
}
