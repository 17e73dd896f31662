package twofactor

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-two-factor/caddy-two-factor/seal"
	"github.com/caddy-two-factor/caddy-two-factor/store"
	boltstore "github.com/caddy-two-factor/caddy-two-factor/store/bolt"
)

// The keys that seal TOTP secrets (see package seal). A database keeps a
// check value, a known text sealed with the key its secrets are sealed
// with, so a config whose keys do not open it is refused when it loads,
// rather than every enrolled user being refused at sign-in.
const (
	// metaKeyCheck names the check value in the store's meta.
	metaKeyCheck = "key_check"
	// keyCheckOwner is the owner the check value is sealed for. User names
	// have no control characters, so no user's secret can pass for it.
	keyCheckOwner = "\x00key_check"
	// resealBatch bounds the records one write transaction of reseal
	// changes, so sign-ins are not held up for long.
	resealBatch = 256
)

var keyCheckText = []byte("caddy-two-factor key check")

// errKeysDoNotOpen is a check value, or a sealed secret, that the
// configured keys do not open.
var errKeysDoNotOpen = errors.New("neither it nor any previous_encryption_key opens them (is it the key they were sealed with? after a rotation, keep the old key as previous_encryption_key until `caddy two-factor reseal` has run)")

// provisionSealer resolves encryption_key and previous_encryption_keys.
func (h *TwoFactor) provisionSealer(repl *caddy.Replacer) error {
	key, err := h.resolveKey(repl, "encryption_key", h.EncryptionKey)
	if err != nil {
		return err
	}
	previous := make([][]byte, 0, len(h.PreviousEncryptionKeys))
	for i, raw := range h.PreviousEncryptionKeys {
		name := fmt.Sprintf("previous_encryption_keys[%d]", i)
		if raw == "" {
			return fmt.Errorf("%s is empty", name)
		}
		k, err := h.resolveKey(repl, name, raw)
		if err != nil {
			return err
		}
		previous = append(previous, k)
	}
	if key == nil && len(previous) > 0 {
		return errors.New("previous_encryption_key is set without encryption_key: the current key seals, previous keys only open what was sealed before a rotation")
	}
	sealer, err := seal.New(key, previous...)
	if err != nil {
		return fmt.Errorf("encryption_key: %w", err)
	}
	h.sealer = sealer
	if !sealer.Encrypts() {
		h.logger.Warn("no encryption_key set: TOTP secrets are stored unencrypted in the database; set encryption_key to {env.NAME} or {file.path} holding base64 of 32 random bytes (head -c 32 /dev/urandom | base64)")
	}
	return nil
}

// resolveKey returns the key a config field names, or nil if it is empty.
// A key written in the config itself is logged by Caddy at DEBUG level and
// served by its admin API, so that is warned about.
func (h *TwoFactor) resolveKey(repl *caddy.Replacer, name, raw string) ([]byte, error) {
	if raw == "" {
		return nil, nil
	}
	if !isPlaceholder(strings.TrimSpace(raw)) {
		h.logger.Warn(name + " is written in the config: Caddy logs its config at DEBUG level and serves it at GET /config/ on the admin endpoint; use {env.NAME} or {file.path} instead")
	}
	resolved := repl.ReplaceKnown(raw, "")
	if strings.TrimSpace(resolved) == "" {
		return nil, fmt.Errorf("%s %q is empty once resolved (is the environment variable or file set?)", name, raw)
	}
	key, err := seal.ParseKey(resolved)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return key, nil
}

