// Package alerts tells operators and users when a mailbox's link changes
// state: it went dead at the provider (needs_relink), works again (linked)
// or was unlinked. Each change is logged once, posted to a webhook signed
// with HMAC-SHA256 and retried with backoff, and a dead link is mailed to
// its user at most once a day. Notify never blocks: the work runs on
// goroutines behind bounded in-memory queues, so a slow or dead webhook
// never delays a login.
package alerts

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"
)

// The states of a mailbox's link, as the webhook's "state" field.
const (
	Linked      = "linked"
	NeedsRelink = "needs_relink"
	Unlinked    = "unlinked"
)

const (
	// defaultQueueSize bounds each queue (webhook, mail). A tenant-wide
	// policy (a forced password reset, a Conditional Access rule) can kill
	// every grant within minutes: a thousand changes cover the burst of a
	// large deployment, and past that the dropped ones are still logged.
	defaultQueueSize = 1000
	// maxAttempts bounds the posts of one change: with the backoff below
	// they span about 13 minutes, enough for a receiver's restart or
	// deploy, short enough that one dead receiver does not hold the queue
	// for hours.
	maxAttempts = 10
	// firstBackoff is the wait before the first retry; it doubles up to
	// maxBackoff.
	firstBackoff = 2 * time.Second
	maxBackoff   = 5 * time.Minute
	// attemptTimeout bounds one post or one mail submission, so that a
	// receiver that accepts and never answers counts as a failed attempt.
	attemptTimeout = 10 * time.Second
	// mailAttempts bounds the submissions of one mail: the upstream SMTP
	// server is the same one users send through, rarely down for long.
	mailAttempts = 3
	// mailEvery is how often one mailbox may get a mail for the same
	// state: a link that flaps must not flood its user.
	mailEvery = 24 * time.Hour
)

// Event is one change of a mailbox's link state, the webhook's body.
type Event struct {
	Mailbox string `json:"mailbox"`
	State   string `json:"state"`  // Linked, NeedsRelink or Unlinked
	Reason  string `json:"reason"` // the provider's reason, or what the admin did
	Time    string `json:"time"`   // RFC 3339, UTC
}

// Options configure a Notifier. Zero fields mean: no webhook, no mail,
// the defaults their comments name.
type Options struct {
	WebhookURL    string       // "" sends no webhook
	WebhookSecret []byte       // HMAC-SHA256 key of X-Mailgate-Signature
	HTTPClient    *http.Client // nil: attemptTimeout per post, redirects not followed
	Mail          *MailOptions // nil sends no mail
	QueueSize     int          // per queue; 0: defaultQueueSize
	// Backoff is the wait before the first retry, doubled for each next
	// one up to maxBackoff; 0: firstBackoff.
	Backoff time.Duration
	Logger  *slog.Logger     // nil: slog.Default()
	Now     func() time.Time // nil: time.Now
}

// MailOptions configure the mail to a user whose link died.
type MailOptions struct {
	From      string // the sender: a linked mailbox (any mailbox with the app flow)
	PortalURL string // where to sign in again (web.public_url); "" leaves it out
	// Send submits msg from from to to; cmd logs in to the upstream SMTP
	// server as from with XOAUTH2.
	Send func(ctx context.Context, from, to string, msg []byte) error
}

// Notifier delivers link changes. It is safe for concurrent use.
type Notifier struct {
	opts   Options
	log    *slog.Logger
	now    func() time.Time
	sleep  func(ctx context.Context, d time.Duration) error // tests record the waits
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex // guards closed and sends on the queues
	closed bool
	hooks  chan Event // webhook queue; nil without a webhook
	mails  chan Event // mail queue; nil without mail

	sent map[string]time.Time // mailbox NUL state -> last mail; the mail worker's own
}

