package store

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// base is an arbitrary instant in the tests' past and future.
var base = time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)

func openTestBolt(t *testing.T) *Bolt {
	t.Helper()
	b, err := OpenBolt(filepath.Join(t.TempDir(), "2fa.db"))
	if err != nil {
		t.Fatalf("OpenBolt: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return b
}

func update(t *testing.T, s Store, fn func(Tx) error) {
	t.Helper()
	if err := s.Update(fn); err != nil {
		t.Fatalf("Update: %v", err)
	}
}

func view(t *testing.T, s Store, fn func(Tx) error) {
	t.Helper()
	if err := s.View(fn); err != nil {
		t.Fatalf("View: %v", err)
	}
}

// key returns a session key derived from name.
func key(name string) SessionKey { return sha256.Sum256([]byte(name)) }

func session(name, user string, expires time.Time) *Session {
	return &Session{
		Key:      key(name),
		User:     user,
		Stage:    StageFull,
		Created:  expires.Add(-time.Hour),
		LastSeen: expires.Add(-time.Minute),
		Expires:  expires,
	}
}

func putSessions(t *testing.T, s Store, sessions ...*Session) {
	t.Helper()
	update(t, s, func(tx Tx) error {
		for _, sess := range sessions {
			if err := tx.PutSession(sess); err != nil {
				return err
			}
		}
		return nil
	})
}

// userSessionKeys returns the sorted keys of UserSessions(user) and fails if
// any of them belongs to another user.
func userSessionKeys(t *testing.T, s Store, user string) []SessionKey {
	t.Helper()
	var keys []SessionKey
	view(t, s, func(tx Tx) error {
		sessions, err := tx.UserSessions(user)
		if err != nil {
			return err
		}
		for _, sess := range sessions {
			if sess.User != user {
				t.Errorf("UserSessions(%q) returned a session of %q", user, sess.User)
			}
			keys = append(keys, sess.Key)
		}
		return nil
	})
	sortKeys(keys)
	return keys
}

func keysOf(names ...string) []SessionKey {
	keys := make([]SessionKey, len(names))
	for i, n := range names {
		keys[i] = key(n)
	}
	sortKeys(keys)
	return keys
}

func sortKeys(keys []SessionKey) {
	sort.Slice(keys, func(i, j int) bool { return bytes.Compare(keys[i][:], keys[j][:]) < 0 })
}

func sessionExists(t *testing.T, s Store, k SessionKey) bool {
	t.Helper()
	var ok bool
	view(t, s, func(tx Tx) error {
		_, err := tx.Session(k)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		ok = err == nil
		return err
	})
	return ok
}

// checkIndexes fails the test unless by_user and by_expiry hold exactly one
// entry for every stored session, and nothing else.
func checkIndexes(t *testing.T, b *Bolt) {
	t.Helper()
	err := b.db.View(func(btx *bolt.Tx) error {
		root := btx.Bucket(bucketVersion)
		wantByUser := map[string]bool{}
		wantByExpiry := map[string]bool{}
		err := root.Bucket(bucketSessions).ForEach(func(k, raw []byte) error {
			var s Session
			if err := getSession(root.Bucket(bucketSessions), k, &s); err != nil {
				return err
			}
			var sk SessionKey
			if copy(sk[:], k) != len(sk) || len(k) != len(sk) {
				t.Errorf("session stored under a %d-byte key", len(k))
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

func TestOpenBolt(t *testing.T) {
	t.Run("creates missing directories", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "a", "b", "2fa.db")
		b, err := OpenBolt(path)
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
		if b, err := OpenBolt(filepath.Join(dir, "2fa.db")); err == nil {
			b.Close()
			t.Fatal("OpenBolt under a regular file succeeded")
		}
	})
	t.Run("not a database", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "2fa.db")
		if err := os.WriteFile(path, bytes.Repeat([]byte("not a bbolt file\n"), 1024), 0o600); err != nil {
			t.Fatal(err)
		}
		if b, err := OpenBolt(path); err == nil {
			b.Close()
			t.Fatal("OpenBolt of a text file succeeded")
		}
	})
}

func TestOpenBoltLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "2fa.db")
	first, err := OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()

	second, err := OpenBolt(path) // waits LockTimeout
	if err == nil {
		second.Close()
		t.Fatal("opened a database that is already open")
	}
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("error %v does not wrap ErrLocked", err)
	}
	// The first handle is unaffected, and the file opens once it is closed.
	update(t, first, func(tx Tx) error { return tx.PutMeta("k", []byte("v")) })
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	third, err := OpenBolt(path)
	if err != nil {
		t.Fatalf("reopening after Close: %v", err)
	}
	third.Close()
}

func TestUsers(t *testing.T) {
	b := openTestBolt(t)
	alice := &User{
		Name:         "alice",
		PasswordHash: "$2a$10$hash",
		SessionID:    "sid",
		TOTP: &Enrollment{
			Secret:          []byte{1, 2, 3},
			LastStep:        42,
			RecoveryDigests: [][]byte{{4, 5}, {6}},
			EnrolledAt:      base,
		},
		Created: base.Add(-time.Hour),
	}
	update(t, b, func(tx Tx) error {
		for _, name := range []string{"bob", "al", "carol"} {
			if err := tx.PutUser(&User{Name: name}); err != nil {
				return err
			}
		}
		return tx.PutUser(alice)
	})

	view(t, b, func(tx Tx) error {
		got, err := tx.User("alice")
		if err != nil {
			return err
		}
		if !reflect.DeepEqual(got, alice) {
			t.Errorf("User(alice) = %+v, want %+v", got, alice)
		}
		for _, missing := range []string{"", "ali", "Alice", "alice "} {
			if _, err := tx.User(missing); !errors.Is(err, ErrNotFound) {
				t.Errorf("User(%q) error = %v, want ErrNotFound", missing, err)
			}
		}
		return nil
	})

	t.Run("returned values are copies", func(t *testing.T) {
		view(t, b, func(tx Tx) error {
			u, err := tx.User("alice")
			if err != nil {
				return err
			}
			u.TOTP.LastStep = 99
			u.TOTP.Secret[0] = 0xff
			return nil
		})
		view(t, b, func(tx Tx) error {
			u, err := tx.User("alice")
			if err != nil {
				return err
			}
			if u.TOTP.LastStep != 42 || u.TOTP.Secret[0] != 1 {
				t.Errorf("changing a returned user changed the store: %+v", u.TOTP)
			}
			return nil
		})
	})

	t.Run("ForEachUser in name order", func(t *testing.T) {
		var names []string
		view(t, b, func(tx Tx) error {
			return tx.ForEachUser(func(u *User) error {
				names = append(names, u.Name)
				return nil
			})
		})
		if want := []string{"al", "alice", "bob", "carol"}; !slices.Equal(names, want) {
			t.Errorf("ForEachUser visited %q, want %q", names, want)
		}
	})

	t.Run("ForEachUser stops at an error", func(t *testing.T) {
		stop := errors.New("stop")
		n := 0
		err := b.View(func(tx Tx) error {
			return tx.ForEachUser(func(*User) error {
				n++
				return stop
			})
		})
		if !errors.Is(err, stop) || n != 1 {
			t.Errorf("ForEachUser = %v after %d calls, want stop after 1", err, n)
		}
	})

	t.Run("PutUser without a name", func(t *testing.T) {
		err := b.Update(func(tx Tx) error { return tx.PutUser(&User{}) })
		if err == nil {
			t.Error("PutUser accepted a user without a name")
		}
	})

	t.Run("overwrite", func(t *testing.T) {
		update(t, b, func(tx Tx) error { return tx.PutUser(&User{Name: "bob", SessionID: "new"}) })
		view(t, b, func(tx Tx) error {
			u, err := tx.User("bob")
			if err == nil && u.SessionID != "new" {
				t.Errorf("SessionID = %q after overwrite", u.SessionID)
			}
			return err
		})
	})

	t.Run("delete", func(t *testing.T) {
		update(t, b, func(tx Tx) error {
			if err := tx.DeleteUser("bob"); err != nil {
				return err
			}
			return tx.DeleteUser("nobody") // deleting what is not there is fine
		})
		view(t, b, func(tx Tx) error {
			if _, err := tx.User("bob"); !errors.Is(err, ErrNotFound) {
				t.Errorf("User(bob) after delete: %v", err)
			}
			if _, err := tx.User("alice"); err != nil {
				t.Errorf("User(alice) after deleting bob: %v", err)
			}
			return nil
		})
	})
}

func TestUpdateRollsBack(t *testing.T) {
	b := openTestBolt(t)
	fail := errors.New("fail")
	err := b.Update(func(tx Tx) error {
		if err := tx.PutUser(&User{Name: "alice"}); err != nil {
			return err
		}
		if err := tx.PutSession(session("s", "alice", base)); err != nil {
			return err
		}
		if err := tx.PutMeta("m", []byte("v")); err != nil {
			return err
		}
		return fail
	})
	if !errors.Is(err, fail) {
		t.Fatalf("Update = %v, want the function's error", err)
	}
	view(t, b, func(tx Tx) error {
		if _, err := tx.User("alice"); !errors.Is(err, ErrNotFound) {
			t.Errorf("user survived a rolled-back transaction: %v", err)
		}
		if _, err := tx.Meta("m"); !errors.Is(err, ErrNotFound) {
			t.Errorf("meta survived a rolled-back transaction: %v", err)
		}
		if n, _ := tx.CountSessions(); n != 0 {
			t.Errorf("%d sessions survived a rolled-back transaction", n)
		}
		return nil
	})
	checkIndexes(t, b)
}

func TestTransactionErrors(t *testing.T) {
	// The function's own errors come back as they are; bbolt's mean the
	// store could not answer, whatever the function would have done.
	path := filepath.Join(t.TempDir(), "2fa.db")
	b, err := OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	fail := errors.New("fail")
	run := map[string]func(func(Tx) error) error{"View": b.View, "Update": b.Update}
	for name, txn := range run {
		if err := txn(func(Tx) error { return fail }); err != fail {
			t.Errorf("%s returned %v, want the function's error itself", name, err)
		}
		err := txn(func(tx Tx) error { _, err := tx.User("nobody"); return err })
		if !errors.Is(err, ErrNotFound) || errors.Is(err, ErrUnavailable) {
			t.Errorf("%s returned %v, want ErrNotFound only", name, err)
		}
	}
	if err := b.db.Close(); err != nil {
		t.Fatal(err)
	}
	for name, txn := range run {
		called := false
		err := txn(func(Tx) error { called = true; return nil })
		if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), path) {
			t.Errorf("%s on a closed database returned %v, want ErrUnavailable naming %s", name, err, path)
		}
		if called {
			t.Errorf("%s ran the function on a closed database", name)
		}
	}
}

