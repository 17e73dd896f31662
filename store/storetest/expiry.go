package storetest

import (
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/caddy-two-factor/caddy-two-factor/store"
)

func deleteExpired(t *testing.T, s store.Store, now time.Time, limit int) (n int) {
	t.Helper()
	update(t, s, func(tx store.Tx) (err error) {
		n, err = tx.DeleteExpiredSessions(now, limit)
		return err
	})
	return n
}

func testDeleteExpiredSessions(t *testing.T, open func(*testing.T) store.Store) {
	now := base
	// Sessions named by their expiry relative to now.
	fixtures := []*store.Session{
		session("-48h", "alice", now.Add(-48*time.Hour)),
		session("-1h", "al", now.Add(-time.Hour)),
		session("-1s", "alice", now.Add(-time.Second)),
		session("0", "bob", now), // "at or before now" is expired
		session("+1ns", "alice", now.Add(time.Nanosecond)),
		session("+1h", "al", now.Add(time.Hour)),
	}
	expired := []string{"-48h", "-1h", "-1s", "0"}
	tests := []struct {
		name    string
		limit   int
		deleted []string // in expiry order
	}{
		{"all expired", 100, expired},
		{"exactly as many as expired", 4, expired},
		{"limit 2 takes the earliest", 2, expired[:2]},
		{"limit 1", 1, expired[:1]},
		{"limit 0", 0, nil},
		{"negative limit", -1, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t)
			putSessions(t, s, fixtures...)
			if n := deleteExpired(t, s, now, tt.limit); n != len(tt.deleted) {
				t.Errorf("DeleteExpiredSessions = %d, want %d", n, len(tt.deleted))
			}
			gone := map[store.SessionKey]bool{}
			for _, name := range tt.deleted {
				gone[key(name)] = true
			}
			wantByUser := map[string][]store.SessionKey{}
			for _, sess := range fixtures {
				if exists := sessionExists(t, s, sess.Key); exists == gone[sess.Key] {
					t.Errorf("session expiring at now%+v: exists = %v", sess.Expires.Sub(now), exists)
				}
				if !gone[sess.Key] {
					wantByUser[sess.User] = append(wantByUser[sess.User], sess.Key)
				}
			}
			for _, user := range []string{"alice", "al", "bob"} {
				want := wantByUser[user]
				sortKeys(want)
				if got := viewUserSessionKeys(t, s, user); !slices.Equal(got, want) {
					t.Errorf("UserSessions(%q) = %d sessions, want %d", user, len(got), len(want))
				}
			}
			if c := countSessions(t, s); c.Total() != len(fixtures)-len(tt.deleted) {
				t.Errorf("CountSessions = %+v, want %d in all", c, len(fixtures)-len(tt.deleted))
			}
			checkConsistent(t, s, "alice", "al", "bob")

			// Running again deletes the rest, and then nothing.
			if n := deleteExpired(t, s, now, 100); n != len(expired)-len(tt.deleted) {
				t.Errorf("second DeleteExpiredSessions = %d, want %d", n, len(expired)-len(tt.deleted))
			}
			if n := deleteExpired(t, s, now, 100); n != 0 {
				t.Errorf("third DeleteExpiredSessions = %d, want 0", n)
			}
			checkConsistent(t, s, "alice", "al", "bob")
		})
	}
}

func testPutSessionMovesExpiry(t *testing.T, open func(*testing.T) store.Store) {
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
		{"same instant, other zone", now.Add(-time.Hour), now.Add(-time.Hour).In(elsewhere), 1},
		{"moved by a nanosecond", now, now.Add(time.Nanosecond), 0},
		{"moved back by a nanosecond", now.Add(time.Nanosecond), now, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t)
			putSessions(t, s, session("s", "alice", tt.first))
			putSessions(t, s, session("s", "alice", tt.then))
			checkConsistent(t, s, "alice")
			if n := deleteExpired(t, s, now, 100); n != tt.deleted {
				t.Errorf("DeleteExpiredSessions = %d, want %d", n, tt.deleted)
			}
			if exists := sessionExists(t, s, key("s")); exists != (tt.deleted == 0) {
				t.Errorf("session exists = %v after cleanup", exists)
			}
			checkConsistent(t, s, "alice")
		})
	}
}

