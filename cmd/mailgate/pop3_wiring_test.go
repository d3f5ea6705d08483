package main

import (
	"io"
	"log/slog"
	"testing"

	"mailgate/config"
	"mailgate/proxy"
)

// pop3Config has plaintext loopback listeners (no certificate needed) and,
// with pop3 set, a pop3 section.
func pop3Config(t *testing.T, pop3 string) *config.Config {
	t.Helper()
	cfg, err := config.Parse("mailgate.yaml", []byte(daemonConfig("127.0.0.1:0", "127.0.0.1:0")+pop3))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

const pop3Section = `pop3:
  listen: [{address: "127.0.0.1:0", tls: none}, {address: "127.0.0.1:0", tls: none}]
  upstream: {address: "127.0.0.1:1", tls: implicit}
`

// TestPlanPOP3: each pop3 listener is a front end of its own, with the
// pop3 upstream in its key; none without the section.
func TestPlanPOP3(t *testing.T) {
	d := &daemon{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	plan := func(cfg *config.Config) (n int) {
		specs, err := d.plan(cfg, nil, newThrottle(cfg.Limits), newLimits(cfg.Limits))
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range specs {
			if s.proto == proxy.ProtoPOP3 {
				n++
			}
		}
		return n
	}
	if n := plan(pop3Config(t, "")); n != 0 {
		t.Errorf("%d pop3 front ends without a pop3 section", n)
	}
	cfg := pop3Config(t, pop3Section)
	if n := plan(cfg); n != 2 {
		t.Errorf("%d pop3 front ends, want 2", n)
	}

	l := cfg.POP3.Listen[0]
	key := frontKey(cfg, proxy.ProtoPOP3, l)
	other := *cfg
	other.IMAP.Upstream.Address = "127.0.0.1:2"
	if frontKey(&other, proxy.ProtoPOP3, l) != key {
		t.Error("an imap.upstream change restarts the pop3 front end")
	}
	other = *cfg
	other.POP3.Upstream.Address = "127.0.0.1:2"
	if frontKey(&other, proxy.ProtoPOP3, l) == key {
		t.Error("a pop3.upstream change keeps the old pop3 front end")
	}
	if frontKey(&other, proxy.ProtoIMAP, cfg.IMAP.Listen[0]) != frontKey(cfg, proxy.ProtoIMAP, cfg.IMAP.Listen[0]) {
		t.Error("a pop3.upstream change restarts an imap front end")
	}
}
