package twofactor

import (
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/caddy-two-factor/caddy-two-factor/store"
	boltstore "github.com/caddy-two-factor/caddy-two-factor/store/bolt"
	"github.com/caddy-two-factor/caddy-two-factor/throttle"
)

// Regression tests for the attempt budgets: what a refused attempt costs,
// where a lockout applies, and how many sessions a password alone buys.

// trustLoopbackProxy makes Caddy take the client IP from X-Forwarded-For,
// so one test client can stand for many networks.
var trustLoopbackProxy = []string{"servers {\n\t\ttrusted_proxies static 127.0.0.1/32 ::1/128\n\t}"}

// loginFrom signs in (password step) with the client IP ip.
func (b *browser) loginFrom(ip, user, password string) response {
	b.t.Helper()
	page := b.get("/_2fa/login")
	return b.post("/_2fa/login", url.Values{"csrf": {b.csrfFrom(page)}, "username": {user}, "password": {password}}, "X-Forwarded-For: "+ip)
}

func commitsOf(t *testing.T, site *testSite) uint64 {
	t.Helper()
	db, err := findDatabase(site.db)
	if err != nil {
		t.Fatal(err)
	}
	bolt, _ := store.As[*boltstore.Store](db.raw)
	return bolt.Commits()
}

func TestAttackRefusedSignInsWriteNothingAndLockTheClient(t *testing.T) {
	for _, user := range []string{"alice", "no-such-user"} {
		t.Run(user, func(t *testing.T) {
			site := startSite(t, siteConfig{matcher: "/admin/*"})
			b := newBrowser(t)
			for range DefaultMaxAttempts {
				b.login(user, "wrong", "/")
			}
			before := commitsOf(t, site)
			refused := 0
			for ; refused < 2*DefaultMaxIPAttempts; refused++ {
				if r := b.login(user, "wrong", "/"); r.status != http.StatusTooManyRequests {
					t.Fatalf("attempt %d on a locked account: %d", refused, r.status)
				}
				if !site.clientLocked(t) {
					continue
				}
				break
			}
			if writes := commitsOf(t, site) - before; writes != 0 {
				t.Errorf("%d refused sign-ins committed %d store writes, want 0", refused, writes)
			}
			if refused >= DefaultMaxIPAttempts {
				t.Errorf("the client was locked only after %d refusals, budget %d", refused, DefaultMaxIPAttempts)
			}
			// The client is now turned away whatever it tries.
			if r := newBrowser(t).login("frank", testPassword, "/"); r.status != http.StatusTooManyRequests {
				t.Errorf("a client that kept knocking on a locked account could still sign in elsewhere: %d", r.status)
			}
		})
	}
}

// clientLocked reports whether the test client (127.0.0.1) is locked.
func (s *testSite) clientLocked(t *testing.T) bool {
	db, err := findDatabase(s.db)
	if err != nil {
		t.Fatal(err)
	}
	return !db.attempts.ClientLockedUntil("127.0.0.1", time.Now()).IsZero()
}

func TestAttackLockoutStaysWithTheAttackersNetwork(t *testing.T) {
	startSite(t, siteConfig{matcher: "/admin/*", global: trustLoopbackProxy, extra: "max_account_attempts 12\n\t\tmax_ip_attempts 1000"})
	attacker := newBrowser(t)
	for i := range DefaultMaxAttempts {
		if r := attacker.loginFrom("198.51.100.7", "alice", fmt.Sprint("guess", i)); r.status != http.StatusUnauthorized {
			t.Fatalf("guess %d: %d", i, r.status)
		}
	}
	if r := attacker.loginFrom("198.51.100.7", "alice", testPassword); r.status != http.StatusTooManyRequests {
		t.Fatalf("the attacker's network was not locked: %d", r.status)
	}
	if r := newBrowser(t).loginFrom("203.0.113.5", "alice", testPassword); r.status != http.StatusSeeOther {
		t.Fatalf("a lockout from one network locked the user out of another: %d", r.status)
	}
	// The account-wide ceiling: failures spread over networks lock it
	// everywhere (12 in all, 5 of them above).
	for i := range 7 {
		attacker.loginFrom(fmt.Sprintf("198.51.100.%d", 20+i), "alice", "wrong")
	}
	if r := newBrowser(t).loginFrom("203.0.113.5", "alice", testPassword); r.status != http.StatusTooManyRequests {
		t.Fatalf("max_account_attempts failures from many networks did not lock the account: %d", r.status)
	}
}

func TestAttackPasswordAloneCannotPileUpPendingSessions(t *testing.T) {
	site := startSite(t, siteConfig{matcher: "/admin/*"})
	var browsers []*browser
	locked := false
	for i := range throttle.UnfinishedAllowance + DefaultMaxAttempts + 1 {
		b := newBrowser(t)
		r := b.login("grace", testPassword, "/")
		if r.status == http.StatusTooManyRequests {
			locked = true
			if i < throttle.UnfinishedAllowance+DefaultMaxAttempts-1 {
				t.Fatalf("locked after only %d right passwords", i)
			}
			break
		}
		if r.status != http.StatusSeeOther {
			t.Fatalf("password %d: %d", i, r.status)
		}
		browsers = append(browsers, b)
	}
	if !locked {
		t.Errorf("%d right passwords without a second factor never counted against the account", len(browsers))
	}
	var pending int
	db, err := findDatabase(site.db)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.raw.View(func(tx store.Tx) error {
		sessions, err := tx.UserSessions("grace")
		pending = len(sessions)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if pending != maxPendingSessions {
		t.Errorf("grace has %d pending sessions, want at most %d", pending, maxPendingSessions)
	}
	// The oldest went first; the newest still works.
	if r := browsers[0].get("/_2fa/setup"); r.status != http.StatusSeeOther || r.location() != "/_2fa/login" {
		t.Errorf("the oldest pending session still works: %d %s", r.status, r.location())
	}
	if r := browsers[len(browsers)-1].get("/_2fa/setup"); r.status != http.StatusOK {
		t.Errorf("the newest pending session does not work: %d", r.status)
	}
}
