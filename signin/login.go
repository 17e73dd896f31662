package signin

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/caddy-two-factor/caddy-two-factor/policy"
	"github.com/caddy-two-factor/caddy-two-factor/store"
)

// Stage is what a sign-in needs next.
type Stage int

const (
	// NeedsSetup: the user has no authenticator yet (see SetupSecret,
	// FinishSetup).
	NeedsSetup Stage = iota + 1
	// NeedsConfirm: the user gives a code of their authenticator or a
	// recovery code (see Confirm).
	NeedsConfirm
	// SignedIn: a remembered browser was spared the second factor; the
	// token names a signed-in session (method policy.MethodRemembered).
	SignedIn
)

// maxUserName bounds the user name looked at; longer names are cut.
const maxUserName = 128

// LoginRequest is a password sign-in.
type LoginRequest struct {
	// User is the name as typed (normalized by the caller); Password the
	// password.
	User, Password string
	Client         Client
	// Replace is the session the client had, if any: it ends, never
	// upgraded.
	Replace *store.SessionKey
	// Next is where to send the user once signed in, kept in the session.
	Next string
	// RememberToken is the browser's remember cookie, if any: after the
	// right password, a browser the user remembered is signed in without
	// a second factor (see Policy.Remember).
	RememberToken string
}

// LoginResult is an open password-only (pending) session.
type LoginResult struct {
	// Token names the new session; the caller gives it to the client.
	Token string
	Stage Stage
}

// Login checks a password. It returns ErrBadCredentials for a wrong
// password and an unknown name alike, after the same work, a *LockedError
// while the account or the client is locked, ErrBusy when no hashing slot
// is free, or the store's error.
func (s *Service) Login(ctx context.Context, req LoginRequest) (LoginResult, error) {
	name, c := truncate(req.User, maxUserName), req.Client
	now := s.deps.Now()
	limits := s.policy.Limits
	// A locked client is turned away before it can take a hashing slot;
	// that tells nothing about any account.
	if until := s.deps.Attempts.ClientLockedUntil(c.IP, now); !until.IsZero() {
		return LoginResult{}, s.locked(StepLogin, "", false, c, until, ScopeClient)
	}
	acct, known, err := s.lookupAccount(name)
	if err != nil {
		return LoginResult{}, err
	}
	// A locked account is turned away by a read, before hashing: a refused
	// attempt writes nothing to the store (see throttle.Tracker).
	until, err := s.deps.Attempts.LockedUntil(name, known, c.IP, limits, now)
	if err != nil {
		return LoginResult{}, err
	}
	if !until.IsZero() {
		s.deps.Attempts.Refused(c.IP, limits, now)
		return LoginResult{}, s.locked(StepLogin, name, known, c, until, ScopeAccount)
	}
	// The hash is checked for known and unknown names alike: every answer
	// before a right password costs the same.
	hashed, ok := s.deps.Hashing.Acquire(ctx)
	if !ok {
		s.deps.Attempts.Refused(c.IP, limits, now)
		return LoginResult{}, ErrBusy
	}
	// The budgets were read just above: take the places without reading
	// them again.
	a, until, err := s.deps.Attempts.Reserve(name, known, c.IP, limits, now)
	attempt, err := s.attemptOrLocked(StepLogin, name, known, c, a, until, err)
	if err != nil {
		hashed()
		return LoginResult{}, err
	}
	defer s.release(attempt)
	passwordOK := checkHashed(acct, req.Password, hashed) && known
	if !passwordOK {
		if err := attempt.Failed(); err != nil {
			return LoginResult{}, err
		}
		s.observers.emit(Event{Kind: EventBadPassword, Step: StepLogin, User: name, Known: known, Client: c})
		// Read for unknown names too: the answer takes as long.
		s.lockedByFailure(StepLogin, name, known, c)
		return LoginResult{}, ErrBadCredentials
	}
	var res LoginResult
	err = s.deps.Store.Update(func(tx store.Tx) error {
		if req.Replace != nil {
			if err := tx.DeleteSession(*req.Replace); err != nil {
				return err
			}
		}
		if err := endOldestPending(tx, name, s.policy.MaxPending-1); err != nil {
			return err
		}
		u, err := tx.User(name)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		res.Stage = NeedsSetup
		if u != nil && u.Enrolled() {
			res.Stage = NeedsConfirm
		}
		if dev, ok := s.rememberedDevice(u, req.RememberToken, now); ok {
			dev.LastUsed = now
			res.Stage = SignedIn
			res.Token, err = s.openSignedIn(tx, u, acct.Credential, policy.MethodRemembered, c, now)
			return err
		}
		res.Token, err = newSession(tx, c, store.Session{
			User:     name,
			Stage:    store.StagePending,
			Created:  now,
			LastSeen: now,
			Expires:  now.Add(s.policy.PendingLifetime),
			Next:     req.Next,
			// The session holds only where the user keeps this password.
			Credential: acct.Credential,
		})
		return err
	})
	if err != nil {
		return LoginResult{}, err // the deferred release gives the attempt's place back
	}
	if res.Stage == SignedIn {
		s.signedIn(attempt)
		s.observers.emit(Event{Kind: EventSignedIn, Step: StepLogin, User: name, Known: true, Method: policy.MethodRemembered, Client: c})
		return res, nil
	}
	// A right password that never leads to a second factor counts, past an
	// allowance, as a failure: the pending session is open all the same.
	// It is counted once the session is, so a sign-in that failed is not.
	reason := ""
	if unfinished, err := attempt.PasswordAccepted(); err != nil {
		// The sign-in stands; only its count is lost, and the place it
		// held frees itself (throttle.MaxAttemptTime).
		s.failed("counting a 2FA sign-in without a second factor", err)
	} else if unfinished {
		reason = "unfinished_sign_ins"
	}
	s.observers.emit(Event{Kind: EventPasswordAccepted, Step: StepLogin, User: name, Known: true, Reason: reason, Client: c})
	return res, nil
}

// checkHashed checks password against acct, then frees the hashing slot
// with hashed, even if the check panics: a slot lost is lost until a
// restart, and with every slot lost each sign-in is refused as busy.
func checkHashed(acct Account, password string, hashed func()) bool {
	defer hashed()
	return acct.Check(password)
}

// endOldestPending deletes name's oldest pending sessions until at most
// keep are left.
func endOldestPending(tx store.Tx, name string, keep int) error {
	sessions, err := tx.UserSessions(name)
	if err != nil {
		return err
	}
	pending := slices.DeleteFunc(sessions, func(o *store.Session) bool { return o.Stage != store.StagePending })
	if len(pending) <= keep {
		return nil
	}
	slices.SortFunc(pending, func(a, b *store.Session) int { return a.Created.Compare(b.Created) })
	for _, o := range pending[:len(pending)-keep] {
		if err := tx.DeleteSession(o.Key); err != nil {
			return err
		}
	}
	return nil
}

// lookupAccount returns the account of a user declared in the policy or
// managed in the store, or the fake one, which costs the same to check. A
// store that cannot answer is an error, never an unknown user.
func (s *Service) lookupAccount(name string) (Account, bool, error) {
	if a, ok := s.policy.Accounts[name]; ok {
		return a, true, nil
	}
	var hash string
	err := s.deps.Store.View(func(tx store.Tx) error {
		u, err := tx.User(name)
		if err == nil {
			hash = u.PasswordHash
		}
		return err
	})
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return Account{}, false, err
	}
	if hash != "" {
		if a, err := NewAccount(hash); err == nil {
			return a, true, nil
		}
	}
	return s.policy.Fake, false, nil
}

// lockRetry is the least a LockedError asks to wait.
const lockRetry = time.Second

// RetryAfter is how long to wait from now, at least a second.
func (e *LockedError) RetryAfter(now time.Time) time.Duration {
	return max(e.Until.Sub(now).Round(time.Second), lockRetry)
}
