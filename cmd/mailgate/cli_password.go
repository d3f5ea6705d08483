package main

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"mailgate/proxy/admin"
)

func cmdPasswordCreate(e *env, args []string) error {
	f := newFlags("password create", true)
	name := f.String("name", "", "`NAME` of the device the password is for (required)")
	// No -scope means "all": every protocol, including ones added later.
	scope := f.String("scope", "", "comma-separated `SCOPES`: imap, pop3, smtp or all (default: all)")
	expires := f.String("expires", "", "lifetime, e.g. 90d or 12h, or a date 2027-01-31 (default: never)")
	rest, err := f.parse(args, exactly(1), "-name NAME [-scope imap,pop3,smtp|all] [-expires 90d] MAILBOX")
	if err != nil {
		return err
	}
	if *name == "" {
		return usageErrorf("password create: -name is required (e.g. -name \"Outlook at home\")")
	}
	exp, err := parseExpiry(*expires, time.Now())
	if err != nil {
		return usageErrorf("password create: -expires: %v", err)
	}
	a := admin.CreateArgs{Mailbox: rest[0], Name: *name, Scopes: splitList(*scope), Expires: exp}
	raw, err := e.call(f, "password.create", a, nil)
	if err != nil {
		return err
	}
	if f.json {
		_, err = fmt.Fprintf(e.stdout, "%s\n", raw)
		return err
	}
	var res admin.CreateResult
	if err := json.Unmarshal(raw, &res); err != nil {
		return err
	}
	printCreated(e, &res)
	return nil
}

func printCreated(e *env, r *admin.CreateResult) {
	w := e.stdout
	fmt.Fprintf(w, "App password for %s (%q), shown only this once:\n\n    %s\n\n", r.Mailbox, r.Name, r.Secret)
	fmt.Fprintf(w, "Enter it in the mail client with these settings:\n")
	fmt.Fprintf(w, "  user name:        %s\n  password:         the app password above\n", r.Mailbox)
	for _, ep := range r.Settings.IMAP {
		fmt.Fprintf(w, "  incoming (IMAP):  %s, port %d, %s\n", r.Settings.Hostname, ep.Port, ep.Security)
	}
	for _, ep := range r.Settings.POP3 {
		fmt.Fprintf(w, "  incoming (POP3):  %s, port %d, %s\n", r.Settings.Hostname, ep.Port, ep.Security)
	}
	for _, ep := range r.Settings.SMTP {
		fmt.Fprintf(w, "  outgoing (SMTP):  %s, port %d, %s, authentication required\n", r.Settings.Hostname, ep.Port, ep.Security)
	}
	fmt.Fprintf(w, "  scopes: %s; expires: %s\n", strings.Join(r.Scopes, ", "), fmtTime(r.Expires, "never"))
	fmt.Fprintf(w, "\nID %s; to revoke: mailgate password revoke %s %s\n", r.ID, r.Mailbox, r.ID)
}

func cmdPasswordList(e *env, args []string) error {
	f := newFlags("password list", true)
	rest, err := f.parse(args, atMost(1), "[MAILBOX]")
	if err != nil {
		return err
	}
	var a admin.ListArgs
	if len(rest) == 1 {
		a.Mailbox = rest[0]
	}
	raw, err := e.call(f, "password.list", a, nil)
	if err != nil {
		return err
	}
	if f.json {
		_, err = fmt.Fprintf(e.stdout, "%s\n", raw)
		return err
	}
	var ps []admin.AppPassword
	if err := json.Unmarshal(raw, &ps); err != nil {
		return err
	}
	if len(ps) == 0 {
		fmt.Fprintln(e.stdout, "no app passwords")
		return nil
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MAILBOX\tID\tNAME\tSCOPES\tCREATED\tEXPIRES\tLAST USED")
	for _, p := range ps {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.Mailbox, p.ID, p.Name, strings.Join(p.Scopes, ","),
			p.Created.Local().Format(time.DateTime), fmtTime(p.Expires, "never"), fmtLastUse(p.LastUsed))
	}
	return tw.Flush()
}

func cmdPasswordRevoke(e *env, args []string) error {
	f := newFlags("password revoke", true)
	rest, err := f.parse(args, exactly(2), "MAILBOX ID")
	if err != nil {
		return err
	}
	return e.printRevoked(f, "password.revoke", admin.RevokeArgs{Mailbox: rest[0], ID: rest[1]})
}

func cmdPasswordRevokeAll(e *env, args []string) error {
	f := newFlags("password revoke-all", true)
	rest, err := f.parse(args, atLeast(1), "MAILBOX...")
	if err != nil {
		return err
	}
	return e.printRevoked(f, "password.revoke-all", admin.RevokeAllArgs{Mailboxes: rest})
}

func (e *env) printRevoked(f *flags, op string, args any) error {
	raw, err := e.call(f, op, args, nil)
	if err != nil {
		return err
	}
	if f.json {
		_, err = fmt.Fprintf(e.stdout, "%s\n", raw)
		return err
	}
	var res admin.RevokeResult
	if err := json.Unmarshal(raw, &res); err != nil {
		return err
	}
	for _, p := range res.Revoked {
		fmt.Fprintf(e.stdout, "revoked %s %s (%s)\n", p.Mailbox, p.ID, p.Name)
	}
	if len(res.Revoked) == 0 {
		fmt.Fprintln(e.stdout, "no app passwords to revoke")
	}
	fmt.Fprintf(e.stdout, "%d live session(s) closed\n", res.Sessions)
	return nil
}

// parseExpiry accepts "", "90d", a Go duration ("12h") or a date.
func parseExpiry(s string, now time.Time) (time.Time, error) {
	switch {
	case s == "":
		return time.Time{}, nil
	case strings.HasSuffix(s, "d"):
		n, err := strconv.Atoi(strings.TrimSuffix(s, "d"))
		if err != nil || n <= 0 {
			return time.Time{}, fmt.Errorf("%q: want a positive number of days like 90d", s)
		}
		return now.AddDate(0, 0, n), nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(d), nil
	}
	if t, err := time.ParseInLocation(time.DateOnly, s, time.Local); err == nil && t.After(now) {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%q: want 90d, 12h or a future date like 2027-01-31", s)
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func fmtTime(t *time.Time, zero string) string {
	if t == nil {
		return zero
	}
	return t.Local().Format(time.DateTime)
}

func fmtLastUse(u *admin.LastUse) string {
	if u == nil {
		return "never"
	}
	return fmt.Sprintf("%s from %s (%s)", u.Time.Local().Format(time.DateTime), u.Remote, u.Proto)
}
