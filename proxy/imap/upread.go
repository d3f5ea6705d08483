package imap

import (
	"fmt"
	"io"
	"strings"

	"mailgate/proxy"
)

// read reads responses up to the one tagged tag or a continuation request.
// Untagged responses are consumed here, never relayed; CAPABILITY data and
// [CAPABILITY] codes update up.caps.
func (up *upConn) read(tag string) (*response, error) {
	for {
		line, err := up.readLine()
		if err != nil {
			return nil, fmt.Errorf("read upstream: %w: %w", proxy.ErrUnavailable, err)
		}
		first, rest, _ := strings.Cut(line, " ")
		switch first {
		case "+":
			return &response{cont: true, text: rest}, nil
		case "*":
			up.untagged(rest)
		case tag:
			status, text := splitStatus(rest)
			if c := capCode(text); c != nil {
				up.caps = c
			}
			return &response{status: status, text: text}, nil
		}
		// Another tag cannot happen: we send one command at a time.
	}
}

func (up *upConn) untagged(rest string) {
	name, args, _ := strings.Cut(rest, " ")
	switch strings.ToUpper(name) {
	case "CAPABILITY":
		up.caps = strings.Fields(args)
	case "OK":
		if c := capCode(args); c != nil {
			up.caps = c
		}
	}
}

// readLine reads one response line. Literals inside it (a mailbox name in a
// LIST or STATUS reply) are read and dropped: only the line matters here.
func (up *upConn) readLine() (string, error) {
	var sb strings.Builder
	for {
		line, err := proxy.ReadLine(up.br, upMaxLine)
		if err != nil {
			return "", err
		}
		sb.Write(line)
		n, _, ok := literalSuffix(line)
		if !ok {
			return sb.String(), nil
		}
		if n > upMaxLiteral || sb.Len() > upMaxLine {
			return "", fmt.Errorf("upstream response too large: %w", errUpstreamProto)
		}
		if _, err := io.CopyN(io.Discard, up.br, n); err != nil {
			return "", err
		}
	}
}

// splitStatus splits "OK text" into the upper-cased status and the text.
func splitStatus(s string) (status, text string) {
	status, text, _ = strings.Cut(s, " ")
	return strings.ToUpper(status), text
}

// capCode returns the list in a leading "[CAPABILITY ...]" response code,
// or nil.
func capCode(text string) []string {
	if len(text) < 12 || !strings.EqualFold(text[:12], "[CAPABILITY ") {
		return nil
	}
	list, _, ok := strings.Cut(text[12:], "]")
	if !ok {
		return nil
	}
	return strings.Fields(list)
}

// clientCaps is the upstream's post-login list without what only concerns the
// login we already did. Everything else is relayed as is: never advertise what
// the upstream lacks (docs/clients.md, "Upstreams differ in capabilities").
func clientCaps(upstream []string) string {
	var out []string
	for _, c := range upstream {
		u := strings.ToUpper(c)
		if u == "STARTTLS" || u == "LOGINDISABLED" || u == "SASL-IR" || strings.HasPrefix(u, "AUTH=") {
			continue
		}
		out = append(out, c)
	}
	return strings.Join(out, " ")
}
