package smtp

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"
)

// writeLine writes a reply straight to nc, outside go-smtp, with a short
// deadline so a client that does not read cannot hold us.
func writeLine(nc net.Conn, line string) {
	nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	nc.Write([]byte(line))
}

// errorLog adapts go-smtp's logger to slog. go-smtp reports connection-level
// failures here (TLS handshakes from scanners, resets): debug level.
type errorLog struct{ l *slog.Logger }

func (e errorLog) Printf(format string, v ...any) {
	// go-smtp recovers a panic in a command handler, answers 421 and closes
	// that connection only, then reports it here with its stack: that one
	// is a bug of ours, not a scanner's noise.
	level := slog.LevelDebug
	if strings.HasPrefix(format, "panic ") {
		level = slog.LevelError
	}
	e.l.Log(context.Background(), level, "smtp: "+fmt.Sprintf(format, v...))
}

func (e errorLog) Println(v ...any) {
	e.l.Debug("smtp: " + strings.TrimSuffix(fmt.Sprintln(v...), "\n"))
}
