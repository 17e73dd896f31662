package signin

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/caddy-two-factor/caddy-two-factor/passkey"
	"github.com/caddy-two-factor/caddy-two-factor/policy"
	"github.com/caddy-two-factor/caddy-two-factor/store"
	"github.com/caddy-two-factor/caddy-two-factor/throttle"
)

// Where a user's password comes from.
const (
	DefinedInConfig   = "config"
	DefinedInDatabase = "database"
)

// UserInfo is what an operator sees of a user.
type UserInfo struct {
	Name string `json:"name"`
	// DefinedIn is where the password comes from: "config" or "database".
	DefinedIn  string    `json:"defined_in"`
	Enrolled   bool      `json:"enrolled"`
	EnrolledAt time.Time `json:"enrolled_at,omitzero"`
	// Factors are the second factors the user has: totp, webauthn.
	Factors []string `json:"factors,omitempty"`
	// Passkeys are the user's passkeys and security keys.
	Passkeys          []PasskeyInfo `json:"passkeys,omitempty"`
	RecoveryCodesLeft int           `json:"recovery_codes_left"`
	// Sessions counts the user's live signed-in sessions.
	Sessions    int       `json:"sessions"`
	LockedUntil time.Time `json:"locked_until,omitzero"`
	// Email is the address of a user managed in the store (a declared
	// user's is in the config).
	Email string `json:"email,omitempty"`
}

// PasskeyInfo is what an operator sees of a passkey: nothing secret is
// stored, and nothing of its key is shown.
type PasskeyInfo struct {
	Name string `json:"name"`
	// ID is the credential ID in base64url, as remove-passkey takes it.
	ID       string    `json:"id"`
	Created  time.Time `json:"created,omitzero"`
	LastUsed time.Time `json:"last_used,omitzero"`
}

// Scope is what an Operator acts on: one store, as the configs that have
// it open see it.
type Scope struct {
	// Declared are the user names the configs on the store declare.
	Declared map[string]bool
	// Offline is set when no config has the store open (the command line
	// opened the file): the configs' users are then unknown, and a record
	// without a password is taken to be one of theirs.
	Offline bool
	// Idle is the longest session_idle of the configs, zero if offline.
	Idle time.Duration
}

// Operator carries out an operator's actions on users. Names are
// normalized and checked by the caller; password hashes are checked by
// the caller too (their class, see HashClass).
type Operator struct {
	scope Scope
	deps  Deps
	observers
}

// NewOperator returns an operator on deps as scope sees it. Deps.Hashing
// and Deps.Sealer are not used.
func NewOperator(scope Scope, deps Deps) *Operator {
	if deps.Now == nil {
		deps.Now = time.Now
	}
	return &Operator{scope: scope, deps: deps}
}

// Observe adds fn to the observers of the operator's events (see
// Service.Observe).
func (o *Operator) Observe(fn func(Event)) { o.observers = append(o.observers, fn) }

// DefinedIn says where the password of a user comes from, or "" if name
// is not a user; u is its record, nil if none.
func (o *Operator) DefinedIn(name string, u *store.User) string {
	switch {
	case o.scope.Declared[name]:
		return DefinedInConfig
	case u != nil && u.PasswordHash != "":
		return DefinedInDatabase
	case u != nil && o.scope.Offline:
		return DefinedInConfig
	}
	return ""
}

// user returns name's record (nil if none) and where it is defined.
func (o *Operator) user(tx store.Tx, name string) (*store.User, string, error) {
	u, err := tx.User(name)
	if errors.Is(err, store.ErrNotFound) {
		u, err = nil, nil
	}
	return u, o.DefinedIn(name, u), err
}

