package twofactor

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-two-factor/caddy-two-factor/internal/redistest"
	"github.com/caddy-two-factor/caddy-two-factor/store"
)

// These tests run two handlers, each with a Redis store of its own (as
// two Caddy instances would have), on one real redis-server. They use
// the wall clock: Redis expires sessions by its own.

// newRedisSite serves a handler on srv's store as instance name.
func newRedisSite(t *testing.T, srv *redistest.Server, name string, configure func(*TwoFactor)) *clockSite {
	t.Helper()
	return newClockSite(t, func(h *TwoFactor) {
		h.DB = ""
		h.now = time.Now
		h.store = &RedisStore{
			Addresses: []string{srv.Addr},
			Password:  srv.Password,
			KeyPrefix: "shared:",
			Timeout:   caddy.Duration(time.Second),
			instance:  name,
		}
		if configure != nil {
			configure(h)
		}
	})
}

// twoInstances starts a redis-server and two instances on it, and waits
// until both hear each other's writes.
func twoInstances(t *testing.T, configure func(*TwoFactor)) (srv *redistest.Server, a, b *clockSite) {
	t.Helper()
	srv = redistest.Start(t)
	a = newRedisSite(t, srv, "a", configure)
	b = newRedisSite(t, srv, "b", configure)
	for _, s := range []*clockSite{a, b} {
		waitFor(t, 5*time.Second, "the session cache to trust itself", s.h.db.cache.Trusted)
	}
	return srv, a, b
}

