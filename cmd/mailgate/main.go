// Command mailgate lets mail clients that cannot do OAuth2 log in to
// Microsoft 365 and Google mailboxes with app passwords. It is the only
// composition root: it turns the config into each package's Options.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "devel"

// usageHead and usageTail frame the command list of the usage text, which
// usage builds from the commands table.
const usageHead = `usage: mailgate COMMAND [flags] [args]

Commands:
`

const usageTail = `
Every command takes -config FILE (default $MAILGATE_CONFIG, else ./mailgate.yaml);
the admin commands take -json for scripts. They talk to the running daemon over
its admin socket, or open the store themselves when no daemon runs (with
PostgreSQL: the database).

Examples:
  mailgate config check -config /etc/mailgate/mailgate.yaml
  mailgate password create -name "Outlook at home" alice@contoso.com
  mailgate password list -json alice@contoso.com
  mailgate password revoke alice@contoso.com 3f2a9c0d1e4b5a69
  mailgate account link alice@contoso.com
  mailgate store copy -from /var/lib/mailgate/mailgate.db -to postgres://mailgate@db/mailgate
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// env is what a command needs from the process.
type env struct {
	ctx    context.Context
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

// command is one entry of the command table.
type command struct {
	name string // "password create"; an admin operation's is its name with a space for the dot
	args string // its flags and arguments in the usage text
	help string // what it does, one line in the usage text
	run  func(e *env, args []string) error
}

// commands is the command table, the one place that lists the commands;
// the usage text is built from it.
var commands = []command{
	{"serve", "[-dev]", "run the daemon", cmdServe},
	{"config check", "", "validate the config file and exit", cmdConfigCheck},
	{"password create", "-name NAME [-scope imap,pop3,smtp|all] [-expires 90d] MAILBOX",
		"issue an app password (shown once)", cmdPasswordCreate},
	{"password list", "[MAILBOX]", "list app passwords (never the secret)", cmdPasswordList},
	{"password revoke", "MAILBOX ID", "delete one app password, end its sessions", cmdPasswordRevoke},
	{"password revoke-all", "MAILBOX...", "delete every app password of the mailboxes", cmdPasswordRevokeAll},
	{"account link", "MAILBOX", "sign the mailbox in at the provider", cmdAccountLink},
	{"account list", "", "show linked mailboxes and their state", cmdAccountList},
	{"account mailboxes", "[-limit N] [-offset N] [SEARCH]", "page through mailboxes, last uses and links", cmdAccountMailboxes},
	{"account unlink", "MAILBOX", "delete the mailbox's refresh token", cmdAccountUnlink},
	{"store backup", "FILE", "write a consistent copy of the database", cmdStoreBackup},
	{"store copy", "-from FILE|URL -to FILE|URL", "copy every record between bbolt and PostgreSQL", cmdStoreCopy},
	{"version", "", "print the version", cmdVersion},
}

// usageWidth is the width of the usage text's command column; a longer
// command puts its help on the next line.
const usageWidth = 37

// usage is the text "mailgate help" prints.
func usage() string {
	var b strings.Builder
	b.WriteString(usageHead)
	for _, c := range commands {
		line := strings.TrimSpace(c.name + " " + c.args)
		if len(line) > usageWidth {
			fmt.Fprintf(&b, "  %s\n  %*s %s\n", line, usageWidth, "", c.help)
		} else {
			fmt.Fprintf(&b, "  %-*s %s\n", usageWidth, line, c.help)
		}
	}
	b.WriteString(usageTail)
	return b.String()
}

// run dispatches args to a command and returns the exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{ctx: ctx, stdin: stdin, stdout: stdout, stderr: stderr}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" {
		fmt.Fprint(stdout, usage())
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands {
		words := strings.Fields(c.name)
		if len(args) >= len(words) && strings.Join(args[:len(words)], " ") == c.name {
			err := c.run(e, args[len(words):])
			var h *commandHelp
			if errors.As(err, &h) {
				fmt.Fprint(stdout, h.text)
				return 0
			}
			return report(stderr, err)
		}
	}
	return report(stderr, usageErrorf("unknown command %q", strings.Join(args[:min(2, len(args))], " ")))
}

// flags is the flag set every command shares.
type flags struct {
	*flag.FlagSet
	config string
	json   bool
}

func newFlags(name string, withJSON bool) *flags {
	f := &flags{FlagSet: flag.NewFlagSet("mailgate "+name, flag.ContinueOnError)}
	f.SetOutput(io.Discard) // errors are reported by report()
	f.StringVar(&f.config, "config", "", "config `FILE` (default $MAILGATE_CONFIG, else ./mailgate.yaml)")
	if withJSON {
		f.BoolVar(&f.json, "json", false, "print JSON for scripts")
	}
	return f
}

// parse parses flags anywhere among the arguments ("create alice@x -name
// phone" as well as "create -name phone alice@x"), which the flag package
// alone stops at the first argument.
func (f *flags) parse(args []string, nargs func(int) bool, argsUsage string) ([]string, error) {
	var rest []string
	for {
		if err := f.Parse(args); errors.Is(err, flag.ErrHelp) {
			return nil, &commandHelp{f.help(argsUsage)}
		} else if err != nil {
			return nil, usageErrorf("%s: %v", f.Name(), err)
		}
		args = f.Args()
		if len(args) == 0 {
			break
		}
		rest = append(rest, args[0])
		args = args[1:]
	}
	if !nargs(len(rest)) {
		return nil, usageErrorf("usage: %s", f.usageLine(argsUsage))
	}
	return rest, nil
}

// commandHelp is what parse returns for -h: the command's usage, which run
// prints to stdout with exit code 0, as "mailgate help" does.
type commandHelp struct{ text string }

func (h *commandHelp) Error() string { return h.text }

// help is the command's usage line and its flags.
func (f *flags) help(argsUsage string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "usage: %s\n\nFlags:\n", f.usageLine(argsUsage))
	f.SetOutput(&b)
	f.PrintDefaults()
	f.SetOutput(io.Discard)
	return b.String()
}

func (f *flags) usageLine(argsUsage string) string {
	return strings.TrimSpace(f.Name() + " " + argsUsage)
}

func exactly(n int) func(int) bool { return func(got int) bool { return got == n } }
func atMost(n int) func(int) bool  { return func(got int) bool { return got <= n } }
func atLeast(n int) func(int) bool { return func(got int) bool { return got >= n } }

func cmdVersion(e *env, args []string) error {
	f := newFlags("version", false)
	if _, err := f.parse(args, exactly(0), ""); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "mailgate %s\n", version)
	return nil
}