// testExpiredByTheWallClock puts records that have expired by the wall
// clock, which a store may drop on its own: after the cleanup they are gone
// from every lookup, whichever way the store went about it.
func testExpiredByTheWallClock(t *testing.T, open func(*testing.T) store.Store) {
	s := open(t)
	wall := time.Now()
	putSessions(t, s,
		session("old", "alice", wall.Add(-time.Hour)),
		session("pre-1970", "alice", time.Unix(-1000, 0)),
		session("live", "alice", base),
	)
	putAttempts(t, s, map[string]*store.Attempts{
		"user:zero": {},
		"user:old":  {Failures: 3, WindowStart: wall.Add(-48 * time.Hour), LockedUntil: wall.Add(-time.Hour)},
		"user:live": {Failures: 3, WindowStart: base},
	})
	// Whatever is left of the expired ones is cleaned up, and counted.
	if n := deleteExpired(t, s, wall, 100); n > 2 {
		t.Errorf("DeleteExpiredSessions = %d, want at most the 2 expired", n)
	}
	var stale int
	update(t, s, func(tx store.Tx) (err error) {
		stale, err = tx.DeleteStaleAttempts(wall, 24*time.Hour, 100)
		return err
	})
	if stale > 2 {
		t.Errorf("DeleteStaleAttempts = %d, want at most the 2 stale", stale)
	}
	view(t, s, func(tx store.Tx) error {
		for _, name := range []string{"old", "pre-1970"} {
			if _, err := tx.Session(key(name)); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("session %s after cleanup: %v, want ErrNotFound", name, err)
			}
		}
		for _, k := range []string{"user:zero", "user:old"} {
			if _, err := tx.Attempts(k); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("counter %s after cleanup: %v, want ErrNotFound", k, err)
			}
		}
		if _, err := tx.Attempts("user:live"); err != nil {
			t.Errorf("live counter: %v", err)
		}
		var keys []string
		err := tx.ForEachAttempts("user:", func(k string, _ *store.Attempts) error {
			keys = append(keys, k)
			return nil
		})
		if err != nil || !slices.Equal(keys, []string{"user:live"}) {
			t.Errorf("ForEachAttempts after cleanup = %q, %v; want only the live counter", keys, err)
		}
		return nil
	})
	if got := viewUserSessionKeys(t, s, "alice"); !slices.Equal(got, keysOf("live")) {
		t.Errorf("UserSessions after cleanup = %d sessions, want the live one", len(got))
	}
	checkConsistent(t, s, "alice")
}

func testAttempts(t *testing.T, open func(*testing.T) store.Store) {
	s := open(t)
	counters := map[string]*store.Attempts{
		"user:alice":        {Failures: 3, InFlight: 1, Unfinished: 2, WindowStart: base, LockedUntil: base.Add(time.Minute), ReservedAt: base.Add(time.Second)},
		"ip:192.0.2.1":      {Failures: 1, WindowStart: base.In(elsewhere)},
		"user:al\x00net":    {Failures: 2, WindowStart: base.Add(time.Nanosecond)},
		"{odd}:key ☃":       {InFlight: 1, WindowStart: base},
		"user:long-lockout": {Failures: 9, WindowStart: time.Unix(0, 0), LockedUntil: base},
	}
	putAttempts(t, s, counters)
	view(t, s, func(tx store.Tx) error {
		for k, want := range counters {
			w := *want
			w.WindowStart = w.WindowStart.UTC()
			got, err := tx.Attempts(k)
			if err != nil || !reflect.DeepEqual(got, &w) {
				t.Errorf("Attempts(%q) = %+v, %v; want %+v", k, got, err, &w)
			}
		}
		for _, missing := range []string{"user:bob", "user:", "", "user:alice "} {
			if _, err := tx.Attempts(missing); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("Attempts(%q): %v, want ErrNotFound", missing, err)
			}
		}
		return nil
	})
	update(t, s, func(tx store.Tx) error {
		if err := tx.PutAttempts("user:alice", &store.Attempts{Failures: 4, WindowStart: base}); err != nil {
			return err
		}
		if err := tx.DeleteAttempts("ip:192.0.2.1"); err != nil {
			return err
		}
		return tx.DeleteAttempts("user:nobody")
	})
	view(t, s, func(tx store.Tx) error {
		if a, err := tx.Attempts("user:alice"); err != nil || a.Failures != 4 || a.InFlight != 0 || !a.LockedUntil.IsZero() {
			t.Errorf("Attempts after overwrite = %+v, %v", a, err)
		}
		if _, err := tx.Attempts("ip:192.0.2.1"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Attempts after delete: %v", err)
		}
		return nil
	})
}

// attemptKeys are counter keys in byte order, as the module makes them: an
// account's, its pairs with networks (after a NUL) and clients'.
var attemptKeys = []string{
	"ip:192.0.2.1",
	"ip:192.0.2.10",
	"user:al",
	"user:al\x00192.0.2.0/24",
	"user:alice",
	"user:alice\x00192.0.2.0/24",
	"user:alice\x002001:db8::/56",
	"user:alice\xff",
	"user:bob",
}

