package proxy

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"
)

// Relayed is a logged-in session on its way to the byte relay, the part
// every relaying front end (IMAP, POP3) shares: both connections close
// when the session's Context ends (revoke, expiry, forced stop), Shutdown
// ends it between two responses (QuietConn), and the connection no longer
// counts as pre-auth.
type Relayed struct {
	sess   *Session
	client *QuietConn
	up     net.Conn
	stop   func() bool
	once   sync.Once
	count  RelayCounters
}

// Hand prepares to relay sess between client (a connection f accepted, TLS
// or not) and up. It returns false when f is draining: the caller refuses
// the login. Otherwise the caller writes its success reply and calls
// Relay. goodbye is written to the client when Shutdown ends a quiet
// session ("" closes without a word).
func (f *Front) Hand(sess *Session, client, up net.Conn, goodbye string, quiet time.Duration) (*Relayed, bool) {
	if f.Draining() {
		return nil, false
	}
	r := &Relayed{sess: sess, up: up, count: f.o.RelayCounters}
	r.client = NewQuietConn(client, r.Close)
	r.stop = context.AfterFunc(sess.Context(), r.Close)
	pc := ConnOf(client)
	pc.OnDrain(func(force bool) bool {
		if force {
			r.Close()
			return true
		}
		return r.client.EndIfQuiet(quiet, goodbye)
	})
	pc.LoggedIn()
	return r, true
}

// Close ends the session: both connections close. Safe more than once and
// from any goroutine.
func (r *Relayed) Close() {
	r.once.Do(func() {
		r.client.Conn.Close()
		r.up.Close()
	})
}

// Relay copies both ways, the bytes already read on either side first,
// until a side ends, idle passes or the session is ended. The error
// includes why the session was ended for it (ErrRevoked, ErrExpired,
// ErrStopping).
func (r *Relayed) Relay(clientBuf, upBuf []byte, idle time.Duration) (RelayStats, error) {
	defer r.stop()
	r.client.Conn.SetDeadline(time.Time{})
	st, err := Relay(r.client, r.up, clientBuf, upBuf, idle, r.count)
	if cause := context.Cause(r.sess.Context()); cause != nil && !errors.Is(cause, context.Canceled) {
		err = errors.Join(err, cause)
	}
	return st, err
}
