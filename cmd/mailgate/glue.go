package main

import "strings"

// mailboxKey is the canonical form of a mailbox address, as the store and
// the session tracker hold it.
func mailboxKey(m string) string { return strings.ToLower(strings.TrimSpace(m)) }
