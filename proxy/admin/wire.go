package admin

// The wire format of the admin socket: JSON lines, one request per
// connection (as soju's sojuctl does; bbolt lets only one process open the
// database, so the CLI asks the daemon that holds it):
//
//	-> {"op":"password.create","args":{...}}
//	<- {"event":{...}}        zero or more progress events
//	-> {"input":"..."}        only when an operation asks (pasted URL)
//	<- {"result":...} or {"error":"...","code":1,"hint":"..."}

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
)

// maxLine bounds one JSON line on the socket.
const maxLine = 1 << 20

type request struct {
	Op   string          `json:"op"`
	Args json.RawMessage `json:"args,omitempty"`
}

type reply struct {
	Event  json.RawMessage `json:"event,omitempty"`
	Result json.RawMessage `json:"result,omitempty"`
	Error  string          `json:"error,omitempty"`
	Code   int             `json:"code,omitempty"`
	Hint   string          `json:"hint,omitempty"`
}

type input struct {
	Input string `json:"input"`
}

// replyFor turns an operation's outcome into the final reply line.
func replyFor(res any, err error) reply {
	if err != nil {
		r := reply{Error: err.Error(), Code: CodeFailed}
		var ae *Error
		if errors.As(err, &ae) {
			r.Code, r.Hint = ae.Code, ae.Hint
		}
		return r
	}
	b, err := json.Marshal(res)
	if err != nil {
		return reply{Error: "encode result: " + err.Error(), Code: CodeFailed}
	}
	return reply{Result: b}
}

// replyError is the error a final reply carries, nil for a result.
func replyError(r reply) error {
	if r.Error == "" {
		return nil
	}
	return &Error{Code: max(r.Code, CodeFailed), Err: errors.New(r.Error), Hint: r.Hint}
}

// writeLine writes v as one line of JSON.
func writeLine(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// readLine reads one line of at most maxLine bytes, without its newline.
func readLine(r *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, isPrefix, err := r.ReadLine()
		if err != nil {
			return nil, err
		}
		line = append(line, chunk...)
		if len(line) > maxLine {
			return nil, errors.New("admin line too long")
		}
		if !isPrefix {
			return line, nil
		}
	}
}
