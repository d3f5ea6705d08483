package main

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

	"mailgate/config"
	"mailgate/store"
)

// eventFunc handles a progress event; a non-empty answer is sent back as the
// input the operation asked for.
type eventFunc func(ev json.RawMessage) (answer string, err error)

// call runs an admin operation: through the daemon's socket when it runs,
// else on the store opened here. The result is the operation's JSON.
func (e *env) call(f *flags, op string, args any, onEvent eventFunc) (json.RawMessage, error) {
	cfg, err := loadConfig(f.config)
	if err != nil {
		return nil, err
	}
	argJSON, err := json.Marshal(args)
	if err != nil {
		return nil, err
	}
	c, err := net.DialTimeout("unix", cfg.Admin.Socket, 2*time.Second)
	switch {
	case err == nil:
		return callDaemon(e.ctx, c, adminRequest{Op: op, Args: argJSON}, onEvent)
	case errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED):
		return callLocal(e.ctx, cfg, op, argJSON, onEvent)
	case errors.Is(err, os.ErrPermission):
		return nil, withHint(fmt.Errorf("admin socket %s: %w", cfg.Admin.Socket, err),
			"run this as root or as the user the daemon runs as")
	}
	return nil, fmt.Errorf("admin socket %s: %w", cfg.Admin.Socket, err)
}

// callDaemon sends one request and reads events until the final reply.
func callDaemon(ctx context.Context, c net.Conn, req adminRequest, onEvent eventFunc) (json.RawMessage, error) {
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() }) // Ctrl-C ends the operation
	defer stop()
	if err := printJSON(c, req); err != nil {
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	r := bufio.NewReaderSize(c, 64<<10)
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("admin socket: daemon closed the connection: %w", err)
		}
		var rep adminReply
		if err := json.Unmarshal(line, &rep); err != nil {
			return nil, fmt.Errorf("admin socket: bad reply: %w", err)
		}
		if rep.Event == nil {
			return rep.Result, replyError(rep)
		}
		answer, err := onEvent(rep.Event)
		if err != nil {
			return nil, err
		}
		if answer != "" {
			if err := printJSON(c, adminInput{Input: answer}); err != nil {
				return nil, fmt.Errorf("admin socket: %w", err)
			}
		}
	}
}

func replyError(rep adminReply) error {
	if rep.Error == "" {
		return nil
	}
	return &exitError{code: max(rep.Code, 1), err: errors.New(rep.Error), hint: rep.Hint}
}

// callLocal opens the store itself and runs the operation in-process.
func callLocal(ctx context.Context, cfg *config.Config, op string, args json.RawMessage, onEvent eventFunc) (json.RawMessage, error) {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	st, err := openStore(cfg, log)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	svc := newService(cfg, st, nil, log)
	res, err := svc.do(ctx, op, args, &localConv{onEvent: onEvent})
	if err != nil {
		return nil, err
	}
	return json.Marshal(res)
}

// openStore opens the store with a lock timeout and a hint when the file is
// held by another process.
func openStore(cfg *config.Config, log *slog.Logger) (*store.Store, error) {
	st, err := store.Open(&store.Options{
		Path: cfg.Store.Path, KeyFile: cfg.Store.KeyFile,
		MaxPasswords: cfg.Accounts.MaxPasswords, Logger: log,
	})
	if errors.Is(err, store.ErrInUse) {
		return nil, withHint(err, "if the daemon runs, check that admin.socket in this config is the one it serves")
	}
	return st, err
}

// localConv is the in-process conversation: events go straight to the CLI.
type localConv struct {
	onEvent eventFunc
	answer  string
}

func (l *localConv) Event(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	l.answer, err = l.onEvent(b)
	return err
}

func (l *localConv) Read() (string, error) {
	if l.answer == "" {
		return "", io.EOF
	}
	a := l.answer
	l.answer = ""
	return a, nil
}

// loadConfig finds and loads the config, with a hint when it is missing.
func loadConfig(flagValue string) (*config.Config, error) {
	path := config.Find(flagValue)
	cfg, err := config.Load(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, withHint(err, "pass -config FILE or set MAILGATE_CONFIG (example: testdata/config/mailgate.example.yaml)")
	}
	return cfg, err
}
