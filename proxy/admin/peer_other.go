//go:build !linux

package admin

import "net"

// checkPeer relies on the socket's 0600 mode where SO_PEERCRED is missing.
func checkPeer(c net.Conn) error { return nil }
