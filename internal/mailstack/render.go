package mailstack

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"text/template"
	"time"
)

// ports are the TCP ports of one stack, all on Options.Host.
type ports struct {
	IMAP, IMAPS, Submission, SubmissionS int // Dovecot, client facing
	POP3, POP3S                          int // Dovecot, client facing
	PostfixSubmission                    int // Postfix smtpd with Dovecot SASL
	Relay                                int // Postfix smtpd Dovecot submission relays to
	LMTP                                 int // Dovecot LMTP Postfix delivers to
}

// layout is everything the config templates need.
type layout struct {
	Dir, Host, URL string
	UID, GID       int // the unprivileged mail user Dovecot delivers as
	Ports          ports
	TLS            *tlsFiles
	MaxSessions    int // Options.MaxSessions; 0 keeps Dovecot's defaults
}

func (l *layout) path(elem ...string) string {
	return filepath.Join(append([]string{l.Dir}, elem...)...)
}

// Dovecot: only OAuth2 mechanisms, as on Exchange Online; ssl=required so
// even from a "secure" peer AUTH needs TLS first (like the real providers).
// auth_failure_delay=0, auth_cache_size=0: every attempt is checked and fails
// at once, so tests can repeat failures. The anvil-auth-penalty listener is
// disabled (mode 0) for the same reason: anvil would delay repeated failures
// from one IP by up to 15 s. POP3 takes the same OAuth2 passdb as IMAP;
// pop3_uidl_format is set explicitly (Dovecot 2.3's default) because UIDs
// must stay stable across sessions for clients that leave mail on the
// server. pop3_lock_session stays off (also the default) so tests can hold
// several POP3 sessions of one mailbox, as for the per-mailbox session
// limit.
var dovecotConf = template.Must(template.New("dovecot.conf").Parse(`# rendered by mailgate/internal/mailstack
base_dir = {{.Dir}}/run
state_dir = {{.Dir}}/state
instance_name = mailstack-{{.Ports.IMAP}}
log_path = {{.Dir}}/dovecot.log
protocols = imap pop3 submission lmtp
listen = {{.Host}}
hostname = localhost
postmaster_address = postmaster@localhost
ssl = required
ssl_cert = <{{.TLS.Cert}}
ssl_key = <{{.TLS.Key}}
ssl_min_protocol = TLSv1.2
auth_mechanisms = xoauth2 oauthbearer
auth_cache_size = 0
auth_failure_delay = 0
auth_verbose = yes
mail_location = maildir:~/Maildir
passdb {
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {{.Dir}}/dovecot-oauth2.conf.ext
}
userdb {
  driver = static
  args = uid={{.UID}} gid={{.GID}} home={{.Dir}}/mail/%Lu allow_all_users=yes
}
pop3_uidl_format = %08Xu%08Xv
pop3_lock_session = no
submission_relay_host = {{.Host}}
submission_relay_port = {{.Ports.Relay}}
submission_relay_trusted = yes
service imap-login {
  inet_listener imap {
    port = {{.Ports.IMAP}}
  }
  inet_listener imaps {
    port = {{.Ports.IMAPS}}
    ssl = yes
  }
}
service pop3-login {
  inet_listener pop3 {
    port = {{.Ports.POP3}}
  }
  inet_listener pop3s {
    port = {{.Ports.POP3S}}
    ssl = yes
  }
}
service submission-login {
  inet_listener submission {
    port = {{.Ports.Submission}}
  }
  inet_listener submissions {
    port = {{.Ports.SubmissionS}}
    ssl = yes
  }
}
service lmtp {
  inet_listener lmtp {
    address = {{.Host}}
    port = {{.Ports.LMTP}}
  }
}
service auth {
  unix_listener auth-postfix {
    mode = 0666
  }
}
service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
{{if .MaxSessions}}
# Options.MaxSessions: many sessions of one user from one address (the
# proxy), login processes in performance mode (one process proxies many TLS
# sessions instead of one process each), and room for that many imap
# processes.
mail_max_userip_connections = {{.MaxSessions}}
default_client_limit = {{.MaxSessions}}
default_vsz_limit = 0
service imap-login {
  service_count = 0
  process_min_avail = 2
  client_limit = {{.MaxSessions}}
}
service imap {
  process_limit = {{.MaxSessions}}
}
service auth {
  client_limit = {{.MaxSessions}}
}
{{end}}
`))

