package oauth

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// tokenEndpoint answers every refresh with a new access token and the raw
// JSON value expiresIn ("" leaves expires_in out), and counts requests.
func tokenEndpoint(t *testing.T, expiresIn string) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := n.Add(1)
		w.Header().Set("Content-Type", "application/json")
		exp := ""
		if expiresIn != "" {
			exp = `,"expires_in":` + expiresIn
		}
		fmt.Fprintf(w, `{"access_token":"at-%d","token_type":"Bearer","refresh_token":"rt-%d"%s}`, i, i, exp)
	}))
	t.Cleanup(ts.Close)
	return ts, &n
}

// expires_in is optional and sometimes odd (RFC 6749 section 5.1; a string
// at some providers). Whatever it says, a token is reused for a sane time:
// neither refreshed at every login (a value in the past: every login would
// rotate the refresh token and write the store) nor kept for decades.
func TestExpiresIn(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		expiresIn string
		min, max  time.Duration // of the time the token is reused
	}{
		{"", defaultLifetime - earlyRefresh, defaultLifetime},
		{"3600", time.Hour - earlyRefresh, time.Hour - earlyRefresh},
		{`"3600"`, time.Hour - earlyRefresh, time.Hour - earlyRefresh},
		{"60", 30 * time.Second, 30 * time.Second},
		{"0", defaultLifetime - earlyRefresh, defaultLifetime},
		{"-3600", defaultLifetime - earlyRefresh, defaultLifetime},
		{"99999999999", time.Hour, maxLifetime},
	} {
		t.Run(c.expiresIn, func(t *testing.T) {
			t.Parallel()
			ts, n := tokenEndpoint(t, c.expiresIn)
			st := newMemStore()
			st.SaveRefreshToken(msKey, alice, "rt-0")
			now := time.Unix(1e9, 0)
			o := &Options{Provider: Microsoft, Tenant: "contoso", ClientID: "cid", TokenURL: ts.URL,
				Store: st, Now: func() time.Time { return now }}
			m := newManager(t, o)
			first := mustToken(t, m, alice)
			if got := mustToken(t, m, alice); got != first || n.Load() != 1 {
				t.Fatalf("second login at once: %d token requests, want 1", n.Load())
			}
			at := m.entry(m.key(alice)).refreshAt.Sub(now)
			if at < c.min || at > c.max {
				t.Fatalf("token reused for %v, want %v to %v", at, c.min, c.max)
			}
		})
	}
}
