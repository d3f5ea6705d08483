package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// The browser tests drive Debian's Chromium headless over the DevTools
// protocol (chromedp), as a user's browser would: real forms, real redirects,
// real cookies.

// stepTimeout bounds one browser step (a click and the page it loads); a
// hang fails the test with the step named instead of the package timeout.
const stepTimeout = 20 * time.Second

// browserFlags are the flags this machine needs: nothing may reach the
// network but loopback, so every background connection is switched off.
// The daemon's certificate is self-signed for the test, hence
// ignore-certificate-errors.
// Its profile and temporary files (shared memory, with
// disable-dev-shm-usage) go under dir, which the test removes.
func browserFlags(exe, dir string) []chromedp.ExecAllocatorOption {
	return []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.UserDataDir(filepath.Join(dir, "profile")),
		chromedp.Env("TMPDIR=" + filepath.Join(dir, "tmp")),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-breakpad", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-features", "Translate,OptimizationHints,MediaRouter"),
		chromedp.Flag("ignore-certificate-errors", true),
		chromedp.Flag("password-store", "basic"),
		chromedp.WindowSize(1280, 900),
	}
}

// chromiumPath finds the browser; .ci/deps installs it, so CI never lacks it
// and a missing one fails rather than skips.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("chromium not found: install the Debian package chromium (bash .ci/deps does)")
	return ""
}

// browser is one headless Chromium shared by the tests of this binary; each
// test gets its own browser context (separate cookies, like a private
// window) in a tab of it. It starts on first use and stops when the last
// test using it ends.
var browser struct {
	mu     sync.Mutex
	users  int
	ctx    context.Context
	cancel context.CancelFunc
}

// acquireBrowser returns the shared browser's context, starting it if needed.
func acquireBrowser(t *testing.T) context.Context {
	t.Helper()
	exe := chromiumPath(t)
	browser.mu.Lock()
	defer browser.mu.Unlock()
	if browser.users == 0 {
		dir, err := os.MkdirTemp("", "mailgate-chromium-")
		if err == nil {
			err = os.Mkdir(filepath.Join(dir, "tmp"), 0o700)
		}
		if err != nil {
			t.Fatal(err)
		}
		actx, acancel := chromedp.NewExecAllocator(context.Background(), browserFlags(exe, dir)...)
		bctx, bcancel := chromedp.NewContext(actx)
		if err := chromedp.Do(bctx); err != nil { // starts the browser, bound to bctx
			bcancel()
			acancel()
			os.RemoveAll(dir)
			t.Fatalf("start %s: %v", exe, err)
		}
		browser.ctx = bctx
		browser.cancel = func() {
			bcancel()
			acancel()
			os.RemoveAll(dir)
		}
	}
	browser.users++
	ctx := browser.ctx
	t.Cleanup(releaseBrowser)
	return ctx
}

func releaseBrowser() {
	browser.mu.Lock()
	defer browser.mu.Unlock()
	browser.users--
	if browser.users == 0 {
		browser.cancel()
		browser.ctx, browser.cancel = nil, nil
	}
}

// tab is one test's browser window: its own cookies, one tab.
type tab struct {
	t   *testing.T
	ctx context.Context
}

// newTab opens a tab in a fresh browser context of the shared browser.
func newTab(t *testing.T) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(acquireBrowser(t), chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	b := &tab{t: t, ctx: ctx}
	// The first run creates the tab; with no timeout, since the tab lives as
	// long as that run's context.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("browser: open a tab: %v", err)
	}
	return b
}

// do runs steps with the step timeout; what names the step in a failure.
func (b *tab) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := b.try(steps...); err != nil {
		b.t.Fatalf("browser: %s: %v\n(page %s)", what, err, b.url())
	}
}

func (b *tab) try(steps ...chromedp.Action[chromedp.Void]) error {
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	return chromedp.Do(ctx, steps...)
}

// eval evaluates a JavaScript expression (awaiting a promise) and returns
// its value decoded into T.
func eval[T any](b *tab, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("browser: evaluate %s: %v", expr, err)
	}
	return v
}

// url is the address of the page shown, for messages.
func (b *tab) url() string {
	ctx, cancel := context.WithTimeout(b.ctx, 2*time.Second)
	defer cancel()
	u, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		return "unknown: " + err.Error()
	}
	return u
}

// open loads u and waits for the page.
func (b *tab) open(u string) {
	b.t.Helper()
	b.do("open "+u, chromedp.Navigate(u))
}

