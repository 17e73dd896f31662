// Package storetest checks that a [store.Store] keeps the contract the rest
// of the module relies on, in the manner of testing/fstest.TestFS: every
// implementation runs the same suite with
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { return openEmptyStore(t) })
//	}
//
// The suite pins what store.Store and store.Tx document: round trips of
// every field, ErrNotFound, copies, rollback, reading one's own writes,
// serialised read-check-write under concurrency, the by-user index, expiry,
// limits, ordering and prefix queries.
//
// Times are far in the future of the wall clock (ten years ahead), so a
// store that expires records itself by the wall clock keeps everything a
// test puts, except in the tests of that behaviour, which put records
// already expired by the wall clock.
package storetest

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/caddy-two-factor/caddy-two-factor/store"
)

// base is the suite's "now": an instant with nanoseconds, ten years after
// the wall clock's year began, so nothing the tests put has expired for a
// store that expires records by the wall clock.
var base = time.Date(time.Now().Year()+10, 1, 2, 3, 4, 5, 6, time.UTC)

// Run runs the conformance suite. open returns a new, empty store for each
// subtest; the suite closes it.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	fresh := func(t *testing.T) store.Store {
		t.Helper()
		s := open(t)
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		return s
	}
	for _, tt := range []struct {
		name string
		fn   func(*testing.T, func(*testing.T) store.Store)
	}{
		{"Meta", testMeta},
		{"Users", testUsers},
		{"UserRoundTrip", testUserRoundTrip},
		{"ForEachUser", testForEachUser},
		{"Sessions", testSessions},
		{"SessionRoundTrip", testSessionRoundTrip},
		{"UserSessions", testUserSessions},
		{"ForEachSession", testForEachSession},
		{"CountSessions", testCountSessions},
		{"DeleteExpiredSessions", testDeleteExpiredSessions},
		{"PutSessionMovesExpiry", testPutSessionMovesExpiry},
		{"ExpiredByTheWallClock", testExpiredByTheWallClock},
		{"Attempts", testAttempts},
		{"ForEachAttempts", testForEachAttempts},
		{"DeleteAttemptsWithPrefix", testDeleteAttemptsWithPrefix},
		{"DeleteStaleAttempts", testDeleteStaleAttempts},
		{"Copies", testCopies},
		{"Rollback", testRollback},
		{"ReadsOwnWrites", testReadsOwnWrites},
		{"ViewIsReadOnly", testViewIsReadOnly},
		{"ConcurrentIncrement", testConcurrentIncrement},
		{"ConcurrentTOTPStep", testConcurrentTOTPStep},
		{"ConcurrentRecoveryCode", testConcurrentRecoveryCode},
		{"ConcurrentStepsSerialise", testConcurrentStepsSerialise},
		{"ConcurrentSessions", testConcurrentSessions},
	} {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, fresh) })
	}
}

// Update runs fn in an Update of s and fails the test on an error.
func Update(t *testing.T, s store.Store, fn func(store.Tx) error) {
	t.Helper()
	if err := s.Update(fn); err != nil {
		t.Fatalf("Update: %v", err)
	}
}

// View runs fn in a View of s and fails the test on an error.
func View(t *testing.T, s store.Store, fn func(store.Tx) error) {
	t.Helper()
	if err := s.View(fn); err != nil {
		t.Fatalf("View: %v", err)
	}
}

// Key returns a session key derived from name.
func Key(name string) store.SessionKey { return sha256.Sum256([]byte(name)) }

// Session returns a signed-in session of user, named name (its key is
// Key(name)), that expires at expires.
func Session(name, user string, expires time.Time) *store.Session {
	return &store.Session{
		Key:      Key(name),
		User:     user,
		Stage:    store.StageFull,
		Created:  expires.Add(-time.Hour),
		LastSeen: expires.Add(-time.Minute),
		Expires:  expires,
	}
}

// PutSessions puts sessions into s in one Update.
func PutSessions(t *testing.T, s store.Store, sessions ...*store.Session) {
	t.Helper()
	Update(t, s, func(tx store.Tx) error {
		for _, sess := range sessions {
			if err := tx.PutSession(sess); err != nil {
				return err
			}
		}
		return nil
	})
}

// The suite's own short names for the helpers above.
var (
	update      = Update
	view        = View
	key         = Key
	session     = Session
	putSessions = PutSessions
)

func putAttempts(t *testing.T, s store.Store, counters map[string]*store.Attempts) {
	t.Helper()
	update(t, s, func(tx store.Tx) error {
		for k, a := range counters {
			if err := tx.PutAttempts(k, a); err != nil {
				return err
			}
		}
		return nil
	})
}

// userSessionKeys returns the sorted keys of UserSessions(user) read in tx,
// and fails if any of them belongs to another user.
func userSessionKeys(t *testing.T, tx store.Tx, user string) []store.SessionKey {
	t.Helper()
	sessions, err := tx.UserSessions(user)
	if err != nil {
		t.Fatalf("UserSessions(%q): %v", user, err)
	}
	var keys []store.SessionKey
	for _, sess := range sessions {
		if sess.User != user {
			t.Errorf("UserSessions(%q) returned a session of %q", user, sess.User)
		}
		keys = append(keys, sess.Key)
	}
	sortKeys(keys)
	return keys
}

func viewUserSessionKeys(t *testing.T, s store.Store, user string) (keys []store.SessionKey) {
	t.Helper()
	view(t, s, func(tx store.Tx) error {
		keys = userSessionKeys(t, tx, user)
		return nil
	})
	return keys
}

func keysOf(names ...string) []store.SessionKey {
	keys := make([]store.SessionKey, len(names))
	for i, n := range names {
		keys[i] = key(n)
	}
	sortKeys(keys)
	return keys
}

func sortKeys(keys []store.SessionKey) {
	slices.SortFunc(keys, func(a, b store.SessionKey) int { return bytes.Compare(a[:], b[:]) })
}

func sessionExists(t *testing.T, s store.Store, k store.SessionKey) bool {
	t.Helper()
	var ok bool
	view(t, s, func(tx store.Tx) error {
		_, err := tx.Session(k)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		ok = err == nil
		return err
	})
	return ok
}

func countSessions(t *testing.T, s store.Store) (n store.SessionCounts) {
	t.Helper()
	view(t, s, func(tx store.Tx) (err error) {
		n, err = tx.CountSessions()
		return err
	})
	return n
}

// checkConsistent fails unless the store's ways of finding sessions agree:
// ForEachSession, CountSessions and UserSessions of every user in users
// name the same sessions, each under its own user.
func checkConsistent(t *testing.T, s store.Store, users ...string) {
	t.Helper()
	view(t, s, func(tx store.Tx) error {
		all := map[store.SessionKey]string{}
		var stages store.SessionCounts
		err := tx.ForEachSession(func(sess *store.Session) error {
			all[sess.Key] = sess.User
			stages.Add(sess.Stage, 1)
			return nil
		})
		if err != nil {
			return err
		}
		if n, err := tx.CountSessions(); err != nil || n != stages {
			t.Errorf("CountSessions = %+v, %v; ForEachSession saw %+v", n, err, stages)
		}
		indexed := 0
		for _, u := range users {
			for _, k := range userSessionKeys(t, tx, u) {
				indexed++
				if all[k] != u {
					t.Errorf("UserSessions(%q) has a session that ForEachSession gives to %q", u, all[k])
				}
			}
		}
		if indexed != len(all) {
			t.Errorf("UserSessions of %q name %d sessions, ForEachSession %d", users, indexed, len(all))
		}
		return nil
	})
}
