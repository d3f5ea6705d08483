package mailstack

import (
	"crypto/tls"
	"errors"
	"fmt"
	"os/exec"
	"time"
)

// endpoint is one port that must answer before Start returns.
type endpoint struct {
	addr, want string
	tls        bool
}

// start runs Dovecot, then Postfix (whose SASL and LMTP need Dovecot).
func (s *Stack) start(l *layout) error {
	dovecot, err := lookPath("dovecot")
	if err != nil {
		return err
	}
	// -F keeps the master in the foreground as our child.
	s.dovecot, err = startDaemon("dovecot", l.path("dovecot.log"), dovecot, "-F", "-c", l.path("dovecot.conf"))
	if err != nil {
		return err
	}
	if err := s.waitReady(s.dovecot, []endpoint{
		{s.IMAP, "* OK", false}, {s.IMAPS, "* OK", true}, {s.pop3, "+OK", false}, {s.pop3s, "+OK", true},
		{s.Submission, "220", false}, {s.SubmissionS, "220", true}, {s.LMTP, "220", false},
	}); err != nil {
		return err
	}
	if err := s.startPostfix(l); err != nil {
		return err
	}
	return s.waitReady(s.postfix, []endpoint{
		{joinHostPort(l.Host, l.Ports.Relay), "220", false}, {s.PostfixSubmission, "220", false},
	})
}

// startPostfix creates the queue directories ("postfix check" does that,
// with the right owners) and runs the master in the foreground (-d) rather
// than through "postfix start", which daemonizes it.
func (s *Stack) startPostfix(l *layout) error {
	postfix, err := lookPath("postfix")
	if err != nil {
		return err
	}
	// The config dir must not contain the queue, or "postfix check" warns
	// about every queue directory it finds below it.
	cfg := l.path("postfix", "etc")
	if out, err := exec.Command(postfix, "-c", cfg, "check").CombinedOutput(); err != nil {
		return fmt.Errorf("mailstack: postfix check: %w: %s", err, out)
	}
	s.postfix, err = startDaemon("postfix", l.path("postfix.log"), "/usr/lib/postfix/sbin/master", "-d", "-c", cfg)
	return err
}

// waitReady polls the endpoints until each greets, the daemon dies, or
// readyTimeout passes; the error carries the daemon's log tail.
func (s *Stack) waitReady(d *daemon, eps []endpoint) error {
	deadline := time.Now().Add(readyTimeout)
	cfg := &tls.Config{RootCAs: s.CertPool, ServerName: "localhost"}
	for _, ep := range eps {
		for {
			var c *tls.Config
			if ep.tls {
				c = cfg
			}
			err := greeting(ep.addr, ep.want, c)
			if err == nil {
				break
			}
			if d.exited() {
				err = errors.New("exited")
			} else if time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return fmt.Errorf("mailstack: %s not ready at %s: %w\n%s%s", d.name, ep.addr, err,
				logTail(d.log+".out", 10), logTail(d.log, 20))
		}
	}
	return nil
}
