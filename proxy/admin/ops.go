package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"slices"
)

// Conv is an operation's side of its conversation with the admin:
// progress events out (a device code to show) and, for the operations that
// ask, a line in (a pasted URL).
type Conv interface {
	Event(v any) error
	// Read returns the admin's next line; an error once the admin has gone.
	Read() (string, error)
}

// Op is one admin operation in the table.
type Op struct {
	Name string // "password.create"; the CLI command is the name with a space for the dot
	run  func(ctx context.Context, s *Service, args json.RawMessage, c Conv) (any, error)
}

// ops is the table of admin operations, the one place that lists them.
// Each entry's method documents the operation; its argument and result
// types are its wire format.
var ops = []Op{
	op("password.create", (*Service).CreatePassword),
	op("password.list", (*Service).ListPasswords),
	op("password.revoke", (*Service).RevokePassword),
	op("password.revoke-all", (*Service).RevokeAll),
	convOp("account.link", (*Service).Link),
	op("account.list", (*Service).ListAccounts),
	op("account.mailboxes", (*Service).Mailboxes),
	op("account.unlink", (*Service).Unlink),
	op("store.backup", (*Service).Backup),
}

// Ops returns the table of admin operations.
func Ops() []Op { return slices.Clone(ops) }

// convOp makes a table entry of a method that converses with the admin:
// its arguments are decoded strictly from JSON.
func convOp[A, R any](name string, f func(*Service, context.Context, A, Conv) (R, error)) Op {
	return Op{Name: name, run: func(ctx context.Context, s *Service, raw json.RawMessage, c Conv) (any, error) {
		var a A
		if err := decodeArgs(raw, &a); err != nil {
			return nil, err
		}
		return f(s, ctx, a, c)
	}}
}

// op makes a table entry of a method that only takes its arguments.
func op[A, R any](name string, f func(*Service, context.Context, A) (R, error)) Op {
	return convOp(name, func(s *Service, ctx context.Context, a A, _ Conv) (R, error) { return f(s, ctx, a) })
}

// Do runs the operation named op with its JSON arguments; the result is
// the operation's result type. An unknown operation or arguments that do
// not decode are a usage error.
func (s *Service) Do(ctx context.Context, op string, args json.RawMessage, c Conv) (any, error) {
	for _, o := range ops {
		if o.Name == op {
			return o.run(ctx, s, args, c)
		}
	}
	return nil, Usagef("unknown admin operation %q", op)
}

// decodeArgs decodes an operation's arguments strictly: unknown fields
// and data after the object are refused. No arguments are the zero value.
func decodeArgs(raw json.RawMessage, v any) error {
	if len(raw) == 0 {
		return nil
	}
	if err := decodeStrict(raw, v); err != nil {
		return Usagef("bad arguments: %v", err)
	}
	return nil
}

// decodeStrict decodes exactly one JSON value with no unknown fields.
func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("data after the JSON value")
	}
	return nil
}

// Call runs an operation in-process, as the CLI does when no daemon runs:
// args are marshalled and decoded like a request on the socket, events go
// to onEvent, and the result comes back as its JSON. The actor is the
// CLI's unless ctx names one (WithActor).
func (s *Service) Call(ctx context.Context, op string, args any, onEvent EventFunc) (json.RawMessage, error) {
	raw, err := json.Marshal(args)
	if err != nil {
		return nil, err
	}
	ctx = withDefaultActor(ctx, cli)
	res, err := s.Do(ctx, op, raw, &localConv{onEvent: onEvent})
	if err != nil {
		return nil, err
	}
	return json.Marshal(res)
}

// localConv is the in-process conversation: events go straight to the
// caller, whose answer to the last one is the next line read.
type localConv struct {
	onEvent EventFunc
	answer  string
}

func (l *localConv) Event(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if l.onEvent == nil {
		return nil
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
