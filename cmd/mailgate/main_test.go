package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"mailgate/proxy/admin"
)

// TestMain lets the scripts run "mailgate" as a real subprocess of the test
// binary, so signals, exit codes and the admin socket are exercised as an
// admin would meet them. runM removes the binary the e2e tests build.
func TestMain(m *testing.M) {
	testscript.Main(runM{m}, map[string]func(){
		"mailgate": main,
	})
}

// TestScripts runs the CLI end to end from testdata/script/*.txtar, against
// a bare store and against a running daemon.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir:                 "../../testdata/script",
		RequireExplicitExec: true,
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"exitcode": cmdExitCode,
			"waitsock": cmdWaitSock,
			"jsonvar":  cmdJSONVar,
		},
	})
}

// TestCommandsCoverOps: every admin operation has its CLI command, named
// as the operation with a space for the dot, so the usage text lists it.
func TestCommandsCoverOps(t *testing.T) {
	for _, op := range admin.Ops() {
		name := strings.Replace(op.Name, ".", " ", 1)
		if !slices.ContainsFunc(commands, func(c command) bool { return c.name == name }) {
			t.Errorf("admin operation %s has no command %q", op.Name, name)
		}
	}
	if u := usage(); !strings.Contains(u, "  password revoke-all MAILBOX...        delete every app password") {
		t.Errorf("usage text:\n%s", u)
	}
}

// exitcode N PROG ARGS... runs PROG and checks its exit status is N.
func cmdExitCode(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: exitcode N PROG ARGS...")
	}
	want, err := strconv.Atoi(args[0])
	ts.Check(err)
	err = ts.Exec(args[1], args[2:]...)
	got := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		got = ee.ExitCode()
	} else if err != nil {
		ts.Fatalf("exec: %v", err)
	}
	if got != want {
		ts.Fatalf("exit status %d, want %d", got, want)
	}
}

// waitsock PATH waits until a daemon answers on the unix socket PATH.
func cmdWaitSock(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: waitsock PATH")
	}
	path := ts.MkAbs(args[0])
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	ts.Fatalf("no daemon answered on %s", path)
}

// jsonvar VAR KEY sets $VAR to field KEY of the JSON object (or of the
// first element of the array) on the last command's stdout.
func cmdJSONVar(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: jsonvar VAR KEY")
	}
	out := []byte(ts.ReadFile("stdout"))
	var obj map[string]any
	if err := json.Unmarshal(out, &obj); err != nil {
		var arr []map[string]any
		ts.Check(json.Unmarshal(out, &arr))
		if len(arr) == 0 {
			ts.Fatalf("empty JSON array on stdout")
		}
		obj = arr[0]
	}
	v, ok := obj[args[1]]
	if !ok {
		ts.Fatalf("no %q in %s", args[1], out)
	}
	ts.Setenv(args[0], fmt.Sprint(v))
}
