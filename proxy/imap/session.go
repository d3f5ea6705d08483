package imap

import (
	"time"

	"mailgate/proxy"
)

// handOff tells the client it is logged in and hands the session to the
// relay, which End runs once the command loop has unwound
// (proxy.TextConn.HandOff), until either side ends it or the session's
// context ends (revoke, expiry, forced shutdown); sess ends with it, or at
// once when the relay cannot start. The bytes already read on both sides go first: a
// client may pipeline its next command right after LOGIN.
func (c *conn) handOff(tag string, sess *proxy.Session, up *upConn) error {
	r, ok := c.s.front.Hand(sess, c.Conn, up.nc, byeText, c.s.opts.ShutdownQuiet)
	if !ok {
		sess.End()
		up.nc.Close()
		c.Reply("* BYE Server shutting down")
		return proxy.ErrClosing
	}
	c.Reply("%s OK [CAPABILITY %s] Logged in", tag, clientCaps(up.caps))
	if err := c.Writer.Flush(); err != nil {
		r.Close()
		sess.End()
		return proxy.ErrHandedOff
	}
	clientBuf, upBuf := c.Release(up.br)
	up.br = nil // not kept for a session that may idle for hours
	return c.HandOff(func() {
		defer sess.End()
		st, err := r.Relay(clientBuf, upBuf, c.s.opts.IdleTimeout)
		c.s.log.Info("session ended",
			"remote", c.Remote, "user", sess.Mailbox, "password_id", sess.PasswordID,
			"client", c.clientID, "upstream", c.s.opts.Upstream.Address,
			"duration", time.Since(sess.Started).Round(time.Millisecond),
			"bytes_in", st.ClientToUpstream, "bytes_out", st.UpstreamToClient,
			"end", string(st.End), "err", err)
	})
}