// checkKeys refuses sealer unless it opens the secrets of db. It opens the
// check value; a database without one (made before it existed, or new) is
// tried on one enrolled user's sealed secret, and gets a check value sealed
// with sealer's current key unless that secret needed a previous key. A
// check value stored without a key (the database was used without one) is
// sealed when a key is configured.
func (db *database) checkKeys(sealer *seal.Sealer) error {
	db.mu.Lock() // so that no reseal runs in between
	defer db.mu.Unlock()
	var refused error
	err := db.store.Update(func(tx store.Tx) error {
		refused = nil // should the store run this again
		check, err := tx.Meta(metaKeyCheck)
		switch {
		case errors.Is(err, store.ErrNotFound):
			var opened seal.Key
			opened, refused, err = openOneSecret(tx, sealer)
			if refused != nil || err != nil {
				return err
			}
			if opened == seal.KeyPrevious {
				// The secrets are under a previous key: a check value
				// sealed with the current one would let that key be
				// dropped before reseal has run, which writes it.
				return nil
			}
		case err != nil:
			return err
		default:
			plaintext, key, err := sealer.OpenKey(check, keyCheckOwner)
			if err != nil {
				refused = err
				return nil
			}
			if !bytes.Equal(plaintext, keyCheckText) {
				return fmt.Errorf("the key check value in the 2FA database %s is damaged", db.path)
			}
			// A value sealed with a previous key stays so until reseal,
			// so the previous key cannot be dropped too early.
			if key != seal.KeyNone || !sealer.Encrypts() {
				return nil
			}
		}
		return putKeyCheck(tx, sealer)
	})
	switch {
	case err != nil:
		return err
	case errors.Is(refused, seal.ErrNoKey):
		return fmt.Errorf("encryption_key does not open the secrets in %s: none is set, and they are encrypted (set the encryption_key they were sealed with)", db.path)
	case refused != nil:
		return fmt.Errorf("encryption_key does not open the secrets in %s: %w", db.path, errKeysDoNotOpen)
	}
	return nil
}

// openOneSecret opens the first TOTP secret in tx that was sealed with a
// key, and returns the key of sealer that opened it (KeyNone if there is
// no such secret), or why it does not open.
func openOneSecret(tx store.Tx, sealer *seal.Sealer) (opened seal.Key, refused, err error) {
	found := errors.New("found")
	err = tx.ForEachUser(func(u *store.User) error {
		if u.TOTP == nil {
			return nil
		}
		_, key, err := sealer.OpenKey(u.TOTP.Secret, u.Name)
		if err != nil {
			refused = err
			return found
		}
		if key != seal.KeyNone {
			opened = key
			return found
		}
		return nil
	})
	if errors.Is(err, found) {
		err = nil
	}
	return opened, refused, err
}

func putKeyCheck(tx store.Tx, sealer *seal.Sealer) error {
	check, err := sealer.Seal(keyCheckText, keyCheckOwner)
	if err != nil {
		return err
	}
	return tx.PutMeta(metaKeyCheck, check)
}

// resealResult is what reseal did.
type resealResult struct {
	// Users and Sessions count the TOTP secrets and the pending setup
	// secrets sealed again with the current key.
	Users    int `json:"users"`
	Sessions int `json:"sessions"`
	// Compacted is the file's size before and after its compaction.
	Compacted *boltstore.CompactStats `json:"compacted,omitempty"`
}

// compacter is a store that can rewrite its file (boltstore.Store).
type compacter interface {
	Compact() (boltstore.CompactStats, error)
}