func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > limit {
			t.Fatalf("waited %s for %s", limit, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

// at returns a browser like b with the same cookies, on site s.
func at(b *browser, s *clockSite) *browser {
	c := *b
	c.base = s.url
	return &c
}

// enrolledOnAServedByB enrolls user on a, and returns that browser and the
// same on b, once b serves the session from memory.
func enrolledOnAServedByB(t *testing.T, a, b *clockSite, user string) (onA, onB *browser, secret []byte) {
	t.Helper()
	onA = a.browser(t)
	onA.now = time.Now
	secret, _ = onA.enroll(user)
	onB = at(onA, b)
	if r := onB.get("/app"); r.status != http.StatusOK || !cached(t, b, onB) {
		t.Fatalf("B does not serve %s's session from memory: %d", user, r.status)
	}
	return onA, onB, secret
}

// cached reports whether s serves b's session from memory.
func cached(t *testing.T, s *clockSite, b *browser) bool {
	t.Helper()
	key, ok := store.ParseSessionToken(b.sessionToken())
	return ok && s.h.db.cache.Get(key) != nil
}

func logout(t *testing.T, b *browser) {
	t.Helper()
	page := b.get("/_2fa/logout")
	if r := b.post("/_2fa/logout", url.Values{"csrf": {b.csrfFrom(page)}}); r.status >= 400 {
		t.Fatalf("logout: %d", r.status)
	}
}

// TestSignOutOnOneInstanceEndsTheSessionOnAll: a session opened on A is
// served by B from memory, and a sign-out on A stops it on B within a
// second (the latency is logged).
func TestSignOutOnOneInstanceEndsTheSessionOnAll(t *testing.T) {
	_, a, b := twoInstances(t, nil)
	onA := a.browser(t)
	onA.now = time.Now
	onA.enroll("alice")
	onB := at(onA, b)
	for range 2 {
		if r := onB.get("/app"); r.status != http.StatusOK || r.body != "ok alice" {
			t.Fatalf("B refused a session opened on A: %d %q", r.status, r.body)
		}
	}
	if !cached(t, b, onB) {
		t.Fatal("B does not serve the session from memory")
	}
	// Keep B's copy of the token: logout clears the cookie in the jar.
	token := onA.sessionToken()
	start := time.Now()
	logout(t, onA)
	refusedAfter := waitFor(t, time.Second, "B to refuse the signed-out session", func() bool {
		key, _ := store.ParseSessionToken(token)
		return b.h.db.cache.Get(key) == nil
	})
	req, _ := http.NewRequest(http.MethodGet, b.url+"/app", nil)
	req.AddCookie(&http.Cookie{Name: sessionCookie, Value: token})
	if r := onB.do(req); r.status == http.StatusOK {
		t.Fatalf("B still lets the signed-out session in: %d", r.status)
	}
	t.Logf("sign-out on A stopped the session on B after %s (from the start of the sign-out request: %s)", refusedAfter, time.Since(start))
}

// TestRevocationsOnOneInstanceReachTheOther: every kind of write that
// ends sessions, made on A, drops B's cached session.
func TestRevocationsOnOneInstanceReachTheOther(t *testing.T) {
	_, a, b := twoInstances(t, nil)
	_, onB, secret := enrolledOnAServedByB(t, a, b, "bob")
	// A new sign-in on A rotates bob's session identifier: the first
	// session ends everywhere.
	again := a.browser(t)
	again.now = time.Now
	if r := again.signIn("bob", secret); r.status != http.StatusSeeOther {
		t.Fatalf("second sign-in: %d", r.status)
	}
	waitFor(t, time.Second, "B to drop the rotated-out session", func() bool { return !cached(t, b, onB) })
	if r := onB.get("/app"); r.status == http.StatusOK {
		t.Fatal("B lets in a session ended by a sign-in on A")
	}
}

// TestCodesAndBudgetsAreSharedByInstances: a TOTP code used on A is
// refused on B; failures spread over both lock the account; one recovery
// code used on both at once signs in once.
func TestCodesAndBudgetsAreSharedByInstances(t *testing.T) {
	_, a, b := twoInstances(t, func(h *TwoFactor) { h.MaxAttempts = 4 })
	onA := a.browser(t)
	onA.now = time.Now
	secret, codes := onA.enroll("carol")

	t.Run("replayed code", func(t *testing.T) {
		first := a.browser(t)
		first.now = time.Now
		if r := first.login("carol", testPassword, "/app"); r.status != http.StatusSeeOther {
			t.Fatalf("login on A: %d", r.status)
		}
		code := first.code("carol", secret)
		if r := first.confirm(code); r.status != http.StatusSeeOther {
			t.Fatalf("code on A: %d", r.status)
		}
		replay := b.browser(t)
		replay.now = time.Now
		if r := replay.login("carol", testPassword, "/app"); r.status != http.StatusSeeOther {
			t.Fatalf("login on B: %d", r.status)
		}
		if r := replay.confirm(code); r.status == http.StatusSeeOther {
			t.Fatal("B accepted a code already used on A")
		}
	})

	t.Run("one recovery code, two instances at once", func(t *testing.T) {
		var wg sync.WaitGroup
		results := make([]string, 2)
		browsers := []*browser{a.browser(t), b.browser(t)}
		for _, br := range browsers {
			br.now = time.Now
			if r := br.login("carol", testPassword, "/app"); r.status != http.StatusSeeOther {
				t.Fatalf("login: %d", r.status)
			}
		}
		for i, br := range browsers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := br.confirm(codes[0])
				results[i] = fmt.Sprint(r.status, " ", r.location())
			}()
		}
		wg.Wait()
		wins := 0
		for _, s := range results {
			if s == "303 /app" {
				wins++
			}
		}
		if wins != 1 {
			t.Fatalf("one recovery code signed in %d times (answers %q)", wins, results)
		}
	})

	// 4 wrong passwords for name, alternating between the instances, then
	// one more attempt (password) on each: both must be locked out.
	lockedOnBoth := func(t *testing.T, name, password string) {
		t.Helper()
		login := func(site *clockSite, password string) int {
			br := site.browser(t)
			br.now = time.Now
			return br.login(name, password, "/app").status
		}
		for i := range 4 {
			if status := login([]*clockSite{a, b}[i%2], "wrong password"); status != http.StatusUnauthorized {
				t.Fatalf("wrong password %d for %s: %d", i+1, name, status)
			}
		}
		for _, site := range []*clockSite{a, b} {
			if status := login(site, password); status != http.StatusTooManyRequests {
				t.Fatalf("%s after 4 failures spread over two instances: %d, want 429", name, status)
			}
		}
	}
	t.Run("failures on both lock the account", func(t *testing.T) {
		lockedOnBoth(t, "carol", testPassword)
	})
	// A name that is no account locks like one, on every instance: else an
	// attacker who locks a name on one instance and tries it on another
	// would learn whether it exists.
	t.Run("an unknown name locks everywhere", func(t *testing.T) {
		lockedOnBoth(t, "nobody-by-this-name", "wrong password")
	})
}

