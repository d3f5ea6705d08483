package admin

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
)

// EventFunc handles a progress event; a non-empty answer is sent back as
// the line the operation asked for.
type EventFunc func(ev json.RawMessage) (answer string, err error)

// Call runs an operation in the daemon over c, a connection to its admin
// socket: it sends the request, hands events to onEvent and returns the
// final result's JSON, or its error as an *Error. c is closed at the end,
// and when ctx ends, which ends the operation in the daemon too (Ctrl-C).
func Call(ctx context.Context, c net.Conn, op string, args any, onEvent EventFunc) (json.RawMessage, error) {
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	raw, err := json.Marshal(args)
	if err != nil {
		return nil, err
	}
	if err := writeLine(c, request{Op: op, Args: raw}); err != nil {
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
		var rep reply
		if err := json.Unmarshal(line, &rep); err != nil {
			return nil, fmt.Errorf("admin socket: bad reply: %w", err)
		}
		if rep.Event == nil {
			return rep.Result, replyError(rep)
		}
		if err := answer(c, rep.Event, onEvent); err != nil {
			return nil, err
		}
	}
}

// answer hands an event to onEvent and sends its answer, if any.
func answer(c net.Conn, ev json.RawMessage, onEvent EventFunc) error {
	if onEvent == nil {
		return nil
	}
	a, err := onEvent(ev)
	if err != nil || a == "" {
		return err
	}
	if err := writeLine(c, input{Input: a}); err != nil {
		return fmt.Errorf("admin socket: %w", err)
	}
	return nil
}
