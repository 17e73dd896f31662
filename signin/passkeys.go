package signin

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/caddy-two-factor/caddy-two-factor/passkey"
	"github.com/caddy-two-factor/caddy-two-factor/recovery"
	"github.com/caddy-two-factor/caddy-two-factor/store"
	"github.com/caddy-two-factor/caddy-two-factor/throttle"
)

// Passkeys (WebAuthn) as a second factor and, with passkey login, as the
// whole sign-in. A Begin method keeps a ceremony's state in the session
// (store.Session.Ceremony) and returns the options for the browser; the
// matching Finish method takes the state out, once, in the transaction
// that acts on the browser's answer, and that transaction commits even
// when the answer is refused, so no challenge is answered twice. A
// refused answer counts against the attempt budgets as a wrong code does,
// and a lock stops passkeys as it stops codes.

// passkeyLoginUser is the user of the session of a passkey login not yet
// finished: it has no user until the passkey names one. No user can have
// this name (a control character), and Pending refuses its sessions.
const passkeyLoginUser = "\x01passkey-login"

// maxAnonymousPending bounds the sessions of passkey logins not yet
// finished (they have no user until the passkey names one): a new one
// ends the oldest. maxAnonymousPerNetwork bounds those of one client
// network (see throttle.NetworkOf): past it, a client's new one ends its
// own oldest, so that one client asking for options again and again
// cannot end everyone else's passkey logins.
const (
	maxAnonymousPending    = 100
	maxAnonymousPerNetwork = 5
)

// Offers is what the config offers users, for the pages to show.
type Offers struct {
	// Passkeys: passkeys work as a second factor.
	Passkeys bool
	// EnrollPasskey and EnrollTOTP: users may add that factor.
	EnrollPasskey, EnrollTOTP bool
	// PasskeyLogin: a passkey alone may sign in.
	PasskeyLogin bool
}

// Offers returns what the service offers.
func (s *Service) Offers() Offers {
	pk := s.deps.Passkeys
	return Offers{
		Passkeys:      pk != nil,
		EnrollPasskey: pk != nil && !s.policy.NoPasskeyEnrollment,
		EnrollTOTP:    !s.policy.NoTOTPEnrollment,
		PasskeyLogin:  pk != nil && pk.Config().PasskeyLogin,
	}
}

// passkeys returns the ceremony service, or ErrPasskeysOff; with enroll,
// also when users may not enroll passkeys.
func (s *Service) passkeys(enroll bool) (*passkey.Service, error) {
	if s.deps.Passkeys == nil || (enroll && s.policy.NoPasskeyEnrollment) {
		return nil, ErrPasskeysOff
	}
	return s.deps.Passkeys, nil
}

// recoveryDigests returns where u's recovery codes are kept: with the TOTP
// enrollment, or, for a user with passkeys only, in the user record.
func recoveryDigests(u *store.User) *[][]byte {
	if u.TOTP != nil {
		return &u.TOTP.RecoveryDigests
	}
	return &u.RecoveryDigests
}

// pendingRecords reads a password-only session and its user (a user with
// no record yet as one with only a name), or returns ErrSessionEnded.
func (s *Service) pendingRecords(tx store.Tx, key store.SessionKey) (*store.Session, *store.User, error) {
	rec, err := tx.Session(key)
	if err != nil {
		return nil, nil, asEnded(err)
	}
	if rec.Stage != store.StagePending || rec.User == passkeyLoginUser {
		return nil, nil, ErrSessionEnded
	}
	u, err := tx.User(rec.User)
	if errors.Is(err, store.ErrNotFound) {
		u, err = &store.User{Name: rec.User, Created: s.deps.Now()}, nil
	}
	return rec, u, err
}

// beginCeremony reads a session and its user with load, asks begin for a
// ceremony, keeps its state in the session and returns its options.
func (s *Service) beginCeremony(load func(tx store.Tx) (*store.Session, *store.User, error), begin func(*store.User) (*passkey.Begun, error)) ([]byte, error) {
	var options []byte
	err := s.deps.Store.Update(func(tx store.Tx) error {
		rec, u, err := load(tx)
		if err != nil {
			return err
		}
		b, err := begin(u)
		if err != nil {
			return err
		}
		rec.Ceremony, options = b.State, b.Options
		return tx.PutSession(rec)
	})
	if err != nil {
		return nil, passkeyError(err)
	}
	return options, nil
}

