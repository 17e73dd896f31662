package signin

import (
	"errors"
	"time"

	"github.com/caddy-two-factor/caddy-two-factor/notify"
	"github.com/caddy-two-factor/caddy-two-factor/passkey"
	"github.com/caddy-two-factor/caddy-two-factor/recovery"
	"github.com/caddy-two-factor/caddy-two-factor/store"
	"github.com/caddy-two-factor/caddy-two-factor/throttle"
	"github.com/caddy-two-factor/caddy-two-factor/totp"
)

// The second factors, as sessions and events name them.
const (
	MethodTOTP     = "totp"
	MethodRecovery = "recovery"
	// MethodSetup is the method of a session signed in at enrollment.
	MethodSetup = "setup"
	// MethodWebAuthn is a passkey or security key (see passkeys.go),
	// at enrollment as at every later use.
	MethodWebAuthn = "webauthn"
)

// secondFactor is what a user typed as a second factor: a TOTP code, a
// recovery code or an e-mailed code, parsed.
type secondFactor struct {
	totp, recovery, email string
}

func parseSecondFactor(input string) (secondFactor, bool) {
	if code, ok := totp.ParseCode(input); ok {
		return secondFactor{totp: code}, true
	}
	if code, ok := recovery.Parse(input); ok {
		return secondFactor{recovery: code}, true
	}
	if notify.IsCode(input) {
		return secondFactor{email: input}, true
	}
	return secondFactor{}, false
}

// method names the factor in sessions and events.
func (f secondFactor) method() string {
	switch {
	case f.totp != "":
		return MethodTOTP
	case f.email != "":
		return MethodEmail
	}
	return MethodRecovery
}

// useSecondFactor checks f against u's enrollment and uses it up: a TOTP
// step is accepted once, a recovery code is removed. It returns
// ErrBadCode or ErrReplayedCode if f does not match. The caller stores u
// in the same transaction it read u in.
func (s *Service) useSecondFactor(u *store.User, f secondFactor, now time.Time) error {
	if f.totp != "" && u.TOTP == nil {
		return ErrBadCode // a passkey-only user has no codes of an app
	}
	if f.totp != "" {
		secret, err := s.deps.Sealer.Open(u.TOTP.Secret, u.Name)
		if err != nil {
			return err
		}
		step, ok := totp.Verify(secret, f.totp, now, u.TOTP.LastStep)
		if !ok {
			if _, used := totp.Verify(secret, f.totp, now, 0); used {
				return ErrReplayedCode
			}
			return ErrBadCode
		}
		u.TOTP.LastStep = step
	} else {
		digests := recoveryDigests(u)
		i := recovery.Match(f.recovery, *digests)
		if i < 0 {
			return ErrBadCode
		}
		*digests = append((*digests)[:i], (*digests)[i+1:]...)
	}
	if u.TOTP == nil {
		return nil
	}
	// A secret enrolled before encryption_key was set is encrypted now.
	resealed, _, err := s.deps.Sealer.Reseal(u.TOTP.Secret, u.Name)
	if err != nil {
		return err
	}
	u.TOTP.Secret = resealed
	return nil
}

// begin reserves an attempt by user from c. When the account or the
// client may not try now, it reports the lock and returns a *LockedError.
// Callers defer s.release of the attempt they get.
func (s *Service) begin(step, user string, known bool, c Client, now time.Time) (*throttle.Attempt, error) {
	a, until, err := s.deps.Attempts.Begin(user, known, c.IP, s.policy.Limits, now)
	return s.attemptOrLocked(step, user, known, c, a, until, err)
}

// attemptOrLocked turns a refused attempt (see begin) into a
// *LockedError, or returns the attempt.
func (s *Service) attemptOrLocked(step, user string, known bool, c Client, a *throttle.Attempt, until time.Time, err error) (*throttle.Attempt, error) {
	if err != nil {
		return nil, err
	}
	if a == nil {
		return nil, s.locked(step, user, known, c, until, ScopeAccount)
	}
	return a, nil
}

func (s *Service) locked(step, user string, known bool, c Client, until time.Time, scope string) error {
	s.observers.emit(Event{Kind: EventLocked, Step: step, User: user, Known: known, Client: c, Until: until, Scope: scope})
	return &LockedError{Until: until, Scope: scope}
}

// release gives back an attempt's place unless it failed. A store error
// here only leaves one attempt counted, so it is reported, not returned.
func (s *Service) release(a *throttle.Attempt) {
	s.failed("settling a 2FA attempt", a.Release())
}

// signedIn forgets the user's failures once they have given both factors.
func (s *Service) signedIn(a *throttle.Attempt) {
	s.failed("clearing 2FA failure count", a.SignedIn())
}

// codeFailed settles attempt as a wrong second factor (codeErr is
// ErrBadCode or ErrReplayedCode), reports it and returns codeErr, or the
// store's error if the failure could not be counted.
func (s *Service) codeFailed(attempt *throttle.Attempt, step, user, method string, c Client, codeErr error) error {
	if err := attempt.Failed(); err != nil {
		return err
	}
	kind := EventBadCode
	if errors.Is(codeErr, ErrReplayedCode) {
		kind = EventReplayedCode
	}
	s.observers.emit(Event{Kind: kind, Step: step, User: user, Known: true, Method: method, Client: c})
	s.lockedByFailure(step, user, true, c)
	return codeErr
}

// ReasonFailures is the Reason of an EventLocked reported when a failure
// has just locked the account (rather than an attempt refused by a lock).
const ReasonFailures = "failures"

