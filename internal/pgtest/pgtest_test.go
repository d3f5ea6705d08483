package pgtest

import (
	"net"
	"strconv"
	"strings"
	"testing"
)

// TestStartStop starts a cluster, creates a database, and checks the port
// is closed after Stop and open again after Start.
func TestStartStop(t *testing.T) {
	_, c := Start(t)
	c.NewDatabase(t)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(c.Port()))
	if err := dial(addr); err != nil {
		t.Fatalf("running cluster: %v", err)
	}
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := dial(addr); err == nil {
		t.Fatal("stopped cluster still accepts connections")
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	if err := dial(addr); err != nil {
		t.Fatalf("restarted cluster: %v", err)
	}
}

func dial(addr string) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	return c.Close()
}

// TestPasswordOverTCP: TCP connections need the password; the DSN carries
// it.
func TestPasswordOverTCP(t *testing.T) {
	_, c := Start(t)
	if c.Password() == "" || !strings.Contains(c.DSN("x"), c.Password()) || strings.Contains(c.DSNWithoutPassword("x"), c.Password()) {
		t.Errorf("DSN %q, without password %q", c.DSN("x"), c.DSNWithoutPassword("x"))
	}
}