// usePasskey takes the ceremony of kind out of sess and checks response
// against it as one of u's passkeys, updating that passkey in u. Errors
// are package passkey's.
func (s *Service) usePasskey(sess *store.Session, u *store.User, kind passkey.Kind, response []byte) error {
	pk, err := s.passkeys(false)
	if err != nil {
		return err
	}
	c, err := pk.Take(sess, kind)
	if err != nil {
		return err
	}
	_, err = pk.FinishLogin(u, c, response)
	return err
}

// passkeyError turns an error of package passkey into one of this
// package, which still wraps it (for the log; it holds nothing secret).
// Other errors (the store's) stay as they are.
func passkeyError(err error) error {
	for _, m := range []struct{ from, to error }{
		{passkey.ErrNoCeremony, ErrPasskeyExpired},
		{passkey.ErrCeremonyExpired, ErrPasskeyExpired},
		{passkey.ErrAlreadyRegistered, ErrPasskeyRegistered},
		{passkey.ErrBadName, ErrBadPasskeyName},
		{passkey.ErrLastFactor, ErrLastFactor},
		{passkey.ErrNoPasskeys, ErrNotEnrolled},
		{passkey.ErrPasskeyLoginOff, ErrPasskeysOff},
		{passkey.ErrMalformed, ErrBadPasskey},
		{passkey.ErrVerification, ErrBadPasskey},
		{passkey.ErrUnknownCredential, ErrBadPasskey},
		{passkey.ErrCloned, ErrBadPasskey},
	} {
		if errors.Is(err, m.from) && !errors.Is(err, m.to) {
			return fmt.Errorf("%w: %w", m.to, err)
		}
	}
	return err
}

// refusalReason names why a passkey was refused, for events.
func refusalReason(err error) string {
	switch {
	case errors.Is(err, passkey.ErrCloned):
		return "cloned"
	case errors.Is(err, passkey.ErrUnknownCredential):
		return "unknown_credential"
	case errors.Is(err, passkey.ErrMalformed):
		return "malformed"
	}
	return "verification"
}

// passkeyRefused settles attempt for a refused passkey answer: a wrong
// one (ErrBadPasskey) counts as a failure and is reported; one with no
// ceremony to answer does not count. It returns the refusal, or the
// store's error if the failure could not be counted.
func (s *Service) passkeyRefused(attempt *throttle.Attempt, step, user string, known bool, c Client, refused error) error {
	err := passkeyError(refused)
	if !errors.Is(err, ErrBadPasskey) {
		return err
	}
	if ferr := attempt.Failed(); ferr != nil {
		return ferr
	}
	s.observers.emit(Event{Kind: EventBadCode, Step: step, User: user, Known: known, Method: MethodWebAuthn, Reason: refusalReason(refused), Client: c})
	s.lockedByFailure(step, user, known, c)
	return err
}

// ---- enrollment at the first sign-in ----

// BeginPasskeySetup begins registering the first passkey of the user of
// the pending session sess, and returns the options for the browser. It
// returns ErrPasskeysOff, ErrAlreadyEnrolled, ErrSessionEnded, or the
// store's error.
func (s *Service) BeginPasskeySetup(sess *store.Session) ([]byte, error) {
	pk, err := s.passkeys(true)
	if err != nil {
		return nil, err
	}
	return s.beginCeremony(func(tx store.Tx) (*store.Session, *store.User, error) {
		rec, u, err := s.pendingRecords(tx, sess.Key)
		if err == nil && u.Enrolled() {
			err = ErrAlreadyEnrolled
		}
		return rec, u, err
	}, pk.BeginRegistration)
}

