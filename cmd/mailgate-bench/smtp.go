package main

import (
	"bytes"
	"crypto/tls"
	"time"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"

	"mailgate/proxy"
)

// smtpResult is one path's SMTP figures.
type smtpResult struct {
	rate     float64 // 10 KB messages per second
	big      float64 // seconds for the big message
	smallCPU float64 // CPU-s/GiB of the process in the middle, 10 KB messages
	bigCPU   float64 // the same for the big message
}

// smtpRun sends n messages of 10 KB in one session and then one big
// message, and reads cpu (nil: none) around each part.
func smtpRun(addr string, cfg *tls.Config, l login, n, bigMB int, cpu func() (time.Duration, error)) (smtpResult, error) {
	var res smtpResult
	p := path{cpu: cpu}
	c, err := gosmtp.DialTLS(addr, cfg)
	if err != nil {
		return res, err
	}
	defer c.Close()
	var auth sasl.Client = sasl.NewPlainClient("", l.user, l.pass)
	if l.token != "" {
		auth = proxy.NewXOAUTH2Client(l.user, l.token)
	}
	if err := c.Auth(auth); err != nil {
		return res, err
	}
	small := message10k()
	x, err := p.timed(func() (int64, error) {
		for i := range n {
			if err := c.SendMail(benchUser, []string{sinkUser}, bytes.NewReader(small)); err != nil {
				return int64(i * len(small)), err
			}
		}
		return int64(n * len(small)), nil
	})
	if err != nil {
		return res, err
	}
	res.rate, res.smallCPU = float64(n)/x.dur.Seconds(), cpuPerGiB(x)
	big := message(1, bigMB<<20)
	x, err = p.timed(func() (int64, error) {
		return int64(len(big)), c.SendMail(benchUser, []string{sinkUser}, bytes.NewReader(big))
	})
	if err != nil {
		return res, err
	}
	res.big, res.bigCPU = x.dur.Seconds(), cpuPerGiB(x)
	return res, c.Quit()
}

// cpuPerGiB is x's CPU-seconds per GiB moved.
func cpuPerGiB(x xfer) float64 {
	f := flow{}
	f.add(x)
	return f.cpuPerGiB()
}
