package redisstore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/caddy-two-factor/caddy-two-factor/internal/redistest"
	"github.com/caddy-two-factor/caddy-two-factor/store"
	"github.com/caddy-two-factor/caddy-two-factor/store/storetest"
)

// opener returns a function that opens a store on srv under a key prefix
// of its own, so every call starts empty.
func opener(srv *redistest.Server) func(t testing.TB) *Store {
	var n atomic.Int64
	return func(t testing.TB) *Store {
		t.Helper()
		s, err := Open(context.Background(), Options{
			Addresses: []string{srv.Addr},
			Password:  srv.Password,
			KeyPrefix: fmt.Sprintf("test%d:", n.Add(1)),
		})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		return s
	}
}

func TestRedisConformance(t *testing.T) {
	open := opener(redistest.Start(t))
	storetest.Run(t, func(t *testing.T) store.Store { return open(t) })
}

func TestRedisClaims(t *testing.T) {
	s := opener(redistest.Start(t))(t)
	t.Cleanup(func() { s.Close() })
	// Redis expires the claim by its own clock, which the test cannot
	// move: it waits the TTL out.
	storetest.RunClaimer(t, s, time.Sleep)
}

func TestOpenFails(t *testing.T) {
	srv := redistest.Start(t)
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() { // accepts and never answers
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := closed.Addr().String()
	closed.Close()

	tests := []struct {
		name string
		opts Options
		want string // in the error
	}{
		{"wrong password", Options{Addresses: []string{srv.Addr}, Password: "wrong"}, "WRONGPASS"},
		{"no password", Options{Addresses: []string{srv.Addr}}, "NOAUTH"},
		{"connection refused", Options{Addresses: []string{refused}}, "refused"},
		{"server that never answers", Options{Addresses: []string{silent.Addr().String()}, Timeout: time.Second}, ""},
		{"several addresses without sentinel", Options{Addresses: []string{srv.Addr, refused}}, "sentinel"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			s, err := Open(context.Background(), tt.opts)
			took := time.Since(start)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tt.opts.Addresses[0]) {
				t.Errorf("error %q does not name the address %s", err, tt.opts.Addresses[0])
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not say %q", err, tt.want)
			}
			if took > 3*time.Second {
				t.Errorf("Open took %v to fail", took)
			}
		})
	}
}

// raw runs a command on s's server, outside any transaction.
func raw(t *testing.T, s *Store, args ...string) rueidis.RedisResult {
	t.Helper()
	return s.client.Do(context.Background(), s.client.B().Arbitrary(args[0]).Args(args[1:]...).Build())
}

func update(t *testing.T, s *Store, fn func(store.Tx) error) {
	t.Helper()
	if err := s.Update(fn); err != nil {
		t.Fatalf("Update: %v", err)
	}
}

// base is far ahead of the wall clock, so nothing put expires.
var base = time.Date(time.Now().Year()+10, 1, 2, 3, 4, 5, 6, time.UTC)

func TestKeyLayout(t *testing.T) {
	s := opener(redistest.Start(t))(t)
	key := store.SessionKey{0xab, 0xcd}
	sess := &store.Session{Key: key, User: "al{ice}", Expires: base.Add(time.Millisecond + time.Nanosecond)}
	att := &store.Attempts{Failures: 1, WindowStart: base, LockedUntil: base.Add(48 * time.Hour)}
	update(t, s, func(tx store.Tx) error {
		if err := tx.PutMeta("csrf", []byte("k")); err != nil {
			return err
		}
		if err := tx.PutUser(&store.User{Name: "al{ice}"}); err != nil {
			return err
		}
		if err := tx.PutSession(sess); err != nil {
			return err
		}
		return tx.PutAttempts("user:al{ice}\x00net", att)
	})
	p := s.keys.prefix
	hexKey := "abcd" + strings.Repeat("00", 30)
	want := map[string]struct {
		typ      string
		expireAt int64 // PEXPIRETIME: -1 for none
	}{
		p + "m:csrf":                {"string", -1},
		p + "{u:al{ice}}:user":      {"string", -1},
		p + "{u:al{ice}}:sessions":  {"set", -1},
		p + "s:" + hexKey:           {"string", base.UnixMilli() + 2}, // rounded up
		p + "a:user:al{ice}\x00net": {"string", base.Add(48*time.Hour).UnixMilli() + 1},
		p + "users":                 {"zset", -1},
		p + "expiry":                {"zset", -1},
		p + "attempts":              {"zset", -1},
		p + "pending":               {"set", -1}, // the session has no stage: pending
		p + "pending:built":         {"string", -1},
	}
	names, err := raw(t, s, "KEYS", p+"*").AsStrSlice()
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != len(want) {
		t.Errorf("keys %q, want %d keys", names, len(want))
	}
	for _, name := range names {
		w, ok := want[name]
		if !ok {
			t.Errorf("unexpected key %q", name)
			continue
		}
		if typ, _ := raw(t, s, "TYPE", name).ToString(); typ != w.typ {
			t.Errorf("%q is a %s, want a %s", name, typ, w.typ)
		}
		if at, err := raw(t, s, "PEXPIRETIME", name).AsInt64(); err != nil || at != w.expireAt {
			t.Errorf("%q expires at %d (%v), want %d", name, at, err, w.expireAt)
		}
	}
	// The user's keys share a Cluster slot: their hash tag is the same.
	if tag(p+"{u:al{ice}}:user") != tag(p+"{u:al{ice}}:sessions") {
		t.Error("a user's keys have different hash tags")
	}
	// The expiry entry names the session and its user; its score is the
	// expiry in milliseconds.
	score, err := raw(t, s, "ZSCORE", p+"expiry", string(key[:])+"al{ice}").AsFloat64()
	if err != nil || int64(score) != base.Add(time.Millisecond).UnixMilli() {
		t.Errorf("expiry score = %v, %v; want %d", score, err, base.Add(time.Millisecond).UnixMilli())
	}
}

