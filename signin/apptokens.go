package signin

import (
	"errors"
	"slices"
	"time"

	"github.com/caddy-two-factor/caddy-two-factor/policy"
	"github.com/caddy-two-factor/caddy-two-factor/store"
)

// App tokens, for clients that cannot give a second factor (WebDAV,
// CalDAV, scripts): a signed-in user creates one behind a fresh second
// factor, and a request on the paths that accept them passes as that user
// (package policy makes and checks the tokens; the caller decides where
// they are accepted).

// AppTokenRequest is a request that carries an app token.
type AppTokenRequest struct {
	// Token is the token as sent.
	Token string
	// BasicUser is the user name given with it in Basic authentication
	// (Basic true): it must be the token's user.
	BasicUser string
	Basic     bool
	Client    Client
}

// UseAppToken returns the user an app token lets in, and records its use
// (at most once per policy.AppTokenTouchEvery). A token that is not one of
// a user the policy still honours, or has expired, is ErrBadAppToken and
// counts against the client's budget (in memory, as a refused attempt: a
// token names its user, and wrong tokens must not lock that user out); a
// client over its budget gets a *LockedError before the token is looked
// at. A store that cannot answer is its error, never a pass.
func (s *Service) UseAppToken(req AppTokenRequest) (string, error) {
	now, c := s.deps.Now(), req.Client
	if until := s.deps.Attempts.ClientLockedUntil(c.IP, now); !until.IsZero() {
		return "", s.locked(StepAppToken, "", false, c, until, ScopeClient)
	}
	user, id, secret, ok := policy.ParseAppToken(req.Token)
	if ok && req.Basic && req.BasicUser != user {
		ok = false
	}
	var touch bool
	if ok {
		err := s.deps.Store.View(func(tx store.Tx) error {
			u, err := tx.User(user)
			if err != nil {
				return err
			}
			t, valid := policy.VerifyAppToken(u, id, secret, now)
			ok = valid && u.Enrolled() && s.tokenHonoured(u)
			if ok {
				touched := *t
				touch = policy.TouchAppToken(&touched, now)
			}
			return nil
		})
		if errors.Is(err, store.ErrNotFound) {
			ok, err = false, nil
		}
		if err != nil {
			return "", err
		}
	}
	if !ok {
		s.deps.Attempts.Refused(c.IP, s.policy.Limits, now)
		s.observers.emit(Event{Kind: EventBadAppToken, Step: StepAppToken, Client: c})
		return "", ErrBadAppToken
	}
	if touch {
		err := s.deps.Store.Update(func(tx store.Tx) error {
			u, err := tx.User(user)
			if err != nil {
				return err
			}
			// Revoked meanwhile: the request was let in on what was read.
			if t, valid := policy.VerifyAppToken(u, id, secret, now); valid && policy.TouchAppToken(t, now) {
				return tx.PutUser(u)
			}
			return nil
		})
		// The token was good; only its last use is not recorded.
		s.failed("recording an app token's use", err)
	}
	return user, nil
}

// tokenHonoured reports whether the policy still lets u in at all: a user
// it declares, a user managed in the store, or, with vouched sign-ins,
// one it would vouch for.
func (s *Service) tokenHonoured(u *store.User) bool {
	if s.policy.Vouched {
		return s.vouchable(u.Name)
	}
	_, declared := s.policy.Accounts[u.Name]
	return declared || u.PasswordHash != ""
}

// CreateAppToken gives the user of the signed-in session sess a new app
// token named name, expiring at expires (zero: never), once factor is a
// fresh second factor, and returns it, to be shown once. Errors are
// StepUp's and policy.AddAppToken's (policy.ErrAppTokenName,
// policy.ErrAppTokenExpiry, policy.ErrTooManyAppTokens), which leave the
// factor unused.
func (s *Service) CreateAppToken(sess *store.Session, factor, name string, expires time.Time, c Client) (string, error) {
	var token string
	err := s.StepUp(StepUpRequest{Session: sess, Factor: factor, Step: StepAppToken, Client: c},
		func(_ store.Tx, _ *store.Session, u *store.User) error {
			var err error
			token, err = policy.AddAppToken(u, name, s.deps.Now(), expires, nil)
			return err
		})
	if err != nil {
		return "", err
	}
	s.observers.emit(Event{Kind: EventAppTokenCreated, Step: StepAppToken, User: sess.User, Known: true, Client: c, Reason: name})
	return token, nil
}

// RevokeAppToken removes the app token id of the user of sess. Revoking
// one's own token asks for no factor, as ending a session does not.
func (s *Service) RevokeAppToken(sess *store.Session, id string, c Client) error {
	var (
		revoked bool
		name    string
	)
	err := s.deps.Store.Update(func(tx store.Tx) error {
		u, err := tx.User(sess.User)
		if err != nil {
			return asEnded(err)
		}
		if i := slices.IndexFunc(u.AppTokens, func(t store.AppToken) bool { return t.ID == id }); i >= 0 {
			name = u.AppTokens[i].Name
		}
		if revoked = policy.RevokeAppToken(u, id); revoked {
			return tx.PutUser(u)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if revoked {
		s.observers.emit(Event{Kind: EventAppTokenRevoked, User: sess.User, Known: true, Client: c, Reason: name})
	}
	return nil
}
