package main

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"mailgate/config"
)

// TestStopWaitsForReplacedAlerts: a Notifier replaced at a reload
// delivers its queue in the background; a stop that follows must wait for
// that delivery (within alertsDrain), or the daemon exits with it half done
// and, for mail, the store it reads tokens from already closed.
func TestStopWaitsForReplacedAlerts(t *testing.T) {
	posted, release := make(chan struct{}, 1), make(chan struct{})
	old := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		posted <- struct{}{}
		<-release
	}))
	defer old.Close()
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	defer unblock()
	next := httptest.NewServer(http.NotFoundHandler())
	defer next.Close()
	cfg := func(url string) *config.Config {
		return &config.Config{Alerts: config.Alerts{Webhook: config.AlertWebhook{URL: url, Secret: []byte("s")}}}
	}

	d := &daemon{log: slog.New(slog.DiscardHandler)}
	n, err := newAlerts(cfg(old.URL), nil, d.log)
	if err != nil {
		t.Fatal(err)
	}
	d.alerts.Store(n)
	d.notify("ann@example.com", "unlinked", "admin")
	<-posted // the old receiver is being told
	if err := d.reloadAlerts(cfg(old.URL), cfg(next.URL)); err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	go func() {
		d.closeAlerts()
		close(closed)
	}()
	select {
	case <-closed:
		t.Fatal("closeAlerts returned while the replaced Notifier was still delivering")
	case <-time.After(100 * time.Millisecond):
	}
	unblock()
	<-closed
}
