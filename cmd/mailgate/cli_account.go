package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"mailgate/proxy/admin"
)

func cmdAccountLink(e *env, args []string) error {
	f := newFlags("account link", true)
	rest, err := f.parse(args, exactly(1), "MAILBOX")
	if err != nil {
		return err
	}
	in := bufio.NewReader(e.stdin)
	onEvent := func(ev json.RawMessage) (string, error) {
		return e.linkEvent(f.json, rest[0], ev, in)
	}
	raw, err := e.call(f, "account.link", admin.LinkArgs{Mailbox: rest[0]}, onEvent)
	if err != nil {
		return err
	}
	if f.json {
		_, err = fmt.Fprintf(e.stdout, "%s\n", raw)
		return err
	}
	fmt.Fprintf(e.stdout, "%s is linked: its app passwords now work\n", rest[0])
	return nil
}

// linkEvent shows a device code, or an authorization URL whose redirect
// the admin pastes back.
func (e *env) linkEvent(asJSON bool, mailbox string, raw json.RawMessage, in *bufio.Reader) (string, error) {
	var ev struct {
		admin.DeviceCodeEvent
		admin.AuthorizeEvent
	}
	if err := json.Unmarshal(raw, &ev); err != nil {
		return "", err
	}
	if asJSON {
		fmt.Fprintf(e.stdout, "%s\n", raw)
	}
	if ev.AuthorizeURL == "" {
		if !asJSON {
			fmt.Fprintf(e.stdout, "To link %s, sign in as that user at\n\n    %s\n\nand enter the code %s (valid for %s). Waiting...\n",
				mailbox, ev.VerificationURI, ev.UserCode, time.Duration(ev.ExpiresIn)*time.Second)
		}
		return "", nil
	}
	if !asJSON {
		fmt.Fprintf(e.stdout, "To link %s, open this URL in a browser and sign in as that user:\n\n    %s\n\n"+
			"Then paste the address the browser was sent to (it may show an error page): ", mailbox, ev.AuthorizeURL)
	}
	line, err := readLine(e.ctx, in)
	if e.ctx.Err() != nil {
		return "", e.ctx.Err()
	}
	if line = strings.TrimSpace(line); line == "" {
		return "", usageErrorf("account link: no redirected URL given (%v)", err)
	}
	return line, nil
}

// readLine reads a line from in, or returns when ctx ends first: Ctrl-C
// at the paste prompt ends the command instead of waiting for Enter.
func readLine(ctx context.Context, in *bufio.Reader) (string, error) {
	type read struct {
		line string
		err  error
	}
	ch := make(chan read, 1)
	go func() {
		line, err := in.ReadString('\n')
		ch <- read{line, err}
	}()
	select {
	case r := <-ch:
		return r.line, r.err
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

func cmdAccountList(e *env, args []string) error {
	f := newFlags("account list", true)
	if _, err := f.parse(args, exactly(0), ""); err != nil {
		return err
	}
	raw, err := e.call(f, "account.list", admin.ListAccountsArgs{}, nil)
	if err != nil {
		return err
	}
	if f.json {
		_, err = fmt.Fprintf(e.stdout, "%s\n", raw)
		return err
	}
	var as []admin.Account
	if err := json.Unmarshal(raw, &as); err != nil {
		return err
	}
	if len(as) == 0 {
		fmt.Fprintln(e.stdout, "no mailboxes")
		return nil
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MAILBOX\tSTATE\tLINKED\tLAST REFRESH\tPASSWORDS")
	for _, a := range as {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\n", a.Mailbox, accountState(a),
			fmtTime(a.LinkedAt, "-"), fmtTime(a.LastRefresh, "-"), a.Passwords)
	}
	return tw.Flush()
}

// accountState says the link state in the words of "account mailboxes"
// and the portal's /admin page, so the three agree.
func accountState(a admin.Account) string {
	return mailboxState(admin.MailboxRow{Link: a.State, Reason: admin.RelinkWords(a.Reason)})
}

func cmdAccountUnlink(e *env, args []string) error {
	f := newFlags("account unlink", true)
	rest, err := f.parse(args, exactly(1), "MAILBOX")
	if err != nil {
		return err
	}
	raw, err := e.call(f, "account.unlink", admin.UnlinkArgs{Mailbox: rest[0]}, nil)
	if err != nil {
		return err
	}
	if f.json {
		_, err = fmt.Fprintf(e.stdout, "%s\n", raw)
		return err
	}
	var r admin.UnlinkResult
	if err := json.Unmarshal(raw, &r); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "unlinked %s; %d live session(s) closed\n", r.Mailbox, r.Sessions)
	fmt.Fprintf(e.stdout, "its %d app password(s) are kept but fail to log in until the mailbox is linked again;\n"+
		"to delete them: mailgate password revoke-all %s\n", r.Passwords, r.Mailbox)
	return nil
}
