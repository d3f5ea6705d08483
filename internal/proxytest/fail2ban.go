package proxytest

import (
	"io"
	"log/slog"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// CheckFail2ban runs fail once for each log format an admin can choose
// (text, then JSON) and fails t unless the fail2ban filter of the doc at
// path finds exactly the hosts want, in order, in the log fail returns
// (what a FormatLogger of that format wrote).
func CheckFail2ban(t *testing.T, path string, want []string, fail func(t *testing.T, json bool) string) {
	t.Helper()
	res := Fail2banFilter(t, path)
	for _, json := range []bool{false, true} {
		t.Run(map[bool]string{false: "text", true: "json"}[json], func(t *testing.T) {
			log := fail(t, json)
			if got := Fail2banHosts(res, log); !slices.Equal(got, want) {
				t.Fatalf("filter found %v, want %v in:\n%s", got, want, log)
			}
		})
	}
}

// FormatLogger logs to w at level, in JSON or in slog's text format: the
// two log.format choices.
func FormatLogger(json bool, w io.Writer, level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if json {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// Fail2banFilter returns the failregex lines of the fail2ban filter in the
// doc at path, with fail2ban's <HOST> turned into a Go named group
// "host", so tests check the filter admins actually copy.
func Fail2banFilter(t testing.TB, path string) []*regexp.Regexp {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []*regexp.Regexp
	in := false
	for _, line := range strings.Split(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, "failregex = ")
		switch {
		case ok:
			in = true
		case in && strings.HasPrefix(line, " "):
			rest = strings.TrimSpace(line)
		default:
			in = false
			continue
		}
		out = append(out, regexp.MustCompile(strings.ReplaceAll(rest, "<HOST>", `(?P<host>[0-9A-Fa-f.:]+)`)))
	}
	if len(out) == 0 {
		t.Fatalf("no failregex in %s", path)
	}
	return out
}

// Fail2banHosts applies the filter res (Fail2banFilter) to each line of
// log and returns the host of every line it matches, in order: what
// fail2ban would count against each client.
func Fail2banHosts(res []*regexp.Regexp, log string) []string {
	var hosts []string
	for _, line := range strings.Split(log, "\n") {
		for _, re := range res {
			if m := re.FindStringSubmatch(line); m != nil {
				hosts = append(hosts, m[re.SubexpIndex("host")])
				break
			}
		}
	}
	return hosts
}