func TestViewIsReadOnly(t *testing.T) {
	b := openTestBolt(t)
	if err := b.View(func(tx Tx) error { return tx.PutUser(&User{Name: "alice"}) }); err == nil {
		t.Error("PutUser succeeded in a read-only transaction")
	}
}

func TestSessions(t *testing.T) {
	b := openTestBolt(t)
	full := &Session{
		Key:           key("full"),
		User:          "alice",
		Stage:         StageFull,
		UserSessionID: "sid",
		Created:       base.Add(-2 * time.Hour),
		LastSeen:      base.Add(-time.Minute),
		Expires:       base.Add(time.Hour),
		ConfirmedAt:   base.Add(-time.Hour),
		Method:        "totp",
		Next:          "/admin?x=1",
		PendingSecret: []byte{0, 1, 2},
		ClientIP:      "192.0.2.1",
		UserAgent:     "test",
	}
	pending := &Session{Key: key("pending"), User: "bob", Stage: StagePending, Expires: base}
	putSessions(t, b, full, pending)

	t.Run("get", func(t *testing.T) {
		view(t, b, func(tx Tx) error {
			for _, want := range []*Session{full, pending} {
				got, err := tx.Session(want.Key)
				if err != nil {
					return err
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("Session = %+v, want %+v", got, want)
				}
			}
			if _, err := tx.Session(key("missing")); !errors.Is(err, ErrNotFound) {
				t.Errorf("Session(missing) error = %v, want ErrNotFound", err)
			}
			if n, err := tx.CountSessions(); err != nil || n != 2 {
				t.Errorf("CountSessions = %d, %v; want 2", n, err)
			}
			return nil
		})
	})

	t.Run("PutSession without a user", func(t *testing.T) {
		if err := b.Update(func(tx Tx) error { return tx.PutSession(&Session{Key: key("x"), Expires: base}) }); err == nil {
			t.Error("PutSession accepted a session without a user")
		}
	})

	t.Run("update in place", func(t *testing.T) {
		changed := *full
		changed.LastSeen = base
		changed.Stage = StagePending
		putSessions(t, b, &changed)
		view(t, b, func(tx Tx) error {
			got, err := tx.Session(full.Key)
			if err == nil && (!got.LastSeen.Equal(base) || got.Stage != StagePending) {
				t.Errorf("Session after update = %+v", got)
			}
			return err
		})
		checkIndexes(t, b)
	})

	t.Run("delete", func(t *testing.T) {
		update(t, b, func(tx Tx) error {
			if err := tx.DeleteSession(full.Key); err != nil {
				return err
			}
			return tx.DeleteSession(key("missing"))
		})
		if sessionExists(t, b, full.Key) {
			t.Error("session still there after DeleteSession")
		}
		if !sessionExists(t, b, pending.Key) {
			t.Error("DeleteSession deleted another session")
		}
		if got := userSessionKeys(t, b, "alice"); len(got) != 0 {
			t.Errorf("UserSessions(alice) after delete = %d sessions", len(got))
		}
		checkIndexes(t, b)
	})
}