// resealLocked seals every secret in db with the current key of the
// configs on it, makes that key the one the check value is sealed with,
// and compacts the file, so no secret is left stored without a key or with
// a previous one, even in free pages. The caller holds db.mu for reading.
func (db *database) resealLocked() (*resealResult, error) {
	sealer, err := db.currentSealerLocked()
	if err != nil {
		return nil, err
	}
	var (
		users      []string
		sessions   []store.SessionKey
		unreadable []string
	)
	err = db.store.View(func(tx store.Tx) error {
		users, sessions, unreadable = nil, nil, nil
		err := tx.ForEachUser(func(u *store.User) error {
			if u.TOTP == nil {
				return nil
			}
			if _, key, err := sealer.OpenKey(u.TOTP.Secret, u.Name); err != nil {
				unreadable = append(unreadable, u.Name)
			} else if key != seal.KeyCurrent {
				users = append(users, u.Name)
			}
			return nil
		})
		if err != nil {
			return err
		}
		return tx.ForEachSession(func(s *store.Session) error {
			if s.PendingSecret == nil {
				return nil
			}
			if _, key, err := sealer.OpenKey(s.PendingSecret, s.User); err != nil || key != seal.KeyCurrent {
				sessions = append(sessions, s.Key)
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	if len(unreadable) > 0 {
		return nil, refuse(codeUnreadable, "the TOTP secrets of %s in %s open with neither encryption_key nor any previous_encryption_key: add the key they were sealed with as previous_encryption_key and reload, or reset these users; nothing was changed", strings.Join(unreadable, ", "), db.path)
	}

	res := &resealResult{}
	res.Users, err = inBatches(db.store, users, func(tx store.Tx, name string) (bool, error) {
		u, err := tx.User(name)
		if errors.Is(err, store.ErrNotFound) || (err == nil && u.TOTP == nil) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		resealed, changed, err := sealer.Reseal(u.TOTP.Secret, u.Name)
		if err != nil || !changed {
			return false, err
		}
		u.TOTP.Secret = resealed
		return true, tx.PutUser(u)
	})
	if err != nil {
		return nil, err
	}
	res.Sessions, err = inBatches(db.store, sessions, func(tx store.Tx, key store.SessionKey) (bool, error) {
		s, err := tx.Session(key)
		if errors.Is(err, store.ErrNotFound) || (err == nil && s.PendingSecret == nil) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		resealed, changed, err := sealer.Reseal(s.PendingSecret, s.User)
		if err != nil {
			// A setup whose secret no key opens starts over with a new
			// secret; it has not been activated yet.
			resealed, changed = nil, true
		}
		if !changed {
			return false, nil
		}
		s.PendingSecret = resealed
		return true, tx.PutSession(s)
	})
	if err != nil {
		return nil, err
	}
	if err := db.store.Update(func(tx store.Tx) error { return putKeyCheck(tx, sealer) }); err != nil {
		return nil, err
	}
	if c, ok := store.As[compacter](db.raw); ok {
		stats, err := c.Compact()
		if err != nil {
			// The secrets are sealed with the current key already; only
			// the file still holds old copies in its free pages. It is an
			// outage of the store's (a full disk, most likely): 503, and
			// reseal again once it is mended.
			return nil, fmt.Errorf("every secret is sealed with the current key, but the file could not be compacted, so old copies may remain in its free pages; mend that and run reseal again: %w", errors.Join(store.ErrUnavailable, err))
		}
		res.Compacted = &stats
	}
	return res, nil
}

// inBatches calls fn for each of keys, in write transactions of at most
// resealBatch keys, and returns for how many fn changed something.
func inBatches[K any](st store.Store, keys []K, fn func(tx store.Tx, key K) (bool, error)) (int, error) {
	total := 0
	for batch := range slices.Chunk(keys, resealBatch) {
		var n int
		err := st.Update(func(tx store.Tx) error {
			n = 0 // should the store run this again
			for _, key := range batch {
				changed, err := fn(tx, key)
				if err != nil {
					return err
				}
				if changed {
					n++
				}
			}
			return nil
		})
		if err != nil {
			return total, err
		}
		total += n
	}
	return total, nil
}

// currentSealerLocked returns the sealer of the configs on db, refusing
// unless they all seal with the same key. The caller holds db.mu.
func (db *database) currentSealerLocked() (*seal.Sealer, error) {
	var sealer *seal.Sealer
	for h := range db.configs {
		switch {
		case !h.sealer.Encrypts():
			return nil, refuse(codeNoKey, "a config using %s has no encryption_key: set one (see docs/operations.md), reload, and run reseal again", db.path)
		case sealer != nil && !sealer.SameKey(h.sealer):
			return nil, refuse(codeKeysDiffer, "the configs using %s have different encryption_key values (is a reload under way?): every site on one database needs the same key", db.path)
		}
		sealer = h.sealer
	}
	if sealer == nil {
		return nil, refuse(codeNoKey, "no running config uses %s: reseal needs the Caddy that serves it, which holds the keys; start it and run reseal again", db.path)
	}
	return sealer, nil
}
