package main

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"mailgate/internal/fakeidp"
	"mailgate/internal/mailstack"
)

const (
	benchClientID = "mailgate-bench"
	benchUser     = "bench@localhost"
	sinkUser      = "sink@localhost" // SMTP recipient, so INBOX stays as filled
)

// env is everything the rows run against.
type env struct {
	cfg      *config
	dir      string
	idp      *fakeidp.Server
	stack    *mailstack.Stack
	bin      string      // the mailgate binary
	clientTL *tls.Config // what clients trust: the stack's CA
	certFile string      // the stack's certificate, also mailgate's
	keyFile  string
	caFile   string // the stack's CA, which signed certFile
	daemons  int    // daemons started, for their directories
}

// setup builds the mailgate binary, starts the IdP and the Dovecot/Postfix
// stack and fills benchUser's INBOX. Each daemon then links the mailbox in
// a store of its own (newDaemon).
func setup(cfg *config) (*env, error) {
	raiseFileLimit()
	dir, err := os.MkdirTemp("", "mailgate-bench-")
	if err != nil {
		return nil, err
	}
	e := &env{cfg: cfg, dir: dir}
	if err := e.start(); err != nil {
		e.close()
		return nil, err
	}
	return e, nil
}

func (e *env) start() error {
	var err error
	if e.bin = e.cfg.bin; e.bin == "" {
		e.bin, err = buildMailgate(e.dir, e.cfg.cpuprofile != "" || e.cfg.heapprofile != "")
	}
	if err != nil {
		return err
	}
	if e.idp, err = fakeidp.NewServer(&fakeidp.Options{ClientID: benchClientID}); err != nil {
		return err
	}
	e.stack, err = mailstack.Start(&mailstack.Options{IntrospectionURL: e.idp.IntrospectURL(),
		Dir: filepath.Join(e.dir, "stack"), MaxSessions: e.cfg.dovecotSessions + 200})
	if err != nil {
		return err
	}
	e.clientTL = &tls.Config{RootCAs: e.stack.CertPool, ServerName: "localhost"}
	e.certFile = filepath.Join(e.dir, "stack", "tls", "cert.pem")
	e.keyFile = filepath.Join(e.dir, "stack", "tls", "key.pem")
	e.caFile = filepath.Join(e.dir, "stack", "tls", "ca.pem")
	return e.fill()
}

func (e *env) close() {
	if e.stack != nil {
		e.stack.Stop()
	}
	if e.idp != nil {
		e.idp.Close()
	}
	os.RemoveAll(e.dir)
}

// direct logs in to the upstream itself with a fresh access token.
func (e *env) direct() login {
	return login{user: benchUser, token: e.idp.MintAccessToken(benchUser)}
}

// fill delivers the mixed-size mailbox over LMTP (the fastest way in).
func (e *env) fill() error {
	nc, err := net.Dial("tcp", e.stack.LMTP)
	if err != nil {
		return err
	}
	c := gosmtp.NewClientLMTP(nc)
	defer c.Close()
	if err := c.Hello("localhost"); err != nil {
		return err
	}
	t0 := time.Now()
	for i, size := range mixedSizes(e.cfg.fetchMB << 20) {
		if err := c.SendMail("fill@localhost", []string{benchUser}, bytes.NewReader(message(i, size))); err != nil {
			return fmt.Errorf("lmtp: %w", err)
		}
	}
	logf("filled INBOX with %d MiB in %v", e.cfg.fetchMB, time.Since(t0).Round(time.Millisecond))
	return nil
}

// mixedSizes cycles through sizes from a short reply to a 4 MiB attachment
// until total is reached.
func mixedSizes(total int) []int {
	cycle := []int{2 << 10, 8 << 10, 32 << 10, 128 << 10, 512 << 10, 1 << 20, 4 << 20}
	var out []int
	for sum, i := 0, 0; sum < total; i++ {
		s := min(cycle[i%len(cycle)], total-sum)
		out = append(out, max(s, 512))
		sum += s
	}
	return out
}

// message is an RFC 5322 message of about size bytes of text lines.
func message(i, size int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: fill@localhost\r\nTo: %s\r\nSubject: bench %d\r\nMessage-ID: <%d.%d@bench>\r\n\r\n",
		benchUser, i, i, time.Now().UnixNano())
	line := []byte("The quick brown fox jumps over the lazy dog; 0123456789 ABCDEFGHIJKLMNOPQRS\r\n")
	for b.Len() < size {
		b.Write(line)
	}
	return b.Bytes()
}

// maxSessions is how many relayed sessions fit in mailgate's file limit:
// two sockets each, and some room for listeners, the store and logs.
func maxSessions() int {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 1000
	}
	return int(lim.Cur-200) / 2
}

// raiseFileLimit lifts RLIMIT_NOFILE: 10,000 relayed sessions are 20,000
// sockets in mailgate and as many in this process.
func raiseFileLimit() {
	lim := syscall.Rlimit{Cur: 1 << 16, Max: 1 << 16}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		var cur syscall.Rlimit
		syscall.Getrlimit(syscall.RLIMIT_NOFILE, &cur)
		cur.Cur = cur.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &cur)
	}
}

var logOut io.Writer = os.Stderr

func logf(format string, args ...any) {
	fmt.Fprintf(logOut, "mailgate-bench: "+format+"\n", args...)
}