// FinishPasskeySetup adds the passkey of response (the browser's answer to
// BeginPasskeySetup's options), named name, to the user of the pending
// session sess, with new recovery codes, and signs them in. It returns
// ErrBadPasskey (counted as a wrong code), ErrPasskeyExpired,
// ErrBadPasskeyName, a *LockedError, ErrAlreadyEnrolled, ErrSessionEnded,
// ErrPasskeysOff, or the store's error.
func (s *Service) FinishPasskeySetup(sess *store.Session, response []byte, name string, c Client) (SignInResult, error) {
	pk, err := s.passkeys(true)
	if err != nil {
		return SignInResult{}, err
	}
	res, err := s.finishPendingCeremony(sess, StepSetup, c, func(tx store.Tx, rec *store.Session, u *store.User, res *SignInResult, now time.Time) (error, error) {
		if u.Enrolled() {
			return nil, ErrAlreadyEnrolled
		}
		cer, err := pk.Take(rec, passkey.Registration)
		if err == nil {
			_, err = pk.FinishRegistration(u, cer, response, name)
		}
		if err != nil {
			return err, nil
		}
		if err := passkey.IndexHandle(tx, u); err != nil {
			return nil, err
		}
		if res.RecoveryCodes, u.RecoveryDigests, err = recovery.Generate(s.policy.RecoveryCodes); err != nil {
			return nil, err
		}
		rememberBrowser(u, c) // the browser that enrolls is known from then on
		res.Next = rec.Next
		res.Token, err = s.completeSignIn(tx, u, rec, MethodWebAuthn, c, now)
		return nil, err
	})
	if err != nil {
		return SignInResult{}, err
	}
	s.observers.emit(Event{Kind: EventSetupComplete, Step: StepSetup, User: sess.User, Known: true, Method: MethodWebAuthn, Client: c})
	return res, nil
}

// finishPendingCeremony finishes a ceremony of the pending session sess
// as one attempt at step. act checks the answer in tx and signs the user
// in, filling res; or it returns the answer's refusal first, and then the
// session, its ceremony spent, is stored all the same and the refusal
// settles the attempt (see passkeyRefused).
func (s *Service) finishPendingCeremony(sess *store.Session, step string, c Client, act func(tx store.Tx, rec *store.Session, u *store.User, res *SignInResult, now time.Time) (refused, err error)) (SignInResult, error) {
	now := s.deps.Now()
	attempt, err := s.begin(step, sess.User, true, c, now)
	if err != nil {
		return SignInResult{}, err
	}
	defer s.release(attempt)
	res := SignInResult{Method: MethodWebAuthn}
	var refused error
	err = s.deps.Store.Update(func(tx store.Tx) error {
		rec, u, err := s.pendingRecords(tx, sess.Key)
		if err != nil {
			return err
		}
		if refused, err = act(tx, rec, u, &res, now); err == nil && refused != nil {
			return tx.PutSession(rec)
		}
		return err
	})
	if err == nil && refused != nil {
		err = s.passkeyRefused(attempt, step, sess.User, true, c, refused)
	}
	if err != nil {
		return SignInResult{}, err
	}
	s.signedIn(attempt)
	return res, nil
}

// ---- confirmation ----

// BeginPasskeyConfirm begins confirming the user of the pending session
// sess with one of their passkeys (only theirs are allowed). It returns
// ErrPasskeysOff, ErrNotEnrolled (no passkeys), ErrSessionEnded, or the
// store's error.
func (s *Service) BeginPasskeyConfirm(sess *store.Session) ([]byte, error) {
	return s.beginPasskeyLogin(sess.Key, s.pendingRecords)
}

// beginPasskeyLogin begins a login ceremony (only the user's passkeys
// allowed) in the session of key, read by load.
func (s *Service) beginPasskeyLogin(key store.SessionKey, load func(store.Tx, store.SessionKey) (*store.Session, *store.User, error)) ([]byte, error) {
	pk, err := s.passkeys(false)
	if err != nil {
		return nil, err
	}
	return s.beginCeremony(func(tx store.Tx) (*store.Session, *store.User, error) {
		return load(tx, key)
	}, pk.BeginLogin)
}

