package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const alertsOn = "alerts:\n  webhook:\n    url: https://hooks.example.com/mailgate\n    secret_file: hook.secret\n" +
	"  mail:\n    from: ' IT@Example.com '\n"

func TestAlerts(t *testing.T) {
	// The secret keeps everything but one trailing newline: the receiver
	// must use the same bytes.
	for content, want := range map[string]string{"k3y": "k3y", "k3y\n": "k3y", "k3y\n\n": "k3y\n", " k3y\r\n": " k3y\r"} {
		dir := writeFiles(t, map[string]string{"mailgate.yaml": withOAuth(alertsOn), "hook.secret": content})
		c, err := Load(filepath.Join(dir, "mailgate.yaml"))
		if err != nil {
			t.Fatalf("Load: %v", err)
		}
		w := AlertWebhook{URL: "https://hooks.example.com/mailgate", SecretFile: filepath.Join(dir, "hook.secret"), Secret: []byte(want)}
		if !reflect.DeepEqual(c.Alerts, Alerts{Webhook: w, Mail: AlertMail{From: "it@example.com"}}) {
			t.Errorf("secret %q: alerts = %+v", content, c.Alerts)
		}
	}
	if c := mustParse(t, "m.yaml", withOAuth("")); !reflect.DeepEqual(c.Alerts, Alerts{}) {
		t.Errorf("no alerts section: %+v", c.Alerts)
	}
	c := mustParse(t, "m.yaml", withOAuth("alerts: {webhook: {url: \"http://127.0.0.1:9000/hook\", secret_file: s}}\n"))
	if c.Alerts.Webhook.URL != "http://127.0.0.1:9000/hook" || len(c.Alerts.Webhook.Secret) != 0 {
		t.Errorf("Parse: %+v (it reads no secret)", c.Alerts.Webhook)
	}
}

func TestAlertsErrors(t *testing.T) {
	tests := []struct {
		name, yaml string
		line       int
		key, msg   string
	}{
		{"secret without url", y("alerts:", "  webhook:", "    secret_file: s"), 2, "alerts.webhook.url", "required"},
		{"url without secret", y("alerts:", "  webhook:", "    url: https://h.example/x"), 2, "alerts.webhook.secret_file", "required"},
		{"plain http", y("alerts:", "  webhook:", "    url: http://h.example/x", "    secret_file: s"), 3, "alerts.webhook.url", "not https"},
		{"not a url", y("alerts:", "  webhook:", "    url: h.example/x", "    secret_file: s"), 3, "alerts.webhook.url", "not a URL"},
		{"credentials", y("alerts:", "  webhook:", "    url: https://hook:s3cret@h.example/x", "    secret_file: s"), 3, "alerts.webhook.url", "user name or password"},
		{"bad from", y("alerts:", "  mail:", "    from: it"), 3, "alerts.mail.from", "not a mailbox"},
		{"unknown key", y("alerts:", "  webhook:", "    secret: s"), 3, "alerts.webhook.secret", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("m.yaml", []byte(withOAuth(tt.yaml)))
			wantError(t, err, "m.yaml", tt.line, tt.key, tt.msg)
			if err != nil && strings.Contains(err.Error(), "h.example") {
				t.Errorf("the error quotes the URL, which may carry a credential: %v", err)
			}
		})
	}
}

func TestAlertsSecretErrors(t *testing.T) {
	for name, tt := range map[string]struct {
		content string
		mode    os.FileMode
		msg     string
	}{
		"empty":       {"\n", 0o600, "is empty"},
		"world read":  {"k3y", 0o644, "open to others"},
		"group write": {"k3y", 0o660, "open to group"},
	} {
		t.Run(name, func(t *testing.T) {
			dir := writeFiles(t, map[string]string{"mailgate.yaml": withOAuth(alertsOn), "hook.secret": tt.content})
			if err := os.Chmod(filepath.Join(dir, "hook.secret"), tt.mode); err != nil {
				t.Fatal(err)
			}
			file := filepath.Join(dir, "mailgate.yaml")
			_, err := Load(file)
			wantError(t, err, file, 4, "alerts.webhook.secret_file", tt.msg)
		})
	}
	dir := writeFiles(t, map[string]string{"mailgate.yaml": withOAuth(alertsOn), "hook.secret": "k3y"})
	os.Chmod(filepath.Join(dir, "hook.secret"), 0o640)
	if _, err := Load(filepath.Join(dir, "mailgate.yaml")); err != nil {
		t.Errorf("mode 0640: %v", err)
	}
}
