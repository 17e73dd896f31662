package boltstore

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/caddy-two-factor/caddy-two-factor/store"
)

// fileHolds reports whether the database file at path contains value.
func fileHolds(t *testing.T, path string, value []byte) bool {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Contains(raw, value)
}

func TestCompactLeavesNoOverwrittenValueInTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "2fa.db")
	b, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = b.Close() }()
	old := []byte("PLAINTEXT-SECRET-0123456789")
	user := &store.User{Name: "alice", TOTP: &store.Enrollment{Secret: old, EnrolledAt: base}}
	update(t, b, func(tx store.Tx) error { return tx.PutUser(user) })
	sess := session("s", "alice", base)
	sess.PendingSecret = []byte("PENDING-SECRET-0123456789")
	putSessions(t, b, sess)
	// Overwrite the user and delete the session: bbolt writes new pages
	// and frees the old ones, without clearing them.
	user.TOTP.Secret = []byte("sealed")
	update(t, b, func(tx store.Tx) error {
		if err := tx.PutUser(user); err != nil {
			return err
		}
		return tx.DeleteSession(sess.Key)
	})
	if !fileHolds(t, path, old) || !fileHolds(t, path, sess.PendingSecret) {
		t.Fatal("the overwritten values are not in the file before compaction: this test proves nothing")
	}

	stats, err := b.Compact()
	if err != nil {
		t.Fatalf("Compact: %v", err)
	}
	if stats.Before == 0 || stats.After == 0 {
		t.Errorf("Compact stats = %+v", stats)
	}
	for _, gone := range [][]byte{old, sess.PendingSecret} {
		if fileHolds(t, path, gone) {
			t.Errorf("%q is still in the file after compaction", gone)
		}
	}
	if _, err := os.Stat(path + ".compact"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the temporary file is left behind: %v", err)
	}
	// The live data is all there, in the store and in the file once reopened.
	check := func(b *Store) {
		t.Helper()
		view(t, b, func(tx store.Tx) error {
			if got, err := tx.User("alice"); err != nil || !reflect.DeepEqual(got, user) {
				t.Errorf("User after compaction = %+v, %v", got, err)
			}
			return nil
		})
		checkIndexes(t, b)
	}
	check(b)
	update(t, b, func(tx store.Tx) error { return tx.PutMeta("after", []byte("compaction")) })
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if b, err = Open(path); err != nil {
		t.Fatalf("reopening the compacted file: %v", err)
	}
	check(b)
	view(t, b, func(tx store.Tx) error {
		if got, err := tx.Meta("after"); err != nil || string(got) != "compaction" {
			t.Errorf("a write after compaction was lost: %q, %v", got, err)
		}
		return nil
	})
}

func TestCompactReplacesALeftoverTemporaryFile(t *testing.T) {
	b := openTestBolt(t)
	if err := os.WriteFile(b.Path()+".compact", []byte("left by a crash"), 0o600); err != nil {
		t.Fatal(err)
	}
	update(t, b, func(tx store.Tx) error { return tx.PutMeta("m", []byte("v")) })
	if _, err := b.Compact(); err != nil {
		t.Fatalf("Compact with a leftover file: %v", err)
	}
	view(t, b, func(tx store.Tx) error {
		if got, err := tx.Meta("m"); err != nil || string(got) != "v" {
			t.Errorf("Meta after compaction = %q, %v", got, err)
		}
		return nil
	})
}

// TestCompactWhileInUse runs transactions from several goroutines while
// the file is compacted again and again: none may fail or see a closed
// database, and no write may be lost.
func TestCompactWhileInUse(t *testing.T) {
	b := openTestBolt(t)
	var (
		wg      sync.WaitGroup
		stop    atomic.Bool
		written [4]atomic.Int64
	)
	for w := range written {
		wg.Go(func() {
			name := string(rune('a' + w))
			for i := int64(1); !stop.Load(); i++ {
				err := b.Update(func(tx store.Tx) error {
					return tx.PutAttempts(name, &store.Attempts{Failures: int(i), WindowStart: base})
				})
				if err != nil {
					t.Errorf("Update during compaction: %v", err)
					return
				}
				written[w].Store(i)
				if err := b.View(func(tx store.Tx) error {
					a, err := tx.Attempts(name)
					if err == nil && int64(a.Failures) != i {
						t.Errorf("read %d after writing %d", a.Failures, i)
					}
					return err
				}); err != nil {
					t.Errorf("View during compaction: %v", err)
					return
				}
			}
		})
	}
	for range 5 {
		if _, err := b.Compact(); err != nil {
			t.Errorf("Compact: %v", err)
		}
	}
	stop.Store(true)
	wg.Wait()
	view(t, b, func(tx store.Tx) error {
		for w := range written {
			a, err := tx.Attempts(string(rune('a' + w)))
			if err != nil || int64(a.Failures) != written[w].Load() {
				t.Errorf("counter %d: %+v, %v; want %d", w, a, err, written[w].Load())
			}
		}
		return nil
	})
}