func TestUserSessions(t *testing.T) {
	b := openTestBolt(t)
	putSessions(t, b,
		session("al-1", "al", base),
		session("al-2", "al", base.Add(time.Hour)),
		session("alice-1", "alice", base),
		session("alice-2", "alice", base.Add(2*time.Hour)),
		session("alice-3", "alice", base.Add(3*time.Hour)),
		session("a-1", "a", base),
		session("bob-1", "bob", base),
	)
	checkIndexes(t, b)
	tests := []struct {
		user string
		want []SessionKey
	}{
		{"al", keysOf("al-1", "al-2")},
		{"alice", keysOf("alice-1", "alice-2", "alice-3")},
		{"a", keysOf("a-1")},
		{"bob", keysOf("bob-1")},
		{"b", nil},
		{"alic", nil},
		{"alicex", nil},
		{"", nil},
		{"nobody", nil},
	}
	for _, tt := range tests {
		t.Run(tt.user, func(t *testing.T) {
			if got := userSessionKeys(t, b, tt.user); !slices.Equal(got, tt.want) {
				t.Errorf("UserSessions(%q) = %d sessions, want %d", tt.user, len(got), len(tt.want))
			}
		})
	}

	t.Run("session moved to another user", func(t *testing.T) {
		moved := session("al-2", "alice", base.Add(time.Hour))
		putSessions(t, b, moved)
		if got, want := userSessionKeys(t, b, "al"), keysOf("al-1"); !slices.Equal(got, want) {
			t.Errorf("UserSessions(al) = %d sessions, want %d", len(got), len(want))
		}
		if got, want := userSessionKeys(t, b, "alice"), keysOf("alice-1", "alice-2", "alice-3", "al-2"); !slices.Equal(got, want) {
			t.Errorf("UserSessions(alice) = %d sessions, want %d", len(got), len(want))
		}
		checkIndexes(t, b)
	})
}

