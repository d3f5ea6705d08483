package main

import (
	"bytes"
	"crypto/tls"
	"time"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"

	"mailgate/proxy"
)

// smtpRun sends n messages of 10 KB in one session and then one big
// message; it returns messages per second and the big message's seconds.
func smtpRun(addr string, cfg *tls.Config, l login, n, bigMB int) (float64, float64, error) {
	c, err := gosmtp.DialTLS(addr, cfg)
	if err != nil {
		return 0, 0, err
	}
	defer c.Close()
	var auth sasl.Client = sasl.NewPlainClient("", l.user, l.pass)
	if l.token != "" {
		auth = proxy.NewXOAUTH2Client(l.user, l.token)
	}
	if err := c.Auth(auth); err != nil {
		return 0, 0, err
	}
	small := message10k()
	t0 := time.Now()
	for range n {
		if err := c.SendMail(benchUser, []string{sinkUser}, bytes.NewReader(small)); err != nil {
			return 0, 0, err
		}
	}
	rate := float64(n) / time.Since(t0).Seconds()
	big := message(1, bigMB<<20)
	t0 = time.Now()
	if err := c.SendMail(benchUser, []string{sinkUser}, bytes.NewReader(big)); err != nil {
		return 0, 0, err
	}
	return rate, time.Since(t0).Seconds(), c.Quit()
}
