package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"mailgate/config"
	"mailgate/proxy"
	"mailgate/proxy/oauth"
	"mailgate/store"
)

// service performs the admin operations. The daemon serves it on the admin
// socket; the CLI runs it in-process when no daemon runs (bbolt lets only
// one process open the file). Either way the same code runs.
type service struct {
	cfg     *config.Config
	store   *store.Store
	oauth   *oauth.Manager // nil when the oauth section cannot be used
	tracker *proxy.Tracker // nil outside the daemon: no live sessions
	log     *slog.Logger
}

// conv is the operation's side of a conversation with the CLI: progress
// events out (a device code to show) and, rarely, a line in (a pasted URL).
type conv interface {
	Event(v any) error
	Read() (string, error)
}

// opFunc is one admin operation; args is its JSON argument object.
type opFunc func(ctx context.Context, s *service, args json.RawMessage, c conv) (any, error)

// ops is the table of admin operations, the one place that lists them.
var ops = map[string]opFunc{
	"password.create":     opPasswordCreate,
	"password.list":       opPasswordList,
	"password.revoke":     opPasswordRevoke,
	"password.revoke-all": opPasswordRevokeAll,
	"account.link":        opAccountLink,
	"account.list":        opAccountList,
	"account.unlink":      opAccountUnlink,
	"store.backup":        opStoreBackup,
}

// do runs one operation.
func (s *service) do(ctx context.Context, op string, args json.RawMessage, c conv) (any, error) {
	f, ok := ops[op]
	if !ok {
		return nil, usageErrorf("unknown admin operation %q", op)
	}
	return f(ctx, s, args, c)
}

// decodeArgs decodes an operation's arguments strictly.
func decodeArgs(args json.RawMessage, v any) error {
	if len(args) == 0 {
		return nil
	}
	if err := json.Unmarshal(args, v); err != nil {
		return usageErrorf("bad arguments: %v", err)
	}
	return nil
}

// storeError turns store errors into CLI errors with exit codes and hints.
func storeError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrInvalid):
		return &exitError{code: 2, err: err}
	case errors.Is(err, store.ErrNotFound):
		return withHint(err, "list what exists with \"mailgate password list MAILBOX\"")
	case errors.Is(err, store.ErrTooManyPasswords):
		return withHint(err, "revoke an unused one first, or raise accounts.max_passwords")
	case errors.Is(err, store.ErrDuplicateName):
		return withHint(err, "pick another -name, or revoke the old password first")
	}
	return err
}

// closeSessions ends the live sessions that match, if a daemon runs here.
func (s *service) closeSessions(match func(*proxy.Session) bool) int {
	if s.tracker == nil {
		return 0
	}
	return s.tracker.CloseMatching(match)
}

func (s *service) needOAuth() error {
	if s.oauth == nil {
		return withHint(errors.New("oauth is not configured"), "set the oauth section of the config")
	}
	return nil
}

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }
