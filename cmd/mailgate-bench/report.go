package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// row is one line of the table.
type row struct {
	Name         string  `json:"name"`
	Unit         string  `json:"unit"`
	Direct       float64 `json:"direct"`
	Mailgate     float64 `json:"mailgate"`
	Relay        float64 `json:"plain_relay,omitempty"`
	MailgateCPU  float64 `json:"mailgate_cpu_s_per_gib,omitempty"` // throughput rows
	RelayCPU     float64 `json:"plain_relay_cpu_s_per_gib,omitempty"`
	HigherBetter bool    `json:"higher_is_better"`
	Note         string  `json:"note,omitempty"`
}

// Ratio is mailgate over direct.
func (r row) Ratio() float64 {
	if r.Direct == 0 {
		return 0
	}
	return r.Mailgate / r.Direct
}

// report is the whole result.
type report struct {
	Machine string                  `json:"machine"`
	When    time.Time               `json:"when"`
	Config  map[string]any          `json:"config"`
	Rows    []row                   `json:"rows"`
	Rates   map[string][]rateResult `json:"login_rates"`
	Idle    []idleResult            `json:"idle_sessions"`
	Skipped []string                `json:"skipped,omitempty"`
	Notes   []string                `json:"notes,omitempty"`
}

func newReport(cfg *config) *report {
	return &report{Machine: machine(), When: time.Now().UTC().Truncate(time.Second),
		Rates: map[string][]rateResult{},
		Config: map[string]any{"fetch_mib": cfg.fetchMB, "append_mib": cfg.appendMB, "pop3_mib": cfg.pop3MB, "passes": cfg.passes,
			"logins": cfg.logins, "dovecot_sessions": cfg.dovecotSessions,
			"devup_sessions": cfg.devupSessions, "limits": cfg.sessionLimit(), "race": raceEnabled}}
}

func (r *report) add(x row) { r.Rows = append(r.Rows, x) }

// latency adds a row for the p-th percentile of direct and mailgate
// login times; the note gives what mailgate adds.
func (r *report) latency(name, unit string, d, m []time.Duration, p float64) {
	dp, mp := ms(percentile(d, p)), ms(percentile(m, p))
	r.add(row{Name: name, Unit: unit, Direct: dp, Mailgate: mp, Note: fmt.Sprintf("mailgate adds %+.2f ms", mp-dp)})
}

// table renders the report as Markdown.
func (r *report) table() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Machine: %s; run %s.\n\n", r.Machine, r.When.Format(time.RFC3339))
	b.WriteString("| measure | unit | direct | mailgate | mailgate/direct | plain Go TLS relay | CPU-s/GiB mailgate (relay) | note |\n")
	b.WriteString("|---|---|---:|---:|---:|---:|---:|---|\n")
	for _, x := range r.Rows {
		relay, cpu := "", ""
		if x.Relay != 0 {
			relay = fmt.Sprintf("%.1f (mailgate %.2fx)", x.Relay, x.Mailgate/x.Relay)
		}
		switch {
		case x.MailgateCPU != 0 && x.RelayCPU != 0:
			cpu = fmt.Sprintf("%.2f (%.2f)", x.MailgateCPU, x.RelayCPU)
		case x.MailgateCPU != 0:
			cpu = fmt.Sprintf("%.2f", x.MailgateCPU)
		}
		fmt.Fprintf(&b, "| %s | %s | %.2f | %.2f | %.2fx | %s | %s | %s |\n",
			x.Name, x.Unit, x.Direct, x.Mailgate, x.Ratio(), relay, cpu, x.Note)
	}
	b.WriteString("\n| idle sessions (TLS both legs) | upstream | RSS KiB/session | goroutines/session | CPU while idle | open time |\n")
	b.WriteString("|---:|---|---:|---:|---:|---:|\n")
	for _, i := range r.Idle {
		fmt.Fprintf(&b, "| %d | %s | %.1f | %.2f | %.2f%% of a core | %.1f s |\n",
			i.Sessions, i.Upstream, i.RSSPerKiB, i.GoroutinesPS, i.IdleCPUPct, i.OpenSeconds)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "\nNote: %s\n", n)
	}
	for _, s := range r.Skipped {
		fmt.Fprintf(&b, "\nSkipped: %s\n", s)
	}
	return b.String()
}

// write puts the JSON at out and the table next to it (.md).
func (r *report) write(out string) error {
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	j, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(out, append(j, '\n'), 0o644); err != nil {
		return err
	}
	md := strings.TrimSuffix(out, filepath.Ext(out)) + ".md"
	return os.WriteFile(md, []byte(r.table()), 0o644)
}

// machine names the CPU, cores and kernel the run had.
func machine() string {
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				cpu = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return fmt.Sprintf("%s, %d cores, Linux %s, %s", cpu, runtime.NumCPU(), strings.TrimSpace(string(kernel)), runtime.Version())
}