// Users returns every user, declared or in the store, by name.
func (o *Operator) Users() ([]UserInfo, error) {
	now := o.deps.Now()
	users := []UserInfo{}
	err := o.deps.Store.View(func(tx store.Tx) error {
		names := make(map[string]bool, len(o.scope.Declared))
		for name := range o.scope.Declared {
			names[name] = true
		}
		err := tx.ForEachUser(func(u *store.User) error {
			if o.DefinedIn(u.Name, u) != "" {
				names[u.Name] = true
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, name := range slices.Sorted(maps.Keys(names)) {
			info, err := o.info(tx, name, now)
			if err != nil {
				return err
			}
			users = append(users, info)
		}
		return nil
	})
	return users, err
}

// UserInfo returns what an operator sees of name; a name that is no user
// has an empty DefinedIn.
func (o *Operator) UserInfo(name string) (UserInfo, error) {
	var info UserInfo
	err := o.deps.Store.View(func(tx store.Tx) error {
		var err error
		info, err = o.info(tx, name, o.deps.Now())
		return err
	})
	return info, err
}

func (o *Operator) info(tx store.Tx, name string, now time.Time) (UserInfo, error) {
	u, where, err := o.user(tx, name)
	info := UserInfo{Name: name, DefinedIn: where}
	if err != nil {
		return info, err
	}
	// Locked from everywhere, or from one network: the lock that ends last.
	err = tx.ForEachAttempts(throttle.AccountKey(name), func(key string, a *store.Attempts) error {
		if (key == throttle.AccountKey(name) || strings.HasPrefix(key, throttle.PairKey(name, ""))) && a.LockedUntil.After(now) && a.LockedUntil.After(info.LockedUntil) {
			info.LockedUntil = a.LockedUntil
		}
		return nil
	})
	if err != nil {
		return info, err
	}
	if u == nil {
		return info, nil
	}
	info.Enrolled = u.Enrolled()
	info.Email = u.Email
	if u.TOTP != nil {
		info.EnrolledAt = u.TOTP.EnrolledAt
		info.Factors = append(info.Factors, MethodTOTP)
	}
	if info.Enrolled {
		info.RecoveryCodesLeft = len(*recoveryDigests(u))
	}
	for _, p := range u.Passkeys {
		if info.EnrolledAt.IsZero() || p.Created.Before(info.EnrolledAt) {
			info.EnrolledAt = p.Created
		}
		info.Passkeys = append(info.Passkeys, PasskeyInfo{Name: p.Name, ID: passkey.EncodeID(p.ID), Created: p.Created, LastUsed: p.LastUsed})
	}
	if len(u.Passkeys) > 0 {
		info.Factors = append(info.Factors, MethodWebAuthn)
	}
	sessions, err := tx.UserSessions(name)
	for _, s := range sessions {
		// The configs' own credential checks are not known here: a
		// session counts if the store holds it.
		if s.Stage == store.StageFull && s.HeldBy(u) && s.Live(now, o.scope.Idle) {
			info.Sessions++
		}
	}
	return info, err
}

// change runs fn on name's record in one transaction, once the record
// passes check, which tells an unknown user or a refused action, and
// reports kind with the sessions fn ended.
func (o *Operator) change(kind, name string, check func(u *store.User, where string) error, fn func(tx store.Tx, u *store.User) (int, error)) (int, error) {
	return o.changeItem(kind, name, nil, check, fn)
}

// changeItem is change for an action on one thing of the user's, which
// fn names in *item for the event's Reason.
func (o *Operator) changeItem(kind, name string, item *string, check func(u *store.User, where string) error, fn func(tx store.Tx, u *store.User) (int, error)) (int, error) {
	var ended int
	err := o.deps.Store.Update(func(tx store.Tx) error {
		u, where, err := o.user(tx, name)
		if err != nil {
			return err
		}
		if err := check(u, where); err != nil {
			return err
		}
		ended, err = fn(tx, u)
		return err
	})
	if err != nil {
		return 0, err
	}
	e := Event{Kind: kind, User: name, Known: true, Sessions: ended}
	if item != nil {
		e.Reason = *item
	}
	o.observers.emit(e)
	return ended, nil
}

// mustExist refuses a name that is no user.
func mustExist(_ *store.User, where string) error {
	if where == "" {
		return ErrUnknownUser
	}
	return nil
}

// mustBeManaged refuses a name whose password is not in the store.
func mustBeManaged(name string) func(*store.User, string) error {
	return func(u *store.User, where string) error {
		switch {
		case where == DefinedInConfig:
			return &ConflictError{Reason: ConflictDeclared, User: name}
		case u == nil:
			return ErrUnknownUser
		}
		return nil
	}
}

// AddUser adds name with the password hash hash, and returns how many
// sessions of an earlier record of that name it ended. It returns a
// *ConflictError if the name is declared in a config or exists.
func (o *Operator) AddUser(name, hash string) (int, error) {
	return o.AddUserWithEmail(name, hash, "")
}

// AddUserWithEmail is AddUser, giving the user the e-mail address email
// ("" for none), in bare form (see notify.ParseAddress, which the caller
// has checked it with).
func (o *Operator) AddUserWithEmail(name, hash, email string) (int, error) {
	check := func(_ *store.User, where string) error {
		switch {
		case o.scope.Declared[name]:
			return &ConflictError{Reason: ConflictDeclared, User: name}
		case where != "":
			return &ConflictError{Reason: ConflictExists, User: name}
		}
		return nil
	}
	return o.change(EventUserAdded, name, check, func(tx store.Tx, _ *store.User) (int, error) {
		// A record left by an earlier user of that name (one removed from
		// the config) goes, enrollment, sessions and all: it is not theirs.
		ended, err := endSessions(tx, name, nil)
		if err != nil {
			return 0, err
		}
		return ended, tx.PutUser(&store.User{Name: name, PasswordHash: hash, Email: email, Created: o.deps.Now()})
	})
}

// SetEmail sets the e-mail address of a user managed in the store ("" to
// remove it), checked by the caller. Errors are SetPassword's: a user the
// config declares has their address in the config.
func (o *Operator) SetEmail(name, email string) error {
	_, err := o.change(EventEmailChanged, name, mustBeManaged(name), func(tx store.Tx, u *store.User) (int, error) {
		u.Email = email
		return 0, tx.PutUser(u)
	})
	return err
}

// SetPassword sets the password hash of a user managed in the store and
// ends their sessions. It returns ErrUnknownUser, or a *ConflictError for
// a user a config declares.
func (o *Operator) SetPassword(name, hash string) (int, error) {
	return o.change(EventPasswordChanged, name, mustBeManaged(name), func(tx store.Tx, u *store.User) (int, error) {
		u.PasswordHash = hash
		if err := tx.PutUser(u); err != nil {
			return 0, err
		}
		return endSessions(tx, name, nil)
	})
}

// RemoveUser removes a user managed in the store, with their sessions and
// attempt counters. Errors are SetPassword's.
func (o *Operator) RemoveUser(name string) (int, error) {
	return o.change(EventRemoved, name, mustBeManaged(name), func(tx store.Tx, _ *store.User) (int, error) {
		ended, err := endSessions(tx, name, nil)
		if err != nil {
			return 0, err
		}
		if err := throttle.ForgetAttempts(tx, name); err != nil {
			return 0, err
		}
		return ended, tx.DeleteUser(name)
	})
}

// Reset drops every second factor (TOTP, passkeys, recovery codes), the
// app tokens, the remembered browsers and the sessions of name: the user
// enrolls again at their next sign-in. The user's WebAuthn handle stays,
// so passkeys they add later belong to the same handle.
func (o *Operator) Reset(name string) (int, error) {
	return o.change(EventReset, name, mustExist, func(tx store.Tx, u *store.User) (int, error) {
		if u != nil {
			u.TOTP, u.Passkeys, u.RecoveryDigests = nil, nil, nil
			u.SessionID = ""
			policy.RevokeAllAppTokens(u)
			policy.ForgetAllDevices(u)
			if err := tx.PutUser(u); err != nil {
				return 0, err
			}
		}
		return endSessions(tx, name, nil)
	})
}

// RemovePasskey removes the passkey of name that ref names (its name or
// its ID as PasskeyInfo shows it) and ends name's sessions: a lost key may
// hold one. An operator may remove the last factor: the user then enrolls
// again at their next sign-in, as after Reset. It returns ErrUnknownUser,
// or ErrUnknownPasskey (also when ref names two passkeys).
func (o *Operator) RemovePasskey(name, ref string) (int, error) {
	var removed string
	return o.changeItem(EventPasskeyRemoved, name, &removed, mustExist, func(tx store.Tx, u *store.User) (int, error) {
		i := -1
		if u != nil {
			for j, p := range u.Passkeys {
				if p.Name == ref || passkey.EncodeID(p.ID) == ref {
					if i >= 0 {
						return 0, ErrUnknownPasskey // ambiguous: give the ID
					}
					i = j
				}
			}
		}
		if i < 0 {
			return 0, ErrUnknownPasskey
		}
		removed = u.Passkeys[i].Name
		u.Passkeys = slices.Delete(u.Passkeys, i, i+1)
		if len(u.Passkeys) == 0 {
			u.Passkeys = nil
		}
		u.SessionID = ""
		if err := tx.PutUser(u); err != nil {
			return 0, err
		}
		return endSessions(tx, name, nil)
	})
}

// Revoke ends every session, app token and remembered browser of name.
func (o *Operator) Revoke(name string) (int, error) {
	return o.change(EventRevoked, name, mustExist, func(tx store.Tx, u *store.User) (int, error) {
		if u != nil && (u.SessionID != "" || len(u.AppTokens) > 0 || len(u.RememberedDevices) > 0) {
			// A new identifier also ends any session a cache still holds.
			u.SessionID = ""
			policy.RevokeAllAppTokens(u)
			policy.ForgetAllDevices(u)
			if err := tx.PutUser(u); err != nil {
				return 0, err
			}
		}
		return endSessions(tx, name, nil)
	})
}

// Unlock lifts the locks of name.
func (o *Operator) Unlock(name string) error {
	if err := o.deps.Store.View(func(tx store.Tx) error {
		_, where, err := o.user(tx, name)
		if err == nil {
			err = mustExist(nil, where)
		}
		return err
	}); err != nil {
		return err
	}
	if err := o.deps.Attempts.Unlock(name); err != nil {
		return err
	}
	o.observers.emit(Event{Kind: EventUnlocked, User: name, Known: true})
	return nil
}