// FinishPasskeyConfirm signs in the user of the pending session sess once
// response is a right answer of one of their passkeys to
// BeginPasskeyConfirm's options. It returns ErrBadPasskey (counted as a
// wrong code), ErrPasskeyExpired, a *LockedError, ErrNotEnrolled,
// ErrSessionEnded, ErrPasskeysOff, or the store's error.
func (s *Service) FinishPasskeyConfirm(sess *store.Session, response []byte, c Client) (SignInResult, error) {
	if _, err := s.passkeys(false); err != nil {
		return SignInResult{}, err
	}
	newBrowser := false
	res, err := s.finishPendingCeremony(sess, StepConfirm, c, func(tx store.Tx, rec *store.Session, u *store.User, res *SignInResult, now time.Time) (error, error) {
		if !u.Enrolled() {
			return nil, ErrNotEnrolled
		}
		if refused := s.usePasskey(rec, u, passkey.Login, response); refused != nil {
			return refused, nil
		}
		var err error
		newBrowser = rememberBrowser(u, c)
		res.Next = rec.Next
		res.Token, err = s.completeSignIn(tx, u, rec, MethodWebAuthn, c, now)
		return nil, err
	})
	if err != nil {
		return SignInResult{}, err
	}
	s.observers.emit(Event{Kind: EventSignedIn, Step: StepConfirm, User: sess.User, Known: true, Method: MethodWebAuthn, Client: c, NewBrowser: newBrowser})
	return res, nil
}

// ---- passkey login ----

// BeginPasskeyLogin begins a sign-in with a passkey alone (passkey_login)
// and returns the token of the session that keeps the ceremony (a new
// one, or "" when replace is such a session already, which keeps it) and
// the options for the browser. Any other session of replace ends. It
// returns ErrPasskeysOff, a *LockedError for a locked client, or the
// store's error.
func (s *Service) BeginPasskeyLogin(replace *store.SessionKey, c Client) (token string, options []byte, err error) {
	pk, err := s.passkeys(false)
	if err != nil || !pk.Config().PasskeyLogin {
		return "", nil, ErrPasskeysOff
	}
	now := s.deps.Now()
	if until := s.deps.Attempts.ClientLockedUntil(c.IP, now); !until.IsZero() {
		return "", nil, s.locked(StepPasskeyLogin, "", false, c, until, ScopeClient)
	}
	begun, err := pk.BeginDiscoverableLogin()
	if err != nil {
		return "", nil, passkeyError(err)
	}
	err = s.deps.Store.Update(func(tx store.Tx) error {
		if replace != nil {
			rec, err := tx.Session(*replace)
			switch {
			case err == nil && rec.Stage == store.StagePending && rec.User == passkeyLoginUser && rec.Live(now, 0):
				rec.Ceremony = begun.State
				return tx.PutSession(rec)
			case err == nil:
				if err := tx.DeleteSession(*replace); err != nil {
					return err
				}
			case !errors.Is(err, store.ErrNotFound):
				return err
			}
		}
		if err := endOldestAnonymous(tx, c); err != nil {
			return err
		}
		token, err = newSession(tx, c, store.Session{
			User:     passkeyLoginUser,
			Stage:    store.StagePending,
			Created:  now,
			LastSeen: now,
			Expires:  now.Add(s.policy.PendingLifetime),
			Ceremony: begun.State,
		})
		return err
	})
	if err != nil {
		return "", nil, err
	}
	return token, begun.Options, nil
}

// endOldestAnonymous makes room for a new passkey login session of c:
// it ends c's network's oldest past maxAnonymousPerNetwork-1, else the
// oldest of all past maxAnonymousPending-1.
func endOldestAnonymous(tx store.Tx, c Client) error {
	sessions, err := tx.UserSessions(passkeyLoginUser)
	if err != nil {
		return err
	}
	sessions = slices.DeleteFunc(sessions, func(o *store.Session) bool { return o.Stage != store.StagePending })
	slices.SortFunc(sessions, func(a, b *store.Session) int { return a.Created.Compare(b.Created) })
	network := throttle.NetworkOf(c.IP)
	mine := slices.DeleteFunc(slices.Clone(sessions), func(o *store.Session) bool { return throttle.NetworkOf(o.ClientIP) != network })
	end := sessions[:max(len(sessions)-(maxAnonymousPending-1), 0)]
	if n := len(mine) - (maxAnonymousPerNetwork - 1); n > 0 {
		end = mine[:n]
	}
	for _, o := range end {
		if err := tx.DeleteSession(o.Key); err != nil {
			return err
		}
	}
	return nil
}

// accountOf returns the account of u under the policy: declared in it, or
// managed in the store with a password; false if u may not sign in here.
func (s *Service) accountOf(u *store.User) (Account, bool) {
	if a, ok := s.policy.Accounts[u.Name]; ok {
		return a, true
	}
	if u.PasswordHash == "" {
		return Account{}, false
	}
	a, err := NewAccount(u.PasswordHash)
	return a, err == nil
}

