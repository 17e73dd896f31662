package twofactor

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-two-factor/caddy-two-factor/store"
	"github.com/caddy-two-factor/caddy-two-factor/throttle"
)

// These tests run the handler without Caddy, behind an httptest server,
// with an injected clock: everything about time is tested here.

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// clockSite is a handler under test with its clock.
type clockSite struct {
	h     *TwoFactor
	clock *fakeClock
	url   string
}

// newClockSite provisions a handler for the test users, lets configure
// change it first, and serves it with a next handler that answers
// "ok <user>".
func newClockSite(t *testing.T, configure func(*TwoFactor)) *clockSite {
	t.Helper()
	clock := newFakeClock()
	h := &TwoFactor{DB: filepath.Join(t.TempDir(), "two_factor.db"), now: clock.Now}
	for _, u := range testUsers {
		h.Users = append(h.Users, Account{Username: u, Password: testHash()})
	}
	if configure != nil {
		configure(h)
	}
	if err := h.provision(zap.NewNop()); err != nil {
		t.Fatal(err)
	}
	if err := h.Validate(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Cleanup() })

	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
		user, _ := repl.GetString("http.auth.user.id")
		_, err := w.Write([]byte("ok " + user))
		return err
	})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := context.WithValue(r.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer())
		err := h.ServeHTTP(w, r.WithContext(ctx), next)
		var herr caddyhttp.HandlerError
		if errors.As(err, &herr) {
			w.WriteHeader(herr.StatusCode)
		} else if err != nil {
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	t.Cleanup(srv.Close)
	return &clockSite{h: h, clock: clock, url: srv.URL}
}

func (s *clockSite) browser(t *testing.T) *browser {
	b := newBrowser(t)
	b.base = s.url
	b.now = s.clock.Now
	return b
}

func TestIdleTimeoutEndsSessions(t *testing.T) {
	s := newClockSite(t, nil)
	b := s.browser(t)
	b.enroll("alice")
	for i := range 4 {
		s.clock.Advance(DefaultSessionIdle - time.Minute)
		if r := b.get("/app"); r.status != http.StatusOK {
			t.Fatalf("active session ended after %d requests %s apart: %d", i+1, DefaultSessionIdle-time.Minute, r.status)
		}
	}
	s.clock.Advance(DefaultSessionIdle)
	if r := b.get("/app"); r.status != http.StatusFound {
		t.Fatalf("idle session still open: %d", r.status)
	}
}

func TestLifetimeEndsActiveSessions(t *testing.T) {
	s := newClockSite(t, func(h *TwoFactor) { h.SessionLifetime = caddy.Duration(time.Hour) })
	b := s.browser(t)
	b.enroll("bob")
	for range 2 {
		s.clock.Advance(25 * time.Minute)
		if r := b.get("/app"); r.status != http.StatusOK {
			t.Fatalf("session ended early: %d", r.status)
		}
	}
	s.clock.Advance(11 * time.Minute)
	if r := b.get("/app"); r.status != http.StatusFound {
		t.Fatalf("session outlived session_lifetime: %d", r.status)
	}
}

func TestPendingSessionsExpire(t *testing.T) {
	s := newClockSite(t, nil)
	b := s.browser(t)
	if r := b.login("carol", testPassword, "/app"); r.location() != "/_2fa/setup" {
		t.Fatalf("login: %d to %q", r.status, r.location())
	}
	s.clock.Advance(DefaultPendingLifetime + time.Second)
	if r := b.get("/_2fa/setup"); r.status != http.StatusSeeOther || r.location() != "/_2fa/login" {
		t.Fatalf("expired pending session: %d to %q", r.status, r.location())
	}
}

func TestLockoutLastsItsTimeAndThenLifts(t *testing.T) {
	s := newClockSite(t, nil)
	b := s.browser(t)
	for i := range DefaultMaxAttempts {
		if r := b.login("dave", "wrong", "/"); r.status != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d", i+1, r.status)
		}
	}
	r := b.login("dave", testPassword, "/")
	retry, _ := strconv.Atoi(r.header.Get("Retry-After"))
	if r.status != http.StatusTooManyRequests || retry != int(DefaultLockout/time.Second) {
		t.Fatalf("right password while locked: %d, Retry-After %q", r.status, r.header.Get("Retry-After"))
	}
	s.clock.Advance(DefaultLockout - time.Second)
	if r := b.login("dave", testPassword, "/"); r.status != http.StatusTooManyRequests {
		t.Fatalf("lock lifted early: %d", r.status)
	}
	s.clock.Advance(2 * time.Second)
	if r := b.login("dave", testPassword, "/"); r.status != http.StatusSeeOther {
		t.Fatalf("lock did not lift: %d", r.status)
	}
}

