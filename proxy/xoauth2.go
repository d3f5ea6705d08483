package proxy

import (
	"github.com/emersion/go-sasl"
)

// XOAUTH2 is the SASL mechanism name used by Microsoft and Google.
const XOAUTH2 = "XOAUTH2"

// xoauth2Client implements sasl.Client for XOAUTH2. The initial response is
// "user=" mailbox ^A "auth=Bearer " token ^A ^A (Google's and Microsoft's
// XOAUTH2 documentation). A failed login first gets a base64 JSON challenge
// from Gmail and Dovecot, which needs an empty response before the final
// failure reply; Exchange Online fails at once.
type xoauth2Client struct {
	username, token string
}

// NewXOAUTH2Client returns a SASL client for XOAUTH2.
func NewXOAUTH2Client(username, token string) sasl.Client {
	return &xoauth2Client{username: username, token: token}
}

func (c *xoauth2Client) Start() (string, []byte, error) {
	return XOAUTH2, XOAUTH2Response(c.username, c.token), nil
}

// Next answers the error challenge with an empty response, which makes the
// server send its final failure reply.
func (c *xoauth2Client) Next(challenge []byte) ([]byte, error) {
	return []byte{}, nil
}

// XOAUTH2Response encodes the XOAUTH2 initial response (not base64-encoded).
func XOAUTH2Response(username, token string) []byte {
	return []byte("user=" + username + "\x01auth=Bearer " + token + "\x01\x01")
}
