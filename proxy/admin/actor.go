package admin

import (
	"context"
	"log/slog"
)

// Actor is who asked for an operation, for the log line of every change.
type Actor struct {
	Who    string // the signed-in mailbox, or "cli"
	Remote string // client address ("" for the CLI)
}

// cli is the actor of operations that come from the admin socket or run
// in-process for the CLI: only root or the daemon's user gets there.
var cli = Actor{Who: "cli"}

// unknownActor names the actor of a change made without WithActor, so
// that the log line still says that nobody was named.
var unknownActor = Actor{Who: "unknown"}

type actorKey struct{}

// WithActor returns a context that names a as the one asking for the
// operations run with it.
func WithActor(ctx context.Context, a Actor) context.Context {
	return context.WithValue(ctx, actorKey{}, a)
}

// actorFrom returns the actor that ctx names, and whether it names one.
func actorFrom(ctx context.Context) (Actor, bool) {
	a, ok := ctx.Value(actorKey{}).(Actor)
	return a, ok
}

// withDefaultActor names a in ctx unless ctx names an actor already.
func withDefaultActor(ctx context.Context, a Actor) context.Context {
	if _, ok := actorFrom(ctx); ok {
		return ctx
	}
	return WithActor(ctx, a)
}

// logFor returns the service's logger with the actor of ctx as "by" (who)
// and "from" (their address), for the log line of a change.
func (s *Service) logFor(ctx context.Context) *slog.Logger {
	a, ok := actorFrom(ctx)
	if !ok {
		a = unknownActor
	}
	return s.log.With("by", a.Who, "from", a.Remote)
}
