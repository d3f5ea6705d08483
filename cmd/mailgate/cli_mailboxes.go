package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"

	"mailgate/proxy/admin"
)

func cmdAccountMailboxes(e *env, args []string) error {
	f := newFlags("account mailboxes", true)
	var a admin.MailboxesArgs
	f.IntVar(&a.Limit, "limit", 0, "at most `N` rows, up to 500 (default 50)")
	f.IntVar(&a.Offset, "offset", 0, "skip the first `N` rows")
	rest, err := f.parse(args, atMost(1), "[SEARCH]")
	if err != nil {
		return err
	}
	if len(rest) == 1 {
		a.Query = rest[0]
	}
	raw, err := e.call(f, "account.mailboxes", a, nil)
	if err != nil {
		return err
	}
	if f.json {
		_, err = fmt.Fprintf(e.stdout, "%s\n", raw)
		return err
	}
	var res admin.MailboxesResult
	if err := json.Unmarshal(raw, &res); err != nil {
		return err
	}
	if len(res.Rows) == 0 {
		fmt.Fprintf(e.stdout, "no mailboxes (%d match)\n", res.Total)
		return nil
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MAILBOX\tSTATE\tPASSWORDS\tLAST USED")
	for _, r := range res.Rows {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", r.Mailbox, mailboxState(r), r.Passwords, fmtLastUse(r.LastUsed))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(res.Rows) < res.Total {
		fmt.Fprintf(e.stdout, "rows %d to %d of %d; see more with -offset %d\n",
			a.Offset+1, a.Offset+len(res.Rows), res.Total, a.Offset+len(res.Rows))
	}
	return nil
}

func mailboxState(r admin.MailboxRow) string {
	switch r.Link {
	case admin.LinkNeedsRelink:
		return "needs re-link: " + r.Reason
	case admin.LinkLinked:
		return "linked"
	}
	return "not linked"
}