func TestFailuresOutsideTheWindowDoNotLock(t *testing.T) {
	s := newClockSite(t, nil)
	b := s.browser(t)
	for range 3 * DefaultMaxAttempts {
		if r := b.login("erin", "wrong", "/"); r.status != http.StatusUnauthorized {
			t.Fatalf("slow failures locked the account: %d", r.status)
		}
		s.clock.Advance(DefaultAttemptWindow / time.Duration(DefaultMaxAttempts-1))
	}
}

func TestSweepDeletesExpiredSessions(t *testing.T) {
	s := newClockSite(t, nil)
	for _, u := range testUsers[:4] {
		s.browser(t).login(u, testPassword, "/")
	}
	s.browser(t).enroll("frank")
	count := func() (n store.SessionCounts) {
		if err := s.h.db.store.View(func(tx store.Tx) (err error) {
			n, err = tx.CountSessions()
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// Four at the password step, frank's signed in.
	if n := count(); n != (store.SessionCounts{Pending: 4, Full: 1}) {
		t.Fatalf("%+v sessions stored, want 4 pending and 1 full", n)
	}
	s.clock.Advance(DefaultPendingLifetime + time.Second)
	if _, err := s.h.db.sweep(s.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != (store.SessionCounts{Full: 1}) {
		t.Fatalf("after pending sessions expired: %+v sessions, want 1 full", n)
	}
	s.clock.Advance(DefaultSessionLifetime)
	if _, err := s.h.db.sweep(s.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != (store.SessionCounts{}) {
		t.Fatalf("after every session expired: %+v sessions, want none", n)
	}
}

func TestSweepDeletesEveryStaleCounter(t *testing.T) {
	s := newClockSite(t, nil)
	// Counters of names sprayed from many networks: many more than one
	// transaction of the sweep deletes.
	const sprayed = 5 * sweepBatch
	now := s.clock.Now()
	if err := s.h.db.store.Update(func(tx store.Tx) error {
		for i := range sprayed {
			if err := tx.PutAttempts(throttle.PairKey(fmt.Sprint("name", i), "198.51.100.1"), &store.Attempts{Failures: 1, WindowStart: now}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	s.clock.Advance(throttle.MaxWindow + time.Minute)
	if _, err := s.h.db.sweep(s.clock.Now()); err != nil {
		t.Fatal(err)
	}
	left := 0
	if err := s.h.db.store.View(func(tx store.Tx) error {
		return tx.ForEachAttempts("", func(string, *store.Attempts) error { left++; return nil })
	}); err != nil {
		t.Fatal(err)
	}
	if left != 0 {
		t.Fatalf("one sweep left %d of %d stale counters", left, sprayed)
	}
}

func TestSetupCodeCannotBeReplayedAtConfirm(t *testing.T) {
	s := newClockSite(t, nil)
	b := s.browser(t)
	b.login("grace", testPassword, "/")
	setup := b.get("/_2fa/setup")
	secret, err := totpDecode(secretPattern.FindStringSubmatch(setup.body)[1])
	if err != nil {
		t.Fatal(err)
	}
	code := codeAt(t, secret, totpStep(s.clock.Now()))
	if r := b.post("/_2fa/setup", url.Values{"csrf": {b.csrfFrom(setup)}, "code": {code}}); r.status != http.StatusOK {
		t.Fatalf("setup: %d", r.status)
	}
	other := s.browser(t)
	other.login("grace", testPassword, "/")
	if r := other.confirm(code); r.status != http.StatusUnauthorized {
		t.Fatalf("setup code accepted again at confirm: %d", r.status)
	}
	s.clock.Advance(30 * time.Second)
	if r := other.confirm(codeAt(t, secret, totpStep(s.clock.Now()))); r.status != http.StatusSeeOther {
		t.Fatalf("next step's code refused: %d", r.status)
	}
}

func TestSecretsEnrolledWithoutAKeyAreEncryptedAtNextSignIn(t *testing.T) {
	before := newClockSite(t, nil)
	secret, _ := before.browser(t).enroll("heidi")
	// The same database, now with encryption_key set.
	after := newClockSite(t, func(h *TwoFactor) {
		h.DB = before.h.DB
		h.EncryptionKey = base64.StdEncoding.EncodeToString(make([]byte, 32))
	})
	after.clock.Advance(time.Minute)
	b := after.browser(t)
	if r := b.signIn("heidi", secret); r.status != http.StatusSeeOther {
		t.Fatalf("sign-in after the key was set: %d", r.status)
	}
	var stored []byte
	if err := after.h.db.store.View(func(tx store.Tx) error {
		u, err := tx.User("heidi")
		if err == nil {
			stored = u.TOTP.Secret
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(stored, secret) {
		t.Fatal("the secret is still stored in the clear")
	}
	if _, err := after.h.sealer.Open(stored, "heidi"); err != nil {
		t.Fatalf("the stored secret does not open with the key: %v", err)
	}
}