func TestUserSessionsNamesWithNUL(t *testing.T) {
	// The by_user index separates the name from the key with a NUL. A name
	// that itself contains a NUL must not make another user's session show
	// up: here "al\x00\x07"'s index entry, read as one of "al", would point
	// at victim's session.
	b := openTestBolt(t)
	other := key("other")
	var victim SessionKey
	victim[0], victim[1] = 0x07, 0x00
	copy(victim[2:], other[:30])
	putSessions(t, b,
		&Session{Key: victim, User: "victim", Expires: base},
		&Session{Key: other, User: "al\x00\x07", Expires: base},
		session("al-1", "al", base),
	)
	if got, want := userSessionKeys(t, b, "al"), keysOf("al-1"); !slices.Equal(got, want) {
		t.Errorf("UserSessions(al) = %d sessions, want %d", len(got), len(want))
	}
	if got := userSessionKeys(t, b, "al\x00\x07"); !slices.Equal(got, []SessionKey{other}) {
		t.Errorf("UserSessions(al\\x00\\x07) = %d sessions, want 1", len(got))
	}
	checkIndexes(t, b)
}

func TestDeleteExpiredSessions(t *testing.T) {
	now := base
	// Sessions named by their expiry relative to now.
	fixtures := []*Session{
		session("-48h", "alice", now.Add(-48*time.Hour)),
		session("-1h", "al", now.Add(-time.Hour)),
		session("-1ns", "alice", now.Add(-time.Nanosecond)),
		session("0", "bob", now), // "at or before now" is expired
		session("+1ns", "alice", now.Add(time.Nanosecond)),
		session("+1h", "al", now.Add(time.Hour)),
		session("pre-1970", "bob", time.Unix(-1000, 0)),
	}
	tests := []struct {
		name    string
		limit   int
		deleted []string // in expiry order
	}{
		{"all expired", 100, []string{"pre-1970", "-48h", "-1h", "-1ns", "0"}},
		{"exactly as many as expired", 5, []string{"pre-1970", "-48h", "-1h", "-1ns", "0"}},
		{"limit 2 takes the oldest", 2, []string{"pre-1970", "-48h"}},
		{"limit 1", 1, []string{"pre-1970"}},
		{"limit 0", 0, nil},
		{"negative limit", -1, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := openTestBolt(t)
			putSessions(t, b, fixtures...)
			var n int
			update(t, b, func(tx Tx) (err error) {
				n, err = tx.DeleteExpiredSessions(now, tt.limit)
				return err
			})
			if n != len(tt.deleted) {
				t.Errorf("DeleteExpiredSessions = %d, want %d", n, len(tt.deleted))
			}
			gone := map[SessionKey]bool{}
			for _, name := range tt.deleted {
				gone[key(name)] = true
			}
			wantByUser := map[string][]SessionKey{}
			for _, s := range fixtures {
				if exists := sessionExists(t, b, s.Key); exists == gone[s.Key] {
					t.Errorf("session expiring at %v: exists = %v", s.Expires, exists)
				}
				if !gone[s.Key] {
					wantByUser[s.User] = append(wantByUser[s.User], s.Key)
				}
			}
			for _, user := range []string{"alice", "al", "bob"} {
				want := wantByUser[user]
				sortKeys(want)
				if got := userSessionKeys(t, b, user); !slices.Equal(got, want) {
					t.Errorf("UserSessions(%q) = %d sessions, want %d", user, len(got), len(want))
				}
			}
			view(t, b, func(tx Tx) error {
				if c, err := tx.CountSessions(); err != nil || c != len(fixtures)-len(tt.deleted) {
					t.Errorf("CountSessions = %d, %v; want %d", c, err, len(fixtures)-len(tt.deleted))
				}
				return nil
			})
			checkIndexes(t, b)

			// Running again deletes the rest, and then nothing.
			update(t, b, func(tx Tx) (err error) {
				n, err = tx.DeleteExpiredSessions(now, 100)
				return err
			})
			if n != 5-len(tt.deleted) {
				t.Errorf("second DeleteExpiredSessions = %d, want %d", n, 5-len(tt.deleted))
			}
			update(t, b, func(tx Tx) (err error) {
				n, err = tx.DeleteExpiredSessions(now, 100)
				return err
			})
			if n != 0 {
				t.Errorf("third DeleteExpiredSessions = %d, want 0", n)
			}
			checkIndexes(t, b)
		})
	}
}

