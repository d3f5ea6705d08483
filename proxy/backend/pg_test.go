package backend

import (
	"context"
	"errors"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"mailgate/internal/pgtest"
	"mailgate/proxy"
	"mailgate/store"
)

// TestAuthenticatorDatabaseDown: with PostgreSQL stopped, a right and a
// wrong password both get ErrUnavailable, never ErrAuthFailed (which
// would make Outlook ask for a new password and count toward the
// lockout); once it is back the right password logs in again on the same
// store, with no reopen.
func TestAuthenticatorDatabaseDown(t *testing.T) {
	_, ctl := pgtest.Start(t)
	st, err := store.Open(&store.Options{Driver: store.DriverPostgres, DSN: ctl.NewDatabase(t),
		KeyFile: filepath.Join(t.TempDir(), "key")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	_, pass, err := st.CreatePassword("ann@example.com", "phone", nil, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	a := NewAuthenticator(st, nil)
	login := func(pw string) error {
		_, err := a.Authenticate(context.Background(), &proxy.LoginRequest{Username: "ann@example.com",
			Password: pw, Proto: proxy.ProtoIMAP, Remote: netip.MustParseAddr("192.0.2.1")})
		return err
	}
	if err := login(pass); err != nil {
		t.Fatal(err)
	}
	if err := ctl.Stop(); err != nil {
		t.Fatal(err)
	}
	for _, pw := range []string{pass, "wrongwrongwrongwrongwrongw"} {
		err := login(pw)
		if !errors.Is(err, proxy.ErrUnavailable) || errors.Is(err, proxy.ErrAuthFailed) {
			t.Fatalf("login with the database down: %v, want ErrUnavailable only", err)
		}
	}
	if err := ctl.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		err := login(pass)
		if err == nil {
			break
		}
		if !errors.Is(err, proxy.ErrUnavailable) || time.Now().After(deadline) {
			t.Fatalf("login after the database returned: %v", err)
		}
	}
}
