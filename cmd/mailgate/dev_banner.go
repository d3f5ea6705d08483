package main

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"mailgate/proxy"
)

const devWelcome = "From: mailgate <demo@mailgate.test>\r\nTo: demo@mailgate.test\r\n" +
	"Subject: Welcome to mailgate -dev\r\nDate: %s\r\n\r\n" +
	"This message sits in the in-process upstream mailbox; you read it through the proxy.\r\n"

const devHello = "From: demo@mailgate.test\r\nTo: demo@mailgate.test\r\nSubject: Hello through mailgate\r\n\r\n" +
	"Sent through the SMTP proxy, delivered upstream, read back through the IMAP or POP3 proxy.\r\n"

// devBanner links the demo mailbox, issues its app password and prints
// what to paste. The mailbox is linked the way "account link" would leave
// it: a refresh token issued by the identity provider, sealed in the store.
func (d *daemon) devBanner(e *env, st *devStack) error {
	rt := st.idp.IssueRefreshToken(devMailbox)
	if err := d.store.SaveRefreshToken(string(provider(d.cfg.OAuth.Provider)), devMailbox, rt); err != nil {
		return err
	}
	p, secret, err := d.store.CreatePassword(devMailbox, "serve -dev", nil, time.Time{})
	if err != nil {
		return err
	}
	welcome := fmt.Sprintf(devWelcome, time.Now().Format(time.RFC1123Z))
	if err := st.Deliver(devMailbox, strings.NewReader(welcome)); err != nil {
		return err
	}
	hello := filepath.Join(st.dir, "hello.eml")
	if err := os.WriteFile(hello, []byte(devHello), 0o644); err != nil {
		return err
	}
	fp, err := certFingerprint(filepath.Join(st.dir, "tls.crt"))
	if err != nil {
		return err
	}
	d.printBanner(e, st.dir, fp, p.ID, secret)
	return nil
}

func (d *daemon) printBanner(e *env, dir, fingerprint, id, secret string) {
	port := func(proto string, mode proxy.TLSMode) string {
		for _, b := range d.bound {
			if b.proto == proto && b.mode == mode {
				if tcp, ok := b.addr.(*net.TCPAddr); ok {
					return strconv.Itoa(tcp.Port)
				}
			}
		}
		return "?"
	}
	imaps, imap := port("imap", proxy.TLSImplicit), port("imap", proxy.TLSStartTLS)
	smtps, smtp := port("smtp", proxy.TLSImplicit), port("smtp", proxy.TLSStartTLS)
	pop3s, pop3 := port("pop3", proxy.TLSImplicit), port("pop3", proxy.TLSStartTLS)
	ca := filepath.Join(dir, "tls.crt")
	user := devMailbox + ":" + secret
	w := e.stdout
	fmt.Fprintf(w, `mailgate -dev: the upstream mail server and the identity provider are in-process
stand-ins; everything between them is the real proxy. Nothing leaves this machine.
Ctrl-C stops it and deletes %s.

certificate:  %s (self-signed for localhost)
  SHA-256 fingerprint %s
mailbox:      %s
app password: %s
password id:  %s

List INBOX over IMAPS:
  curl --cacert %s --user '%s' 'imaps://localhost:%s/INBOX?ALL'
Read the first message:
  curl --cacert %s --user '%s' 'imaps://localhost:%s/INBOX;UID=1'
Send a message over SMTP with STARTTLS (it then appears in INBOX, and over POP3):
  curl --cacert %s --ssl-reqd --user '%s' --mail-from %s --mail-rcpt %s --upload-file %s 'smtp://localhost:%s'
List the messages over POP3S:
  curl --cacert %s --user '%s' 'pop3s://localhost:%s/'

Mail client settings (Thunderbird, Outlook, Apple Mail on this machine):
  incoming IMAP:  localhost, port %s SSL/TLS (or %s STARTTLS)
  incoming POP3:  localhost, port %s SSL/TLS (or %s STARTTLS)
  outgoing SMTP:  localhost, port %s SSL/TLS (or %s STARTTLS), authentication required
  user name %s, password the app password above; accept the self-signed certificate

Web portal: sign in as %s, create an app password, download it for Apple Mail, revoke it
(the browser asks you to accept the self-signed certificate above; you are also its admin):
  %s

The admin CLI works against this daemon:
  go run ./cmd/mailgate password list -config %s
`, dir, ca, fingerprint, devMailbox, secret, id,
		ca, user, imaps, ca, user, imaps,
		ca, user, devMailbox, devMailbox, filepath.Join(dir, "hello.eml"), smtp,
		ca, user, pop3s,
		imaps, imap, pop3s, pop3, smtps, smtp, devMailbox,
		devMailbox, d.cfg.Web.PublicURL, filepath.Join(dir, "mailgate.yaml"))
}

// certFingerprint is the SHA-256 of the certificate, as browsers and mail
// clients show it, for checking a trust prompt.
func certFingerprint(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return "", fmt.Errorf("%s: no PEM certificate", path)
	}
	if _, err := x509.ParseCertificate(block.Bytes); err != nil {
		return "", err
	}
	sum := sha256.Sum256(block.Bytes)
	hex := make([]string, len(sum))
	for i, c := range sum {
		hex[i] = fmt.Sprintf("%02X", c)
	}
	return strings.Join(hex, ":"), nil
}