func TestPutSessionMovesExpiry(t *testing.T) {
	now := base
	tests := []struct {
		name        string
		first, then time.Time
		deleted     int
	}{
		{"extended past now", now.Add(-time.Hour), now.Add(time.Hour), 0},
		{"shortened before now", now.Add(time.Hour), now.Add(-time.Hour), 1},
		{"unchanged, expired", now.Add(-time.Hour), now.Add(-time.Hour), 1},
		{"unchanged, live", now.Add(time.Hour), now.Add(time.Hour), 0},
		{"same instant, other zone", now.Add(-time.Hour), now.Add(-time.Hour).In(time.FixedZone("x", 3600)), 1},
		{"moved by a nanosecond", now, now.Add(time.Nanosecond), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := openTestBolt(t)
			putSessions(t, b, session("s", "alice", tt.first))
			putSessions(t, b, session("s", "alice", tt.then))
			checkIndexes(t, b)
			var n int
			update(t, b, func(tx Tx) (err error) {
				n, err = tx.DeleteExpiredSessions(now, 100)
				return err
			})
			if n != tt.deleted {
				t.Errorf("DeleteExpiredSessions = %d, want %d", n, tt.deleted)
			}
			if exists := sessionExists(t, b, key("s")); exists != (tt.deleted == 0) {
				t.Errorf("session exists = %v after cleanup", exists)
			}
			checkIndexes(t, b)
		})
	}
}

