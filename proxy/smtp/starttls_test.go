package smtp

import (
	"bufio"
	"context"
	"crypto/tls"
	"net"
	"strings"
	"testing"
)

// An upstream that sends bytes behind its STARTTLS reply (which would be
// read as if they came over TLS, CVE-2011-0411) or offers no STARTTLS is
// refused before any handshake.
func TestStartTLSRefuses(t *testing.T) {
	tests := []struct{ name, ehlo, starttls, want string }{
		{"injection", "250-localhost\r\n250 STARTTLS\r\n", "220 go ahead\r\n250 injected\r\n", "bytes after"},
		{"not offered", "250-localhost\r\n250 8BITMIME\r\n", "", "does not offer STARTTLS"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			near, far := net.Pipe()
			t.Cleanup(func() { near.Close(); far.Close() })
			go func() {
				br := bufio.NewReader(far)
				far.Write([]byte("220 upstream ESMTP\r\n"))
				br.ReadString('\n') // EHLO
				far.Write([]byte(tt.ehlo))
				if tt.starttls != "" {
					br.ReadString('\n') // STARTTLS
					far.Write([]byte(tt.starttls))
				}
			}()
			_, _, err := startTLS(context.Background(), near, &tls.Config{ServerName: "localhost"}, "mailgate")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want a starttls refusal", err)
			}
		})
	}
}

func TestHasExtension(t *testing.T) {
	reply := "localhost greets you\nPIPELINING\nstarttls\nAUTH PLAIN XOAUTH2"
	for ext, want := range map[string]bool{"STARTTLS": true, "AUTH": true, "PIPELINING": true,
		"8BITMIME": false, "localhost": false} {
		if got := hasExtension(reply, ext); got != want {
			t.Errorf("hasExtension(%q) = %v, want %v", ext, got, want)
		}
	}
}
