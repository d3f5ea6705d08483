package imap

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"

	"mailgate/proxy"
)

func (c *conn) handleCapability(cmd *command) error {
	if len(cmd.args) != 0 {
		c.Reply("%s BAD CAPABILITY takes no arguments", cmd.tag)
		return nil
	}
	c.Reply("* CAPABILITY %s", c.caps())
	c.Reply("%s OK CAPABILITY completed", cmd.tag)
	return nil
}

func (c *conn) handleNoop(cmd *command) error {
	c.Reply("%s OK NOOP completed", cmd.tag)
	return nil
}

// handleLogout answers BYE then OK (RFC 3501 section 6.1.3).
func (c *conn) handleLogout(cmd *command) error {
	c.Reply("* BYE mailgate logging out")
	c.Reply("%s OK LOGOUT completed", cmd.tag)
	return proxy.ErrClosing
}

// handleStartTLS upgrades the connection. Bytes the client sent before the
// handshake are dropped with the old reader, and the capabilities start over
// (RFC 3501 section 6.2.1, RFC 2595 section 3.1, docs/clients.md, "STARTTLS
// starts the conversation over"): a man in the middle cannot inject commands
// into the TLS session.
func (c *conn) handleStartTLS(cmd *command) error {
	if !c.CanStartTLS {
		c.Reply("%s BAD STARTTLS not available", cmd.tag)
		return nil
	}
	c.Reply("%s OK Begin TLS negotiation now", cmd.tag)
	if err := c.Writer.Flush(); err != nil {
		return err
	}
	if err := c.StartTLS(c.s.opts.TLSConfig); err != nil {
		return fmt.Errorf("starttls handshake: %w", err)
	}
	return nil
}

// handleID answers RFC 2971 ID. Apple Mail sends it before LOGIN and takes a BAD
// for a wrong password (docs/clients.md, "Apple Mail sends ID before login").
// The client's name and version go to the session log.
func (c *conn) handleID(cmd *command) error {
	params, ok := idParams(cmd.args)
	if !ok {
		c.Reply("%s BAD Syntax error in ID", cmd.tag)
		return nil
	}
	name, version := params["name"], params["version"]
	c.clientID = strings.TrimSuffix(logSafe(name)+"/"+logSafe(version), "/")
	c.Reply(`* ID ("name" "mailgate")`)
	c.Reply("%s OK ID completed", cmd.tag)
	return nil
}

// idParams decodes "NIL" or a parenthesised list of field/value pairs, with
// keys lower-cased (RFC 2971 section 3.3: case-insensitive).
func idParams(args []arg) (map[string]string, bool) {
	params := map[string]string{}
	if len(args) == 1 && args[0].kind == argAtom && strings.EqualFold(args[0].val, "NIL") {
		return params, true
	}
	if len(args) < 2 || args[0].kind != argOpen || args[len(args)-1].kind != argClose {
		return nil, false
	}
	kv := args[1 : len(args)-1]
	if len(kv)%2 != 0 {
		return nil, false
	}
	for i := 0; i < len(kv); i += 2 {
		k, v := kv[i], kv[i+1]
		if k.kind != argString || (v.kind != argString && !isNIL(v)) {
			return nil, false
		}
		params[strings.ToLower(k.val)] = v.val
	}
	return params, true
}

func isNIL(a arg) bool { return a.kind == argAtom && strings.EqualFold(a.val, "NIL") }

// logSafe shortens client-chosen text and quotes control characters, so a
// hostile ID cannot forge log lines.
func logSafe(s string) string {
	if len(s) > 64 {
		s = s[:64]
	}
	if strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		s = strconv.Quote(s)
	}
	return s
}