// tag is the part of a key Redis Cluster hashes.
func tag(key string) string {
	if i := strings.IndexByte(key, '{'); i >= 0 {
		if j := strings.IndexByte(key[i+1:], '}'); j > 0 {
			return key[i+1 : i+1+j]
		}
	}
	return key
}

// TestRedisErrorsAreNotNotFound plants keys of the wrong type: reading
// them must fail, not report the record missing.
func TestRedisErrorsAreNotNotFound(t *testing.T) {
	s := opener(redistest.Start(t))(t)
	key := store.SessionKey{1}
	p := s.keys.prefix
	for _, k := range []string{p + "m:m", p + "{u:alice}:user", s.keys.session(key), p + "a:k"} {
		raw(t, s, "HSET", k, "f", "v")
	}
	raw(t, s, "SET", p+"{u:bob}:sessions", "x")
	raw(t, s, "SET", p+"users", "x")
	raw(t, s, "SET", p+"expiry", "x")
	raw(t, s, "SET", p+"attempts", "x")
	raw(t, s, "SET", p+"{u:carol}:user", "not a record")
	reads := map[string]func(store.Tx) error{
		"Meta":          func(tx store.Tx) error { _, err := tx.Meta("m"); return err },
		"User":          func(tx store.Tx) error { _, err := tx.User("alice"); return err },
		"corrupt User":  func(tx store.Tx) error { _, err := tx.User("carol"); return err },
		"Session":       func(tx store.Tx) error { _, err := tx.Session(key); return err },
		"Attempts":      func(tx store.Tx) error { _, err := tx.Attempts("k"); return err },
		"UserSessions":  func(tx store.Tx) error { _, err := tx.UserSessions("bob"); return err },
		"ForEachUser":   func(tx store.Tx) error { return tx.ForEachUser(func(*store.User) error { return nil }) },
		"CountSessions": func(tx store.Tx) error { _, err := tx.CountSessions(); return err },
		"ForEachSession": func(tx store.Tx) error {
			return tx.ForEachSession(func(*store.Session) error { return nil })
		},
		"ForEachAttempts": func(tx store.Tx) error {
			return tx.ForEachAttempts("", func(string, *store.Attempts) error { return nil })
		},
		"DeleteExpiredSessions": func(tx store.Tx) error { _, err := tx.DeleteExpiredSessions(base, 10); return err },
		"DeleteStaleAttempts":   func(tx store.Tx) error { _, err := tx.DeleteStaleAttempts(base, time.Minute, 10); return err },
		"PutSession": func(tx store.Tx) error {
			return tx.PutSession(&store.Session{Key: key, User: "alice", Expires: base})
		},
	}
	for name, read := range reads {
		for _, run := range []struct {
			name string
			do   func(func(store.Tx) error) error
		}{{"View", s.View}, {"Update", s.Update}} {
			if name[0] == 'D' || name[0] == 'P' {
				if run.name == "View" {
					continue
				}
			}
			err := run.do(read)
			if err == nil || errors.Is(err, store.ErrNotFound) {
				t.Errorf("%s in %s = %v, want an error other than ErrNotFound", name, run.name, err)
			}
		}
	}

	// A server that went away is an error too.
	srv := redistest.Start(t)
	s2 := opener(srv)(t)
	defer s2.Close()
	raw(t, s2, "SHUTDOWN", "NOSAVE")
	// A server that went away is the store being unavailable, in a View
	// and in an Update alike: callers answer 503, never "not found".
	for _, run := range []struct {
		name string
		do   func(func(store.Tx) error) error
	}{{"View", s2.View}, {"Update", s2.Update}} {
		err := run.do(func(tx store.Tx) error { _, err := tx.User("alice"); return err })
		if !errors.Is(err, store.ErrUnavailable) || errors.Is(err, store.ErrNotFound) {
			t.Errorf("User in %s with the server gone = %v, want ErrUnavailable", run.name, err)
		}
	}
}

