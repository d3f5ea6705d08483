package main

// serve -dev: mailgate on loopback with stand-ins for the two things a
// newcomer does not have at hand, a mailbox provider and its identity
// provider. Everything between them is the real proxy: config parsing,
// store, OAuth token manager, IMAP, POP3 and SMTP front ends, the web
// portal, admin socket.

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"mailgate/config"
	"mailgate/internal/devup"
	"mailgate/internal/fakeidp"
	"mailgate/internal/selfsigned"
)

const (
	defaultDevPorts = "1993,1143,1465,1587,1443,1995,1110"
	devMailbox      = "demo@mailgate.test"
	// devSecret is the client secret of -dev's identity provider: the
	// portal is a confidential client.
	devSecret = "mailgate-dev-secret"
)

// devConfig is the config -dev runs on: a real config file, parsed and
// validated like any other. Paths are relative to the temporary directory.
const devConfig = `hostname: localhost
store: { path: mailgate.db, key_file: mailgate.key }
admin: { socket: admin.sock }
tls: { cert_file: tls.crt, key_file: tls.key }
imap:
  listen:
    - { address: "%[1]s", tls: implicit }
    - { address: "%[2]s", tls: starttls }
  upstream: { address: "%[5]s", tls: implicit, ca_file: tls.crt }
smtp:
  listen:
    - { address: "%[3]s", tls: implicit }
    - { address: "%[4]s", tls: starttls }
  upstream: { address: "%[6]s", tls: implicit, ca_file: tls.crt }
pop3:
  listen:
    - { address: "%[15]s", tls: implicit }
    - { address: "%[16]s", tls: starttls }
  upstream: { address: "%[17]s", tls: implicit, ca_file: tls.crt }
web:
  listen:
    - { address: "%[9]s", tls: implicit }
  public_url: "%[10]s"
  admins: [%[11]s]
oauth:
  provider: generic
  client_id: mailgate-dev
  client_secret: %[12]s
  token_url: "%[7]s"
  device_authorization_url: "%[8]s"
  auth_url: "%[13]s"
  issuer: "%[14]s"
`

// devStack is what -dev runs besides the daemon.
type devStack struct {
	dir  string
	idp  *fakeidp.Server
	imap *devup.IMAPServer
	pop3 *devup.POP3Server
	smtp *devup.SMTPServer
}

func serveDev(e *env, host, ports string) error {
	addrs, err := devAddrs(host, ports)
	if err != nil {
		return err
	}
	log := newLogger(config.Log{Level: "info"}, e.stderr)
	st, cfg, err := startDevStack(addrs, log)
	if st != nil {
		defer st.close()
	}
	if err != nil {
		return err
	}
	d := &daemon{cfg: cfg, log: log}
	if err := d.start(); err != nil {
		d.stop()
		return err
	}
	if err := d.devBanner(e, st); err != nil {
		d.stop()
		return err
	}
	return d.wait(e.ctx)
}

// devAddrs checks that -dev binds loopback only and returns the seven
// listen addresses: IMAPS, IMAP, SMTPS, SMTP, the portal, POP3S and POP3.
// Ports not given (four or five of them, as before POP3) are free ones.
func devAddrs(host, ports string) ([]string, error) {
	ip, err := netip.ParseAddr(host)
	if err != nil || !ip.IsLoopback() {
		return nil, usageErrorf("serve -dev: refusing to listen on %q: -dev listens on loopback only (e.g. 127.0.0.1)", host)
	}
	ps := strings.Split(ports, ",")
	switch len(ps) {
	case 4:
		ps = append(ps, "0", "0", "0")
	case 5:
		ps = append(ps, "0", "0")
	case 7:
	default:
		return nil, usageErrorf("serve -dev: -dev-ports wants seven ports: IMAPS, IMAP, SMTPS, SMTP, web portal, POP3S, POP3")
	}
	addrs := make([]string, len(ps))
	for i, p := range ps {
		addrs[i] = net.JoinHostPort(ip.String(), strings.TrimSpace(p))
	}
	return addrs, nil
}

// devPortal returns the portal's listen address and public URL. The URL
// names the port, so port 0 becomes a free port now; the name is
// localhost, which the certificate covers, as in the curl commands.
func devPortal(addr string) (listen, publicURL string, err error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", "", err
	}
	if port == "0" {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return "", "", err
		}
		_, port, _ = net.SplitHostPort(ln.Addr().String())
		ln.Close()
	}
	return net.JoinHostPort(host, port), "https://localhost:" + port, nil
}

// startDevStack makes the temporary directory, certificate, identity
// provider and upstreams, and the config pointing at them.
func startDevStack(addrs []string, log *slog.Logger) (*devStack, *config.Config, error) {
	dir, err := os.MkdirTemp("", "mailgate-dev-")
	if err != nil {
		return nil, nil, err
	}
	st := &devStack{dir: dir}
	cert, err := writeDevCert(dir)
	if err != nil {
		return st, nil, err
	}
	if st.idp, err = fakeidp.NewServer(&fakeidp.Options{ClientSecret: devSecret, Logger: log}); err != nil {
		return st, nil, err
	}
	// A browser signing in to the portal gets the provider's sign-in form.
	st.idp.SetInteractive(true)
	verify := func(user, token string) error {
		if st.idp.ValidFor(token, user) {
			return nil
		}
		return errors.New("token not valid for this mailbox")
	}
	upTLS := &tls.Config{Certificates: []tls.Certificate{cert}}
	st.imap = devup.NewIMAP(&devup.IMAPOptions{Verify: verify, TLSConfig: upTLS, Logger: log})
	imapAddr, err := serveLoopback(st.imap.Serve)
	if err != nil {
		return st, nil, err
	}
	st.pop3 = devup.NewPOP3(&devup.POP3Options{Verify: verify, TLSConfig: upTLS, Logger: log})
	pop3Addr, err := serveLoopback(st.pop3.Serve)
	if err != nil {
		return st, nil, err
	}
	st.smtp = devup.NewSMTP(&devup.SMTPOptions{Verify: verify, TLSConfig: upTLS, Implicit: true,
		Deliver: st, Logger: log})
	smtpAddr, err := serveLoopback(st.smtp.Serve)
	if err != nil {
		return st, nil, err
	}
	webAddr, publicURL, err := devPortal(addrs[4])
	if err != nil {
		return st, nil, err
	}
	yaml := fmt.Sprintf(devConfig, addrs[0], addrs[1], addrs[2], addrs[3], imapAddr, smtpAddr,
		st.idp.TokenURL(), st.idp.DeviceAuthURL(), webAddr, publicURL, devMailbox, devSecret,
		st.idp.AuthURL(), st.idp.Issuer(), addrs[5], addrs[6], pop3Addr)
	path := filepath.Join(dir, "mailgate.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		return st, nil, err
	}
	cfg, err := config.Load(path)
	return st, cfg, err
}

// Deliver puts a message in both upstream mailboxes, IMAP's and POP3's,
// which are separate stand-ins: a message sent through mailgate can then
// be read back over either protocol, as from one real mailbox.
func (st *devStack) Deliver(mailbox string, msg io.Reader) error {
	b, err := io.ReadAll(msg)
	if err != nil {
		return err
	}
	if err := st.imap.Deliver(mailbox, bytes.NewReader(b)); err != nil {
		return err
	}
	return st.pop3.Deliver(mailbox, bytes.NewReader(b))
}

func (st *devStack) close() {
	if st.smtp != nil {
		st.smtp.Close()
	}
	if st.pop3 != nil {
		st.pop3.Close()
	}
	if st.imap != nil {
		st.imap.Close()
	}
	if st.idp != nil {
		st.idp.Close()
	}
	os.RemoveAll(st.dir)
}

// serveLoopback runs serve on a fresh 127.0.0.1 port and returns the address.
func serveLoopback(serve func(net.Listener) error) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	go serve(ln)
	return ln.Addr().String(), nil
}

// writeDevCert writes a self-signed certificate for localhost and the loopback
// addresses; clients such as mbsync want a DNS name (docs/clients.md, "Clients
// ignore IP addresses in certificates"). It lasts a month, so a long-running
// -dev session keeps working.
func writeDevCert(dir string) (tls.Certificate, error) {
	c, err := selfsigned.New(&selfsigned.Options{
		Hosts:      []string{"localhost", "127.0.0.1", "::1"},
		CommonName: "mailgate -dev",
		Lifetime:   30 * 24 * time.Hour,
	})
	if err != nil {
		return tls.Certificate{}, err
	}
	if err := c.WriteFiles(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")); err != nil {
		return tls.Certificate{}, err
	}
	return c.TLS, nil
}
