// Package devup runs in-process upstream mail servers (IMAP on go-imap's
// imapmemserver, SMTP on go-smtp) that, like Exchange Online and Gmail, accept
// only OAuth2 bearer tokens. Tests and "mailgate serve -dev" put them behind
// the proxy; nothing in production uses them.
package devup

import "io"

// Deliverer stores a message in a mailbox; the SMTP upstream delivers into
// the IMAP upstream through it, so mail sent through the proxy can be read
// back through it.
type Deliverer interface {
	Deliver(mailbox string, msg io.Reader) error
}
