package signin

import (
	"bytes"
	"errors"
	"time"

	"github.com/caddy-two-factor/caddy-two-factor/policy"
	"github.com/caddy-two-factor/caddy-two-factor/recovery"
	"github.com/caddy-two-factor/caddy-two-factor/store"
	"github.com/caddy-two-factor/caddy-two-factor/totp"
)

// SetupSecret returns the secret being set up in sess, creating it on
// first use, or always when replace is set (a new authenticator from the
// account page: each visit makes a new one, so a secret read by someone
// else is never the one the user goes on to activate). It is kept, sealed,
// in the session, so no form carries it, and at first setup reloading the
// page shows the same secret. sess.PendingSecret is updated.
func (s *Service) SetupSecret(sess *store.Session, replace bool) ([]byte, error) {
	if sess.PendingSecret == nil || replace {
		fresh, err := totp.NewSecret()
		if err != nil {
			return nil, err
		}
		sealed, err := s.deps.Sealer.Seal(fresh, sess.User)
		if err != nil {
			return nil, err
		}
		err = s.deps.Store.Update(func(tx store.Tx) error {
			rec, err := tx.Session(sess.Key)
			if err != nil {
				return asEnded(err)
			}
			if rec.PendingSecret == nil || replace { // another tab may have won
				rec.PendingSecret = sealed
				if err := tx.PutSession(rec); err != nil {
					return err
				}
			}
			sess.PendingSecret = rec.PendingSecret
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return s.OpenSecret(sess)
}

// OpenSecret returns the secret being set up in sess, in the clear.
func (s *Service) OpenSecret(sess *store.Session) ([]byte, error) {
	if sess.PendingSecret == nil {
		return nil, ErrNoSecret
	}
	return s.deps.Sealer.Open(sess.PendingSecret, sess.User)
}

// SignInResult is a completed sign-in: a new signed-in session.
type SignInResult struct {
	// Token names the new session; the caller gives it to the client.
	Token string
	// Next is where the user asked to go, as kept in the pending session.
	Next string
	// Method is the second factor given (MethodSetup at enrollment).
	Method string
	// RecoveryCodes are the new codes, at setup only: shown once.
	RecoveryCodes []string
}

// FinishSetup activates the secret shown to the user of the pending
// session sess (see SetupSecret) once code is a code of it, with new
// recovery codes, and signs the user in. It returns ErrNoSecret when no
// secret was shown, ErrMalformedCode, ErrBadCode, a *LockedError,
// ErrAlreadyEnrolled (the user enrolled meanwhile, in another tab),
// ErrSessionEnded, ErrAppsOff, or the store's error.
func (s *Service) FinishSetup(sess *store.Session, code string, c Client) (SignInResult, error) {
	if s.policy.NoTOTPEnrollment {
		return SignInResult{}, ErrAppsOff
	}
	if sess.PendingSecret == nil {
		return SignInResult{}, ErrNoSecret
	}
	now := s.deps.Now()
	step, attempt, err := s.checkNewSecret(sess, code, StepSetup, c, now)
	if err != nil {
		return SignInResult{}, err
	}
	defer s.release(attempt)
	res := SignInResult{Method: MethodSetup}
	err = s.deps.Store.Update(func(tx store.Tx) error {
		rec, err := tx.Session(sess.Key)
		if err != nil {
			return asEnded(err)
		}
		if rec.Stage != store.StagePending || !bytes.Equal(rec.PendingSecret, sess.PendingSecret) {
			return ErrSessionEnded
		}
		u, err := tx.User(rec.User)
		if errors.Is(err, store.ErrNotFound) {
			u, err = &store.User{Name: rec.User, Created: now}, nil
		}
		if err != nil {
			return err
		}
		if u.Enrolled() {
			return ErrAlreadyEnrolled
		}
		var digests [][]byte
		if res.RecoveryCodes, digests, err = recovery.Generate(s.policy.RecoveryCodes); err != nil {
			return err
		}
		u.TOTP = &store.Enrollment{Secret: rec.PendingSecret, LastStep: step, RecoveryDigests: digests, EnrolledAt: now}
		u.RecoveryDigests = nil // left by passkeys an operator removed
		rememberBrowser(u, c)   // the browser that enrolls is known from then on
		res.Next = rec.Next
		res.Token, err = s.completeSignIn(tx, u, rec, MethodSetup, c, now)
		return err
	})
	if err != nil {
		return SignInResult{}, err
	}
	s.signedIn(attempt)
	s.observers.emit(Event{Kind: EventSetupComplete, Step: StepSetup, User: sess.User, Known: true, Method: MethodTOTP, Client: c})
	return res, nil
}

// Confirm signs in the user of the pending session sess once code is a
// current TOTP code of theirs, an unused recovery code, or the code
// e-mailed for sess (see SendEmailCode), when e-mailed codes are on. A
// wrong code of any kind is one failed attempt. It returns
// ErrMalformedFactor, ErrBadCode, ErrReplayedCode, a *LockedError,
// ErrSessionEnded (ErrNoPending), ErrNotEnrolled, or the store's error.
func (s *Service) Confirm(sess *store.Session, code string, c Client) (SignInResult, error) {
	factor, ok := parseSecondFactor(code)
	if !ok || (factor.email != "" && !s.policy.EmailCodes) {
		return SignInResult{}, ErrMalformedFactor
	}
	now := s.deps.Now()
	attempt, err := s.begin(StepConfirm, sess.User, true, c, now)
	if err != nil {
		return SignInResult{}, err
	}
	defer s.release(attempt)
	res := SignInResult{Method: factor.method()}
	remaining := -1
	var newBrowser bool
	err = s.deps.Store.Update(func(tx store.Tx) error {
		rec, err := tx.Session(sess.Key)
		if err != nil {
			return asEnded(err)
		}
		if rec.Stage != store.StagePending {
			return ErrSessionEnded
		}
		u, err := tx.User(rec.User)
		if err != nil {
			return asEnded(err)
		}
		if !u.Enrolled() {
			return ErrNotEnrolled
		}
		if factor.email != "" {
			err = s.useEmailCode(rec, factor.email, now)
		} else {
			err = s.useSecondFactor(u, factor, now)
		}
		if err != nil {
			return err
		}
		if factor.recovery != "" {
			remaining = len(*recoveryDigests(u))
		}
		newBrowser = rememberBrowser(u, c)
		res.Next = rec.Next
		res.Token, err = s.completeSignIn(tx, u, rec, res.Method, c, now)
		return err
	})
	if errors.Is(err, ErrBadCode) || errors.Is(err, ErrReplayedCode) {
		return SignInResult{}, s.codeFailed(attempt, StepConfirm, sess.User, res.Method, c, err)
	}
	if err != nil {
		return SignInResult{}, err
	}
	s.signedIn(attempt)
	s.recoveryUsed(sess.User, remaining, c)
	s.observers.emit(Event{Kind: EventSignedIn, Step: StepConfirm, User: sess.User, Known: true, Method: res.Method, Client: c, NewBrowser: newBrowser})
	return res, nil
}

// completeSignIn ends the pending session p and starts a signed-in one for
// u, in tx. Unless concurrent sessions are allowed, the user's session
// identifier is rotated and every other session of theirs ends. The
// caller has already updated u's enrollment.
func (s *Service) completeSignIn(tx store.Tx, u *store.User, p *store.Session, method string, c Client, now time.Time) (string, error) {
	if err := tx.DeleteSession(p.Key); err != nil {
		return "", err
	}
	return s.openSignedIn(tx, u, p.Credential, method, c, now)
}

// openSignedIn starts a signed-in session for u, opened with credential,
// in tx: after a second factor, or (method policy.MethodRemembered) after
// the password on a remembered browser, which records no confirmation.
// Unless concurrent sessions are allowed, the user's session identifier is
// rotated and every other session of theirs ends. The caller has already
// updated u's enrollment.
func (s *Service) openSignedIn(tx store.Tx, u *store.User, credential store.Credential, method string, c Client, now time.Time) (string, error) {
	concurrent := s.policy.ConcurrentSessions
	if !concurrent || u.SessionID == "" {
		id, err := store.NewID()
		if err != nil {
			return "", err
		}
		u.SessionID = id
	}
	if err := tx.PutUser(u); err != nil {
		return "", err
	}
	if !concurrent {
		if _, err := endSessions(tx, u.Name, nil); err != nil {
			return "", err
		}
	}
	full := store.Session{
		User:          u.Name,
		Stage:         store.StageFull,
		UserSessionID: u.SessionID,
		Created:       now,
		LastSeen:      now,
		Expires:       now.Add(s.policy.SessionLifetime),
		Method:        method,
		Credential:    credential,
	}
	confirm := s.policy.Gate.Confirm
	if method == policy.MethodRemembered {
		confirm = s.policy.Gate.SignedInRemembered
	}
	if err := confirm(&full, now, nil); err != nil {
		return "", err
	}
	return newSession(tx, c, full)
}
