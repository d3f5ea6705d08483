package oauth

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// A token endpoint never redirects (RFC 6749 section 3.2 names one URL).
// A 307 or 308 would make the HTTP client send the form again, refresh
// token and client secret included, to wherever it points: another host,
// or plain http although token_url must be https. The request stops at
// the redirect instead, as a refused client configuration.
func TestTokenEndpointRedirectNotFollowed(t *testing.T) {
	t.Parallel()
	var leaked atomic.Bool
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if strings.Contains(string(body), "SECRET") {
			leaked.Store(true)
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"access_token":"stolen","token_type":"Bearer","expires_in":3600}`)
	}))
	t.Cleanup(elsewhere.Close)
	for _, status := range []int{http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			t.Parallel()
			redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, elsewhere.URL+"/token", status)
			}))
			t.Cleanup(redirect.Close)
			st := newMemStore()
			st.SaveRefreshToken(msKey, alice, "rt-SECRET")
			m := newManager(t, &Options{Provider: Microsoft, Tenant: "contoso", ClientID: "cid",
				ClientSecret: "cs-SECRET", TokenURL: redirect.URL, Store: st})
			_, err := m.Token(t.Context(), alice)
			if !errors.Is(err, ErrConfig) || errors.Is(err, ErrRelink) {
				t.Errorf("err = %v, want ErrConfig", err)
			}
			if st.token(alice) != "rt-SECRET" || st.relinkReason(alice) != "" {
				t.Error("the grant was touched")
			}
		})
	}
	t.Cleanup(func() {
		if leaked.Load() {
			t.Error("the refresh token and client secret followed the redirect")
		}
	})
}
