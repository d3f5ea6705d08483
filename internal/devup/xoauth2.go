package devup

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/emersion/go-sasl"
)

// ErrXOAUTH2Syntax is returned for a malformed XOAUTH2 response.
var ErrXOAUTH2Syntax = errors.New("malformed xoauth2 response")

// ParseXOAUTH2 decodes an XOAUTH2 initial response into user and token.
func ParseXOAUTH2(resp []byte) (user, token string, err error) {
	fields := bytes.Split(resp, []byte{1})
	// "user=U", "auth=Bearer T", "", "" for a well-formed response.
	if len(fields) != 4 || len(fields[2]) != 0 || len(fields[3]) != 0 {
		return "", "", ErrXOAUTH2Syntax
	}
	u, ok := bytes.CutPrefix(fields[0], []byte("user="))
	if !ok || len(u) == 0 {
		return "", "", ErrXOAUTH2Syntax
	}
	t, ok := bytes.CutPrefix(fields[1], []byte("auth=Bearer "))
	if !ok || len(t) == 0 {
		return "", "", ErrXOAUTH2Syntax
	}
	return string(u), string(t), nil
}

// XOAUTH2Verifier checks a bearer token presented for user.
type XOAUTH2Verifier func(user, token string) error

// xoauth2Server implements sasl.Server for XOAUTH2, as an upstream would: a
// refused token gets a JSON error challenge, then the failure. mailgate itself
// never accepts XOAUTH2 from clients; this serves in-process upstreams in
// tests and in -dev mode.
type xoauth2Server struct {
	verify XOAUTH2Verifier
	failed error
}

// NewXOAUTH2Server returns a SASL server for XOAUTH2 that calls verify.
func NewXOAUTH2Server(verify XOAUTH2Verifier) sasl.Server {
	return &xoauth2Server{verify: verify}
}

func (s *xoauth2Server) Next(resp []byte) ([]byte, bool, error) {
	if s.failed != nil {
		// The client acknowledged the error challenge.
		return nil, true, s.failed
	}
	if resp == nil {
		return []byte{}, false, nil // ask for the initial response
	}
	user, token, err := ParseXOAUTH2(resp)
	if err == nil {
		err = s.verify(user, token)
	}
	if err != nil {
		s.failed = fmt.Errorf("xoauth2: %w", err)
		return []byte(`{"status":"401","schemes":"bearer","scope":"https://mail.google.com/"}`), false, nil
	}
	return nil, true, nil
}
