package config

import (
	"fmt"
	"net/url"
	"strings"
)

// Alerts says whom to tell when a mailbox's link changes state (it went
// dead at the provider, works again, was unlinked). Both parts are off
// when left out.
type Alerts struct {
	Webhook AlertWebhook `yaml:"webhook"`
	Mail    AlertMail    `yaml:"mail"`
}

// AlertWebhook is where each change is posted as signed JSON.
type AlertWebhook struct {
	URL string `yaml:"url"` // https, or http to a loopback host
	// SecretFile holds the HMAC-SHA256 key of X-Mailgate-Signature; mode
	// 0600 or 0640 like the other secret files.
	SecretFile string `yaml:"secret_file"`
	// Secret is SecretFile's content with one trailing newline removed,
	// read by Load.
	Secret []byte `yaml:"-"`
}

// AlertMail sends the user of a dead link a mail through the upstream
// SMTP server.
type AlertMail struct {
	// From is the sending mailbox, canonical: linked (delegated flow) or
	// any mailbox of the organisation (app flow). "" sends no mail.
	From string `yaml:"from"`
}

// checkAlerts checks the alerts section; Load reads the secret.
func (d *doc) checkAlerts(c *Config) error {
	w := &c.Alerts.Webhook
	switch {
	case w.URL == "" && w.SecretFile != "":
		return d.errorf("alerts.webhook.url", "required when alerts.webhook.secret_file is set")
	case w.URL != "":
		if err := d.checkWebhookURL(w.URL); err != nil {
			return err
		}
		if w.SecretFile == "" {
			return d.errorf("alerts.webhook.secret_file", "required when alerts.webhook.url is set (receivers check the signature with it)")
		}
	}
	return d.checkAlertMail(&c.Alerts.Mail)
}

// resolveWebhookSecret reads alerts.webhook.secret_file (Load, not Parse).
func (d *doc) resolveWebhookSecret(c *Config) error {
	w := &c.Alerts.Webhook
	if w.SecretFile == "" {
		return nil
	}
	secret, err := readWebhookSecret(w.SecretFile)
	if err != nil {
		return d.wrap("alerts.webhook.secret_file", err)
	}
	w.Secret = secret
	return nil
}

// checkWebhookURL: the posts name mailboxes, so https, or plain http only
// to a receiver on the same host. The errors do not quote the URL: many
// receivers (Slack, Teams, ?token=) carry their credential in it, and the
// file and line already point at it.
func (d *doc) checkWebhookURL(s string) error {
	u, err := url.Parse(s)
	switch {
	case err == nil && u.User != nil:
		return d.errorf("alerts.webhook.url", "has a user name or password in it, which mailgate does not send; "+
			"let the receiver check X-Mailgate-Signature instead")
	case err != nil || u.Host == "" || u.Opaque != "":
		return d.errorf("alerts.webhook.url", "is not a URL such as https://hooks.example.com/mailgate")
	case u.Scheme != "https" && (u.Scheme != "http" || !isLoopback(u.Hostname())):
		return d.errorf("alerts.webhook.url", "is not https (http only to a loopback host such as http://127.0.0.1:9000/hook)")
	}
	return nil
}

// readWebhookSecret reads the secret with exactly one trailing newline
// removed (the one "echo secret > file" adds): the receiver must use the
// same bytes, so nothing else is trimmed.
func readWebhookSecret(path string) ([]byte, error) {
	data, err := readPrivate(path, groupRead)
	if err != nil {
		return nil, err
	}
	data = []byte(strings.TrimSuffix(string(data), "\n"))
	if len(data) == 0 {
		return nil, fmt.Errorf("%s is empty", path)
	}
	return data, nil
}

// checkAlertMail makes alerts.mail.from canonical, as web.admins.
func (d *doc) checkAlertMail(m *AlertMail) error {
	if m.From == "" {
		return nil
	}
	from := asciiLower(strings.TrimSpace(m.From))
	local, domain, ok := strings.Cut(from, "@")
	if !ok || local == "" || checkDomain(domain) != nil || len(from) > 320 ||
		strings.ContainsFunc(from, func(r rune) bool { return r <= ' ' || r == 0x7f || r == '<' || r == '>' }) {
		return d.errorf("alerts.mail.from", "%q is not a mailbox (want an address such as it@example.com)", m.From)
	}
	m.From = from
	return nil
}
