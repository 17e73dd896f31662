package signin

import (
	"errors"

	"github.com/caddy-two-factor/caddy-two-factor/store"
)

// Sign-in after another login (user_from): an earlier handler (basic_auth,
// forward_auth, another auth module) has authenticated the user, and the
// service asks only for the second factor. No password is checked here,
// and none is needed in the store or the config.

// VouchedCredential is the credential of the sessions of vouched sign-ins,
// in place of a password hash's (see store.Session.Credential): a config
// that checks passwords never honours them, and a config of vouched
// sign-ins honours no session opened with a password.
var VouchedCredential = store.CredentialOf("two_factor vouched sign-in")

// VouchedRequest opens a sign-in for a user an earlier login vouched for.
type VouchedRequest struct {
	// User is the name the earlier login gave (normalized by the caller).
	User   string
	Client Client
	// Replace is the session the client had, if any: it ends.
	Replace *store.SessionKey
	// Next is where to send the user once signed in.
	Next string
}

// BeginVouched opens a pending session for req.User, whom an earlier
// login authenticated: the next stage is the second factor (setup at the
// first visit, confirm after). It returns ErrNotVouchable when the policy
// does not take vouched sign-ins or does not declare the user (when it
// declares any), or the store's error.
func (s *Service) BeginVouched(req VouchedRequest) (LoginResult, error) {
	if !s.policy.Vouched || !s.vouchable(req.User) {
		return LoginResult{}, ErrNotVouchable
	}
	now := s.deps.Now()
	var res LoginResult
	err := s.deps.Store.Update(func(tx store.Tx) error {
		if req.Replace != nil {
			if err := tx.DeleteSession(*req.Replace); err != nil {
				return err
			}
		}
		if err := endOldestPending(tx, req.User, s.policy.MaxPending-1); err != nil {
			return err
		}
		u, err := tx.User(req.User)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		res.Stage = NeedsSetup
		if u != nil && u.TOTP != nil {
			res.Stage = NeedsConfirm
		}
		res.Token, err = newSession(tx, req.Client, store.Session{
			User:       req.User,
			Stage:      store.StagePending,
			Created:    now,
			LastSeen:   now,
			Expires:    now.Add(s.policy.PendingLifetime),
			Next:       req.Next,
			Credential: VouchedCredential,
		})
		return err
	})
	if err != nil {
		return LoginResult{}, err
	}
	s.observers.emit(Event{Kind: EventVouched, Step: StepLogin, User: req.User, Known: true, Client: req.Client})
	return res, nil
}

// vouchable reports whether the policy lets user sign in by vouching:
// any user when it declares none, otherwise only those it declares.
func (s *Service) vouchable(user string) bool {
	if user == "" {
		return false
	}
	if len(s.policy.Accounts) == 0 {
		return true
	}
	_, declared := s.policy.Accounts[user]
	return declared
}
