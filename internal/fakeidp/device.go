package fakeidp

import (
	"crypto/rand"
	"errors"
	"html/template"
	"net/http"
	"slices"
	"time"
)

// device is one device authorization (RFC 8628 section 3.2).
type device struct {
	userCode string
	clientID string
	scope    string
	expires  time.Time
	interval time.Duration // grows by 5 s on each slow_down (section 3.5)
	lastPoll time.Time
	polls    int
	mailbox  string    // set by ApproveDevice
	authTime time.Time // when ApproveDevice signed the user in
	denied   bool
	redeemed bool
}

// ErrUnknownUserCode is returned by the device controls for a user code
// that is unknown or already used.
var ErrUnknownUserCode = errors.New("fakeidp: unknown user code")

// handleDeviceAuth is the device authorization endpoint (RFC 8628 3.1-3.2).
func (s *Server) handleDeviceAuth(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "bad form")
		return
	}
	clientID, ok := s.authClient(w, r, false)
	if !ok {
		return
	}
	dc, uc := randToken("dc-"), rand.Text()[:8]
	s.mu.Lock()
	s.devices[dc] = &device{userCode: uc, clientID: clientID, scope: r.PostForm.Get("scope"),
		expires: time.Now().Add(s.opts.DeviceTTL), interval: time.Duration(s.opts.DeviceInterval) * time.Second}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"device_code": dc, "user_code": uc,
		"verification_uri":          s.URL() + "/device",
		"verification_uri_complete": s.URL() + "/device?user_code=" + uc,
		"expires_in":                int(s.opts.DeviceTTL / time.Second),
		"interval":                  s.opts.DeviceInterval,
	})
}

// grantDeviceCode answers a device poll (RFC 8628 section 3.5).
func (s *Server) grantDeviceCode(w http.ResponseWriter, r *http.Request, clientID string) {
	dc := r.PostForm.Get("device_code")
	s.mu.Lock()
	d := s.devices[dc]
	code := s.pollLocked(d, clientID)
	var resp map[string]any
	if code == "" {
		d.redeemed = true // a device code is good for one token
		resp = s.issueLocked(grant{mailbox: d.mailbox, clientID: clientID, scope: d.scope,
			authTime: d.authTime}, true, "")
	}
	s.mu.Unlock()
	if code != "" {
		oauthError(w, http.StatusBadRequest, code, "device authorization: "+code)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// pollLocked returns the section 3.5 error code for a poll, or "" when the
// device has been approved.
func (s *Server) pollLocked(d *device, clientID string) string {
	if d == nil || d.redeemed || d.clientID != clientID {
		return invalidGrant
	}
	now := time.Now()
	last := d.lastPoll
	d.lastPoll = now
	d.polls++
	switch {
	case now.After(d.expires):
		return "expired_token"
	case d.denied:
		return "access_denied"
	case s.slowN > 0:
		s.slowN--
		d.interval += 5 * time.Second
		return "slow_down"
	case !last.IsZero() && now.Sub(last) < d.interval/2:
		// Polling faster than asked. Half the interval leaves room for a
		// client's scheduling jitter; an ignored slow_down is far below it.
		s.tooFast++
		d.interval += 5 * time.Second
		return "slow_down"
	case d.mailbox == "":
		return "authorization_pending"
	}
	return ""
}

func (s *Server) deviceByUserCode(userCode string) *device {
	for _, d := range s.devices {
		if d.userCode == userCode {
			return d
		}
	}
	return nil
}

// ApproveDevice plays the user who enters userCode and signs in as mailbox.
func (s *Server) ApproveDevice(userCode, mailbox string) error {
	return s.withDevice(userCode, func(d *device) { d.mailbox, d.authTime = canon(mailbox), time.Now() })
}

// DenyDevice plays the user who declines the request.
func (s *Server) DenyDevice(userCode string) error {
	return s.withDevice(userCode, func(d *device) { d.denied = true })
}

// ExpireDevice makes the device code expire now.
func (s *Server) ExpireDevice(userCode string) error {
	return s.withDevice(userCode, func(d *device) { d.expires = time.Now().Add(-time.Second) })
}

func (s *Server) withDevice(userCode string, f func(*device)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.deviceByUserCode(userCode)
	if d == nil || d.redeemed {
		return ErrUnknownUserCode
	}
	f(d)
	return nil
}

// SlowDown answers the next n device polls with slow_down.
func (s *Server) SlowDown(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.slowN = n
}

// PendingUserCodes lists the user codes of device requests still waiting
// for the user, sorted.
func (s *Server) PendingUserCodes() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var codes []string
	for _, d := range s.devices {
		if !d.redeemed && !d.denied && d.mailbox == "" && time.Now().Before(d.expires) {
			codes = append(codes, d.userCode)
		}
	}
	slices.Sort(codes)
	return codes
}

// DevicePolls counts the token polls made for userCode so far.
func (s *Server) DevicePolls(userCode string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d := s.deviceByUserCode(userCode); d != nil {
		return d.polls
	}
	return 0
}

// TooFastPolls counts device polls that came sooner than half the current
// interval: a client that ignores slow_down shows up here.
func (s *Server) TooFastPolls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tooFast
}

var devicePage = template.Must(template.New("device").Parse(`<!doctype html>
<title>fakeidp device sign-in</title>
<form method="post">
<p>Code <input name="user_code" value="{{.}}"> Mailbox <input name="mailbox">
<button>Approve</button> <button name="deny" value="1">Deny</button></p>
</form>`))

// handleDevicePage is the verification URI (RFC 8628 section 3.3) for
// "mailgate serve -dev": a form that approves or denies a user code.
func (s *Server) handleDevicePage(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		devicePage.Execute(w, r.FormValue("user_code"))
		return
	}
	uc, mailbox := r.FormValue("user_code"), r.FormValue("mailbox")
	var err error
	switch {
	case r.FormValue("deny") != "":
		err = s.DenyDevice(uc)
	case canon(mailbox) == "":
		err = errors.New("mailbox required")
	default:
		err = s.ApproveDevice(uc, mailbox)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Write([]byte("Done. You may close this window.\n"))
}
