package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"

	"mailgate/config"
	"mailgate/store"
)

// cmdStoreCopy copies everything (passwords, links, sealed tokens, last
// used) from one store to another: bbolt to PostgreSQL when moving to
// several instances, and back. The records move as stored, sealed under
// the config's key file, which must be the one both sides use.
func cmdStoreCopy(e *env, args []string) error {
	f := newFlags("store copy", false)
	from := f.String("from", "", "source: a bbolt `FILE` or a postgres:// URL")
	to := f.String("to", "", "target: a bbolt `FILE` or a postgres:// URL (must hold no mailgate data)")
	if _, err := f.parse(args, exactly(0), "-from FILE|URL -to FILE|URL"); err != nil {
		return err
	}
	if *from == "" || *to == "" {
		return usageErrorf("usage: mailgate store copy -from FILE|URL -to FILE|URL")
	}
	cfg, err := loadConfig(f.config)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	src, err := openCopyEnd(cfg, *from, log)
	if err != nil {
		return fmt.Errorf("open %s: %w", redactDSN(*from), err)
	}
	defer src.Close()
	dst, err := openCopyEnd(cfg, *to, log)
	if err != nil {
		return fmt.Errorf("open %s: %w", redactDSN(*to), err)
	}
	defer dst.Close()
	stats, err := store.Copy(e.ctx, dst, src)
	if errors.Is(err, store.ErrNotEmpty) {
		return withHint(fmt.Errorf("%s: %w", redactDSN(*to), err), "copy into a new, empty file or database")
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "copied %s to %s: %s\n", redactDSN(*from), redactDSN(*to), copyCounts(stats))
	return nil
}

// isDatabaseURL tells a PostgreSQL URL from a bbolt file name, as the
// docs say: by its scheme, nothing else.
func isDatabaseURL(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// openCopyEnd opens one side of a copy with the config's key file and
// password limit. A bbolt file that a daemon holds is refused (ErrInUse)
// rather than copied while it changes.
func openCopyEnd(cfg *config.Config, where string, log *slog.Logger) (*store.Store, error) {
	o := &store.Options{KeyFile: cfg.Store.KeyFile, MaxPasswords: cfg.Accounts.MaxPasswords, Logger: log}
	if isDatabaseURL(where) {
		o.Driver, o.DSN = store.DriverPostgres, where
	} else {
		o.Driver, o.Path = store.DriverBolt, where
	}
	st, err := store.Open(o)
	if errors.Is(err, store.ErrInUse) {
		return nil, withHint(err, "stop the daemon that uses it (store copy needs the file to itself)")
	}
	return st, err
}

// redactDSN hides the password of a URL in messages; a file name is shown
// as given.
func redactDSN(s string) string {
	if !isDatabaseURL(s) {
		return s
	}
	u, err := url.Parse(s)
	if err != nil {
		return "a postgres URL" // unparsable: show none of it
	}
	return u.Redacted()
}

// copyCounts says what a copy moved, in words.
func copyCounts(s store.CopyStats) string {
	return fmt.Sprintf("%d app passwords, %d sealed OAuth tokens", s.Passwords, s.Tokens)
}