// FinishPasskeyLogin signs in whoever the passkey of response belongs to,
// once it is a right answer, with user verification, to the ceremony kept
// in the session of key (see BeginPasskeyLogin). next is where to go then.
// The attempt counts against the account the passkey names (and the
// client), as a wrong code does. It returns ErrBadPasskey,
// ErrPasskeyExpired, ErrNoPending (no such session), a *LockedError,
// ErrPasskeysOff, or the store's error.
func (s *Service) FinishPasskeyLogin(key store.SessionKey, response []byte, next string, c Client) (SignInResult, error) {
	pk, err := s.passkeys(false)
	if err != nil || !pk.Config().PasskeyLogin {
		return SignInResult{}, ErrPasskeysOff
	}
	now := s.deps.Now()
	// Whose attempt it is: the account the answer names, if any. Only for
	// a passkey login begun in this session: looking a handle up may read
	// every user (see passkey.UserByHandle), and an answer with no
	// ceremony to check it against is refused below without counting.
	name, known := "", false
	if handle, err := passkey.UserHandle(response); err == nil {
		err := s.deps.Store.View(func(tx store.Tx) error {
			rec, err := tx.Session(key)
			if err != nil || rec.Stage != store.StagePending || rec.User != passkeyLoginUser || rec.Ceremony == nil {
				return nil
			}
			u, err := passkey.UserByHandle(tx, handle)
			if err == nil {
				_, known = s.accountOf(u)
				name = u.Name
			}
			return err
		})
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return SignInResult{}, err
		}
	}
	if !known {
		name = ""
	}
	attempt, err := s.begin(StepPasskeyLogin, name, known, c, now)
	if err != nil {
		return SignInResult{}, err
	}
	defer s.release(attempt)
	res := SignInResult{Method: MethodWebAuthn, Next: next}
	var (
		refused    error
		newBrowser bool
	)
	err = s.deps.Store.Update(func(tx store.Tx) error {
		rec, err := tx.Session(key)
		if err != nil {
			return asEnded(err)
		}
		if rec.Stage != store.StagePending || rec.User != passkeyLoginUser || !rec.Live(now, 0) {
			return ErrSessionEnded
		}
		refuse := func(err error) error {
			refused = err
			return tx.PutSession(rec) // the ceremony is spent all the same
		}
		cer, err := pk.Take(rec, passkey.DiscoverableLogin)
		if err != nil {
			return refuse(err)
		}
		u, _, err := pk.FinishDiscoverableLogin(cer, response, func(handle []byte) (*store.User, error) {
			return passkey.UserByHandle(tx, handle)
		})
		if err != nil {
			if passkeyError(err) == err {
				return err // the store's
			}
			return refuse(err)
		}
		acct, ok := s.accountOf(u)
		if !ok || u.Name != name {
			return refuse(passkey.ErrUnknownCredential)
		}
		rec.User, rec.Credential = u.Name, acct.Credential
		newBrowser = rememberBrowser(u, c)
		res.Token, err = s.completeSignIn(tx, u, rec, MethodWebAuthn, c, now)
		return err
	})
	if err == nil && refused != nil {
		err = s.passkeyRefused(attempt, StepPasskeyLogin, name, known, c, refused)
	}
	if err != nil {
		return SignInResult{}, err
	}
	s.signedIn(attempt)
	s.observers.emit(Event{Kind: EventSignedIn, Step: StepPasskeyLogin, User: name, Known: true, Method: MethodWebAuthn, Client: c, NewBrowser: newBrowser})
	return res, nil
}

// ---- the account page ----

// BeginPasskeyStepUp begins confirming the user of the signed-in session
// sess with one of their passkeys, for an account change (see
// StepUpRequest.Assertion).
func (s *Service) BeginPasskeyStepUp(sess *store.Session) ([]byte, error) {
	return s.beginPasskeyLogin(sess.Key, fullRecords)
}

