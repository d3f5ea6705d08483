package mailstack

import (
	"testing"
)

func TestSmoke(t *testing.T) {
	in := newIntrospector(t)
	s := StartForTest(t, in.URL)
	c := dialIMAP(t, s, s.IMAPS, true)
	u, st := c.cmd("CAPABILITY")
	t.Log(u, st)
	c.mustLogin("alice@example.com")
}
