package proxy

import (
	"errors"

	"github.com/emersion/go-sasl"
)

// Login is the obsolete SASL LOGIN mechanism, still the one Outlook and
// Microsoft's SMTP AUTH profile use. go-sasl only has its client side.
const Login = "LOGIN"

// The prompts, exactly as Microsoft sends them ("Username:", "Password:"): some
// clients compare them byte for byte (docs/clients.md, "Microsoft's AUTH LOGIN
// prompts").
var (
	loginUserPrompt = []byte("Username:")
	loginPassPrompt = []byte("Password:")
)

// ErrLoginSyntax is returned when LOGIN gets a response after it is done.
var ErrLoginSyntax = errors.New("unexpected login response")

// loginServer implements sasl.Server for LOGIN. The username may come as the
// initial response ("AUTH LOGIN dXNlcg==") or after the first prompt.
type loginServer struct {
	auth     sasl.PlainAuthenticator
	username []byte
	step     int
}

// NewLoginServer returns a SASL server for LOGIN that passes the username and
// password to auth (with an empty identity).
func NewLoginServer(auth sasl.PlainAuthenticator) sasl.Server {
	return &loginServer{auth: auth}
}

func (s *loginServer) Next(resp []byte) ([]byte, bool, error) {
	switch s.step {
	case 0:
		s.step++
		if resp == nil {
			return loginUserPrompt, false, nil
		}
		fallthrough
	case 1:
		s.step = 2
		s.username = resp
		return loginPassPrompt, false, nil
	case 2:
		s.step++
		return nil, true, s.auth("", string(s.username), string(resp))
	}
	return nil, true, ErrLoginSyntax
}
