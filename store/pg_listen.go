package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// The change feed: one connection per instance LISTENs for the NOTIFY that
// every revoke, revoke-all and unlink sends in its transaction. NOTIFY is
// not replayed to a listener that was away, so after the connection is
// lost and regained the feed reports one Resync and the caller re-checks
// every live session.
const (
	// listenCheckInterval: a server that hangs (no reset, no FIN) leaves
	// the wait silent forever, so after this long without a notification
	// the connection is pinged.
	listenCheckInterval = 5 * time.Second
	// listenBackoffMin and listenBackoffMax space reconnection attempts.
	// The cap keeps recovery within 15 s of the database coming back: at
	// most 4 s of waiting plus pgConnectTimeout.
	listenBackoffMin = 250 * time.Millisecond
	listenBackoffMax = 4 * time.Second
)

// start connects the listener before Open returns, so no change made
// after Open is missed.
func (p *pgDB) start(onChange func(Change)) error {
	if onChange == nil {
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	conn, err := p.listenConn(ctx)
	if err != nil {
		cancel()
		return pgError(err)
	}
	p.listen.cancel, p.listen.done = cancel, make(chan struct{})
	go p.listenLoop(ctx, conn, onChange)
	return nil
}

// listenConn opens a connection of its own (not from the pool: it stays
// in LISTEN for the store's life) and subscribes.
func (p *pgDB) listenConn(ctx context.Context) (*pgx.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, pgQueryTimeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, p.dsn.Copy())
	if err != nil {
		return nil, err
	}
	if _, err := conn.Exec(ctx, "LISTEN "+notifyChange); err != nil {
		conn.Close(context.Background())
		return nil, err
	}
	return conn, nil
}

func (p *pgDB) listenLoop(ctx context.Context, conn *pgx.Conn, onChange func(Change)) {
	defer close(p.listen.done)
	for {
		err := p.receive(ctx, conn, onChange)
		conn.Close(context.Background())
		if ctx.Err() != nil {
			return
		}
		p.log.Warn("store: change feed lost; reconnecting", "err", err)
		if conn = p.reconnect(ctx); conn == nil {
			return
		}
		p.log.Info("store: change feed back; re-checking live sessions")
		onChange(Change{Kind: Resync})
	}
}

// receive delivers notifications until the connection fails or ctx ends.
func (p *pgDB) receive(ctx context.Context, conn *pgx.Conn, onChange func(Change)) error {
	for {
		wctx, cancel := context.WithTimeout(ctx, listenCheckInterval)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err == nil:
			if c, ok := parseChange(n.Payload); ok {
				onChange(c)
			}
		case pgconn.Timeout(err):
			// Quiet: check the server still answers.
			if err := p.pingConn(ctx, conn); err != nil {
				return err
			}
		default:
			return err
		}
	}
}

func (p *pgDB) pingConn(ctx context.Context, conn *pgx.Conn) error {
	ctx, cancel := context.WithTimeout(ctx, pgPingTimeout)
	defer cancel()
	return conn.Ping(ctx)
}

// reconnect retries with doubling waits up to listenBackoffMax until it
// gets a listening connection; nil once ctx ends.
func (p *pgDB) reconnect(ctx context.Context) *pgx.Conn {
	wait := listenBackoffMin
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		conn, err := p.listenConn(ctx)
		if err == nil {
			return conn
		}
		p.log.Debug("store: change feed reconnect failed", "err", err)
		wait = min(2*wait, listenBackoffMax)
	}
}
