package metrics

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"mailgate/proxy"
)

// auth accepts password "good"; mailbox "down@example.com" fails as a
// store that is down would.
type auth struct{}

func (auth) Authenticate(_ context.Context, req *proxy.LoginRequest) (*proxy.Identity, error) {
	switch {
	case req.Username == "down@example.com":
		return nil, proxy.ErrUnavailable
	case req.Password != "good":
		return nil, proxy.ErrAuthFailed
	}
	return &proxy.Identity{Mailbox: req.Username, PasswordID: "pw"}, nil
}

var _ proxy.Authenticator = auth{}

func login(g *proxy.Gate, proto, user, pass, remote string) (*proxy.Session, error) {
	return g.Login(context.Background(), &proxy.LoginRequest{Username: user, Password: pass,
		Proto: proto, Remote: netip.MustParseAddr(remote)})
}

// value returns the value of the series name{labels} (label pairs), or
// fails the test when there is no such series.
func value(t testing.TB, m *Metrics, name string, labels ...string) float64 {
	t.Helper()
	v, err := find(m, name, labels...)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func find(m *Metrics, name string, labels ...string) (float64, error) {
	families, err := m.Registry().Gather()
	if err != nil {
		return 0, err
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, s := range f.GetMetric() {
			if matches(s, labels) {
				return sample(s), nil
			}
		}
	}
	return 0, errors.New("no series " + name + " " + fmtLabels(labels))
}

func matches(s *dto.Metric, labels []string) bool {
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	n := 0
	for _, l := range s.GetLabel() {
		if v, ok := want[l.GetName()]; ok {
			if v != l.GetValue() {
				return false
			}
			n++
		}
	}
	return n == len(want)
}

// sample is a counter's or gauge's value, a histogram's sample count.
func sample(s *dto.Metric) float64 {
	switch {
	case s.Counter != nil:
		return s.Counter.GetValue()
	case s.Gauge != nil:
		return s.Gauge.GetValue()
	case s.Histogram != nil:
		return float64(s.Histogram.GetSampleCount())
	}
	return 0
}

func fmtLabels(labels []string) string {
	s := "{"
	for i := 0; i+1 < len(labels); i += 2 {
		s += labels[i] + "=" + labels[i+1] + ","
	}
	return s + "}"
}

var discard = slog.New(slog.DiscardHandler)
