package main

import (
	"log/slog"
	"net"

	"mailgate/proxy/admin"
)

// listenAdmin creates the admin socket, mode 0600.
func listenAdmin(path string) (net.Listener, error) { return admin.Listen(path) }

// serveAdmin serves the admin operations on ln until it is closed.
func serveAdmin(ln net.Listener, h *admin.Service, log *slog.Logger) {
	srv := &admin.Server{Handler: h, Logger: log}
	srv.Serve(ln)
}
