package oauth

import (
	"context"
	"fmt"

	"golang.org/x/oauth2"
)

// The link states told to Options.OnLinkState. "unlinked" is the admin's
// doing (proxy/admin tells it), never the manager's.
const (
	StateLinked      = "linked"
	StateNeedsRelink = "needs_relink"
)

// LinkStateReader is an optional TokenStore method (cmd's store has it).
// With it a change of link state is judged against what the store
// recorded, so a mailbox marked before a restart is not announced again
// when its dead token is refused once more after it. Without it each dead
// token is announced once per process: the cache keeps the refused token
// and never sends it again.
type LinkStateReader interface {
	// LinkState says whether (provider, mailbox) has a refresh token and
	// why it needs re-linking ("" when fine).
	LinkState(provider, mailbox string) (linked bool, relink string, err error)
}

// storedState reads the mailbox's state before a change; known is false
// when the store cannot tell.
func (m *Manager) storedState(mailbox string) (linked bool, relink string, known bool) {
	r, ok := m.store.(LinkStateReader)
	if !ok || m.onLinkState == nil {
		return false, "", false
	}
	linked, relink, err := r.LinkState(m.ProviderName(), mailbox)
	if err != nil {
		m.log.Warn("oauth: read link state", "user", mailbox, "err", err)
		return false, "", false
	}
	return linked, relink, true
}

// tell calls Options.OnLinkState. It runs inside a refresh or a link, so
// the hook must not block (proxy/alerts queues and returns).
func (m *Manager) tell(mailbox, state, reason string) {
	if m.onLinkState != nil {
		m.onLinkState(mailbox, state, reason)
	}
}

// markDead records that the provider refused mailbox's grant and tells
// the change, unless the store had it marked already: twenty logins on a
// dead grant, or the first one after a restart, make no new alert.
func (m *Manager) markDead(mailbox, reason string) {
	_, before, known := m.storedState(mailbox)
	if err := m.store.MarkRelink(m.ProviderName(), mailbox, reason); err != nil {
		m.log.Error("oauth: mark relink", "user", mailbox, "err", err)
	}
	if !known || before == "" {
		m.tell(mailbox, StateNeedsRelink, reason)
	}
}

// saveLink stores a new link's refresh token and tells the change: from no
// link, or from needs_relink. Linking a mailbox whose link was fine
// changes nothing and tells nothing.
//
// It holds the refresh lock, as a refresh does from reading the store to
// marking or saving: a link saved between a refresh's refusal of the old
// token and its MarkRelink (which marks whatever token the store holds)
// would be marked dead and told as needs_relink right after the user
// linked again, and a refresh that works meanwhile would tell "linked"
// twice. Under the lock the changes are read, stored and told in order.
func (m *Manager) saveLink(ctx context.Context, mailbox, rt string) error {
	unlock, err := m.store.LockRefresh(ctx, m.ProviderName(), mailbox)
	if err != nil {
		return fmt.Errorf("refresh lock: %w", err)
	}
	defer unlock()
	linked, before, known := m.storedState(mailbox)
	if err := m.store.SaveRefreshToken(m.ProviderName(), mailbox, rt); err != nil {
		return err
	}
	switch {
	case known && linked && before == "":
	case before != "":
		m.tell(mailbox, StateLinked, "linked again")
	default:
		m.tell(mailbox, StateLinked, "linked")
	}
	return nil
}

// saveRefreshed is save for a refresh that worked: if the store had the
// mailbox marked (the provider refused the grant before a restart, and
// accepts it again), the recovery is told.
func (m *Manager) saveRefreshed(key, mailbox string, tok *oauth2.Token, oldRT string) {
	_, before, _ := m.storedState(mailbox)
	m.save(key, mailbox, tok, oldRT)
	if before != "" {
		m.tell(mailbox, StateLinked, "the provider accepts the grant again")
	}
}
