package smtp

import (
	"fmt"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"
)

func TestParseReply(t *testing.T) {
	tests := []struct {
		text string
		ec   smtp.EnhancedCode
		msg  string
	}{
		{"2.0.0 OK <id@host> Queued mail for delivery", smtp.EnhancedCode{2, 0, 0}, "OK <id@host> Queued mail for delivery"},
		{"2.6.0 first\n2.6.0 second", smtp.EnhancedCode{2, 6, 0}, "first\nsecond"},
		{"OK: queued", smtp.NoEnhancedCode, "OK: queued"},
		{"Mailbox full\n2.0.0 later", smtp.NoEnhancedCode, "Mailbox full\n2.0.0 later"},
		{"5.0.0 class differs from the code", smtp.NoEnhancedCode, "5.0.0 class differs from the code"},
		{"2.0 too short", smtp.NoEnhancedCode, "2.0 too short"},
		{"2.+1.0 sign", smtp.NoEnhancedCode, "2.+1.0 sign"},
		{"2..0 empty", smtp.NoEnhancedCode, "2..0 empty"},
		{"2.00.0 leading zero", smtp.NoEnhancedCode, "2.00.0 leading zero"},
		{"", smtp.NoEnhancedCode, ""},
	}
	for _, tt := range tests {
		got := parseReply(250, tt.text)
		if got.Code != 250 || got.EnhancedCode != tt.ec || got.Message != tt.msg {
			t.Errorf("parseReply(%q) = %v %v %q, want %v %q", tt.text, got.Code, got.EnhancedCode, got.Message, tt.ec, tt.msg)
		}
	}
}

// FuzzParseReply: whatever an upstream sends, the reply written back has the
// same lines: each line's text, with the enhanced code put back in front
// where it was taken off, is the input line.
func FuzzParseReply(f *testing.F) {
	f.Add("2.0.0 OK\n2.0.0 more")
	f.Add("plain text")
	f.Fuzz(func(t *testing.T, text string) {
		r := parseReply(250, text)
		if r.EnhancedCode == smtp.NoEnhancedCode {
			if r.Message != text {
				t.Fatalf("message %q changed to %q", text, r.Message)
			}
			return
		}
		ec := fmt.Sprintf("%d.%d.%d", r.EnhancedCode[0], r.EnhancedCode[1], r.EnhancedCode[2])
		in, out := strings.Split(text, "\n"), strings.Split(r.Message, "\n")
		if len(in) != len(out) {
			t.Fatalf("%d lines became %d", len(in), len(out))
		}
		for i := range in {
			if in[i] != ec+" "+out[i] && in[i] != out[i] {
				t.Fatalf("line %q became %q (code %s)", in[i], out[i], ec)
			}
		}
	})
}
