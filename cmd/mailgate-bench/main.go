// Command mailgate-bench measures mailgate against the direct path to a real
// Dovecot/Postfix upstream on loopback, TLS on both legs: FETCH and APPEND
// throughput (and a plain TCP relay as the floor), login latency (also with
// the upstream 40 ms away), login rate, memory and CPU of idle sessions,
// SMTP submission and POP3 RETR throughput. It prints a table and writes the table and JSON next to
// -out.
//
// What it measures is the real binary: it builds cmd/mailgate, writes a
// config file for each daemon it needs, links the mailbox and issues the app
// password with the mailgate CLI, and runs "mailgate serve -config FILE".
// Memory, CPU and goroutines are read from that process.
//
// Usage:
//
//	go run ./cmd/mailgate-bench -out testdata/bench/latest.json
//	go run ./cmd/mailgate-bench -quick
//
// It needs root (Postfix, network namespaces) and the packages .ci/deps
// installs.
package main

import (
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"
)

// config is the benchmark's size, from flags.
type config struct {
	out             string
	fetchMB         int
	appendMB        int
	passes          int
	logins          int
	rateFor         time.Duration
	rateLevels      []int
	smtpMsgs        int
	bigMB           int
	pop3MB          int
	dovecotSessions int
	devupSessions   int
	idleWindow      time.Duration
	far             bool
	cpuprofile      string
	heapprofile     string
	only            string // comma-separated row groups; "" means all
	pg              pgConfig
	bin             string // a mailgate binary to measure instead of building one
}

// wants reports whether the row group name is to be measured.
func (c *config) wants(name string) bool {
	return c.only == "" || slices.Contains(strings.Split(c.only, ","), name)
}

func defaults() *config {
	return &config{fetchMB: 50, appendMB: 50, passes: 5, logins: 300, rateFor: 5 * time.Second,
		rateLevels: []int{5, 10, 20, 50}, smtpMsgs: 200, bigMB: 30, pop3MB: 200,
		dovecotSessions: 1000, devupSessions: 10000, idleWindow: 10 * time.Second, far: true}
}

// sessionLimit is what the daemons' limits are raised to (connections,
// connections_per_ip, upstream_sessions_per_mailbox): every session the
// bench holds is of one mailbox from one address.
func (c *config) sessionLimit() int {
	return max(c.dovecotSessions, c.devupSessions, slices.Max(c.rateLevels)) + 1000
}

// quick scales everything down for CI-size runs and the smoke test.
func (c *config) quick() {
	c.fetchMB, c.appendMB, c.passes, c.logins = 4, 2, 1, 20
	c.rateFor, c.rateLevels, c.smtpMsgs, c.bigMB, c.pop3MB = time.Second, []int{5, 50}, 10, 2, 2
	c.dovecotSessions, c.devupSessions, c.idleWindow = 20, 50, time.Second
	c.pg.revokes = 5
}

func main() {
	if spec := os.Getenv(helperEnv); spec != "" {
		if err := runHelper(spec); err != nil {
			fmt.Fprintln(os.Stderr, "mailgate-bench helper:", err)
			os.Exit(1)
		}
		return
	}
	cfg := defaults()
	quick := flag.Bool("quick", false, "tiny sizes: a smoke run of every row")
	flag.StringVar(&cfg.out, "out", "bench.json", "write JSON here and the table next to it (.md)")
	flag.IntVar(&cfg.fetchMB, "fetch-mb", cfg.fetchMB, "mailbox size to FETCH, MiB")
	flag.IntVar(&cfg.appendMB, "append-mb", cfg.appendMB, "bytes to APPEND per pass, MiB")
	flag.IntVar(&cfg.pop3MB, "pop3-mb", cfg.pop3MB, "bytes to RETR over POP3 per pass, MiB (5 MiB messages)")
	flag.IntVar(&cfg.passes, "passes", cfg.passes, "throughput passes per path (median)")
	flag.IntVar(&cfg.logins, "logins", cfg.logins, "sequential logins for latency")
	flag.IntVar(&cfg.dovecotSessions, "dovecot-sessions", cfg.dovecotSessions, "idle sessions against Dovecot")
	flag.IntVar(&cfg.devupSessions, "devup-sessions", cfg.devupSessions, "idle sessions against the in-process upstream")
	flag.BoolVar(&cfg.far, "far", cfg.far, "also measure with the upstream 40 ms away (network namespace)")
	flag.StringVar(&cfg.cpuprofile, "cpuprofile", "", "write a CPU profile of mailgate during the throughput, latency, rate, smtp and pop3 rows (pick with -only); builds mailgate with a profile hook")
	flag.StringVar(&cfg.heapprofile, "heapprofile", "", "write a heap profile of mailgate with the idle sessions open, and its Go memory statistics (heap, goroutine stacks) before and after a GC to FILE.memstats; builds mailgate with a profile hook")
	flag.StringVar(&cfg.bin, "bin", "", "measure this mailgate binary (built from another commit, for a before/after) instead of building cmd/mailgate")
	flag.StringVar(&cfg.only, "only", "", "measure only these row groups: throughput,latency,rate,smtp,pop3,idle,far,pg")
	cfg.pg.flags()
	flag.Parse()
	if *quick {
		cfg.quick()
		flag.Parse() // explicit flags win over -quick
	}
	rep, err := run(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mailgate-bench:", err)
		os.Exit(1)
	}
	fmt.Print(rep.table())
	if err := rep.write(cfg.out); err != nil {
		fmt.Fprintln(os.Stderr, "mailgate-bench:", err)
		os.Exit(1)
	}
}
