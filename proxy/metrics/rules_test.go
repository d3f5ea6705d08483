package metrics

import (
	"mailgate/internal/testenv"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"testing"
)

// rulesDir holds the example alert rules of docs/monitoring.md.
const rulesDir = "../../docs/monitoring"

// TestAlertRulesNameRealMetrics: every mailgate_ metric the example rules
// use is one New registers, so renaming a metric cannot leave the rules
// silently matching nothing.
func TestAlertRulesNameRealMetrics(t *testing.T) {
	rules, err := os.ReadFile(rulesDir + "/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	families, err := New(&Options{Mailboxes: func() (MailboxCounts, error) { return MailboxCounts{}, nil }}).Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range families {
		names = append(names, f.GetName())
	}
	used := regexp.MustCompile(`mailgate_[a-z_]+`).FindAllString(string(rules), -1)
	if len(used) == 0 {
		t.Fatal("no mailgate_ metric in the rules")
	}
	for _, n := range used {
		if !slices.Contains(names, n) {
			t.Errorf("alerts.yml uses %s, which mailgate does not export", n)
		}
	}
}

// TestAlertRulesPromtool checks the rules with Prometheus' own tool and
// runs their unit tests (alerts_test.yml: each alert fires on its series,
// and not on a healthy proxy). .ci/deps installs promtool (Debian
// prometheus), so CI never skips.
func TestAlertRulesPromtool(t *testing.T) {
	if _, err := exec.LookPath("promtool"); err != nil {
		testenv.Missing(t, "promtool not installed (Debian package prometheus)")
	}
	for _, args := range [][]string{{"check", "rules", "alerts.yml"}, {"test", "rules", "alerts_test.yml"}} {
		cmd := exec.Command("promtool", args...)
		cmd.Dir = rulesDir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %v: %v\n%s", args, err, out)
		}
	}
}
