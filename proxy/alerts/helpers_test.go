package alerts

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// receiver is a webhook receiver on 127.0.0.1 that answers each post with
// the next status of its script (200 when the script is used up).
type receiver struct {
	*httptest.Server
	mu      sync.Mutex
	script  []int
	posts   []post
	arrived chan struct{} // one value per post
	hold    chan struct{} // non-nil: each post waits for a value
}

type post struct {
	body      []byte
	signature string
	ctype     string
}

func newReceiver(t *testing.T, script ...int) *receiver {
	t.Helper()
	r := &receiver{script: script, arrived: make(chan struct{}, 100)}
	r.Server = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	// The post is recorded before it is signalled, so that a test that
	// waited for it sees it in got().
	r.mu.Lock()
	r.posts = append(r.posts, post{body, req.Header.Get(SignatureHeader), req.Header.Get("Content-Type")})
	status := http.StatusOK
	if len(r.script) > 0 {
		status, r.script = r.script[0], r.script[1:]
	}
	r.mu.Unlock()
	r.arrived <- struct{}{}
	if r.hold != nil {
		<-r.hold
	}
	if status/100 == 3 {
		w.Header().Set("Location", "/moved") // a client that follows posts again
	}
	w.WriteHeader(status)
}

func (r *receiver) got() []post {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]post(nil), r.posts...)
}

// waitPosts waits until n posts arrived.
func (r *receiver) waitPosts(t *testing.T, n int) {
	t.Helper()
	for range n {
		select {
		case <-r.arrived:
		case <-t.Context().Done():
			t.Fatal("test ended waiting for posts")
		}
	}
}

// waits records the backoff waits instead of sleeping.
type waits struct {
	mu sync.Mutex
	d  []time.Duration
}

func (w *waits) sleep(ctx context.Context, d time.Duration) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.d = append(w.d, d)
	return ctx.Err()
}

func (w *waits) all() []time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]time.Duration(nil), w.d...)
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// start returns a Notifier whose waits are recorded, closed at the end.
func start(t *testing.T, opts *Options) (*Notifier, *waits) {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quiet()
	}
	n := New(opts)
	w := &waits{}
	n.sleep = w.sleep
	t.Cleanup(func() { n.Close(context.Background()) })
	return n, w
}

// closeNow delivers what is queued and stops the workers, so that what
// they did is final.
func closeNow(t *testing.T, n *Notifier) {
	t.Helper()
	if err := n.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
}
