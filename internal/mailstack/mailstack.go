// Package mailstack starts a real upstream mail server for tests and
// benchmarks: Debian's Dovecot (IMAP, POP3, submission, LMTP) and Postfix
// on loopback, accepting only OAuth2 bearer tokens (SASL XOAUTH2 and
// OAUTHBEARER) that Dovecot checks against an RFC 7662 introspection
// endpoint, as Exchange Online and Gmail do. Mail submitted to either
// submission endpoint goes through Postfix into Dovecot LMTP and can be read
// back over IMAP or POP3.
//
// Everything runs from files under Options.Dir; nothing in /etc is used or
// changed. Starting a stack needs root (Postfix insists on it).
package mailstack

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Packages are the Debian packages Start needs; .ci/deps installs them.
const Packages = "dovecot-core dovecot-imapd dovecot-pop3d dovecot-submissiond dovecot-lmtpd postfix"

// ErrInvalidOptions means Options lacks a required field or Host is not an
// IPv4 address.
var ErrInvalidOptions = errors.New("mailstack: IntrospectionURL and Dir are required, Host must be IPv4")

// ErrUnavailable means the Dovecot or Postfix binaries are not installed.
var ErrUnavailable = errors.New("mailstack: dovecot/postfix not installed (apt-get install " + Packages + ")")

// Options configures a stack.
type Options struct {
	// IntrospectionURL is the OAuth2 token introspection endpoint (RFC 7662)
	// Dovecot POSTs token=... to. Required.
	IntrospectionURL string
	// Dir is the working directory for configs, sockets, queues, logs and
	// mail. Required; it and its parents are made searchable by the
	// unprivileged dovecot, dovenull, postfix and nobody users.
	Dir string
	// Host is the IPv4 listen address; default 127.0.0.2. Dovecot treats a
	// client whose address equals the server's as secure, so listening on
	// 127.0.0.2 and dialling from 127.0.0.1 behaves like a remote client.
	Host string
	// MaxSessions, if set, lets Dovecot hold that many IMAP sessions, all
	// of one user from one address (a proxy): benchmarks with many idle
	// sessions. Zero keeps Dovecot's defaults (10 per user and address).
	MaxSessions int
	// Logf, if set, receives progress messages.
	Logf func(format string, args ...any)
}

// Stack is a running Dovecot + Postfix pair.
type Stack struct {
	IMAPS             string // Dovecot IMAP, implicit TLS (993-like), host:port
	IMAP              string // Dovecot IMAP, STARTTLS (143-like)
	Submission        string // Dovecot submission, STARTTLS (587-like)
	SubmissionS       string // Dovecot submission, implicit TLS (465-like)
	PostfixSubmission string // Postfix smtpd with Dovecot SASL (XOAUTH2), STARTTLS
	LMTP              string // Dovecot LMTP, no auth, for direct delivery
	CAFile            string // PEM of the CA that signed the stack's certificate
	CertPool          *x509.CertPool
	// Maildir returns the Maildir that mail for the address user lands in
	// (Dovecot lower-cases the user name). New mail appears in its new/.
	Maildir func(user string) string
	// Dir is the working directory; dovecot.log and postfix.log are here.
	Dir string

	pop3, pop3s string // see POP3 and POP3S
	logf        func(format string, args ...any)
	dovecot     *daemon
	postfix     *daemon
	stopOnce    sync.Once
	stopErr     error
}

// POP3S returns the address of Dovecot's POP3 with implicit TLS (995-like),
// host:port.
func (s *Stack) POP3S() string { return s.pop3s }

// POP3 returns the address of Dovecot's POP3 with STLS (110-like, RFC 2595),
// host:port.
func (s *Stack) POP3() string { return s.pop3 }

// dovecotServices are the Dovecot protocol binaries the config runs; each
// comes in its own package (dovecot-imapd, dovecot-pop3d, ...).
var dovecotServices = []string{"imap", "pop3", "submission", "lmtp"}

// Available reports whether the binaries Start runs are installed.
func Available() error {
	for _, bin := range []string{"dovecot", "postfix"} {
		if _, err := lookPath(bin); err != nil {
			return ErrUnavailable
		}
	}
	for _, svc := range dovecotServices {
		if _, err := os.Stat(filepath.Join("/usr/lib/dovecot", svc)); err != nil {
			return ErrUnavailable
		}
	}
	return nil
}

// isIPv4 accepts "" (the default) and IPv4 literals: the Postfix config is
// rendered for IPv4 only.
func isIPv4(host string) bool {
	ip := net.ParseIP(host)
	return host == "" || ip != nil && ip.To4() != nil
}

// lookPath also searches /usr/sbin, which is not on every PATH.
func lookPath(bin string) (string, error) {
	if p, err := exec.LookPath(bin); err == nil {
		return p, nil
	}
	p := filepath.Join("/usr/sbin", bin)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%s: %w", bin, err)
	}
	return p, nil
}

// Start renders the configs, starts Dovecot and then Postfix, and returns
// once every endpoint answers with its greeting.
func Start(opts *Options) (*Stack, error) {
	if opts == nil || opts.IntrospectionURL == "" || opts.Dir == "" || !isIPv4(opts.Host) {
		return nil, ErrInvalidOptions
	}
	if err := Available(); err != nil {
		return nil, err
	}
	t0 := time.Now()
	l, err := prepare(opts)
	if err != nil {
		return nil, err
	}
	s := newStack(l, opts.Logf)
	if err := s.start(l); err != nil {
		s.Stop()
		return nil, err
	}
	s.logf("mailstack: up in %v (%s): imaps=%s pop3s=%s submission=%s postfix=%s",
		time.Since(t0).Round(time.Millisecond), l.Dir, s.IMAPS, s.pop3s, s.Submission, s.PostfixSubmission)
	return s, nil
}

func newStack(l *layout, logf func(string, ...any)) *Stack {
	addr := func(port int) string { return joinHostPort(l.Host, port) }
	if logf == nil {
		logf = func(string, ...any) {}
	}
	return &Stack{
		IMAPS:             addr(l.Ports.IMAPS),
		IMAP:              addr(l.Ports.IMAP),
		Submission:        addr(l.Ports.Submission),
		SubmissionS:       addr(l.Ports.SubmissionS),
		PostfixSubmission: addr(l.Ports.PostfixSubmission),
		LMTP:              addr(l.Ports.LMTP),
		CAFile:            l.TLS.CA,
		CertPool:          l.TLS.Pool,
		Maildir: func(user string) string {
			return l.path("mail", strings.ToLower(user), "Maildir")
		},
		Dir:   l.Dir,
		pop3:  addr(l.Ports.POP3),
		pop3s: addr(l.Ports.POP3S),
		logf:  logf,
	}
}

// Stop stops Postfix and then Dovecot and waits until every process of the
// stack has exited. Files under Dir (logs, mail) are kept. Stop is safe to
// call more than once.
func (s *Stack) Stop() error {
	s.stopOnce.Do(func() {
		t0 := time.Now()
		// Postfix first: it talks to Dovecot's LMTP and auth socket.
		s.stopErr = errors.Join(s.postfix.stop(), s.dovecot.stop())
		s.logf("mailstack: stopped in %v", time.Since(t0).Round(time.Millisecond))
	})
	return s.stopErr
}

// PIDs returns the process ids of every running process of the stack (both
// masters and their children), so callers can check that Stop left none.
func (s *Stack) PIDs() []int {
	var pids []int
	for _, d := range []*daemon{s.dovecot, s.postfix} {
		if d != nil {
			pids = append(pids, descendants(d.pid())...)
		}
	}
	return pids
}
