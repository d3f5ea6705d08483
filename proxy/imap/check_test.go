package imap

import (
	"context"
	"encoding/base64"
	"errors"
	"testing"

	"mailgate/internal/proxytest"
	"mailgate/proxy"
)

// CheckLogin logs in, probes the mailbox and logs out; a refused token and
// a refused probe are both ErrAuthFailed, an unreachable upstream is
// ErrUnavailable.
func TestCheckLogin(t *testing.T) {
	ir := func(user, tok string) string {
		return base64.StdEncoding.EncodeToString(proxy.XOAUTH2Response(user, tok))
	}
	greet := [2]string{"", "* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=XOAUTH2] ready\r\n"}
	for _, tc := range []struct {
		name   string
		script [][2]string
		want   error
	}{
		{"ok", [][2]string{greet,
			{"m1 AUTHENTICATE XOAUTH2 " + ir("ann@example.com", "tok"), "m1 OK done\r\n"},
			{"m2 STATUS INBOX (MESSAGES)", "* STATUS INBOX (MESSAGES 0)\r\nm2 OK done\r\n"},
			{"m3 CAPABILITY", "* CAPABILITY IMAP4rev1 IDLE\r\nm3 OK done\r\n"},
			{"m4 LOGOUT", "* BYE bye\r\nm4 OK done\r\n"},
		}, nil},
		{"token refused", [][2]string{greet,
			{"m1 AUTHENTICATE XOAUTH2 " + ir("ann@example.com", "tok"), "m1 NO [AUTHENTICATIONFAILED] no\r\n"},
		}, proxy.ErrAuthFailed},
		{"mailbox unreachable", [][2]string{greet,
			{"m1 AUTHENTICATE XOAUTH2 " + ir("ann@example.com", "tok"), "m1 OK done\r\n"},
			{"m2 STATUS INBOX (MESSAGES)", "m2 BAD User is authenticated but not connected.\r\n"},
		}, proxy.ErrAuthFailed},
		{"bad greeting", [][2]string{{"", "* BYE go away\r\n"}}, proxy.ErrUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := scriptedUpstream(t, tc.script)
			up := proxy.Upstream{Address: addr, TLS: proxy.TLSNone, Mechanism: "XOAUTH2"}
			err := CheckLogin(context.Background(), up, "ann@example.com", "tok")
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("CheckLogin: %v, want %v", err, tc.want)
			}
		})
	}
	t.Run("unreachable", func(t *testing.T) {
		ln := proxytest.Listen(t)
		addr := ln.Addr().String()
		ln.Close()
		up := proxy.Upstream{Address: addr, TLS: proxy.TLSNone}
		if err := CheckLogin(context.Background(), up, "ann@example.com", "tok"); !errors.Is(err, proxy.ErrUnavailable) {
			t.Fatalf("CheckLogin: %v, want ErrUnavailable", err)
		}
	})
}
