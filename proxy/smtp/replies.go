package smtp

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/emersion/go-smtp"
)

// Fixed replies. Clients only ever see these texts or an upstream's reply
// relayed verbatim; the reasons go to the log (docs/clients.md, "Pass upstream
// SMTP replies through", style guide).
var (
	// RFC 4954 section 4: a bad or unusable credential.
	errAuthFailed = reply(535, 5, 7, 8, "Authentication failed")
	// RFC 4954 section 4: the upstream or the identity provider is down.
	errTempAuth = reply(454, 4, 7, 0, "Temporary authentication failure")
	// RFC 4954 section 6: PLAIN and LOGIN need TLS first. go-smtp's own
	// refusal (523 5.7.10) is not what clients expect, so we refuse here.
	errEncryptionRequired = reply(538, 5, 7, 11, "Encryption required for requested authentication mechanism")
	// RFC 4954 section 6: MAIL before AUTH on a submission port.
	errAuthRequired = reply(530, 5, 7, 0, "Authentication required")
	// RFC 1870 section 6.1 and RFC 3463 5.3.4.
	errTooBig = reply(552, 5, 3, 4, "Message size exceeds fixed maximum message size")
	// A message line over maxLineLength. 552 is a reply to the end of DATA
	// (RFC 5321 section 4.3.2) and X.3.4 a limit of this system (RFC 3463):
	// permanent, since the same message can never pass, and the text names
	// the limit.
	errLineTooLong = reply(552, 5, 3, 4, fmt.Sprintf("Message has a line longer than %d octets", maxLineLength))
	// RFC 3463 4.4.1: no answer from the upstream when reconnecting.
	errUpstreamDown = reply(451, 4, 4, 1, "Mail server unavailable, try again later")
	// RFC 3463 4.4.2: the upstream connection broke; the message was not
	// accepted, so the client must retry.
	errUpstreamLost = reply(451, 4, 4, 2, "Connection to the mail server lost, try again later")
	// The client's side of DATA failed; it is most likely gone already.
	errAborted = reply(451, 4, 3, 0, "Message transfer aborted")
	// RFC 5321 section 4.1.2 allows no control character in a Mailbox (see
	// hasControl). 501 (RFC 5321 section 4.2.2, syntax error in parameters or
	// arguments) and RFC 3463 5.5.4 (invalid command arguments) fit MAIL and
	// RCPT alike, address or parameter; 553 5.1.3 would name the recipient's
	// address only.
	errControlChar = reply(501, 5, 5, 4, "Control characters are not allowed in addresses or parameters")
	// RFC 5321 section 3.8: the service is shutting down.
	errShuttingDown = reply(421, 4, 3, 2, "Service shutting down")
)

// shutdownLine is errShuttingDown as written directly to a connection that
// is not inside a go-smtp command.
const shutdownLine = "421 4.3.2 Service shutting down\r\n"

// tooManyFailuresLine ends a session after maxAuthFailures failed AUTHs.
const tooManyFailuresLine = "421 4.7.0 Too many authentication failures\r\n"

// tooManyConnsLine replaces the greeting of a connection over the limits.
const tooManyConnsLine = "421 4.7.0 Too many connections, try again later\r\n"

func reply(code, class, subject, detail int, text string) *smtp.SMTPError {
	return &smtp.SMTPError{Code: code, EnhancedCode: smtp.EnhancedCode{class, subject, detail}, Message: text}
}

// parseReply splits the text of an upstream reply (what follows the code, one
// line per "\n") into its enhanced status code and message, so that go-smtp
// can write it back unchanged (RFC 2034 section 4: every line carries the
// code). A text without one is kept as it is (NoEnhancedCode).
func parseReply(code int, text string) *smtp.SMTPError {
	e := &smtp.SMTPError{Code: code, EnhancedCode: smtp.NoEnhancedCode, Message: text}
	first, _, _ := strings.Cut(text, "\n")
	ec, msg, ok := strings.Cut(first, " ")
	if !ok {
		return e
	}
	enh, ok := parseEnhanced(ec)
	if !ok || enh[0] != code/100 {
		return e
	}
	e.EnhancedCode = enh
	lines := strings.Split(text, "\n")
	lines[0] = msg
	for i := 1; i < len(lines); i++ {
		lines[i] = strings.TrimPrefix(lines[i], ec+" ")
	}
	e.Message = strings.Join(lines, "\n")
	return e
}

// parseEnhanced parses "class.subject.detail" (RFC 3463 section 2).
func parseEnhanced(s string) (smtp.EnhancedCode, bool) {
	var ec smtp.EnhancedCode
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return ec, false
	}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		// Canonical digits only, so the code writes back as it came.
		if err != nil || n < 0 || n > 999 || strconv.Itoa(n) != p {
			return ec, false
		}
		ec[i] = n
	}
	return ec, true
}