// navigating runs action (a click, a submit) that leaves the page, and waits
// until another document has loaded, through any redirects, including a
// page that moves on by itself with a meta refresh (the portal's step to
// the provider after a form).
func (b *tab) navigating(what string, action chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	b.do(what, chromedp.Evaluate[chromedp.Void](`window.__mailgateOld = true`), action)
	deadline := time.Now().Add(stepTimeout)
	for {
		// Each try is short and may fail while the page changes under it.
		ctx, cancel := context.WithTimeout(b.ctx, 2*time.Second)
		done, err := chromedp.Run(ctx, chromedp.Evaluate[bool](
			`window.__mailgateOld === undefined && document.readyState === "complete" &&
			!document.querySelector('meta[http-equiv="refresh" i]')`))
		cancel()
		if err == nil && done {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("browser: %s: no new page after %v (last error %v; page %s)", what, stepTimeout, err, b.url())
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// waitAt waits until the tab shows a loaded page whose URL starts with
// prefix (after a navigation the test did not start itself).
func (b *tab) waitAt(prefix string) {
	b.t.Helper()
	deadline := time.Now().Add(stepTimeout)
	for {
		ctx, cancel := context.WithTimeout(b.ctx, 2*time.Second)
		done, err := chromedp.Run(ctx, chromedp.Evaluate[bool](fmt.Sprintf(
			`location.href.startsWith(%s) && document.readyState === "complete"`, jsString(prefix))))
		cancel()
		if err == nil && done {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("browser: no page at %s after %v (at %s)", prefix, stepTimeout, b.url())
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// clickText clicks the button, submit input or link whose text (or value)
// is exactly text, within the first element matching scope ("" the whole
// page), and waits for the page it leads to. Texts are the contract's
// (issue 14): "Sign in", "Revoke", "Confirm"...
func (b *tab) clickText(scope, text string) {
	b.t.Helper()
	sel := byText(scope, text)
	if !b.has(sel) {
		b.t.Fatalf("browser: no button or link %q in %q on %s:\n%s", text, scope, b.url(), b.bodyText())
	}
	b.click("click "+strconv.Quote(text), sel)
}

// click clicks the element sel selects and waits for the page it leads to.
func (b *tab) click(what string, sel chromedp.JSPath) {
	b.t.Helper()
	if !b.has(sel) {
		b.t.Fatalf("browser: %s: no such element on %s:\n%s", what, b.url(), b.bodyText())
	}
	// The click runs after this evaluation returns, so the navigation it
	// starts does not cut the protocol call short.
	b.navigating(what, chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`{ const e = %s; setTimeout(() => e.click(), 0) }`, sel)))
}

// byText selects the control with exactly this text, for clickText.
func byText(scope, text string) chromedp.JSPath {
	root := "document"
	if scope != "" {
		root = fmt.Sprintf("document.querySelector(%s)", jsString(scope))
	}
	return chromedp.JSPath(fmt.Sprintf(`(() => { const r = %s; if (!r) return null;
		return [...r.querySelectorAll("button, input[type=submit], a")]
			.find(e => (e.tagName === "INPUT" ? e.value : e.textContent).trim().replace(/\s+/g, " ") === %s) || null })()`,
		root, jsString(text)))
}

// has says whether sel matches now, without waiting.
func (b *tab) has(sel chromedp.JSPath) bool {
	b.t.Helper()
	return eval[bool](b, fmt.Sprintf(`(%s) !== null`, sel))
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string { return strconv.Quote(s) }

// fill types value into the field named name (the contract's
// `<input name="name">`, fakeidp's `<input name="mailbox">`).
func (b *tab) fill(name, value string) {
	b.t.Helper()
	sel := chromedp.CSS(fmt.Sprintf(`[name=%s]`, jsString(name)))
	// Empty the field first: typing appends to what it holds.
	clear := fmt.Sprintf(`document.querySelector(%s).value = ""`, jsString(fmt.Sprintf(`[name=%s]`, jsString(name))))
	b.do("fill "+name, chromedp.WaitVisible(sel), chromedp.Evaluate[chromedp.Void](clear), chromedp.SendKeys(sel, value))
}

// text is the visible text of the first element matching css, "" if none.
func (b *tab) text(css string) string {
	b.t.Helper()
	return eval[string](b, fmt.Sprintf(`(document.querySelector(%s) || {innerText: ""}).innerText`, jsString(css)))
}

// bodyText is the page's visible text.
func (b *tab) bodyText() string {
	b.t.Helper()
	return b.text("body")
}

// status is the HTTP status of the page shown (Navigation Timing's
// responseStatus: the final response after redirects).
func (b *tab) status() int {
	b.t.Helper()
	return eval[int](b, `performance.getEntriesByType("navigation")[0].responseStatus`)
}

// docLog records the tab's document traffic: every request URL, redirects
// included (the browser's /auth/callback hop is one), and every final
// response with its headers.
type docLog struct {
	mu        sync.Mutex
	requests  []string
	responses []*network.Response
}

// watchDocuments starts recording the tab's document traffic.
func (b *tab) watchDocuments() *docLog {
	l := &docLog{}
	ctx, cancel := context.WithCancel(b.ctx)
	b.t.Cleanup(cancel)
	reqs := chromedp.Events(ctx, network.RequestWillBeSent)
	resps := chromedp.Events(ctx, network.ResponseReceived)
	go func() {
		for ev, err := range reqs {
			if err != nil {
				return
			}
			if ev.Type == network.ResourceTypeDocument && ev.Request != nil {
				l.mu.Lock()
				l.requests = append(l.requests, ev.Request.URL)
				l.mu.Unlock()
			}
		}
	}()
	go func() {
		for ev, err := range resps {
			if err != nil {
				return
			}
			if ev.Type == network.ResourceTypeDocument && ev.Response != nil {
				l.mu.Lock()
				l.responses = append(l.responses, ev.Response)
				l.mu.Unlock()
			}
		}
	}()
	return l
}

// request returns the last document request whose URL contains sub.
func (l *docLog) request(sub string) (string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i := len(l.requests) - 1; i >= 0; i-- {
		if strings.Contains(l.requests[i], sub) {
			return l.requests[i], true
		}
	}
	return "", false
}

// all returns every document request URL so far.
func (l *docLog) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.requests...)
}

// header returns a header of the last document response (names are
// matched without case).
func (l *docLog) header(name string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.responses) == 0 {
		return ""
	}
	for k, v := range l.responses[len(l.responses)-1].Headers {
		if strings.EqualFold(k, name) {
			return fmt.Sprint(v)
		}
	}
	return ""
}

// cookies returns the browser's cookies for u, HttpOnly ones included, for
// a Go client that acts in the same session.
func (b *tab) cookies(u string) []*http.Cookie {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	cs, err := chromedp.Run(ctx, func(ctx context.Context, t *chromedp.Target) ([]*network.Cookie, error) {
		r, err := cdp.Call(ctx, t, network.GetCookies, network.GetCookiesParams{URLs: []string{u}})
		return r.Cookies, err
	})
	if err != nil {
		b.t.Fatalf("browser: cookies: %v", err)
	}
	var out []*http.Cookie
	for _, c := range cs {
		out = append(out, &http.Cookie{Name: c.Name, Value: c.Value})
	}
	return out
}

// screenshotsEnv names the variable that makes the browser tests write the
// documentation's screenshots; CI leaves it unset so it never rewrites them.
const screenshotsEnv = "MAILGATE_SCREENSHOTS"

// screenSizes are the widths docs/portal-users.md shows: a phone and a
// desktop.
var screenSizes = []struct {
	name          string
	width, height int64
	mobile        bool
}{
	{"phone", 390, 844, true},
	{"desktop", 1280, 900, false},
}

// screenshot saves the page shown as docs/img/portal-NAME-{phone,desktop}.png
// when MAILGATE_SCREENSHOTS=1; the page is reloaded at each width only by
// layout, never re-requested, so one-time pages can be shot too.
func (b *tab) screenshot(name string) {
	b.t.Helper()
	if os.Getenv(screenshotsEnv) != "1" {
		return
	}
	dir := filepath.Join("..", "..", "docs", "img")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.t.Fatal(err)
	}
	for _, s := range screenSizes {
		png := b.shoot(s.width, s.height, s.mobile)
		file := filepath.Join(dir, fmt.Sprintf("portal-%s-%s.png", name, s.name))
		if err := os.WriteFile(file, png, 0o644); err != nil {
			b.t.Fatal(err)
		}
		b.t.Logf("wrote %s", file)
	}
	b.do("reset the viewport", chromedp.EmulateReset())
}

// shoot renders the whole page at a width, as a PNG.
func (b *tab) shoot(width, height int64, mobile bool) []byte {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, stepTimeout)
	defer cancel()
	opts := []chromedp.EmulateViewportOption{chromedp.EmulateScale(1)}
	if mobile {
		opts = append(opts, chromedp.EmulateMobile)
	}
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(width, height, opts...),
		chromedp.Sleep(100*time.Millisecond)); err != nil { // let the layout settle
		b.t.Fatalf("browser: viewport %dx%d: %v", width, height, err)
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("browser: screenshot: %v", err)
	}
	return png
}

// groupless strips the reading spaces of a password shown in groups of four.
func groupless(p string) string { return strings.Join(strings.Fields(p), "") }
