package boltstore

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/caddy-two-factor/caddy-two-factor/store"
	"github.com/caddy-two-factor/caddy-two-factor/store/storetest"
)

// base is an arbitrary instant in the tests' past and future.
var base = time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)

func openTestBolt(t *testing.T) *Store {
	t.Helper()
	b, err := Open(filepath.Join(t.TempDir(), "2fa.db"))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return b
}

// The conformance suite's helpers, under the short names these tests use.
var (
	update      = storetest.Update
	view        = storetest.View
	key         = storetest.Key
	session     = storetest.Session
	putSessions = storetest.PutSessions
)

// checkIndexes fails the test unless by_user and by_expiry hold exactly one
// entry for every stored session, and nothing else.
func checkIndexes(t *testing.T, b *Store) {
	t.Helper()
	err := b.db.View(func(btx *bolt.Tx) error {
		root := btx.Bucket(bucketVersion)
		wantByUser := map[string]bool{}
		wantByExpiry := map[string]bool{}
		err := root.Bucket(bucketSessions).ForEach(func(k, raw []byte) error {
			var sk store.SessionKey
			if copy(sk[:], k) != len(sk) || len(k) != len(sk) {
				t.Errorf("session stored under a %d-byte key", len(k))
			}
			s, err := decodeSession(sk, raw)
			if err != nil {
				return err
			}
			wantByUser[string(byUserKey(s.User, sk))] = true
			wantByExpiry[string(byExpiryKey(s.Expires, sk))] = true
			return nil
		})
		if err != nil {
			return err
		}
		for name, want := range map[string]map[string]bool{"by_user": wantByUser, "by_expiry": wantByExpiry} {
			got := map[string]bool{}
			_ = root.Bucket([]byte(name)).ForEach(func(k, _ []byte) error {
				got[string(k)] = true
				return nil
			})
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s index has %d entries, want %d matching the %d sessions", name, len(got), len(want), len(wantByUser))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("checking indexes: %v", err)
	}
}

func TestOpen(t *testing.T) {
	t.Run("creates missing directories", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "a", "b", "2fa.db")
		b, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		if b.Path() != path {
			t.Errorf("Path() = %q, want %q", b.Path(), path)
		}
		if _, err := os.Stat(path); err != nil {
			t.Errorf("database file not created: %v", err)
		}
	})
	t.Run("directory is a file", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "file")
		if err := os.WriteFile(dir, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if b, err := Open(filepath.Join(dir, "2fa.db")); err == nil {
			b.Close()
			t.Fatal("Open under a regular file succeeded")
		}
	})
	t.Run("not a database", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "2fa.db")
		if err := os.WriteFile(path, bytes.Repeat([]byte("not a bbolt file\n"), 1024), 0o600); err != nil {
			t.Fatal(err)
		}
		if b, err := Open(path); err == nil {
			b.Close()
			t.Fatal("Open of a text file succeeded")
		}
	})
}

func TestOpenLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "2fa.db")
	first, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()

	second, err := Open(path) // waits LockTimeout
	if err == nil {
		second.Close()
		t.Fatal("opened a database that is already open")
	}
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("error %v does not wrap ErrLocked", err)
	}
	// The first handle is unaffected, and the file opens once it is closed.
	update(t, first, func(tx store.Tx) error { return tx.PutMeta("k", []byte("v")) })
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	third, err := Open(path)
	if err != nil {
		t.Fatalf("reopening after Close: %v", err)
	}
	third.Close()
}

func TestReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "2fa.db")
	b, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	user := &store.User{Name: "alice", TOTP: &store.Enrollment{Secret: []byte("s"), LastStep: 7, EnrolledAt: base}}
	sess := session("s", "alice", base)
	att := &store.Attempts{Failures: 1, WindowStart: base}
	update(t, b, func(tx store.Tx) error {
		if err := tx.PutUser(user); err != nil {
			return err
		}
		if err := tx.PutSession(sess); err != nil {
			return err
		}
		if err := tx.PutAttempts("ip:192.0.2.1", att); err != nil {
			return err
		}
		return tx.PutMeta("m", []byte("v"))
	})
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	b, err = Open(path)
	if err != nil {
		t.Fatalf("reopening: %v", err)
	}
	defer b.Close()
	view(t, b, func(tx store.Tx) error {
		if got, err := tx.User("alice"); err != nil || !reflect.DeepEqual(got, user) {
			t.Errorf("User after reopen = %+v, %v", got, err)
		}
		if got, err := tx.Session(sess.Key); err != nil || !reflect.DeepEqual(got, sess) {
			t.Errorf("Session after reopen = %+v, %v", got, err)
		}
		if got, err := tx.Attempts("ip:192.0.2.1"); err != nil || !reflect.DeepEqual(got, att) {
			t.Errorf("Attempts after reopen = %+v, %v", got, err)
		}
		if got, err := tx.Meta("m"); err != nil || string(got) != "v" {
			t.Errorf("Meta after reopen = %q, %v", got, err)
		}
		return nil
	})
	view(t, b, func(tx store.Tx) error {
		got, err := tx.UserSessions("alice")
		if err != nil || len(got) != 1 || got[0].Key != sess.Key {
			t.Errorf("UserSessions after reopen = %d sessions, %v", len(got), err)
		}
		return nil
	})
	checkIndexes(t, b)
}

