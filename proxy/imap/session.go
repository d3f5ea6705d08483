package imap

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"sync"
	"time"

	"mailgate/proxy"
)

// handOff tells the client it is logged in and relays the session until
// either side ends it, or the session's context ends (revoke, expiry,
// forced shutdown). The bytes already read on both sides go first: a
// client may pipeline its next command right after LOGIN.
func (c *conn) handOff(tag string, sess *proxy.Session, up *upConn) error {
	if c.s.front.Draining() {
		up.nc.Close()
		c.reply("* BYE Server shutting down")
		return errClose
	}
	var once sync.Once
	closeBoth := func() {
		once.Do(func() {
			c.nc.Close()
			up.nc.Close()
		})
	}
	bc := proxy.NewQuietConn(c.nc, closeBoth)
	stop := context.AfterFunc(sess.Context(), closeBoth)
	defer stop()
	c.pc.OnDrain(func(force bool) bool {
		if force {
			closeBoth()
			return true
		}
		return bc.EndIfQuiet(c.s.opts.ShutdownQuiet, byeText)
	})
	c.pc.LoggedIn()
	c.reply("%s OK [CAPABILITY %s] Logged in", tag, clientCaps(up.caps))
	if err := c.bw.Flush(); err != nil {
		closeBoth()
		return errHandedOff
	}
	c.nc.SetDeadline(time.Time{})
	clientBuf, upBuf := c.releaseBuffers(up)
	st, err := proxy.Relay(bc, up.nc, clientBuf, upBuf, c.s.opts.IdleTimeout)
	if cause := context.Cause(sess.Context()); cause != nil && !errors.Is(cause, context.Canceled) {
		err = errors.Join(err, cause)
	}
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
