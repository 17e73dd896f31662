package boltstore

import (
	"encoding/json"
	"errors"

	bolt "go.etcd.io/bbolt"

	"github.com/caddy-two-factor/caddy-two-factor/store"
)

// Users and sessions are kept in the binary forms of store.EncodeUser and
// store.EncodeSession. Records written as JSON by earlier versions start
// with '{' and are still read; they are rewritten in the binary form the
// next time they are put. Only this store ever wrote JSON, so only it
// reads it.

// errBadSessionKey means a session is filed under a key of the wrong length.
var errBadSessionKey = errors.New("corrupt session record: key of the wrong length")

// decodeUser decodes a stored user, copying everything it keeps.
func decodeUser(raw []byte) (*store.User, error) {
	if len(raw) > 0 && raw[0] == '{' {
		var u store.User
		if err := json.Unmarshal(raw, &u); err != nil {
			return nil, err
		}
		return &u, nil
	}
	return store.DecodeUser(raw)
}

// decodeSession decodes a stored session and gives it key. Everything it
// keeps is copied out of raw, so nothing refers to a transaction's memory
// after it ends.
func decodeSession(key store.SessionKey, raw []byte) (*store.Session, error) {
	if len(raw) > 0 && raw[0] == '{' {
		var s store.Session
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, err
		}
		s.Key = key
		return &s, nil
	}
	return store.DecodeSession(key, raw)
}

// getSession reads the session stored under key.
func getSession(b *bolt.Bucket, key store.SessionKey) (*store.Session, error) {
	raw := b.Get(key[:])
	if raw == nil {
		return nil, store.ErrNotFound
	}
	return decodeSession(key, raw)
}
