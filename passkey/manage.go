package passkey

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/caddy-two-factor/caddy-two-factor/store"
)

// Errors of managing passkeys.
var (
	// ErrLastFactor: removing the passkey would leave the user without a
	// second factor.
	ErrLastFactor = errors.New("the last second factor cannot be removed")
	// ErrBadName: a passkey name that is empty, too long or has control
	// characters.
	ErrBadName = errors.New("a passkey name must be 1 to 64 printable characters")
)

// MaxNameLength is the longest passkey name, in characters.
const MaxNameLength = 64

// EncodeID returns a credential ID as pages and commands show it:
// base64url without padding, as WebAuthn's JSON does.
func EncodeID(id []byte) string { return base64.RawURLEncoding.EncodeToString(id) }

// DecodeID reverses EncodeID.
func DecodeID(s string) ([]byte, error) {
	id, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil || len(id) == 0 {
		return nil, fmt.Errorf("%w: not a credential ID", ErrUnknownCredential)
	}
	return id, nil
}

// cleanName trims name and checks it.
func cleanName(name string) (string, error) {
	name = strings.TrimSpace(name)
	if name == "" || !utf8.ValidString(name) || utf8.RuneCountInString(name) > MaxNameLength || strings.ContainsFunc(name, unicode.IsControl) {
		return "", ErrBadName
	}
	return name, nil
}

// Rename gives u's passkey id a new name.
func Rename(u *store.User, id []byte, name string) error {
	i := find(u, id)
	if i < 0 {
		return ErrUnknownCredential
	}
	name, err := cleanName(name)
	if err != nil {
		return err
	}
	u.Passkeys[i].Name = name
	return nil
}

// CanRemove says whether u may remove its passkey id: not if it is u's
// last second factor (no other passkey and no TOTP). Recovery codes do not
// count: they are for losing a factor, not a factor to keep instead.
func CanRemove(u *store.User, id []byte) error {
	if find(u, id) < 0 {
		return ErrUnknownCredential
	}
	if len(u.Passkeys) == 1 && u.TOTP == nil {
		return ErrLastFactor
	}
	return nil
}

// Remove removes u's passkey id, if CanRemove allows it. The user handle
// stays, so passkeys added later belong to the same handle. The caller
// puts u (and, to sign out the sessions a lost key may hold, rotates its
// session identifier).
func Remove(u *store.User, id []byte) error {
	if err := CanRemove(u, id); err != nil {
		return err
	}
	i := find(u, id)
	u.Passkeys = append(u.Passkeys[:i:i], u.Passkeys[i+1:]...)
	if len(u.Passkeys) == 0 {
		u.Passkeys = nil
	}
	return nil
}

// The user handle index: a meta value per handle, naming its user, so a
// discoverable login finds the user without reading them all.
const handleMetaPrefix = "webauthn-handle:"

// IndexHandle records u's handle in tx, for UserByHandle. Call it when a
// user gets a handle (the first registration).
func IndexHandle(tx store.Tx, u *store.User) error {
	if u.WebAuthnID == nil {
		return nil
	}
	return tx.PutMeta(handleMetaPrefix+EncodeID(u.WebAuthnID), []byte(u.Name))
}

// UserByHandle returns the user whose handle is handle, or
// store.ErrNotFound. It trusts the index only for a user that still has
// that handle, and reads every user when the index has no entry (a store
// migrated without it).
func UserByHandle(tx store.Tx, handle []byte) (*store.User, error) {
	if len(handle) == 0 {
		return nil, store.ErrNotFound
	}
	name, err := tx.Meta(handleMetaPrefix + EncodeID(handle))
	switch {
	case err == nil:
		u, err := tx.User(string(name))
		if err == nil && string(u.WebAuthnID) == string(handle) {
			return u, nil
		}
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		return nil, store.ErrNotFound
	case !errors.Is(err, store.ErrNotFound):
		return nil, err
	}
	var found *store.User
	errFound := errors.New("found")
	err = tx.ForEachUser(func(u *store.User) error {
		if string(u.WebAuthnID) == string(handle) {
			found = u
			return errFound
		}
		return nil
	})
	if found != nil {
		return found, nil
	}
	if err != nil {
		return nil, err
	}
	return nil, store.ErrNotFound
}
