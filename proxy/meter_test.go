package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
)

// TestUpstreamErrorKind sorts errors as the front ends wrap them.
func TestUpstreamErrorKind(t *testing.T) {
	dial := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	for _, tt := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("%w: dial upstream x: %w", ErrUnavailable, dial), UpstreamDial},
		{fmt.Errorf("%w: tls handshake with upstream x: %w", ErrUnavailable, &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}), UpstreamTLS},
		{fmt.Errorf("tls: %w", tls.AlertError(40)), UpstreamTLS},
		{fmt.Errorf("%w: %w", ErrUnavailable, context.DeadlineExceeded), UpstreamTimeout},
		{fmt.Errorf("upstream greeting: %w: %w", ErrUnavailable, os.ErrDeadlineExceeded), UpstreamTimeout},
		{&net.OpError{Op: "dial", Err: timeoutErr{}}, UpstreamTimeout},
		{ErrTokenRefused, UpstreamRefused},
		{fmt.Errorf("probe: %w", ErrAuthFailed), UpstreamRefused},
		{fmt.Errorf("upstream greeting: %w: %w", ErrUnavailable, io.EOF), UpstreamProtocol},
		{errors.New("NO [UNAVAILABLE]"), UpstreamProtocol},
	} {
		if got := UpstreamErrorKind(tt.err); got != tt.want {
			t.Errorf("UpstreamErrorKind(%v) = %s, want %s", tt.err, got, tt.want)
		}
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }
