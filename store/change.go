package store

// ChangeKind says what a Change reports.
type ChangeKind int

// What Options.OnChange hears about.
const (
	// PasswordRevoked: Change.Mailbox, Change.PasswordID: one password
	// deleted.
	PasswordRevoked ChangeKind = iota + 1
	// MailboxRevoked: Change.Mailbox: revoke-all or unlink; every session
	// of the mailbox ends.
	MailboxRevoked
	// Resync: the change feed was down (reconnect) and NOTIFY does not
	// replay what was sent meanwhile: re-check every live session
	// (PasswordActive).
	Resync
)

// Change is one change that must end live sessions, made by this or another
// process on the same database.
type Change struct {
	Kind       ChangeKind
	Mailbox    string
	PasswordID string
}