func testForEachAttempts(t *testing.T, open func(*testing.T) store.Store) {
	s := open(t)
	counters := map[string]*store.Attempts{}
	for i, k := range attemptKeys {
		counters[k] = &store.Attempts{Failures: i + 1, WindowStart: base}
	}
	putAttempts(t, s, counters)
	tests := []struct {
		prefix string
		want   []string
	}{
		{"", attemptKeys},
		{"user:", attemptKeys[2:]},
		{"user:alice", attemptKeys[4:8]},
		{"user:alice\x00", attemptKeys[5:7]},
		{"user:al\x00", attemptKeys[3:4]},
		{"user:alice\xff", attemptKeys[7:8]},
		{"ip:192.0.2.1", attemptKeys[0:2]},
		{"ip:192.0.2.10", attemptKeys[1:2]},
		{"user:carol", nil},
		{"v", nil},
		{"\xff", nil},
	}
	for _, run := range []struct {
		name string
		do   func(func(store.Tx) error) error
	}{{"View", s.View}, {"Update", s.Update}} {
		for _, tt := range tests {
			var got []string
			err := run.do(func(tx store.Tx) error {
				got = nil
				return tx.ForEachAttempts(tt.prefix, func(k string, a *store.Attempts) error {
					if a.Failures != counters[k].Failures {
						t.Errorf("%s: ForEachAttempts gave %q the counter of another", run.name, k)
					}
					got = append(got, k)
					return nil
				})
			})
			if err != nil || !slices.Equal(got, tt.want) {
				t.Errorf("%s: ForEachAttempts(%q) = %q, %v; want %q", run.name, tt.prefix, got, err, tt.want)
			}
		}
	}
	stop := errors.New("stop")
	calls := 0
	err := s.View(func(tx store.Tx) error {
		return tx.ForEachAttempts("user:", func(string, *store.Attempts) error {
			calls++
			return stop
		})
	})
	if !errors.Is(err, stop) || calls != 1 {
		t.Errorf("an error from fn did not stop the walk: %v after %d calls", err, calls)
	}
}

func testDeleteAttemptsWithPrefix(t *testing.T, open func(*testing.T) store.Store) {
	tests := []struct {
		prefix string
		gone   []string
	}{
		{"user:alice\x00", attemptKeys[5:7]},
		{"user:alice", attemptKeys[4:8]},
		{"user:", attemptKeys[2:]},
		{"", attemptKeys},
		{"user:carol", nil},
	}
	for _, tt := range tests {
		t.Run(tt.prefix, func(t *testing.T) {
			s := open(t)
			counters := map[string]*store.Attempts{}
			for _, k := range attemptKeys {
				counters[k] = &store.Attempts{Failures: 1, WindowStart: base}
			}
			putAttempts(t, s, counters)
			var n int
			update(t, s, func(tx store.Tx) (err error) {
				n, err = tx.DeleteAttemptsWithPrefix(tt.prefix)
				return err
			})
			if n != len(tt.gone) {
				t.Errorf("DeleteAttemptsWithPrefix(%q) = %d, want %d", tt.prefix, n, len(tt.gone))
			}
			view(t, s, func(tx store.Tx) error {
				for _, k := range attemptKeys {
					_, err := tx.Attempts(k)
					if gone := errors.Is(err, store.ErrNotFound); gone != slices.Contains(tt.gone, k) {
						t.Errorf("counter %q: gone = %v (%v)", k, gone, err)
					}
				}
				return nil
			})
		})
	}
}

func testDeleteStaleAttempts(t *testing.T, open func(*testing.T) store.Store) {
	now := base
	const window = 15 * time.Minute
	fixtures := map[string]*store.Attempts{
		"counting":          {Failures: 2, WindowStart: now.Add(-time.Minute)},
		"counting, at edge": {Failures: 2, WindowStart: now.Add(-window)},
		"locked":            {Failures: 9, WindowStart: now.Add(-time.Hour), LockedUntil: now.Add(time.Minute)},
		"locked, at edge":   {Failures: 9, WindowStart: now.Add(-time.Hour), LockedUntil: now},
		"locked, window on": {Failures: 9, WindowStart: now.Add(-time.Minute), LockedUntil: now.Add(time.Minute)},
		"stale":             {Failures: 1, WindowStart: now.Add(-time.Hour)},
		"stale by 1ns":      {Failures: 1, WindowStart: now.Add(-window - time.Nanosecond)},
		"stale, was locked": {Failures: 9, WindowStart: now.Add(-time.Hour), LockedUntil: now.Add(-time.Second)},
	}
	stale := []string{"stale", "stale by 1ns", "stale, was locked"}
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
		{"negative limit", -1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := open(t)
			putAttempts(t, s, fixtures)
			var n int
			update(t, s, func(tx store.Tx) (err error) {
				n, err = tx.DeleteStaleAttempts(now, window, tt.limit)
				return err
			})
			if n != tt.want {
				t.Errorf("DeleteStaleAttempts = %d, want %d", n, tt.want)
			}
			deleted := 0
			view(t, s, func(tx store.Tx) error {
				for k := range fixtures {
					_, err := tx.Attempts(k)
					switch {
					case errors.Is(err, store.ErrNotFound):
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