// TestBoltIndexes checks bbolt's own index buckets (which the conformance
// suite cannot see) after every kind of change to sessions, including
// expiries before 1970, which the by_expiry index files at 0.
func TestBoltIndexes(t *testing.T) {
	b := openTestBolt(t)
	steps := []struct {
		name string
		do   func(store.Tx) error
	}{
		{"put", func(tx store.Tx) error {
			for _, s := range []*store.Session{
				session("a", "alice", base),
				session("b", "al\x00\x07", base.Add(time.Hour)),
				session("pre-1970", "bob", time.Unix(-1000, 0)),
				session("c", "alice", base.Add(-time.Hour)),
			} {
				if err := tx.PutSession(s); err != nil {
					return err
				}
			}
			return nil
		}},
		{"activity only", func(tx store.Tx) error {
			s := session("a", "alice", base)
			s.LastSeen = base
			return tx.PutSession(s)
		}},
		{"expiry moved", func(tx store.Tx) error { return tx.PutSession(session("a", "alice", base.Add(time.Nanosecond))) }},
		{"user moved", func(tx store.Tx) error { return tx.PutSession(session("b", "alice", base.Add(time.Hour))) }},
		{"deleted", func(tx store.Tx) error { return tx.DeleteSession(key("c")) }},
		{"expired", func(tx store.Tx) error {
			n, err := tx.DeleteExpiredSessions(time.Unix(0, 0), 10)
			if err == nil && n != 1 {
				t.Errorf("DeleteExpiredSessions before 1970 = %d, want 1", n)
			}
			return err
		}},
		{"all expired", func(tx store.Tx) error {
			_, err := tx.DeleteExpiredSessions(base.Add(2*time.Hour), 10)
			return err
		}},
	}
	for _, st := range steps {
		update(t, b, st.do)
		checkIndexes(t, b)
		if t.Failed() {
			t.Fatalf("after %s", st.name)
		}
	}
}

func TestTransactionErrors(t *testing.T) {
	// The function's own errors come back as they are; bbolt's mean the
	// store could not answer, whatever the function would have done.
	path := filepath.Join(t.TempDir(), "2fa.db")
	b, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	fail := errors.New("fail")
	run := map[string]func(func(store.Tx) error) error{"View": b.View, "Update": b.Update}
	for name, txn := range run {
		if err := txn(func(store.Tx) error { return fail }); err != fail {
			t.Errorf("%s returned %v, want the function's error itself", name, err)
		}
		err := txn(func(tx store.Tx) error { _, err := tx.User("nobody"); return err })
		if !errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s returned %v, want store.ErrNotFound only", name, err)
		}
	}
	if err := b.db.Close(); err != nil {
		t.Fatal(err)
	}
	for name, txn := range run {
		called := false
		err := txn(func(store.Tx) error { called = true; return nil })
		if !errors.Is(err, store.ErrUnavailable) || errors.Is(err, store.ErrNotFound) || !strings.Contains(err.Error(), path) {
			t.Errorf("%s on a closed database returned %v, want store.ErrUnavailable naming %s", name, err, path)
		}
		if called {
			t.Errorf("%s ran the function on a closed database", name)
		}
	}
}

// TestOpenCountsTheSessionsOfAnOlderFile opens a file written before the
// session counts were kept (the counts bucket taken out): Open counts its
// sessions by stage once, and the counts go on from there.
func TestOpenCountsTheSessionsOfAnOlderFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "2fa.db")
	b, err := Open(path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	pending := session("p", "alice", base)
	pending.Stage = store.StagePending
	putSessions(t, b, pending, session("f1", "alice", base), session("f2", "bob", base))
	if err := b.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketVersion).DeleteBucket(bucketCounts) }); err != nil {
		t.Fatalf("taking the counts out: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	b, err = Open(path)
	if err != nil {
		t.Fatalf("Open of the older file: %v", err)
	}
	defer b.Close()
	count := func() (n store.SessionCounts) {
		t.Helper()
		view(t, b, func(tx store.Tx) (err error) {
			n, err = tx.CountSessions()
			return err
		})
		return n
	}
	if n := count(); n != (store.SessionCounts{Pending: 1, Full: 2}) {
		t.Errorf("CountSessions after Open = %+v, want 1 pending and 2 full", n)
	}
	update(t, b, func(tx store.Tx) error { return tx.PutSession(session("p", "alice", base)) })
	if n := count(); n != (store.SessionCounts{Full: 3}) {
		t.Errorf("CountSessions after the pending one signed in = %+v, want 3 full", n)
	}
}
