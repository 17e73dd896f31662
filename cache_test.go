package twofactor

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-two-factor/caddy-two-factor/sessioncache"
	"github.com/caddy-two-factor/caddy-two-factor/store"
	"github.com/caddy-two-factor/caddy-two-factor/throttle"
)

// The session cache must never let a revoked session through, and must
// keep the idle timeout exact; these tests drive it through the handler
// with an injected clock.

// copyCookies gives to a fresh browser the cookies of b, as someone who
// copied them would have.
func copyCookies(t *testing.T, s *clockSite, b *browser) *browser {
	t.Helper()
	u, err := url.Parse(s.url)
	if err != nil {
		t.Fatal(err)
	}
	other := s.browser(t)
	other.client.Jar.SetCookies(u, b.client.Jar.Cookies(u))
	return other
}

// cachedKey returns the key of the session b holds, failing unless it is
// in the cache.
func cachedKey(t *testing.T, s *clockSite, b *browser) store.SessionKey {
	t.Helper()
	u, _ := url.Parse(s.url)
	for _, c := range b.client.Jar.Cookies(u) {
		if c.Name == sessionCookie {
			key, ok := store.ParseSessionToken(c.Value)
			if !ok {
				t.Fatalf("session cookie %q does not parse", c.Value)
			}
			if s.h.db.cache.Get(key) == nil {
				t.Fatal("session is not cached")
			}
			return key
		}
	}
	t.Fatal("no session cookie")
	return store.SessionKey{}
}

func wantIn(t *testing.T, b *browser, when string) {
	t.Helper()
	if r := b.get("/app"); r.status != http.StatusOK {
		t.Fatalf("%s: %d, want 200", when, r.status)
	}
}

func wantOut(t *testing.T, b *browser, when string) {
	t.Helper()
	if r := b.get("/app"); r.status != http.StatusFound {
		t.Fatalf("%s: %d, want a redirect to sign in", when, r.status)
	}
}

func TestCachedSessionEndsAtLogout(t *testing.T) {
	s := newClockSite(t, nil)
	b := s.browser(t)
	b.enroll("alice")
	wantIn(t, b, "after enrollment")
	cachedKey(t, s, b)
	copied := copyCookies(t, s, b)
	wantIn(t, copied, "copied cookie before logout")

	page := b.get("/_2fa/logout")
	b.post("/_2fa/logout", url.Values{"csrf": {b.csrfFrom(page)}})
	wantOut(t, copied, "copied cookie right after logout")
}

func TestCachedSessionsEndAtRotation(t *testing.T) {
	s := newClockSite(t, nil)
	first := s.browser(t)
	secret, _ := first.enroll("bob")
	wantIn(t, first, "first sign-in")
	cachedKey(t, s, first)

	second := s.browser(t)
	if r := second.signIn("bob", secret); r.status != http.StatusSeeOther {
		t.Fatalf("second sign-in: %d", r.status)
	}
	wantIn(t, second, "second sign-in")
	wantOut(t, first, "first session after the user signed in again")
}

func TestCachedSessionsKeptWithConcurrentSessions(t *testing.T) {
	s := newClockSite(t, func(h *TwoFactor) { h.ConcurrentSessions = true })
	first := s.browser(t)
	secret, _ := first.enroll("carol")
	wantIn(t, first, "first sign-in")
	second := s.browser(t)
	second.signIn("carol", secret)
	// The user record changed (a new TOTP step), so the first session is
	// read again from the store, and is still valid.
	wantIn(t, first, "first session beside a second one")
	wantIn(t, second, "second session")
}

// TestCachedSessionsFollowUserWrites changes users as an operator would, in
// the store's own transactions, and checks no cached session survives.
func TestCachedSessionsFollowUserWrites(t *testing.T) {
	tests := []struct {
		name   string
		change func(tx store.Tx, u *store.User) error
	}{
		{"session identifier rotated", func(tx store.Tx, u *store.User) error {
			u.SessionID = "rotated"
			return tx.PutUser(u)
		}},
		{"enrollment reset", func(tx store.Tx, u *store.User) error {
			u.TOTP = nil
			return tx.PutUser(u)
		}},
		{"user removed", func(tx store.Tx, u *store.User) error { return tx.DeleteUser(u.Name) }},
		{"sessions ended", func(tx store.Tx, u *store.User) error {
			sessions, err := tx.UserSessions(u.Name)
			for _, sess := range sessions {
				if err == nil {
					err = tx.DeleteSession(sess.Key)
				}
			}
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newClockSite(t, nil)
			b := s.browser(t)
			b.enroll("dave")
			wantIn(t, b, "before the change")
			cachedKey(t, s, b)
			err := s.h.db.store.Update(func(tx store.Tx) error {
				u, err := tx.User("dave")
				if err != nil {
					return err
				}
				return tt.change(tx, u)
			})
			if err != nil {
				t.Fatal(err)
			}
			wantOut(t, b, "right after the change")
		})
	}
}

