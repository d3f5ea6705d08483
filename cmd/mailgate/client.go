package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"syscall"
	"time"

	"mailgate/config"
	"mailgate/proxy/admin"
	"mailgate/store"
)

// answerTimeout bounds the wait for the daemon's answer, so that a daemon
// that takes the request but hangs (stopped, stuck) ends the command with a
// hint. The slowest operation, an unlink that waits for a refresh (at most
// 30 s), takes far less. account link, which waits for a person, has no
// bound: Ctrl-C ends it.
var answerTimeout = 2 * time.Minute

// call runs an admin operation: through the daemon's socket when it runs,
// else on the store opened here. The result is the operation's JSON.
func (e *env) call(f *flags, op string, args any, onEvent admin.EventFunc) (json.RawMessage, error) {
	cfg, err := loadConfig(f.config)
	if err != nil {
		return nil, err
	}
	c, err := net.DialTimeout("unix", cfg.Admin.Socket, 2*time.Second)
	switch {
	case err == nil:
		return e.callDaemon(c, cfg.Admin.Socket, op, args, onEvent)
	case errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED):
		return callLocal(e.ctx, cfg, op, args, onEvent)
	case errors.Is(err, os.ErrPermission):
		return nil, withHint(fmt.Errorf("admin socket %s: %w", cfg.Admin.Socket, err),
			"run this as root or as the user the daemon runs as")
	}
	return nil, fmt.Errorf("admin socket %s: %w", cfg.Admin.Socket, err)
}

// callDaemon runs the operation in the daemon over c, waiting at most
// answerTimeout unless the operation asks the admin for input (onEvent).
func (e *env) callDaemon(c net.Conn, socket, op string, args any, onEvent admin.EventFunc) (json.RawMessage, error) {
	ctx := e.ctx
	if onEvent == nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, answerTimeout)
		defer cancel()
	}
	raw, err := admin.Call(ctx, c, op, args, onEvent)
	if errors.Is(err, context.DeadlineExceeded) {
		return nil, withHint(fmt.Errorf("admin socket %s: no answer from the daemon in %v", socket, answerTimeout),
			"the daemon is stuck or stopped; check its log (journalctl -u mailgate) and restart it")
	}
	return raw, err
}

// callLocal opens the store itself and runs the operation in-process.
func callLocal(ctx context.Context, cfg *config.Config, op string, args any, onEvent admin.EventFunc) (json.RawMessage, error) {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	st, err := openStore(cfg, log, nil)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	svc := &service{cfg: cfg, store: st, log: log} // no daemon: no live sessions
	if m, err := newOAuth(cfg, st, log); err == nil {
		svc.oauth = m
	}
	return svc.admin().Call(ctx, op, args, onEvent)
}

// openStore opens the configured store, with a hint when a bbolt file is
// held by another process. onChange receives the shared store's changes
// (postgres); nil outside the daemon.
func openStore(cfg *config.Config, log *slog.Logger, onChange func(store.Change)) (*store.Store, error) {
	opts := storeOptions(cfg, log)
	opts.OnChange = onChange
	st, err := store.Open(opts)
	if errors.Is(err, store.ErrInUse) {
		return nil, withHint(err, "if the daemon runs, check that admin.socket in this config is the one it serves")
	}
	return st, err
}

// storeOptions turns the store section into store.Options. The DSN goes
// to the store only: it may hold a password and is never logged.
func storeOptions(cfg *config.Config, log *slog.Logger) *store.Options {
	o := &store.Options{KeyFile: cfg.Store.KeyFile, MaxPasswords: cfg.Accounts.MaxPasswords, Logger: log}
	if cfg.Store.Driver == config.DriverPostgres {
		o.Driver, o.DSN = store.DriverPostgres, cfg.Store.DSN
	} else {
		o.Driver, o.Path = store.DriverBolt, cfg.Store.Path
	}
	return o
}

// loadConfig finds and loads the config, with a hint when the config
// file itself is missing (not a file it names, such as a secret file).
func loadConfig(flagValue string) (*config.Config, error) {
	path := config.Find(flagValue)
	cfg, err := config.Load(path)
	var pe *fs.PathError
	if errors.As(err, &pe) && pe.Path == path && errors.Is(pe, fs.ErrNotExist) {
		return nil, withHint(err, "pass -config FILE or set MAILGATE_CONFIG (example: testdata/config/mailgate.example.yaml)")
	}
	return cfg, err
}
