package main

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"

	"mailgate/proxy/admin"
)

// listenAdmin creates the admin socket, mode 0600. Its directory is made
// 0700 if missing: with bbolt the store has made it already, but with
// postgres the default /run/mailgate exists only under systemd
// (RuntimeDirectory=mailgate).
func listenAdmin(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("admin socket: %w", err)
	}
	return admin.Listen(path)
}

// serveAdmin serves the admin operations on ln until it is closed.
func serveAdmin(ln net.Listener, h *admin.Service, log *slog.Logger) {
	srv := &admin.Server{Handler: h, Logger: log}
	srv.Serve(ln)
}