// New starts a Notifier's workers; Close stops them.
func New(opts *Options) *Notifier {
	n := &Notifier{opts: *opts, log: opts.Logger, now: opts.Now, sleep: sleep, sent: map[string]time.Time{}}
	o := &n.opts
	if n.log == nil {
		n.log = slog.Default()
	}
	if n.now == nil {
		n.now = time.Now
	}
	if o.QueueSize <= 0 {
		o.QueueSize = defaultQueueSize
	}
	if o.Backoff <= 0 {
		o.Backoff = firstBackoff
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: attemptTimeout, CheckRedirect: noRedirect}
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	if o.WebhookURL != "" {
		n.hooks = make(chan Event, o.QueueSize)
		n.wg.Go(func() { n.work(n.hooks, n.post) })
	}
	if o.Mail != nil && o.Mail.Send != nil && o.Mail.From != "" {
		n.mails = make(chan Event, o.QueueSize)
		n.wg.Go(func() { n.work(n.mails, n.mail) })
	}
	return n
}

// Notify records that mailbox's link turned state for reason: one log
// line, then the webhook and the mail are queued. It never blocks; its
// signature is oauth.Options.OnLinkState's.
func (n *Notifier) Notify(mailbox, state, reason string) {
	ev := Event{Mailbox: mailbox, State: state, Reason: reason, Time: n.now().UTC().Format(time.RFC3339)}
	log := n.log.With("user", mailbox, "state", state, "reason", reason)
	if state == NeedsRelink {
		log.Warn("link state changed: the mailbox must be linked again")
	} else {
		log.Info("link state changed")
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		log.Warn("alerts: stopping, change not sent")
		return
	}
	n.enqueue(n.hooks, ev, "webhook", log)
	if state == NeedsRelink {
		n.enqueue(n.mails, ev, "mail", log)
	}
}

func (n *Notifier) enqueue(q chan Event, ev Event, what string, log *slog.Logger) {
	if q == nil {
		return
	}
	select {
	case q <- ev:
	default:
		log.Error("alerts: queue full, " + what + " not sent")
	}
}

// Close stops taking changes, delivers what is queued until ctx ends, then
// abandons the rest (the queues live in memory only) and returns.
func (n *Notifier) Close(ctx context.Context) error {
	n.mu.Lock()
	if !n.closed {
		n.closed = true
		for _, q := range []chan Event{n.hooks, n.mails} {
			if q != nil {
				close(q)
			}
		}
	}
	n.mu.Unlock()
	stop := context.AfterFunc(ctx, n.cancel)
	defer stop()
	n.wg.Wait()
	n.cancel()
	return ctx.Err()
}

// work delivers the events of q one after the other, in the order of the
// changes, until q is closed and empty or the Notifier is cancelled.
func (n *Notifier) work(q chan Event, deliver func(Event)) {
	for ev := range q {
		if n.ctx.Err() != nil {
			n.log.Warn("alerts: stopped before delivery", "user", ev.Mailbox, "state", ev.State)
			continue
		}
		deliver(ev)
	}
}

// retry runs f up to attempts times, waiting the backoff between tries,
// while f reports a failure worth retrying.
func (n *Notifier) retry(attempts int, f func(ctx context.Context) (retry bool, err error)) error {
	wait := n.opts.Backoff
	for i := 1; ; i++ {
		ctx, cancel := context.WithTimeout(n.ctx, attemptTimeout)
		again, err := f(ctx)
		cancel()
		if err == nil || !again || i == attempts {
			return err
		}
		if err := n.sleep(n.ctx, wait); err != nil {
			return err
		}
		wait = min(2*wait, maxBackoff)
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// noRedirect makes a 3xx the receiver's answer: following it would turn
// the POST into a GET without the body (RFC 9110 section 15.4) whose 2xx
// would count as delivered.
func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// drain reads and closes a response body so its connection is reused.
func drain(rc io.ReadCloser) {
	io.Copy(io.Discard, io.LimitReader(rc, 64<<10))
	rc.Close()
}
