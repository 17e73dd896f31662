package signin

import (
	"slices"
	"time"

	"github.com/caddy-two-factor/caddy-two-factor/policy"
	"github.com/caddy-two-factor/caddy-two-factor/store"
)

// Remembered browsers (remember_device): after a second factor, a user
// may ask not to be asked for one on this browser for a while; a later
// sign-in from it then needs only the password (see Login). Package
// policy makes and checks the tokens; the caller keeps the cookie.

// rememberedDevice returns u's device that token names, if remembering is
// on and it still counts at now (see policy.Remembered).
func (s *Service) rememberedDevice(u *store.User, token string, now time.Time) (*store.RememberedDevice, bool) {
	if token == "" || u == nil || !s.policy.Remember.Enabled() {
		return nil, false
	}
	return policy.Remembered(u, token, now)
}

// RememberBrowser remembers the browser of the signed-in session token
// (as Confirm or FinishSetup returned it) for its user, and returns the
// token for the browser's remember cookie. It is called right after the
// second factor was given in that session.
func (s *Service) RememberBrowser(sessionToken string, c Client) (string, error) {
	if !s.policy.Remember.Enabled() {
		return "", ErrNotSignedIn
	}
	key, ok := store.ParseSessionToken(sessionToken)
	if !ok {
		return "", ErrNotSignedIn
	}
	now := s.deps.Now()
	var token, user string
	err := s.deps.Store.Update(func(tx store.Tx) error {
		sess, u, err := fullRecords(tx, key)
		if err != nil {
			return err
		}
		user = u.Name
		// Only a session that has just given its factor here.
		if sess.Method == policy.MethodRemembered || now.Sub(sess.ConfirmedAt) > time.Minute {
			return ErrNotSignedIn
		}
		if token, err = s.policy.Remember.Device(u, now, c.UserAgent, nil); err != nil {
			return err
		}
		return tx.PutUser(u)
	})
	if err != nil {
		return "", err
	}
	s.observers.emit(Event{Kind: EventBrowserRemembered, User: user, Known: true, Client: c, Reason: Device(c.UserAgent)})
	return token, nil
}

// ForgetBrowsers forgets the remembered browser id of the user of sess,
// or all of them when id is empty.
func (s *Service) ForgetBrowsers(sess *store.Session, id string, c Client) error {
	var (
		n     int
		label string
	)
	err := s.deps.Store.Update(func(tx store.Tx) error {
		u, err := tx.User(sess.User)
		if err != nil {
			return asEnded(err)
		}
		if i := slices.IndexFunc(u.RememberedDevices, func(d store.RememberedDevice) bool { return d.ID == id }); i >= 0 {
			label = Device(u.RememberedDevices[i].Browser)
		}
		if id == "" {
			n = policy.ForgetAllDevices(u)
		} else if policy.ForgetDevice(u, id) {
			n = 1
		}
		if n == 0 {
			return nil
		}
		return tx.PutUser(u)
	})
	if err != nil {
		return err
	}
	if n > 0 {
		s.observers.emit(Event{Kind: EventBrowsersForgotten, User: sess.User, Known: true, Sessions: n, Client: c, Reason: label})
	}
	return nil
}
