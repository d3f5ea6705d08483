package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"mailgate/internal/devup"
	"mailgate/internal/fakeidp"
	"mailgate/internal/mailstack"
	"mailgate/proxy/oauth"
	"mailgate/store"
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
	pass     string      // benchUser's app password
	clientTL *tls.Config // what clients trust: the stack's CA
	certFile string
	keyFile  string
	children int // children started, for their store copies
}

// setup starts the IdP and the Dovecot/Postfix stack, provisions the store
// with one linked mailbox and fills its INBOX.
func setup(cfg *config) (*env, error) {
	raiseFileLimit()
	dir, err := os.MkdirTemp("", "mailgate-bench-")
	if err != nil {
		return nil, err
	}
	e := &env{cfg: cfg, dir: dir}
	e.idp, err = fakeidp.NewServer(&fakeidp.Options{ClientID: benchClientID})
	if err != nil {
		return nil, err
	}
	e.stack, err = mailstack.Start(&mailstack.Options{IntrospectionURL: e.idp.IntrospectURL(),
		Dir: filepath.Join(dir, "stack"), MaxSessions: cfg.dovecotSessions + 200})
	if err != nil {
		return nil, err
	}
	e.clientTL = &tls.Config{RootCAs: e.stack.CertPool, ServerName: "localhost"}
	e.certFile = filepath.Join(dir, "stack", "tls", "cert.pem")
	e.keyFile = filepath.Join(dir, "stack", "tls", "key.pem")
	if err := e.provision(); err != nil {
		return nil, err
	}
	return e, e.fill()
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

// provision creates the app password and links the mailbox.
func (e *env) provision() error {
	st, err := store.Open(&store.Options{Path: filepath.Join(e.dir, "store", "mailgate.db"),
		KeyFile: filepath.Join(e.dir, "store", "key"), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	defer st.Close()
	if _, e.pass, err = st.CreatePassword(benchUser, "bench", nil, time.Time{}); err != nil {
		return err
	}
	return st.SaveRefreshToken(string(oauth.Microsoft), benchUser, e.idp.IssueRefreshToken(benchUser))
}

// childConfig is the config of a mailgate child in front of imapUp. Each
// child gets a copy of the provisioned store: bbolt lets one process open a
// database, and two children run at once in the latency row.
func (e *env) childConfig(imapUp, smtpUp string, warm int) *childConfig {
	e.children++
	dir := filepath.Join(e.dir, fmt.Sprintf("store-%d", e.children))
	if err := e.copyStore(dir); err != nil {
		logf("copy store: %v", err) // the child then fails with the reason
	}
	return &childConfig{StoreDir: dir, TokenURL: e.idp.TokenURL(),
		CertFile: e.certFile, KeyFile: e.keyFile, CAFile: e.stack.CAFile, ServerName: "localhost",
		IMAPUpstream: imapUp, SMTPUpstream: smtpUp, RelayTo: imapUp, WarmUpstreams: warm,
		NoTLSResume: e.cfg.noTLSResume}
}

// direct logs in to the upstream itself with a fresh access token.
func (e *env) direct() login {
	return login{user: benchUser, token: e.idp.MintAccessToken(benchUser)}
}

func (e *env) viaMailgate() login { return login{user: benchUser, pass: e.pass} }

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

// startDevup runs the go-imap upstream (internal/devup, TLS) in a process of
// its own for the idle row: with 10,000 sessions, this process (clients),
// mailgate and the upstream each need up to 20,000 sockets. The devup
// process accepts any token; mailgate still gets real ones from the IdP.
func (e *env) startDevup() (string, func(), error) {
	exe, err := os.Executable()
	if err != nil {
		return "", nil, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), devupEnv+"="+e.certFile+","+e.keyFile)
	cmd.Stderr = os.Stderr
	in, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop := func() { in.Close(); cmd.Wait() }
	addr, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		stop()
		return "", nil, fmt.Errorf("devup child: %w", err)
	}
	return strings.TrimSpace(addr), stop, nil
}

// devupEnv marks the process as the devup child; its value is
// "certfile,keyfile".
const devupEnv = "MAILGATE_BENCH_DEVUP"

// runDevup serves the in-process upstream until stdin closes.
func runDevup(files string) error {
	certFile, keyFile, _ := strings.Cut(files, ",")
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return err
	}
	srv := devup.NewIMAP(&devup.IMAPOptions{
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}},
		Logger:    slog.New(slog.DiscardHandler),
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go srv.Serve(ln)
	fmt.Println(ln.Addr().String())
	io.Copy(io.Discard, os.Stdin)
	return srv.Close()
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

// copyStore copies the provisioned store to dir and links the mailbox
// there anew: the IdP rotates refresh tokens, so a copy of one another
// child has used is dead.
func (e *env) copyStore(dir string) error {
	if err := copyDir(filepath.Join(e.dir, "store"), dir); err != nil {
		return err
	}
	st, err := store.Open(&store.Options{Path: filepath.Join(dir, "mailgate.db"),
		KeyFile: filepath.Join(dir, "key"), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return err
	}
	defer st.Close()
	return st.SaveRefreshToken(string(oauth.Microsoft), benchUser, e.idp.IssueRefreshToken(benchUser))
}

// copyDir copies the regular files of src into a new directory dst.
func copyDir(src, dst string) error {
	if err := os.MkdirAll(dst, 0o700); err != nil {
		return err
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, en := range entries {
		if !en.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, en.Name()))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dst, en.Name()), b, 0o600); err != nil {
			return err
		}
	}
	return nil
}
