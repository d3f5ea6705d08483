package mailstack

import (
	"errors"
	"testing"
)

// TestTwoStacks runs two stacks side by side, stops one, and checks that
// it left no process behind while the other keeps working.
func TestTwoStacks(t *testing.T) {
	t.Parallel()
	url := newIntrospector(t).URL
	a, b := StartForTest(t, url), StartForTest(t, url)
	if a.IMAPS == b.IMAPS || a.Submission == b.Submission || a.PostfixSubmission == b.PostfixSubmission {
		t.Fatalf("stacks share ports: %+v %+v", a, b)
	}
	for _, s := range []*Stack{a, b} {
		dialIMAP(t, s, s.IMAPS, true).mustLogin("carol@example.com")
	}
	pids := a.PIDs()
	if len(pids) < 4 { // both masters and at least their log processes
		t.Fatalf("PIDs before Stop: %v", pids)
	}
	if err := a.Stop(); err != nil {
		t.Fatal(err)
	}
	for _, pid := range pids {
		if alive(pid) {
			t.Errorf("pid %d still alive after Stop", pid)
		}
	}
	if left := a.PIDs(); len(left) != 0 {
		t.Errorf("PIDs after Stop: %v", left)
	}
	if err := a.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	dialIMAP(t, b, b.IMAPS, true).mustLogin("carol@example.com")
}

func TestStartValidates(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		opts *Options
	}{
		{"nil", nil},
		{"no url", &Options{Dir: dir}},
		{"no dir", &Options{IntrospectionURL: "http://127.0.0.1:1/"}},
		{"ipv6 host", &Options{IntrospectionURL: "http://127.0.0.1:1/", Dir: dir, Host: "::1"}},
		{"host name", &Options{IntrospectionURL: "http://127.0.0.1:1/", Dir: dir, Host: "localhost"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Start(tc.opts)
			if err == nil {
				s.Stop()
				t.Fatal("Start succeeded")
			}
			if !errors.Is(err, ErrInvalidOptions) {
				t.Errorf("error %v, want ErrInvalidOptions", err)
			}
		})
	}
}
