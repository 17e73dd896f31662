package signin

import (
	"bytes"

	"github.com/caddy-two-factor/caddy-two-factor/recovery"
	"github.com/caddy-two-factor/caddy-two-factor/store"
)

// The account actions of a signed-in user. Each replacement asks for a
// fresh second factor (see StepUp): a script running in the user's
// browser on the same site can post the account forms, but cannot give a
// code it does not have.

// ReplaceRecoveryCodes replaces the recovery codes of the user of the
// signed-in session sess once factor is a fresh second factor, and
// returns the new codes (shown once). Errors are StepUp's.
func (s *Service) ReplaceRecoveryCodes(sess *store.Session, factor string, c Client) ([]string, error) {
	return s.ReplaceRecoveryCodesAfter(StepUpRequest{Session: sess, Factor: factor, Client: c})
}

// ReplaceRecoveryCodesAfter is ReplaceRecoveryCodes behind the step-up of
// req, which may be a passkey (see StepUpRequest.Assertion).
func (s *Service) ReplaceRecoveryCodesAfter(req StepUpRequest) ([]string, error) {
	sess, c := req.Session, req.Client
	req.Step = StepRecoveryCodes
	var codes []string
	err := s.StepUp(req,
		func(_ store.Tx, _ *store.Session, u *store.User) error {
			var err error
			codes, *recoveryDigests(u), err = recovery.Generate(s.policy.RecoveryCodes)
			return err
		})
	if err != nil {
		return nil, err
	}
	s.observers.emit(Event{Kind: EventRecoveryReplaced, Step: StepRecoveryCodes, User: sess.User, Known: true, Remaining: len(codes), Client: c})
	return codes, nil
}

// ReplaceAuthenticator activates the authenticator set up in the
// signed-in session sess (see SetupSecret with replace) once code is a
// code of it and current a fresh second factor of the old one, and ends
// the user's other sessions; it returns how many. It returns ErrNoSecret
// when no secret was shown or another visit replaced it meanwhile;
// ErrMalformedCode or ErrBadCode for code; StepUp's errors for current.
// For a user with passkeys and no app yet, it adds the app.
func (s *Service) ReplaceAuthenticator(sess *store.Session, code, current string, c Client) (int, error) {
	return s.replaceAuthenticator(sess, code, StepUpRequest{Session: sess, Factor: current, Step: StepReenroll, Client: c})
}

// AddAuthenticatorWithPasskey is ReplaceAuthenticator for a user who
// confirms with a passkey: assertion answers the ceremony begun by
// BeginPasskeyStepUp.
func (s *Service) AddAuthenticatorWithPasskey(sess *store.Session, code string, assertion []byte, c Client) (int, error) {
	return s.replaceAuthenticator(sess, code, StepUpRequest{Session: sess, Assertion: assertion, Step: StepReenroll, Client: c})
}

func (s *Service) replaceAuthenticator(sess *store.Session, code string, req StepUpRequest) (int, error) {
	c := req.Client
	if sess.PendingSecret == nil {
		return 0, ErrNoSecret
	}
	now := s.deps.Now()
	step, attempt, err := s.checkNewSecret(sess, code, StepReenroll, c, now)
	if err != nil {
		return 0, err
	}
	// The new code was right: that attempt is settled, and the current
	// factor is checked as an attempt of its own.
	s.release(attempt)
	var ended int
	err = s.StepUp(req,
		func(tx store.Tx, rec *store.Session, u *store.User) error {
			if !bytes.Equal(rec.PendingSecret, sess.PendingSecret) {
				return ErrNoSecret // replaced in another tab meanwhile
			}
			if u.TOTP == nil && s.policy.NoTOTPEnrollment {
				return ErrAppsOff // a passkey user may not add one here
			}
			// The recovery codes stay: they are not tied to the
			// authenticator. A passkey-only user's move to the new one.
			u.TOTP = &store.Enrollment{Secret: rec.PendingSecret, LastStep: step, RecoveryDigests: *recoveryDigests(u), EnrolledAt: now}
			u.RecoveryDigests = nil
			rec.PendingSecret = nil
			// Sessions opened with the old authenticator end.
			var err error
			ended, err = endSessions(tx, u.Name, func(o *store.Session) bool { return o.Key != rec.Key })
			return err
		})
	if err != nil {
		return 0, err
	}
	s.observers.emit(Event{Kind: EventAuthenticatorReplaced, Step: StepReenroll, User: sess.User, Known: true, Sessions: ended, Client: c})
	return ended, nil
}

// EndSessions ends the sessions of the user of sess, other than sess
// itself, that end selects, and returns how many. scope (ScopeOne or
// ScopeOthers) names the action in events.
func (s *Service) EndSessions(sess *store.Session, scope string, c Client, end func(*store.Session) bool) (int, error) {
	var ended int
	err := s.deps.Store.Update(func(tx store.Tx) error {
		var err error
		ended, err = endSessions(tx, sess.User, func(o *store.Session) bool { return o.Key != sess.Key && end(o) })
		return err
	})
	if err != nil {
		return 0, err
	}
	s.observers.emit(Event{Kind: EventSessionsEnded, User: sess.User, Known: true, Scope: scope, Sessions: ended, Client: c})
	return ended, nil
}

// EndOtherSessions ends every session of the user of sess but sess.
func (s *Service) EndOtherSessions(sess *store.Session, c Client) (int, error) {
	return s.EndSessions(sess, ScopeOthers, c, func(*store.Session) bool { return true })
}

// Logout ends sess, pending or signed in, in the store at once: a client
// told it is signed out while its session lives on would only look so.
func (s *Service) Logout(sess *store.Session, c Client) error {
	if err := s.deps.Store.Update(func(tx store.Tx) error { return tx.DeleteSession(sess.Key) }); err != nil {
		return err
	}
	s.observers.emit(Event{Kind: EventSignedOut, User: sess.User, Known: true, Client: c})
	return nil
}
