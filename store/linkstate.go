package store

import "fmt"

// LinkState says whether mailbox has a refresh token at provider and, when
// the provider refused it, the reason MarkRelink recorded ("" when fine).
// The OAuth manager reads it before marking or saving, so that a change of
// state is announced once, and not again after a restart.
func (s *Store) LinkState(provider, mailbox string) (linked bool, relink string, err error) {
	mailbox, err = checkTokenArgs(provider, mailbox)
	if err != nil {
		return false, "", err
	}
	r, err := s.be.getToken(provider, mailbox)
	if err != nil {
		return false, "", fmt.Errorf("link state: %w", err)
	}
	if r == nil {
		return false, "", nil
	}
	return true, r.NeedsRelink, nil
}
