package config

import (
	"fmt"
	"strings"
)

// StoreDriver is the store backend, lower-cased as written in the file.
type StoreDriver string

// The store drivers.
const (
	// DriverBBolt is one file on this machine: one instance, no server.
	DriverBBolt StoreDriver = "bbolt"
	// DriverPostgres is a PostgreSQL database that several instances share.
	DriverPostgres StoreDriver = "postgres"
)

// DefaultAdminSocket is admin.socket with driver postgres, where there is
// no database directory to keep it in: systemd's RuntimeDirectory=mailgate
// creates /run/mailgate for the daemon's user.
const DefaultAdminSocket = "/run/mailgate/admin.sock"

// defaultStore fills in the driver and, for bbolt only, the paths derived
// from the database's directory. With postgres nothing is derived: the key
// file must be the same on every instance, so its place is the operator's
// choice (checkStoreKeys requires it), and a key created at a guessed path
// on one instance would seal tokens the others cannot read.
func defaultStore(c *Config) {
	c.Store.Driver = lower(c.Store.Driver)
	if c.Store.Driver == "" {
		c.Store.Driver = DriverBBolt
	}
	if c.Store.Driver != DriverPostgres {
		defaultPaths(c)
		return
	}
	if c.Admin.Socket == "" {
		c.Admin.Socket = DefaultAdminSocket
	}
}

// checkStoreKeys refuses keys that do not belong together: a database file
// with a database server, a DSN given twice, a DSN for bbolt.
func (d *doc) checkStoreKeys(c *Config) error {
	s := c.Store
	switch s.Driver {
	case DriverBBolt:
		for _, k := range []struct{ key, val string }{{"store.dsn", s.DSN}, {"store.dsn_file", s.DSNFile}} {
			if k.val != "" {
				return d.errorf(k.key, "set with driver bbolt (a DSN is for driver: postgres)")
			}
		}
		return nil
	case DriverPostgres:
		return d.checkPostgres(s)
	}
	return d.errorf("store.driver", "unknown driver %q (want bbolt or postgres)", s.Driver)
}

func (d *doc) checkPostgres(s Store) error {
	switch {
	case s.Path != "":
		return d.errorf("store.path", "set with driver postgres (path is the bbolt file; remove it, or use driver: bbolt)")
	case s.DSN != "" && s.DSNFile != "":
		return d.errorf("store.dsn", "set together with store.dsn_file (use one: dsn_file keeps the password out of the config)")
	case s.DSN == "" && s.DSNFile == "":
		return d.errorf("store.dsn_file", "required with driver postgres (a file holding a libpq connection string or URL)")
	case s.KeyFile == "":
		return d.errorf("store.key_file", "required with driver postgres (the same key file on every instance)")
	}
	return nil
}

// readDSN reads store.dsn_file, refusing it when group or others may read
// or change it: it may hold the database password. The trailing newline
// that editors add is dropped. The content never appears in a message.
func (d *doc) readDSN(c *Config) error {
	if c.Store.DSNFile == "" {
		return nil
	}
	data, err := readPrivate(c.Store.DSNFile, ownerOnly)
	if err == nil {
		c.Store.DSN = strings.TrimRight(string(data), "\r\n")
		if strings.TrimSpace(c.Store.DSN) == "" {
			err = fmt.Errorf("%s is empty", c.Store.DSNFile)
		}
	}
	if err != nil {
		return d.wrap("store.dsn_file", err)
	}
	return nil
}