// RFC 7662 introspection: POST token=..., active must be true and email must
// equal the SASL user.
var oauth2Conf = template.Must(template.New("oauth2").Parse(`introspection_url = {{.URL}}
introspection_mode = post
username_attribute = email
active_attribute = active
active_value = true
timeout_msecs = 5000
`))

// Postfix relays everything to Dovecot LMTP. Two smtpd services: the relay
// Dovecot submission uses (trusted by mynetworks), and a client-facing
// submission service that authenticates through Dovecot's auth socket.
var postfixMain = template.Must(template.New("main.cf").Parse(`# rendered by mailgate/internal/mailstack
compatibility_level = 3.6
queue_directory = {{.Dir}}/postfix/queue
data_directory = {{.Dir}}/postfix/data
maillog_file = {{.Dir}}/postfix.log
maillog_file_prefixes = {{.Dir}}
mail_owner = postfix
setgid_group = postdrop
myhostname = localhost
mydomain = localdomain
myorigin = localhost
mydestination =
local_recipient_maps =
relay_domains =
alias_maps =
alias_database =
biff = no
append_dot_mydomain = no
inet_interfaces = all
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
default_transport = lmtp:inet:{{.Host}}:{{.Ports.LMTP}}
relay_transport = lmtp:inet:{{.Host}}:{{.Ports.LMTP}}
local_transport = lmtp:inet:{{.Host}}:{{.Ports.LMTP}}
smtpd_banner = $myhostname ESMTP mailstack
smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject
smtpd_tls_cert_file = {{.TLS.Cert}}
smtpd_tls_key_file = {{.TLS.Key}}
smtpd_sasl_type = dovecot
smtpd_sasl_path = {{.Dir}}/run/auth-postfix
# Postfix's default is 10 MB; big attachments are what a relay must carry.
message_size_limit = 104857600
`))

var postfixMaster = template.Must(template.New("master.cf").Parse(`# rendered by mailgate/internal/mailstack
{{.Host}}:{{.Ports.Relay}} inet n - n - - smtpd
{{.Host}}:{{.Ports.PostfixSubmission}} inet n - n - - smtpd
  -o smtpd_tls_security_level=encrypt
  -o smtpd_tls_auth_only=yes
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n -  0 cleanup
qmgr      unix  n - n 300 1 qmgr
tlsmgr    unix  - - n 1000? 1 tlsmgr
rewrite   unix  - - n -  - trivial-rewrite
bounce    unix  - - n -  0 bounce
defer     unix  - - n -  0 bounce
trace     unix  - - n -  0 bounce
verify    unix  - - n -  1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n -  - proxymap
proxywrite unix - - n -  1 proxymap
smtp      unix  - - n -  - smtp
relay     unix  - - n -  - smtp
showq     unix  n - n -  - showq
error     unix  - - n -  - error
retry     unix  - - n -  - error
discard   unix  - - n -  - discard
lmtp      unix  - - n -  - lmtp
anvil     unix  - - n -  1 anvil
scache    unix  - - n -  1 scache
postlog   unix-dgram n - n - 1 postlogd
`))

// render writes all config files. Postfix's files get an mtime in the past:
// a config newer than "now" makes postfix start wait (~2 s) for the clock.
func render(l *layout) error {
	files := []struct {
		tmpl *template.Template
		path string
	}{
		{dovecotConf, l.path("dovecot.conf")},
		{oauth2Conf, l.path("dovecot-oauth2.conf.ext")},
		{postfixMain, l.path("postfix", "etc", "main.cf")},
		{postfixMaster, l.path("postfix", "etc", "master.cf")},
	}
	past := time.Now().Add(-time.Minute)
	for _, f := range files {
		var b bytes.Buffer
		if err := f.tmpl.Execute(&b, l); err != nil {
			return fmt.Errorf("render %s: %w", f.tmpl.Name(), err)
		}
		if err := os.WriteFile(f.path, b.Bytes(), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", f.path, err)
		}
		if err := os.Chtimes(f.path, past, past); err != nil {
			return fmt.Errorf("backdate %s: %w", f.path, err)
		}
	}
	return nil
}