func TestCachedSessionEndsWhenConfigDropsTheUser(t *testing.T) {
	s := newClockSite(t, nil)
	b := s.browser(t)
	b.enroll("erin")
	wantIn(t, b, "declared")
	cachedKey(t, s, b)
	delete(s.h.accounts, "erin") // as a new config without erin would
	wantOut(t, b, "no longer declared")
}

func TestCachedIdleTimeoutIsExact(t *testing.T) {
	s := newClockSite(t, nil)
	b := s.browser(t)
	b.enroll("frank")
	idle := DefaultSessionIdle
	for range 3 {
		s.clock.Advance(idle - sessioncache.SeenResolution)
		wantIn(t, b, "active session")
	}
	s.clock.Advance(idle - sessioncache.SeenResolution)
	wantIn(t, b, "just within the idle timeout")
	s.clock.Advance(idle)
	wantOut(t, b, "idle for session_idle")
}

func TestLastSeenIsWrittenBehind(t *testing.T) {
	s := newClockSite(t, nil)
	b := s.browser(t)
	b.enroll("grace")
	wantIn(t, b, "after enrollment")
	key := cachedKey(t, s, b)
	storedSeen := func() time.Time {
		t.Helper()
		var seen time.Time
		if err := s.h.db.raw.View(func(tx store.Tx) error {
			sess, err := tx.Session(key)
			if err == nil {
				seen = sess.LastSeen
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return seen
	}
	signedIn := storedSeen()

	s.clock.Advance(10 * time.Second)
	wantIn(t, b, "after 10s")
	if err := s.h.db.cache.Flush(s.h.db.raw, false); err != nil {
		t.Fatal(err)
	}
	if !storedSeen().Equal(signedIn) {
		t.Errorf("a periodic flush wrote a time only 10s newer: %v", storedSeen())
	}
	s.clock.Advance(sessioncache.StaleAfter)
	wantIn(t, b, "after StaleAfter more")
	if err := s.h.db.cache.Flush(s.h.db.raw, false); err != nil {
		t.Fatal(err)
	}
	if got, want := storedSeen(), s.clock.Now(); !got.Equal(want) {
		t.Errorf("after a periodic flush, stored last seen = %v, want %v", got, want)
	}
	s.clock.Advance(5 * time.Second)
	wantIn(t, b, "5s later")
	if err := s.h.db.cache.Flush(s.h.db.raw, true); err != nil {
		t.Fatal(err)
	}
	if got, want := storedSeen(), s.clock.Now(); !got.Equal(want) {
		t.Errorf("after a full flush, stored last seen = %v, want %v", got, want)
	}
}

func TestLastSeenSurvivesARestart(t *testing.T) {
	s := newClockSite(t, nil)
	b := s.browser(t)
	b.enroll("heidi")
	s.clock.Advance(20 * time.Minute)
	wantIn(t, b, "20 minutes in")

	// A restart: the database closes (writing behind what the store
	// lacks) and a new handler opens it.
	if err := s.h.Cleanup(); err != nil {
		t.Fatal(err)
	}
	h := &TwoFactor{DB: s.h.DB, Users: s.h.Users, now: s.clock.Now}
	if err := h.provision(zap.NewNop()); err != nil {
		t.Fatal(err)
	}
	*s.h = *h // the test server calls s.h; its Cleanup closes the new one

	s.clock.Advance(DefaultSessionIdle - sessioncache.SeenResolution)
	wantIn(t, b, "idle for less than session_idle since the last request before the restart")
}

func TestDatabaseStopsItsGoroutineAtDestruct(t *testing.T) {
	h := &TwoFactor{DB: t.TempDir() + "/2fa.db", Users: []Account{{Username: "ivan", Password: testHash()}}}
	if err := h.provision(zap.NewNop()); err != nil {
		t.Fatal(err)
	}
	db := h.db
	if err := h.Cleanup(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-db.stopped:
	default:
		t.Fatal("the database's goroutine is still running after its last config was cleaned up")
	}
}

func TestSignInBeyondTheHashingLimitGets429(t *testing.T) {
	s := newClockSite(t, nil)
	// One slot, nobody may wait: the slot taken here makes the next
	// attempt find none.
	s.h.db.hashing = throttle.NewHashLimiter(1, 0, 0, false)
	s.h.signin.SetHashing(s.h.db.hashing)
	hold := func() func() {
		t.Helper()
		done, ok := s.h.db.hashing.Acquire(t.Context())
		if !ok {
			t.Fatal("could not take the only slot")
		}
		return done
	}
	done := hold()
	b := s.browser(t)
	r := b.login("judy", testPassword, "/")
	if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" {
		t.Fatalf("sign-in with no hashing slot: %d, Retry-After %q", r.status, r.header.Get("Retry-After"))
	}
	done()
	if r := b.login("judy", testPassword, "/"); r.status != http.StatusSeeOther {
		t.Fatalf("sign-in once the slot is free: %d", r.status)
	}
	// A refusal for lack of a slot is no failed attempt.
	for range DefaultMaxAttempts {
		done := hold()
		b.login("judy", "wrong", "/")
		done()
	}
	if r := b.login("judy", testPassword, "/"); r.status != http.StatusSeeOther {
		t.Fatalf("refusals counted as failures: %d", r.status)
	}
}
