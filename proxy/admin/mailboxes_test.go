package admin_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"mailgate/proxy/admin"
	"mailgate/store"
)

func TestMailboxes(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	_, secret, err := st.CreatePassword("ann@example.com", "phone", nil, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.CreatePassword("ann@example.com", "laptop", nil, time.Time{}); err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"ann@example.com", "bob@example.com"} {
		if err := st.SaveRefreshToken("microsoft", m, "rt"); err != nil {
			t.Fatal(err)
		}
	}
	reason := "invalid_grant: AADSTS50173: The provided grant has expired due to it being revoked."
	if err := st.MarkRelink("microsoft", "bob@example.com", reason); err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.CreatePassword("cleo@other.org", "phone", nil, time.Time{}); err != nil {
		t.Fatal(err)
	}
	// Not yet flushed: the table shows it all the same.
	if _, err := st.Verify("ann@example.com", secret, store.ScopeIMAP, "192.0.2.7"); err != nil {
		t.Fatal(err)
	}
	svc := admin.New(&admin.Options{Store: st})

	res, err := svc.Mailboxes(ctx, admin.MailboxesArgs{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Total != 3 || len(res.Rows) != 3 {
		t.Fatalf("Mailboxes: %+v", res)
	}
	ann, bob, cleo := res.Rows[0], res.Rows[1], res.Rows[2]
	if ann.Mailbox != "ann@example.com" || ann.Link != admin.LinkLinked || ann.Passwords != 2 || ann.Reason != "" ||
		ann.LastUsed == nil || ann.LastUsed.Remote != "192.0.2.7" || ann.LastUsed.Proto != store.ScopeIMAP {
		t.Errorf("ann: %+v last %+v", ann, ann.LastUsed)
	}
	if want := "the password was changed or reset (invalid_grant, AADSTS50173)"; bob.Mailbox != "bob@example.com" ||
		bob.Link != admin.LinkNeedsRelink || bob.Reason != want || bob.Passwords != 0 || bob.LastUsed != nil {
		t.Errorf("bob: %+v, want reason %q", bob, want)
	}
	if cleo.Mailbox != "cleo@other.org" || cleo.Link != admin.LinkUnlinked || cleo.Passwords != 1 || cleo.LastUsed != nil {
		t.Errorf("cleo: %+v", cleo)
	}

	res, err = svc.Mailboxes(ctx, admin.MailboxesArgs{Query: "EXAMPLE", Offset: 1, Limit: 1})
	if err != nil || res.Total != 2 || len(res.Rows) != 1 || res.Rows[0].Mailbox != "bob@example.com" {
		t.Errorf("query and page: %+v %v", res, err)
	}

	// The same through the operation table, as the socket and CLI call it.
	raw, err := svc.Call(ctx, "account.mailboxes", admin.MailboxesArgs{Query: "cleo"}, nil)
	want := `{"total":1,"rows":[{"mailbox":"cleo@other.org","link":"unlinked","passwords":1,"last_used":null}]}`
	if err != nil || string(raw) != want {
		t.Errorf("account.mailboxes: %s %v\nwant %s", raw, err, want)
	}

	for _, a := range []admin.MailboxesArgs{{Offset: -1}, {Limit: -1}, {Limit: 501}} {
		_, err := svc.Mailboxes(ctx, a)
		var ae *admin.Error
		if !errors.As(err, &ae) || ae.Code != admin.CodeUsage {
			t.Errorf("%+v: %v, want a usage error", a, err)
		}
	}
}

// TestMailboxesDefaultLimit: no limit means pages of 50.
func TestMailboxesDefaultLimit(t *testing.T) {
	st := openStore(t)
	for i := range 51 {
		if err := st.SaveRefreshToken("microsoft", fmt.Sprintf("u%02d@example.com", i), "rt"); err != nil {
			t.Fatal(err)
		}
	}
	res, err := admin.New(&admin.Options{Store: st}).Mailboxes(context.Background(), admin.MailboxesArgs{})
	if err != nil || res.Total != 51 || len(res.Rows) != 50 || res.Rows[49].Mailbox != "u49@example.com" {
		t.Errorf("%d of %d rows, %v", len(res.Rows), res.Total, err)
	}
}

// BenchmarkMailboxes pages through the admin's table at 10,000 mailboxes,
// each with 1 to 3 app passwords (a third of them used), half of them
// linked, through the typed method the portal calls.
func BenchmarkMailboxes(b *testing.B) {
	st := openStore(b)
	fillMailboxes(b, st, 10000)
	svc := admin.New(&admin.Options{Store: st})
	for _, bc := range []struct {
		name string
		args admin.MailboxesArgs
	}{
		{"first", admin.MailboxesArgs{}},
		{"middle", admin.MailboxesArgs{Offset: 5000}},
		{"search", admin.MailboxesArgs{Query: "USER01"}},
		{"limit=500", admin.MailboxesArgs{Limit: 500}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				res, err := svc.Mailboxes(context.Background(), bc.args)
				if err != nil || res.Total == 0 || len(res.Rows) == 0 {
					b.Fatalf("%d rows of %d: %v", len(res.Rows), res.Total, err)
				}
			}
		})
	}
}

// fillMailboxes gives n mailboxes 1 to 3 app passwords each, uses a third
// of the passwords (left pending, as after a burst of logins) and links
// every second mailbox. It takes seconds: every change is a transaction.
func fillMailboxes(tb testing.TB, st *store.Store, n int) {
	tb.Helper()
	for i := range n {
		m := fmt.Sprintf("user%05d@example.com", i)
		for j := range 1 + i%3 {
			_, secret, err := st.CreatePassword(m, fmt.Sprint("device ", j), nil, time.Time{})
			if err != nil {
				tb.Fatal(err)
			}
			if (i+j)%3 == 0 {
				if _, err := st.Verify(m, secret, store.ScopeIMAP, "192.0.2.1"); err != nil {
					tb.Fatal(err)
				}
			}
		}
		if i%2 == 0 {
			if err := st.SaveRefreshToken("microsoft", m, "rt"); err != nil {
				tb.Fatal(err)
			}
		}
	}
}