// TestRedisPauseFailsClosedAndRecovers: while Redis does not answer, a
// session B never saw and one revoked on A get 503 on B, never 200, and
// both instances serve again once it answers, without a restart.
func TestRedisPauseFailsClosedAndRecovers(t *testing.T) {
	srv, a, b := twoInstances(t, nil)
	revoked, onB, _ := enrolledOnAServedByB(t, a, b, "dave")
	token := revoked.sessionToken()
	logout(t, revoked)
	unseen := a.browser(t)
	unseen.now = time.Now
	unseen.enroll("erin")

	pause(t, srv, 3*time.Second)
	waitFor(t, 2*time.Second, "B to distrust its cache", func() bool { return !b.h.db.cache.Trusted() })
	req, _ := http.NewRequest(http.MethodGet, b.url+"/app", nil)
	req.AddCookie(&http.Cookie{Name: sessionCookie, Value: token})
	if r := onB.do(req); r.status == http.StatusOK {
		t.Fatalf("a revoked session passed B during the outage")
	}
	if r := at(unseen, b).get("/app"); r.status != http.StatusServiceUnavailable {
		t.Fatalf("a session B never saw, during the outage: %d, want 503", r.status)
	}
	waitFor(t, 10*time.Second, "B to trust its cache again", b.h.db.cache.Trusted)
	if r := at(unseen, b).get("/app"); r.status != http.StatusOK {
		t.Fatalf("after the outage: %d, want 200", r.status)
	}
	if r := onB.do(req); r.status == http.StatusOK {
		t.Fatalf("a revoked session passed B after the outage")
	}
}

// pause stops redis-server from answering any client for d.
func pause(t *testing.T, srv *redistest.Server, d time.Duration) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", srv.Addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	fmt.Fprintf(conn, "AUTH %s\r\nCLIENT PAUSE %d ALL\r\n", srv.Password, d.Milliseconds())
	buf := make([]byte, 64)
	n, _ := conn.Read(buf)
	if got := string(buf[:n]); !strings.HasPrefix(got, "+OK") {
		t.Fatalf("CLIENT PAUSE: %q", got)
	}
}

// TestRedisStoreRefusesToLoad: a wrong password or an unreachable server
// fails provisioning within a few seconds, naming the store and address.
func TestRedisStoreRefusesToLoad(t *testing.T) {
	srv := redistest.Start(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := l.Addr().String()
	l.Close()
	for _, tc := range []struct {
		name     string
		addr, pw string
		want     string
	}{
		{"wrong password", srv.Addr, "not-the-password", "WRONGPASS"},
		{"unreachable", refused, "", "connection refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &TwoFactor{store: &RedisStore{Addresses: []string{tc.addr}, Password: tc.pw, Timeout: caddy.Duration(2 * time.Second)}}
			start := time.Now()
			err := h.provision(zap.NewNop())
			if err == nil {
				_ = h.Cleanup()
				t.Fatal("provisioned")
			}
			for _, want := range []string{"redis store", tc.addr, tc.want} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not name %q", err, want)
				}
			}
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("took %s to fail", took)
			}
		})
	}
}

// TestCacheForgetsWhatItHeldWhenItsChannelComesBack: a write B never
// heard of (made without an announcement, as a missed message would be)
// no longer lets the session through once B's subscription broke and
// came back.
func TestCacheForgetsWhatItHeldWhenItsChannelComesBack(t *testing.T) {
	srv, a, b := twoInstances(t, nil)
	onA, onB, _ := enrolledOnAServedByB(t, a, b, "frank")
	key, _ := store.ParseSessionToken(onA.sessionToken())
	if err := a.h.db.raw.Update(func(tx store.Tx) error { return tx.DeleteSession(key) }); err != nil {
		t.Fatal(err)
	}
	lost := b.h.db.cache.Trusted
	kill, err := net.DialTimeout("tcp", srv.Addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer kill.Close()
	fmt.Fprintf(kill, "AUTH %s\r\nCLIENT KILL TYPE pubsub\r\n", srv.Password)
	waitFor(t, 5*time.Second, "B to lose its subscription", func() bool { return !lost() })
	waitFor(t, 5*time.Second, "B to subscribe again", b.h.db.cache.Trusted)
	if r := onB.get("/app"); r.status == http.StatusOK {
		t.Fatal("B served a session it had cached before its channel broke, deleted meanwhile")
	}
}
