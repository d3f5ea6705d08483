// Command mailgate lets mail clients that cannot do OAuth2 log in to
// Microsoft 365 and Google mailboxes with app passwords. It is the only
// composition root: it turns the config into each package's Options.
package main

import (
	"context"
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

const usage = `usage: mailgate COMMAND [flags] [args]

Commands:
  serve [-dev]                          run the daemon
  config check                          validate the config file and exit
  password create -name NAME [-scope imap,smtp] [-expires 90d] MAILBOX
                                        issue an app password (shown once)
  password list [MAILBOX]               list app passwords (never the secret)
  password revoke MAILBOX ID            delete one app password, end its sessions
  password revoke-all MAILBOX...        delete every app password of the mailboxes
  account link MAILBOX                  sign the mailbox in at the provider
  account list                          show linked mailboxes and their state
  account unlink MAILBOX                delete the mailbox's refresh token
  store backup FILE                     write a consistent copy of the database
  version                               print the version

Every command takes -config FILE (default $MAILGATE_CONFIG, else ./mailgate.yaml);
the admin commands take -json for scripts. They talk to the running daemon over
its admin socket, or open the store themselves when no daemon runs.

Examples:
  mailgate config check -config /etc/mailgate/mailgate.yaml
  mailgate password create -name "Outlook at home" alice@contoso.com
  mailgate password list -json alice@contoso.com
  mailgate password revoke alice@contoso.com 3f2a9c0d1e4b5a69
  mailgate account link alice@contoso.com
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
	name string // "password create"
	run  func(e *env, args []string) error
}

var commands = []command{
	{"serve", cmdServe},
	{"config check", cmdConfigCheck},
	{"password create", cmdPasswordCreate},
	{"password list", cmdPasswordList},
	{"password revoke", cmdPasswordRevoke},
	{"password revoke-all", cmdPasswordRevokeAll},
	{"account link", cmdAccountLink},
	{"account list", cmdAccountList},
	{"account unlink", cmdAccountUnlink},
	{"store backup", cmdStoreBackup},
	{"version", cmdVersion},
}

// run dispatches args to a command and returns the exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{ctx: ctx, stdin: stdin, stdout: stdout, stderr: stderr}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" {
		fmt.Fprint(stdout, usage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands {
		words := strings.Fields(c.name)
		if len(args) >= len(words) && strings.Join(args[:len(words)], " ") == c.name {
			return report(stderr, c.run(e, args[len(words):]))
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
		if err := f.Parse(args); err != nil {
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
		return nil, usageErrorf("usage: %s %s", f.Name(), argsUsage)
	}
	return rest, nil
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