// TestCleanupAfterNativeExpiry drops records as Redis does when their TTL
// passes, leaving the index entries: the cleanups remove and count them.
func TestCleanupAfterNativeExpiry(t *testing.T) {
	s := opener(redistest.Start(t))(t)
	sess := &store.Session{Key: store.SessionKey{7}, User: "alice", Expires: base}
	live := &store.Session{Key: store.SessionKey{8}, User: "alice", Expires: base.Add(time.Hour)}
	update(t, s, func(tx store.Tx) error {
		if err := tx.PutSession(sess); err != nil {
			return err
		}
		if err := tx.PutSession(live); err != nil {
			return err
		}
		return tx.PutAttempts("user:alice", &store.Attempts{Failures: 1, WindowStart: base})
	})
	raw(t, s, "DEL", s.keys.session(sess.Key), s.keys.attempts("user:alice"))

	if err := s.View(func(tx store.Tx) error {
		got, err := tx.UserSessions("alice")
		if err == nil && (len(got) != 1 || got[0].Key != live.Key) {
			t.Errorf("UserSessions = %d sessions, want the live one", len(got))
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var n, stale int
	update(t, s, func(tx store.Tx) (err error) {
		if n, err = tx.DeleteExpiredSessions(base.Add(-time.Hour), 10); err != nil {
			return err
		}
		stale, err = tx.DeleteStaleAttempts(base, time.Hour, 10)
		return err
	})
	// The session's index entry is scored at base, after the cleanup's
	// now: it waits for its time.
	if n != 0 || stale != 1 {
		t.Errorf("cleanups before the session's expiry = %d sessions, %d counters; want 0, 1", n, stale)
	}
	update(t, s, func(tx store.Tx) (err error) {
		n, err = tx.DeleteExpiredSessions(base, 10)
		return err
	})
	if n != 1 {
		t.Errorf("DeleteExpiredSessions = %d, want the 1 Redis dropped", n)
	}
	if m, _ := raw(t, s, "SMEMBERS", s.keys.userSessions("alice")).AsStrSlice(); len(m) != 1 || m[0] != string(live.Key[:]) {
		t.Errorf("alice's set after cleanup: %q", m)
	}
	for _, z := range []string{s.keys.expiry(), s.keys.attemptsIndex()} {
		if c, _ := raw(t, s, "ZCARD", z).AsInt64(); c != map[bool]int64{true: 1, false: 0}[z == s.keys.expiry()] {
			t.Errorf("%s has %d entries after cleanup", z, c)
		}
	}
}

// TestUpdateGivesUp makes every EXEC abort: Update runs fn maxTries times
// and fails with ErrConflict.
func TestUpdateGivesUp(t *testing.T) {
	s := opener(redistest.Start(t))(t)
	update(t, s, func(tx store.Tx) error { return tx.PutUser(&store.User{Name: "alice"}) })
	calls := 0
	err := s.Update(func(tx store.Tx) error {
		calls++
		if _, err := tx.User("alice"); err != nil {
			return err
		}
		// Another client writes what this transaction read.
		raw(t, s, "SET", s.keys.user("alice"), string(store.EncodeUser(&store.User{Name: "alice", SessionID: fmt.Sprint(calls)})))
		return tx.PutMeta("m", []byte("v"))
	})
	if !errors.Is(err, ErrConflict) || calls != maxTries {
		t.Fatalf("Update = %v after %d calls, want ErrConflict after %d", err, calls, maxTries)
	}
	if err := s.View(func(tx store.Tx) error { _, err := tx.Meta("m"); return err }); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a write of an aborted transaction was applied: %v", err)
	}
}

// TestUpdateRetriesFailedReads: fn's error after reads that a concurrent
// write made disagree is not final; fn runs again and sees one state.
func TestUpdateRetriesFailedReads(t *testing.T) {
	s := opener(redistest.Start(t))(t)
	calls := 0
	err := s.Update(func(tx store.Tx) error {
		calls++
		_, err := tx.User("alice")
		if calls == 1 {
			raw(t, s, "SET", s.keys.user("alice"), string(store.EncodeUser(&store.User{Name: "alice"})))
		}
		return err
	})
	if err != nil || calls != 2 {
		t.Fatalf("Update = %v after %d calls, want success on the 2nd", err, calls)
	}
}

func TestLexRangeCoversExactlyThePrefix(t *testing.T) {
	for _, tc := range []struct {
		prefix, lo, hi string
	}{
		{"", "-", "+"},
		{"user:a", "[user:a", "(user:b"},
		{"user:a\xff\xff", "[user:a\xff\xff", "(user:b"},
		{"\xff", "[\xff", "+"},
		// A name that ends in U+FFFD (EF BF BD) keeps its bytes.
		{"user:a\uFFFD", "[user:a\uFFFD", "(user:a\xef\xbf\xbe"},
	} {
		if lo, hi := lexRange(tc.prefix); lo != tc.lo || hi != tc.hi {
			t.Errorf("lexRange(%q) = %q, %q; want %q, %q", tc.prefix, lo, hi, tc.lo, tc.hi)
		}
	}
}
