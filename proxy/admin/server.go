package admin

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"syscall"
	"time"
)

// Timeouts of a conversation on the admin socket. The CLI sends its
// request as soon as it connects; it reads every line the daemon writes
// unless it is stopped, and then its connection is gone.
const (
	requestTimeout = 10 * time.Second // from accept to the request line
	writeTimeout   = 10 * time.Second // for one event or reply line
)

// errGone is what Conv.Read returns once the client has gone.
var errGone = errors.New("the admin client went away")

// Handler runs admin operations; *Service is the one the daemon serves.
type Handler interface {
	Do(ctx context.Context, op string, args json.RawMessage, c Conv) (any, error)
}

var _ Handler = (*Service)(nil)

// Listen creates the admin socket at path with mode 0600. A stale socket
// file left by a crashed daemon is removed; a live one means another
// daemon runs.
func Listen(path string) (net.Listener, error) {
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("admin socket %s: another mailgate daemon is running", path)
	}
	if err := removeStale(path); err != nil {
		return nil, err
	}
	old := syscall.Umask(0o177) // the socket is born 0600, no window
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	return ln, os.Chmod(path, 0o600)
}

// removeStale removes a socket file that no daemon serves. Anything else
// at the path is refused, not removed: admin.socket pointed by mistake at
// the database (which this daemon holds open), the key file or the config
// would otherwise be deleted.
func removeStale(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("admin socket: %w", err)
	}
	if fi.Mode().Type() != os.ModeSocket {
		return fmt.Errorf("admin socket %s: %w: the path names a file that is not a socket", path, os.ErrExist)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("admin socket: %w", err)
	}
	return nil
}

// Server serves admin operations on the admin socket, one request per
// connection, to root and the daemon's own user only: the CLI, which is
// the actor its changes are logged with.
type Server struct {
	Handler Handler
	Logger  *slog.Logger // nil: slog.Default()
}

// Serve serves ln until it is closed.
func (s *Server) Serve(ln net.Listener) error {
	log := s.Logger
	if log == nil {
		log = slog.Default()
	}
	for {
		c, err := ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return nil
		}
		if err != nil {
			log.Warn("admin socket accept", "err", err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		go s.serveConn(c, log)
	}
}

// serveConn holds one conversation. It returns, and the connection and
// the watcher go, once the operation has ended; the client going away
// ends the operation.
func (s *Server) serveConn(c net.Conn, log *slog.Logger) {
	defer c.Close()
	if err := checkPeer(c); err != nil {
		log.Warn("admin socket peer refused", "err", err)
		return
	}
	cv := &sockConv{c: c, r: bufio.NewReaderSize(c, 4096), inputs: make(chan string)}
	c.SetReadDeadline(time.Now().Add(requestTimeout))
	req, err := cv.readRequest()
	if err != nil {
		cv.write(reply{Error: "bad admin request", Code: CodeUsage})
		return
	}
	c.SetReadDeadline(time.Time{})
	ctx, cancel := context.WithCancel(WithActor(context.Background(), cli))
	watched := cv.watch(ctx, cancel)
	res, err := s.Handler.Do(ctx, req.Op, req.Args, cv)
	cv.write(replyFor(res, err))
	cancel()
	c.Close() // ends the watcher's read
	<-watched
}

// sockConv is the daemon's side of a conversation with one client.
type sockConv struct {
	c      net.Conn
	r      *bufio.Reader
	inputs chan string // closed when the client has gone
}

func (s *sockConv) readRequest() (request, error) {
	var req request
	line, err := readLine(s.r)
	if err == nil {
		err = decodeStrict(line, &req)
	}
	return req, err
}

// watch reads the client's input lines for Read until the connection
// ends, then cancels the operation and closes inputs, so that a Read
// waiting for a line returns. The channel it returns is closed when it
// has stopped.
func (s *sockConv) watch(ctx context.Context, cancel context.CancelFunc) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(s.inputs)
		defer cancel()
		for {
			line, err := readLine(s.r)
			if err != nil {
				return
			}
			var in input
			if decodeStrict(line, &in) != nil {
				return
			}
			select {
			case s.inputs <- in.Input:
			case <-ctx.Done():
				return
			}
		}
	}()
	return done
}

func (s *sockConv) write(r reply) error {
	s.c.SetWriteDeadline(time.Now().Add(writeTimeout))
	return writeLine(s.c, r)
}

// Event implements Conv.
func (s *sockConv) Event(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return s.write(reply{Event: b})
}

// Read implements Conv.
func (s *sockConv) Read() (string, error) {
	in, ok := <-s.inputs
	if !ok {
		return "", errGone
	}
	return in, nil
}