func TestMeta(t *testing.T) {
	b := openTestBolt(t)
	view(t, b, func(tx Tx) error {
		if _, err := tx.Meta("csrf-key"); !errors.Is(err, ErrNotFound) {
			t.Errorf("Meta of a missing name: %v, want ErrNotFound", err)
		}
		return nil
	})
	update(t, b, func(tx Tx) error {
		if err := tx.PutMeta("csrf-key", []byte{1, 2, 3}); err != nil {
			return err
		}
		return tx.PutMeta("empty", []byte{})
	})
	view(t, b, func(tx Tx) error {
		v, err := tx.Meta("csrf-key")
		if err != nil || !bytes.Equal(v, []byte{1, 2, 3}) {
			t.Errorf("Meta = %v, %v", v, err)
		}
		v[0] = 0xff // must not write into the database's memory
		if v, err := tx.Meta("empty"); err != nil || len(v) != 0 {
			t.Errorf("Meta(empty) = %v, %v; want an empty value", v, err)
		}
		return nil
	})
	update(t, b, func(tx Tx) error { return tx.PutMeta("csrf-key", []byte{4}) })
	view(t, b, func(tx Tx) error {
		if v, err := tx.Meta("csrf-key"); err != nil || !bytes.Equal(v, []byte{4}) {
			t.Errorf("Meta after overwrite = %v, %v", v, err)
		}
		return nil
	})
}

func TestAttempts(t *testing.T) {
	b := openTestBolt(t)
	a := &Attempts{Failures: 3, WindowStart: base, LockedUntil: base.Add(time.Minute)}
	update(t, b, func(tx Tx) error { return tx.PutAttempts("user:alice", a) })
	view(t, b, func(tx Tx) error {
		got, err := tx.Attempts("user:alice")
		if err != nil || !reflect.DeepEqual(got, a) {
			t.Errorf("Attempts = %+v, %v; want %+v", got, err, a)
		}
		if _, err := tx.Attempts("user:bob"); !errors.Is(err, ErrNotFound) {
			t.Errorf("Attempts of a missing key: %v", err)
		}
		return nil
	})
	update(t, b, func(tx Tx) error {
		if err := tx.DeleteAttempts("user:alice"); err != nil {
			return err
		}
		return tx.DeleteAttempts("user:nobody")
	})
	view(t, b, func(tx Tx) error {
		if _, err := tx.Attempts("user:alice"); !errors.Is(err, ErrNotFound) {
			t.Errorf("Attempts after delete: %v", err)
		}
		return nil
	})
}

