package mailstack

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// readyTimeout bounds start-up; a whole stack normally answers in under a
// second.
const readyTimeout = 10 * time.Second

// mailUser is who Dovecot stores mail as: an unprivileged user that exists
// on every Debian system.
const mailUser = "nobody"

// prepare creates the directory tree with permissions the
// unprivileged daemon users can use, picks ports, and writes certs and
// configs.
func prepare(opts *Options) (*layout, error) {
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("mailstack: dir: %w", err)
	}
	l := &layout{Dir: dir, Host: opts.Host, URL: opts.IntrospectionURL, MaxSessions: opts.MaxSessions}
	if l.Host == "" {
		l.Host = "127.0.0.2"
	}
	steps := []func(*layout) error{makeDirs, pickPorts, func(l *layout) (err error) {
		l.TLS, err = writeCerts(l.path("tls"), l.Host)
		return err
	}, render}
	for _, step := range steps {
		if err := step(l); err != nil {
			return nil, fmt.Errorf("mailstack: %w", err)
		}
	}
	return l, nil
}

func makeDirs(l *layout) error {
	if err := os.MkdirAll(l.Dir, 0o755); err != nil {
		return fmt.Errorf("mkdir: %w", err)
	}
	if err := searchable(l.Dir); err != nil {
		return err
	}
	u, err := user.Lookup(mailUser)
	if err != nil {
		return fmt.Errorf("look up mail user: %w", err)
	}
	l.UID, _ = strconv.Atoi(u.Uid)
	l.GID, _ = strconv.Atoi(u.Gid)
	// A stale socket left in base_dir by an earlier run stalls logins for
	// 5 s, so base_dir always starts empty.
	if err := os.RemoveAll(l.path("run")); err != nil {
		return fmt.Errorf("wipe base_dir: %w", err)
	}
	for _, d := range []string{"state", "mail", "tls", "postfix/etc", "postfix/queue"} {
		if err := os.MkdirAll(l.path(d), 0o755); err != nil {
			return fmt.Errorf("mkdir: %w", err)
		}
	}
	if err := os.Chmod(l.path("tls"), 0o700); err != nil {
		return fmt.Errorf("chmod tls dir: %w", err)
	}
	if err := os.Chown(l.path("mail"), l.UID, l.GID); err != nil {
		return fmt.Errorf("chown mail dir: %w", err)
	}
	return nil
}

// searchable makes dir 0755 and every parent that lacks it world-searchable
// (o+x): t.TempDir() creates 0700 directories, and Dovecot's and Postfix's
// unprivileged processes must reach sockets and mail below dir.
func searchable(dir string) error {
	if err := os.Chmod(dir, 0o755); err != nil {
		return fmt.Errorf("chmod %s: %w", dir, err)
	}
	for p := filepath.Dir(dir); p != filepath.Dir(p); p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("stat %s: %w", p, err)
		}
		if fi.Mode().Perm()&0o001 != 0 {
			continue
		}
		if err := os.Chmod(p, fi.Mode().Perm()|0o011); err != nil {
			return fmt.Errorf("chmod %s: %w", p, err)
		}
	}
	return nil
}

// pickPorts asks the kernel for free ports on Host. All listeners are held
// until every port is chosen so one stack never gets the same port twice;
// another process may still grab one before the daemons bind it, which
// start-up then reports as a bind error in the daemon's log.
func pickPorts(l *layout) error {
	targets := []*int{&l.Ports.IMAP, &l.Ports.IMAPS, &l.Ports.POP3, &l.Ports.POP3S, &l.Ports.Submission,
		&l.Ports.SubmissionS, &l.Ports.PostfixSubmission, &l.Ports.Relay, &l.Ports.LMTP}
	for _, p := range targets {
		ln, err := net.Listen("tcp", net.JoinHostPort(l.Host, "0"))
		if err != nil {
			return fmt.Errorf("pick port: %w", err)
		}
		defer ln.Close()
		*p = ln.Addr().(*net.TCPAddr).Port
	}
	return nil
}

func joinHostPort(host string, port int) string {
	return net.JoinHostPort(host, strconv.Itoa(port))
}

// logTail returns the last n lines of a log file, newline-terminated, for
// error messages; "" if the file is missing or empty.
func logTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil || len(b) == 0 {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n") + "\n"
}

// greeting dials addr (over TLS if cfg is not nil) and reads the first
// line, which must start with want ("* OK" for IMAP, "+OK" for POP3, "220"
// for SMTP/LMTP).
func greeting(addr, want string, cfg *tls.Config) error {
	d := &net.Dialer{Timeout: time.Second}
	var c net.Conn
	var err error
	if cfg != nil {
		c, err = tls.DialWithDialer(d, "tcp", addr, cfg)
	} else {
		c, err = d.Dial("tcp", addr)
	}
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return fmt.Errorf("greeting from %s: %w", addr, err)
	}
	if !strings.HasPrefix(line, want) {
		return fmt.Errorf("greeting from %s: %q", addr, strings.TrimSpace(line))
	}
	return nil
}
