package oauth

import (
	"errors"
	"io"
	"log/slog"
	"mailgate/internal/proxytest"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// echoGateway plays a gateway in front of the token endpoint that answers
// status with an HTML page echoing the request body, as some WAF and proxy
// error pages do: the refresh token and client secret are in it.
func echoGateway(t *testing.T, status int) *httptest.Server {
	t.Helper()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(status)
		io.WriteString(w, "<html><body>upstream error for request:\n"+string(body)+"\n</body></html>")
	}))
	t.Cleanup(ts.Close)
	return ts
}

// A token endpoint error without an OAuth error code makes
// *oauth2.RetrieveError's text carry the whole response body (up to
// 1 MiB). Neither the error a login gets (which the gate logs as "login
// unavailable") nor the manager's log may carry it.
func TestErrorHidesResponseBody(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		opts func(url string) *Options
	}{
		{"refresh", func(url string) *Options {
			st := newMemStore()
			st.SaveRefreshToken(msKey, alice, "rt-SECRET-refresh")
			return &Options{Provider: Microsoft, Tenant: "contoso", ClientID: "cid",
				ClientSecret: "cs-SECRET-client", TokenURL: url, Store: st}
		}},
		{"client credentials", func(url string) *Options {
			return &Options{Provider: Microsoft, Flow: App, Tenant: "contoso", ClientID: "cid",
				ClientSecret: "cs-SECRET-client", TokenURL: url}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			gw := echoGateway(t, http.StatusBadGateway)
			var logs proxytest.LogBuffer
			o := c.opts(gw.URL)
			o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			m := newManager(t, o)
			_, err := m.Token(t.Context(), alice)
			if !errors.Is(err, ErrTransient) {
				t.Fatalf("err = %v, want ErrTransient", err)
			}
			for what, s := range map[string]string{"error": err.Error(), "log": logs.String()} {
				if strings.Contains(s, "SECRET") || strings.Contains(s, "<html>") {
					t.Errorf("%s carries the response body: %q", what, s)
				}
			}
			if !strings.Contains(err.Error(), "HTTP 502") {
				t.Errorf("err = %q, want the status", err)
			}
		})
	}
}
