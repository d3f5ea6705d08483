package main

// The admin socket: the daemon serves the operations of service.go as JSON
// lines on a 0600 unix socket (as soju's sojuctl does), because bbolt lets
// only one process open the database. One connection carries one request:
//
//	-> {"op":"password.create","args":{...}}
//	<- {"event":{...}}        zero or more progress events
//	-> {"input":"..."}        only when an operation asks (pasted URL)
//	<- {"result":...} or {"error":"...","code":1,"hint":"..."}

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"syscall"
	"time"
)

// maxAdminLine bounds one JSON line on the socket.
const maxAdminLine = 1 << 20

type adminRequest struct {
	Op   string          `json:"op"`
	Args json.RawMessage `json:"args,omitempty"`
}

type adminReply struct {
	Event  json.RawMessage `json:"event,omitempty"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  string          `json:"error,omitempty"`
	Code   int             `json:"code,omitempty"`
	Hint   string          `json:"hint,omitempty"`
}

type adminInput struct {
	Input string `json:"input"`
}

// listenAdmin creates the socket with mode 0600. A stale socket file left by
// a crashed daemon is removed; a live one means another daemon runs.
func listenAdmin(path string) (net.Listener, error) {
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("admin socket %s: another mailgate daemon is running", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	old := syscall.Umask(0o177) // the socket is born 0600, no window
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	return ln, os.Chmod(path, 0o600)
}

// serveAdmin serves the admin socket until ln is closed.
func serveAdmin(ln net.Listener, svc *service, log *slog.Logger) {
	for {
		c, err := ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			log.Warn("admin socket accept", "err", err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		go serveAdminConn(c, svc, log)
	}
}

func serveAdminConn(c net.Conn, svc *service, log *slog.Logger) {
	defer c.Close()
	if err := checkPeer(c); err != nil {
		log.Warn("admin socket peer refused", "err", err)
		return
	}
	sc := newSockConv(c)
	var req adminRequest
	line, err := sc.readLine()
	if err == nil {
		err = json.Unmarshal(line, &req)
	}
	if err != nil {
		sc.write(adminReply{Error: "bad admin request", Code: 2})
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sc.watch(ctx, cancel) // the CLI going away (Ctrl-C) cancels the operation
	res, err := svc.do(ctx, req.Op, req.Args, sc)
	sc.write(replyFor(res, err))
}

// replyFor turns an operation's outcome into the final reply line.
func replyFor(res any, err error) adminReply {
	if err != nil {
		r := adminReply{Error: err.Error(), Code: 1}
		var ee *exitError
		if errors.As(err, &ee) {
			r.Code, r.Hint = ee.code, ee.hint
		}
		return r
	}
	b, err := json.Marshal(res)
	if err != nil {
		return adminReply{Error: "encode result: " + err.Error(), Code: 1}
	}
	return adminReply{Result: b}
}

// sockConv is the daemon's side of a conversation with one CLI.
type sockConv struct {
	c      net.Conn
	r      *bufio.Reader
	inputs chan string
}

func newSockConv(c net.Conn) *sockConv {
	return &sockConv{c: c, r: bufio.NewReaderSize(c, 4096), inputs: make(chan string)}
}

func (s *sockConv) readLine() ([]byte, error) {
	var line []byte
	for {
		chunk, isPrefix, err := s.r.ReadLine()
		if err != nil {
			return nil, err
		}
		line = append(line, chunk...)
		if len(line) > maxAdminLine {
			return nil, errors.New("admin line too long")
		}
		if !isPrefix {
			return line, nil
		}
	}
}

// watch reads input lines for Read and cancels the operation when the
// connection ends.
func (s *sockConv) watch(ctx context.Context, cancel context.CancelFunc) {
	go func() {
		defer cancel()
		for {
			line, err := s.readLine()
			if err != nil {
				return
			}
			var in adminInput
			if json.Unmarshal(line, &in) != nil {
				return
			}
			select {
			case s.inputs <- in.Input:
			case <-ctx.Done():
				return
			}
		}
	}()
}

func (s *sockConv) write(r adminReply) error {
	return printJSON(s.c, r)
}

// Event implements conv.
func (s *sockConv) Event(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return s.write(adminReply{Event: b})
}

// Read implements conv.
func (s *sockConv) Read() (string, error) {
	in, ok := <-s.inputs
	if !ok {
		return "", io.EOF
	}
	return in, nil
}