// BeginAddPasskey begins registering another passkey for the user of the
// signed-in session of req, once req's factor is a fresh second factor
// (see StepUp): the registration is begun only then, so a script on the
// same site that can post the account forms cannot add a passkey of its
// own. It returns the options for the browser, or StepUp's errors, or
// ErrPasskeysOff.
func (s *Service) BeginAddPasskey(req StepUpRequest) ([]byte, error) {
	pk, err := s.passkeys(true)
	if err != nil {
		return nil, err
	}
	req.Step = StepAddPasskey
	var options []byte
	err = s.StepUp(req, func(_ store.Tx, sess *store.Session, u *store.User) error {
		b, err := pk.BeginRegistration(u)
		if err != nil {
			return err
		}
		sess.Ceremony, options = b.State, b.Options
		return nil
	})
	if err != nil {
		return nil, passkeyError(err)
	}
	return options, nil
}

// FinishAddPasskey adds the passkey of response (the browser's answer to
// BeginAddPasskey's options), named name, to the user of the signed-in
// session sess. It returns ErrBadPasskey, ErrPasskeyExpired,
// ErrPasskeyRegistered, ErrBadPasskeyName, ErrSessionEnded, or the store's
// error.
func (s *Service) FinishAddPasskey(sess *store.Session, response []byte, name string, c Client) error {
	pk, err := s.passkeys(true)
	if err != nil {
		return err
	}
	var (
		refused error
		added   *store.Passkey
	)
	err = s.deps.Store.Update(func(tx store.Tx) error {
		rec, u, err := fullRecords(tx, sess.Key)
		if err != nil {
			return err
		}
		cer, err := pk.Take(rec, passkey.Registration)
		if err == nil {
			added, err = pk.FinishRegistration(u, cer, response, name)
		}
		if err != nil {
			refused = err
			return tx.PutSession(rec)
		}
		if err := passkey.IndexHandle(tx, u); err != nil {
			return err
		}
		if err := tx.PutUser(u); err != nil {
			return err
		}
		return tx.PutSession(rec)
	})
	if err == nil && refused != nil {
		// The registration was begun behind a step-up: a refusal here is
		// not a guess at a factor, and is not counted.
		err = passkeyError(refused)
	}
	if err != nil {
		return err
	}
	s.observers.emit(Event{Kind: EventPasskeyAdded, Step: StepAddPasskey, User: sess.User, Known: true, Reason: added.Name, Client: c})
	return nil
}

// RenamePasskey renames the passkey id of the user of the signed-in
// session sess. It returns ErrUnknownPasskey, ErrBadPasskeyName,
// ErrSessionEnded, or the store's error.
func (s *Service) RenamePasskey(sess *store.Session, id []byte, name string, c Client) error {
	err := s.deps.Store.Update(func(tx store.Tx) error {
		_, u, err := fullRecords(tx, sess.Key)
		if err != nil {
			return err
		}
		if err := passkey.Rename(u, id, name); err != nil {
			return err
		}
		return tx.PutUser(u)
	})
	if err != nil {
		return passkeyError(unknownPasskey(err))
	}
	s.observers.emit(Event{Kind: EventPasskeyRenamed, User: sess.User, Known: true, Client: c})
	return nil
}

// RemovePasskey removes the passkey id of the user of the signed-in
// session sess, unless it is their last second factor, and ends their
// other sessions (a lost key may hold one); it returns how many. It
// returns ErrLastFactor, ErrUnknownPasskey, ErrSessionEnded, or the
// store's error.
func (s *Service) RemovePasskey(sess *store.Session, id []byte, c Client) (int, error) {
	var (
		ended int
		name  string
	)
	err := s.deps.Store.Update(func(tx store.Tx) error {
		rec, u, err := fullRecords(tx, sess.Key)
		if err != nil {
			return err
		}
		for _, p := range u.Passkeys {
			if bytes.Equal(p.ID, id) {
				name = p.Name
			}
		}
		if err := passkey.Remove(u, id); err != nil {
			return err
		}
		if err := tx.PutUser(u); err != nil {
			return err
		}
		ended, err = endSessions(tx, u.Name, func(o *store.Session) bool { return o.Key != rec.Key })
		return err
	})
	if err != nil {
		return 0, passkeyError(unknownPasskey(err))
	}
	s.observers.emit(Event{Kind: EventPasskeyRemoved, User: sess.User, Known: true, Reason: name, Sessions: ended, Client: c})
	return ended, nil
}

// unknownPasskey names a passkey that is not the user's as such, not as a
// refused answer.
func unknownPasskey(err error) error {
	if errors.Is(err, passkey.ErrUnknownCredential) {
		return ErrUnknownPasskey
	}
	return err
}
