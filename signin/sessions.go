package signin

import (
	"errors"
	"slices"
	"time"

	"github.com/caddy-two-factor/caddy-two-factor/store"
)

// The rule of a valid session lives here and in store.Session (Live,
// HeldBy), once: Holds says whether the store and this policy still vouch
// for a session, Valid adds time. The gate's session cache applies Holds
// in parts (HeldBy and StillHasPassword when it loads a session, Honours
// and Live on every request, since it keeps the last use in memory); the
// pages, the admin API and the command line call Holds or Valid.

// StillHasPassword reports whether u is managed in the store with the
// password hash s was opened with.
func StillHasPassword(u *store.User, s *store.Session) bool {
	return u.PasswordHash != "" && store.CredentialOf(u.PasswordHash) == s.Credential
}

// Honours reports whether the policy honours a session of user opened with
// the password hash named by opened: the user is declared in the policy
// with that hash, or, not declared, is managed in the store and still has
// it (databaseMatch, see StillHasPassword). A config that shares the store
// but declares the user with another password, or a password changed
// since, does not. A policy of vouched sign-ins (Policy.Vouched) honours
// only sessions opened by BeginVouched, of a user it declares, or of any
// user when it declares none.
func (p *Policy) Honours(user string, opened store.Credential, databaseMatch bool) bool {
	if p.Vouched {
		// Whoever vouched for the user decides on their password; the
		// config's user lines, when there are any, say who may pass.
		if opened != VouchedCredential {
			return false
		}
		_, declared := p.Accounts[user]
		return declared || len(p.Accounts) == 0
	}
	if a, declared := p.Accounts[user]; declared {
		return a.Credential == opened
	}
	return databaseMatch
}

// Holds reports whether user u still holds session s (see
// store.Session.HeldBy) with a password the policy honours.
func (p *Policy) Holds(s *store.Session, u *store.User) bool {
	return s.HeldBy(u) && p.Honours(u.Name, s.Credential, StillHasPassword(u, s))
}

// Valid reports whether session s of user u is valid under the policy at
// now: live (within its absolute and idle limits) and held.
func (p *Policy) Valid(s *store.Session, u *store.User, now time.Time) bool {
	return s.Live(now, p.SessionIdle) && p.Holds(s, u)
}

// Pending returns the password-only session of key and its user (a user
// with no record yet is returned as one with only a name), or
// ErrNoPending.
func (s *Service) Pending(key store.SessionKey) (*store.Session, *store.User, error) {
	now := s.deps.Now()
	var (
		sess *store.Session
		user *store.User
	)
	err := s.deps.Store.View(func(tx store.Tx) error {
		rec, err := tx.Session(key)
		if err != nil {
			return err
		}
		if rec.Stage != store.StagePending || rec.User == passkeyLoginUser {
			return ErrNoPending // a passkey login, which has no user yet
		}
		u, err := tx.User(rec.User)
		if errors.Is(err, store.ErrNotFound) {
			u, err = &store.User{Name: rec.User}, nil
		}
		if err != nil {
			return err
		}
		if !s.policy.Valid(rec, u, now) {
			return ErrNoPending
		}
		sess, user = rec, u
		return nil
	})
	if errors.Is(err, store.ErrNotFound) {
		err = ErrNoPending
	}
	return sess, user, err
}

// SignedIn returns the signed-in session of key and its enrolled user,
// read afresh from the store, or ErrNotSignedIn. Its time limits are the
// caller's to check: a session cache knows its last use better than the
// store.
func (s *Service) SignedIn(key store.SessionKey) (*store.Session, *store.User, error) {
	var (
		sess *store.Session
		user *store.User
	)
	err := s.deps.Store.View(func(tx store.Tx) error {
		var err error
		sess, user, err = fullRecords(tx, key)
		return err
	})
	if err == nil && !s.policy.Holds(sess, user) {
		err = ErrNotSignedIn
	}
	if err != nil {
		return nil, nil, err
	}
	return sess, user, nil
}

// Session returns the session of key, pending or signed in, or nil if
// there is none; with live, a session past its time limits counts as none.
func (s *Service) Session(key store.SessionKey, live bool) (*store.Session, error) {
	var sess *store.Session
	err := s.deps.Store.View(func(tx store.Tx) error {
		var err error
		sess, err = tx.Session(key)
		return err
	})
	if errors.Is(err, store.ErrNotFound) || (err == nil && live && !sess.Live(s.deps.Now(), s.policy.SessionIdle)) {
		return nil, nil
	}
	if err == nil && sess.User == passkeyLoginUser {
		return nil, nil // an unfinished passkey login is no one's yet; it expires
	}
	return sess, err
}

// Sessions returns the live sessions of u, pending or signed in, that u
// still holds: current first, then the most recently used.
func (s *Service) Sessions(u *store.User, current store.SessionKey) ([]*store.Session, error) {
	now := s.deps.Now()
	var sessions []*store.Session
	err := s.deps.Store.View(func(tx store.Tx) error {
		var err error
		sessions, err = tx.UserSessions(u.Name)
		return err
	})
	if err != nil {
		return nil, err
	}
	sessions = slices.DeleteFunc(sessions, func(o *store.Session) bool {
		return !o.Live(now, s.policy.SessionIdle) || !o.HeldBy(u)
	})
	slices.SortFunc(sessions, func(a, b *store.Session) int {
		switch {
		case a.Key == current:
			return -1
		case b.Key == current:
			return 1
		}
		return b.LastSeen.Compare(a.LastSeen)
	})
	return sessions, nil
}

// fullRecords reads a signed-in session and its enrolled user in tx, or
// returns ErrSessionEnded.
func fullRecords(tx store.Tx, key store.SessionKey) (*store.Session, *store.User, error) {
	s, err := tx.Session(key)
	if err != nil {
		return nil, nil, asEnded(err)
	}
	if s.Stage != store.StageFull {
		return nil, nil, ErrSessionEnded
	}
	u, err := tx.User(s.User)
	if err != nil {
		return nil, nil, asEnded(err)
	}
	if !u.Enrolled() {
		return nil, nil, ErrSessionEnded
	}
	return s, u, nil
}

// endSessions ends, in tx, user's sessions for which end is true (all of
// them if end is nil), and returns how many it ended. A session cache in
// front of the store (sessioncache.Cache.Coherent) drops them as this
// transaction commits.
func endSessions(tx store.Tx, user string, end func(*store.Session) bool) (int, error) {
	sessions, err := tx.UserSessions(user)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, o := range sessions {
		if end != nil && !end(o) {
			continue
		}
		if err := tx.DeleteSession(o.Key); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// Honours is the policy's Honours, for the gate's session cache.
func (s *Service) Honours(user string, opened store.Credential, databaseMatch bool) bool {
	return s.policy.Honours(user, opened, databaseMatch)
}
