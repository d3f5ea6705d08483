package pop3

import (
	"time"

	"mailgate/proxy"
)

// handOff tells the client it is logged in and hands the session to the
// relay, which End runs once the command loop has unwound
// (proxy.TextConn.HandOff), until either side ends it or the session's
// context ends (revoke, expiry, forced shutdown); sess ends with it, or at
// once when the relay cannot start. The bytes already read on both sides go first: a
// client may send its next command right after PASS.
//
// mailgate never sends QUIT upstream for the client: whoever ends the
// session, it only closes the connections, so the upstream applies no
// deletion the client did not commit with its own QUIT (RFC 1939 section
// 6).
func (c *conn) handOff(sess *proxy.Session, up *upConn) error {
	r, ok := c.s.front.Hand(sess, c.Conn, up.nc, "", c.s.opts.ShutdownQuiet)
	if !ok {
		sess.End()
		up.nc.Close()
		c.Reply(textUnavailable)
		return proxy.ErrClosing
	}
	c.Reply("+OK Logged in")
	if err := c.Writer.Flush(); err != nil {
		r.Close()
		sess.End()
		return proxy.ErrHandedOff
	}
	clientBuf, upBuf := c.Release(up.br)
	up.br = nil // not kept for a session that may last
	return c.HandOff(func() {
		defer sess.End()
		st, err := r.Relay(clientBuf, upBuf, c.s.opts.IdleTimeout)
		c.s.log.Info("session ended",
			"remote", c.Remote, "user", sess.Mailbox, "password_id", sess.PasswordID,
			"upstream", c.s.opts.Upstream.Address,
			"duration", time.Since(sess.Started).Round(time.Millisecond),
			"bytes_in", st.ClientToUpstream, "bytes_out", st.UpstreamToClient,
			"end", string(st.End), "err", err)
	})
}
