package imap

import (
	"bufio"
	"bytes"
	"time"

	"mailgate/proxy"
)

// handOff tells the client it is logged in and relays the session until
// either side ends it, or the session's context ends (revoke, expiry,
// forced shutdown). The bytes already read on both sides go first: a
// client may pipeline its next command right after LOGIN.
func (c *conn) handOff(tag string, sess *proxy.Session, up *upConn) error {
	r, ok := c.s.front.Hand(sess, c.nc, up.nc, byeText, c.s.opts.ShutdownQuiet)
	if !ok {
		up.nc.Close()
		c.reply("* BYE Server shutting down")
		return errClose
	}
	c.reply("%s OK [CAPABILITY %s] Logged in", tag, clientCaps(up.caps))
	if err := c.bw.Flush(); err != nil {
		r.Close()
		return errHandedOff
	}
	clientBuf, upBuf := c.releaseBuffers(up)
	st, err := r.Relay(clientBuf, upBuf, c.s.opts.IdleTimeout)
	c.s.log.Info("session ended",
		"remote", c.remote, "user", sess.Mailbox, "password_id", sess.PasswordID,
		"client", c.clientID, "upstream", c.s.opts.Upstream.Address,
		"duration", time.Since(sess.Started).Round(time.Millisecond),
		"bytes_in", st.ClientToUpstream, "bytes_out", st.UpstreamToClient,
		"end", string(st.End), "err", err)
	return errHandedOff
}

// releaseBuffers returns copies of the bytes read ahead on both sides and
// drops the pre-auth buffered readers and writer, which would otherwise stay
// allocated (12 KiB) for a session that may idle for hours.
func (c *conn) releaseBuffers(up *upConn) (clientBuf, upBuf []byte) {
	clientBuf = peekAll(c.br)
	upBuf = peekAll(up.br)
	c.br, c.bw, up.br = nil, nil, nil
	return clientBuf, upBuf
}

func peekAll(br *bufio.Reader) []byte {
	if br.Buffered() == 0 {
		return nil
	}
	b, _ := br.Peek(br.Buffered())
	return bytes.Clone(b)
}