func TestDeleteStaleAttempts(t *testing.T) {
	now := base
	const window = 15 * time.Minute
	fixtures := map[string]*Attempts{
		"counting":          {Failures: 2, WindowStart: now.Add(-time.Minute)},
		"counting, at edge": {Failures: 2, WindowStart: now.Add(-window)},
		"locked":            {Failures: 9, WindowStart: now.Add(-time.Hour), LockedUntil: now.Add(time.Minute)},
		"locked, window on": {Failures: 9, WindowStart: now.Add(-time.Minute), LockedUntil: now.Add(time.Minute)},
		"stale":             {Failures: 1, WindowStart: now.Add(-time.Hour)},
		"stale, was locked": {Failures: 9, WindowStart: now.Add(-time.Hour), LockedUntil: now.Add(-time.Second)},
		"zero":              {},
	}
	stale := []string{"stale", "stale, was locked", "zero"}
	tests := []struct {
		name  string
		limit int
		want  int
	}{
		{"no limit", 100, 3},
		{"exact limit", 3, 3},
		{"limit 2", 2, 2},
		{"limit 1", 1, 1},
		{"limit 0", 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := openTestBolt(t)
			update(t, b, func(tx Tx) error {
				for k, a := range fixtures {
					if err := tx.PutAttempts(k, a); err != nil {
						return err
					}
				}
				return nil
			})
			var n int
			update(t, b, func(tx Tx) (err error) {
				n, err = tx.DeleteStaleAttempts(now, window, tt.limit)
				return err
			})
			if n != tt.want {
				t.Errorf("DeleteStaleAttempts = %d, want %d", n, tt.want)
			}
			deleted := 0
			view(t, b, func(tx Tx) error {
				for k := range fixtures {
					_, err := tx.Attempts(k)
					switch {
					case errors.Is(err, ErrNotFound):
						deleted++
						if !slices.Contains(stale, k) {
							t.Errorf("%q deleted, but it is not stale", k)
						}
					case err != nil:
						return err
					}
				}
				return nil
			})
			if deleted != tt.want {
				t.Errorf("%d counters gone, want %d", deleted, tt.want)
			}
		})
	}
}

func TestReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "2fa.db")
	b, err := OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	user := &User{Name: "alice", TOTP: &Enrollment{Secret: []byte("s"), LastStep: 7, EnrolledAt: base}}
	sess := session("s", "alice", base)
	att := &Attempts{Failures: 1, WindowStart: base}
	update(t, b, func(tx Tx) error {
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

	b, err = OpenBolt(path)
	if err != nil {
		t.Fatalf("reopening: %v", err)
	}
	defer b.Close()
	view(t, b, func(tx Tx) error {
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
	if got := userSessionKeys(t, b, "alice"); !slices.Equal(got, []SessionKey{sess.Key}) {
		t.Errorf("UserSessions after reopen = %d sessions", len(got))
	}
	checkIndexes(t, b)
}

// acceptStep is the compare-and-set the sign-in handler does: it accepts
// step for user unless a step at or after it was accepted already.
func acceptStep(s Store, user string, step uint64) (accepted bool, err error) {
	err = s.Update(func(tx Tx) error {
		accepted = false // in case a Store retries fn
		u, err := tx.User(user)
		if err != nil {
			return err
		}
		if u.TOTP == nil || step <= u.TOTP.LastStep {
			return nil
		}
		u.TOTP.LastStep = step
		if err := tx.PutUser(u); err != nil {
			return err
		}
		accepted = true
		return nil
	})
	return accepted, err
}

func TestConcurrentCompareAndSet(t *testing.T) {
	const writers = 32

	t.Run("same step: exactly one wins", func(t *testing.T) {
		b := openTestBolt(t)
		update(t, b, func(tx Tx) error {
			return tx.PutUser(&User{Name: "alice", TOTP: &Enrollment{LastStep: 100}})
		})
		var wins atomic.Int32
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range writers {
			wg.Go(func() {
				<-start
				ok, err := acceptStep(b, "alice", 101)
				if err != nil {
					t.Errorf("acceptStep: %v", err)
				}
				if ok {
					wins.Add(1)
				}
			})
			// Readers alongside the writers.
			wg.Go(func() {
				<-start
				err := b.View(func(tx Tx) error {
					u, err := tx.User("alice")
					if err == nil && u.TOTP.LastStep != 100 && u.TOTP.LastStep != 101 {
						t.Errorf("reader saw LastStep %d", u.TOTP.LastStep)
					}
					return err
				})
				if err != nil {
					t.Errorf("View: %v", err)
				}
			})
		}
		close(start)
		wg.Wait()
		if n := wins.Load(); n != 1 {
			t.Errorf("%d of %d writers accepted the same step, want exactly 1", n, writers)
		}
		view(t, b, func(tx Tx) error {
			u, err := tx.User("alice")
			if err == nil && u.TOTP.LastStep != 101 {
				t.Errorf("LastStep = %d, want 101", u.TOTP.LastStep)
			}
			return err
		})
	})

	t.Run("different steps: accepted steps only increase", func(t *testing.T) {
		b := openTestBolt(t)
		update(t, b, func(tx Tx) error {
			return tx.PutUser(&User{Name: "alice", TOTP: &Enrollment{LastStep: 0}})
		})
		var mu sync.Mutex
		var accepted []uint64
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range writers {
			step := uint64(i%8 + 1) // several writers per step
			wg.Go(func() {
				<-start
				err := b.Update(func(tx Tx) error {
					u, err := tx.User("alice")
					if err != nil || step <= u.TOTP.LastStep {
						return err
					}
					u.TOTP.LastStep = step
					// Recorded inside the transaction, so in commit order.
					mu.Lock()
					accepted = append(accepted, step)
					mu.Unlock()
					return tx.PutUser(u)
				})
				if err != nil {
					t.Errorf("Update: %v", err)
				}
			})
		}
		close(start)
		wg.Wait()
		if len(accepted) == 0 {
			t.Fatal("no step accepted")
		}
		for i := 1; i < len(accepted); i++ {
			if accepted[i] <= accepted[i-1] {
				t.Fatalf("accepted steps in commit order: %v, want strictly increasing", accepted)
			}
		}
		view(t, b, func(tx Tx) error {
			u, err := tx.User("alice")
			if err == nil && u.TOTP.LastStep != accepted[len(accepted)-1] {
				t.Errorf("LastStep = %d, want the last accepted %d", u.TOTP.LastStep, accepted[len(accepted)-1])
			}
			return err
		})
	})
}

func TestConcurrentSessions(t *testing.T) {
	// Writers on distinct sessions and a cleaner, concurrently; the indexes
	// must end consistent.
	b := openTestBolt(t)
	const writers = 8
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range 20 {
				s := session(fmt.Sprintf("w%d-%d", w, i), fmt.Sprintf("user%d", w%3), base.Add(time.Duration(i-10)*time.Minute))
				if err := b.Update(func(tx Tx) error { return tx.PutSession(s) }); err != nil {
					t.Errorf("PutSession: %v", err)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for range 20 {
			if err := b.Update(func(tx Tx) error {
				_, err := tx.DeleteExpiredSessions(base, 5)
				return err
			}); err != nil {
				t.Errorf("DeleteExpiredSessions: %v", err)
				return
			}
		}
	})
	wg.Wait()
	update(t, b, func(tx Tx) error {
		_, err := tx.DeleteExpiredSessions(base, 1000)
		return err
	})
	checkIndexes(t, b)
	// Each writer made 9 live sessions (i = 11..19).
	view(t, b, func(tx Tx) error {
		if n, err := tx.CountSessions(); err != nil || n != writers*9 {
			t.Errorf("CountSessions = %d, %v; want %d", n, err, writers*9)
		}
		return nil
	})
}
