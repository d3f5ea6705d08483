package oauth

import (
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"mailgate/internal/fakeidp"
)

// tokenLog records Options.OnToken calls.
type tokenLog struct {
	mu      sync.Mutex
	results []string
}

func (l *tokenLog) told(result string, took time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if took < 0 {
		result = "negative duration"
	}
	l.results = append(l.results, result)
}

func (l *tokenLog) got() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.results)
}

// TestOnToken checks that every token request to the provider, and only
// those, is told with its result: a cached token or a dead refresh token
// asked again makes no call, retries count as one request.
func TestOnToken(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		run  func(t *testing.T, srv *fakeidp.Server, o *Options)
		want []string
	}{
		{"ok then cached", func(t *testing.T, srv *fakeidp.Server, o *Options) {
			m := newManager(t, o)
			mustToken(t, m, alice)
			mustToken(t, m, alice)
		}, []string{"ok"}},
		{"relink once", func(t *testing.T, srv *fakeidp.Server, o *Options) {
			m := newManager(t, o)
			srv.RevokeRefreshTokens(alice)
			m.Token(t.Context(), alice)
			m.Token(t.Context(), alice) // the dead token is not sent again
		}, []string{"relink"}},
		{"transient after retries", func(t *testing.T, srv *fakeidp.Server, o *Options) {
			m := newManager(t, o)
			srv.FailNext(maxAttempts, http.StatusServiceUnavailable)
			m.Token(t.Context(), alice)
			mustToken(t, m, alice)
		}, []string{"transient", "ok"}},
		{"not linked is no request", func(t *testing.T, srv *fakeidp.Server, o *Options) {
			m := newManager(t, o)
			m.Token(t.Context(), bob)
		}, nil},
		{"app flow config", func(t *testing.T, srv *fakeidp.Server, o *Options) {
			m := newManager(t, &Options{Provider: Generic, Flow: App, ClientID: "cid",
				ClientSecret: "expired", TokenURL: srv.TokenURL(), OnToken: o.OnToken})
			m.Token(t.Context(), alice)
		}, []string{"config"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := newServer(t, &fakeidp.Options{ClientID: "cid", ClientSecret: "s3cret"})
			store := newMemStore()
			store.SaveRefreshToken(msKey, alice, srv.IssueRefreshToken(alice))
			o := delegatedOptions(srv, store)
			var log tokenLog
			o.OnToken = log.told
			tt.run(t, srv, o)
			if got := log.got(); !slices.Equal(got, tt.want) {
				t.Fatalf("OnToken results %q, want %q", got, tt.want)
			}
		})
	}
}