// lockedByFailure reports a lock that a failure by user from c has just
// set, if it did and user is known.
func (s *Service) lockedByFailure(step, user string, known bool, c Client) {
	until, err := s.deps.Attempts.LockedUntil(user, known, c.IP, s.policy.Limits, s.deps.Now())
	if err != nil {
		s.failed("reading a 2FA lock", err)
		return
	}
	if known && !until.IsZero() {
		s.observers.emit(Event{Kind: EventLocked, Step: step, User: user, Known: true, Client: c, Until: until, Scope: ScopeAccount, Reason: ReasonFailures})
	}
}

// checkNewSecret checks a code typed for the pending secret of sess (at
// setup and when replacing an authenticator), as one attempt by the user.
// Unless the code is right it returns an error and no attempt; otherwise
// the step the code matched and the attempt, which the caller releases.
func (s *Service) checkNewSecret(sess *store.Session, input, step string, c Client, now time.Time) (uint64, *throttle.Attempt, error) {
	secret, err := s.deps.Sealer.Open(sess.PendingSecret, sess.User)
	if err != nil {
		return 0, nil, err
	}
	code, ok := totp.ParseCode(input)
	if !ok {
		return 0, nil, ErrMalformedCode
	}
	attempt, err := s.begin(step, sess.User, true, c, now)
	if err != nil {
		return 0, nil, err
	}
	matched, ok := totp.Verify(secret, code, now, 0)
	if !ok {
		return 0, nil, s.codeFailed(attempt, step, sess.User, MethodTOTP, c, ErrBadCode)
	}
	return matched, attempt, nil
}

// StepUpRequest asks for an account change behind a fresh second factor.
type StepUpRequest struct {
	// Session is the signed-in session asking, as read by SignedIn.
	Session *store.Session
	// Factor is what the user typed: a current TOTP code or a recovery code.
	Factor string
	// Assertion, when set, is the factor instead: the browser's answer to
	// the passkey ceremony begun by BeginPasskeyStepUp.
	Assertion []byte
	// Step names the action in events (a Step constant).
	Step   string
	Client Client
}

// StepUp makes change, in one transaction, once the request's factor is a
// right second factor of the signed-in user: a current code, a recovery
// code or a passkey (or, at StepReconfirm with Policy.EmailCodesStepUp,
// the code e-mailed to the session), checked and used up as at sign-in,
// with the same attempt limits. The session's confirmation time and
// method become the factor's, and a re-check deadline is drawn anew (see
// policy.Policy.Confirm). change gets the session and user as read in tx;
// StepUp stores both after it.
//
// It returns ErrMalformedFactor, ErrBadCode, ErrReplayedCode, ErrBadPasskey,
// ErrPasskeyExpired, a *LockedError, ErrSessionEnded, or change's error.
func (s *Service) StepUp(req StepUpRequest, change func(tx store.Tx, sess *store.Session, u *store.User) error) error {
	now := s.deps.Now()
	factor, ok := parseSecondFactor(req.Factor)
	method := factor.method()
	switch {
	case req.Assertion != nil:
		method = MethodWebAuthn
	case !ok || (factor.email != "" && !s.takesEmailCode(req.Step)):
		return ErrMalformedFactor
	}
	user := req.Session.User
	attempt, err := s.begin(req.Step, user, true, req.Client, now)
	if err != nil {
		return err
	}
	defer s.release(attempt)
	var (
		remaining = -1
		refused   error
	)
	err = s.deps.Store.Update(func(tx store.Tx) error {
		sess, u, err := fullRecords(tx, req.Session.Key)
		if err != nil {
			return err
		}
		if req.Assertion != nil {
			if refused = s.usePasskey(sess, u, passkey.Login, req.Assertion); refused != nil {
				return tx.PutSession(sess) // the ceremony is spent all the same
			}
		} else {
			if factor.email != "" {
				err = s.useEmailCode(sess, factor.email, now)
			} else {
				err = s.useSecondFactor(u, factor, now)
			}
			if err != nil {
				return err
			}
		}
		if err := s.policy.Gate.Confirm(sess, now, nil); err != nil {
			return err
		}
		sess.Method = method
		if err := change(tx, sess, u); err != nil {
			return err
		}
		if factor.recovery != "" && req.Assertion == nil {
			remaining = len(*recoveryDigests(u))
		}
		if err := tx.PutUser(u); err != nil {
			return err
		}
		return tx.PutSession(sess)
	})
	if errors.Is(err, ErrBadCode) || errors.Is(err, ErrReplayedCode) {
		return s.codeFailed(attempt, req.Step, user, method, req.Client, err)
	}
	if err == nil && refused != nil {
		err = s.passkeyRefused(attempt, req.Step, user, true, req.Client, refused)
	}
	if err != nil {
		return err
	}
	s.signedIn(attempt)
	s.recoveryUsed(user, remaining, req.Client)
	return nil
}

// takesEmailCode reports whether StepUp takes an e-mailed code at step:
// only when the session gives its factor again for a step-up rule or a
// re-check, and the policy allows it there.
func (s *Service) takesEmailCode(step string) bool {
	return step == StepReconfirm && s.policy.EmailCodes && s.policy.EmailCodesStepUp
}

// recoveryUsed reports a recovery code used up, if one was (remaining >= 0).
func (s *Service) recoveryUsed(user string, remaining int, c Client) {
	if remaining >= 0 {
		s.observers.emit(Event{Kind: EventRecoveryUsed, User: user, Known: true, Method: MethodRecovery, Remaining: remaining, Client: c})
	}
}
