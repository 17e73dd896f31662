package twofactor

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/caddy-two-factor/caddy-two-factor/store"
)

// These tests take the store away under a running Caddy and give it back:
// every request the store must vouch for fails closed with 503, and the
// same requests succeed once it answers again, without a reload.

// errInjected is what a failing faultyStore returns, as a backend that
// cannot be reached would.
var errInjected = fmt.Errorf("%w: injected fault", store.ErrUnavailable)

// faultyStore wraps a database's store and fails its transactions on
// demand, without running their functions.
type faultyStore struct {
	store.Store
	mu sync.Mutex
	// views and updates are how many of the next transactions of each kind
	// fail; -1 for all of them until heal.
	views, updates int
}

// withFaults makes the database at path open through a faultyStore, which
// starts healthy, and returns it.
func withFaults(t *testing.T, path string) *faultyStore {
	t.Helper()
	f := &faultyStore{}
	storeWrappers.Store(path, func(st store.Store) store.Store {
		f.Store = st
		return f
	})
	t.Cleanup(func() { storeWrappers.Delete(path) })
	return f
}

// fail makes every transaction fail until heal.
func (f *faultyStore) fail() { f.set(-1, -1) }

// failViews makes the next n read transactions fail.
func (f *faultyStore) failViews(n int) { f.set(n, 0) }

func (f *faultyStore) heal() { f.set(0, 0) }

func (f *faultyStore) set(views, updates int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.views, f.updates = views, updates
}

// failing reports whether the next transaction counted by n fails.
func (f *faultyStore) failing(n *int) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if *n > 0 {
		*n--
		return true
	}
	return *n < 0
}

func (f *faultyStore) View(fn func(store.Tx) error) error {
	if f.failing(&f.views) {
		return errInjected
	}
	return f.Store.View(fn)
}

func (f *faultyStore) Update(fn func(store.Tx) error) error {
	if f.failing(&f.updates) {
		return errInjected
	}
	return f.Store.Update(fn)
}

// outageRoutes are the test site's routes, with an error route that shows
// the status Caddy's error handling was handed.
const outageRoutes = defaultRoutes + `
	handle_errors {
		respond "handled {err.status_code}" {err.status_code}
	}`

// startFaultySite starts a test site whose store fails on demand.
func startFaultySite(t *testing.T, cfg siteConfig) (*testSite, *faultyStore) {
	t.Helper()
	cfg.db = filepath.Join(t.TempDir(), "two_factor.db")
	faults := withFaults(t, cfg.db)
	cfg.matcher, cfg.routes = "/admin/*", outageRoutes
	return startSite(t, cfg), faults
}

// setSessionCookie gives b a session cookie with token.
func setSessionCookie(t *testing.T, b *browser, token string) {
	t.Helper()
	base, err := url.Parse(b.base)
	if err != nil {
		t.Fatal(err)
	}
	b.client.Jar.SetCookies(base, []*http.Cookie{{Name: sessionCookie, Value: token, Path: "/"}})
}

// apiClient is the Accept header of a client that is no browser.
const apiClient = "Accept: application/json"

// checkUnavailable checks a 503 of a store outage: Retry-After, and for a
// browser the module's page with its security headers, for other clients
// the bare status handed to handle_errors.
func checkUnavailable(t *testing.T, name string, r response, browser bool) {
	t.Helper()
	if r.header.Get("Retry-After") != storeRetryAfterValue {
		t.Errorf("%s: Retry-After %q, want %q", name, r.header.Get("Retry-After"), storeRetryAfterValue)
	}
	if browser {
		if !strings.Contains(r.body, "Sign-in is temporarily unavailable") || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") ||
			!strings.Contains(r.header.Get("Content-Security-Policy"), "frame-ancestors 'none'") || r.header.Get("Cache-Control") != "no-store" {
			t.Errorf("%s: not the unavailable page with the module's headers: %v\n%s", name, r.header, r.body)
		}
		return
	}
	if r.body != "handled 503" {
		t.Errorf("%s: body %q, want the error route's %q", name, r.body, "handled 503")
	}
}

func TestStoreOutageFailsClosedAndRecovers(t *testing.T) {
	logFile := filepath.Join(t.TempDir(), "caddy.log")
	_, faults := startFaultySite(t, siteConfig{logFile: logFile})

	// A signed-in session the gate has cached, and one it has not.
	cached := newBrowser(t)
	cached.enroll("alice")
	if r := cached.get("/admin/"); r.status != http.StatusOK {
		t.Fatalf("alice: %d", r.status)
	}
	fresh := newBrowser(t)
	fresh.enroll("bob")
	leaving := newBrowser(t)
	leaving.enroll("erin")
	// Password-only sessions: before setup, and before the code.
	setup := newBrowser(t)
	setup.login("carol", testPassword, "/admin/")
	setupPage := setup.get("/_2fa/setup")
	carolSecret, err := totpDecode(secretPattern.FindStringSubmatch(setupPage.body)[1])
	if err != nil {
		t.Fatal(err)
	}
	daveSecret, _ := newBrowser(t).enroll("dave")
	confirm := newBrowser(t)
	confirm.login("dave", testPassword, "/admin/")
	confirmCSRF := confirm.csrfFrom(confirm.get("/_2fa/confirm"))
	// No session, and a cookie the store has never seen.
	anon := newBrowser(t)
	signer := newBrowser(t)
	loginCSRF := signer.csrfFrom(signer.get("/_2fa/login"))
	stale := newBrowser(t)
	token, _, err := store.NewSessionToken()
	if err != nil {
		t.Fatal(err)
	}
	setSessionCookie(t, stale, token)
	accountCSRF := cached.csrfFrom(cached.get("/_2fa/account"))
	leavingCSRF := leaving.csrfFrom(leaving.get("/_2fa/logout"))

	type row struct {
		name string
		do   func() response
		// outage and healthy are the statuses wanted with the store
		// failing and answering; api marks a client that is no browser.
		outage, healthy int
		api             bool
	}
	rows := []row{
		// The one request that passes during an outage: a session the
		// store vouched for and nothing since has changed (see failure.go).
		{"gate, cached session", func() response { return cached.get("/admin/") }, 200, 200, false},
		{"gate, signed in, not cached", func() response { return fresh.get("/admin/") }, 503, 200, false},
		{"gate, signed in, not cached, API client", func() response { return fresh.get("/admin/", apiClient) }, 503, 200, true},
		{"gate, unknown cookie", func() response { return stale.get("/admin/") }, 503, 302, false},
		{"gate, unknown cookie, API client", func() response { return stale.get("/admin/", apiClient) }, 503, 401, true},
		{"gate, password only", func() response { return setup.get("/admin/") }, 503, 302, false},
		// Without any cookie, "sign in first" is true whatever the store.
		{"gate, no cookie", func() response { return anon.get("/admin/") }, 302, 302, false},
		{"gate, no cookie, API client", func() response { return anon.get("/admin/", apiClient) }, 401, 401, true},
		{"public route, no cookie", func() response { return anon.get("/") }, 200, 200, false},

		{"login page", func() response { return anon.get("/_2fa/login") }, 503, 200, false},
		{"login page, unknown cookie", func() response { return stale.get("/_2fa/login") }, 503, 200, false},
		{"login", func() response {
			return signer.post("/_2fa/login", url.Values{"csrf": {loginCSRF}, "username": {"frank"}, "password": {testPassword}, "next": {"/admin/"}})
		}, 503, 303, false},
		{"login, database user check", func() response {
			return signer.post("/_2fa/login", url.Values{"csrf": {loginCSRF}, "username": {"nobody"}, "password": {testPassword}, "next": {"/"}})
		}, 503, 401, false},
		{"setup page", func() response { return setup.get("/_2fa/setup") }, 503, 200, false},
		{"confirm page", func() response { return confirm.get("/_2fa/confirm") }, 503, 200, false},
		{"confirm", func() response {
			return confirm.post("/_2fa/confirm", url.Values{"csrf": {confirmCSRF}, "code": {confirm.code("dave", daveSecret)}})
		}, 503, 303, false},
		{"setup", func() response {
			return setup.post("/_2fa/setup", url.Values{"csrf": {setup.csrfFrom(setupPage)}, "code": {setup.code("carol", carolSecret)}})
		}, 503, 200, false},
		{"account page", func() response { return cached.get("/_2fa/account") }, 503, 200, false},
		{"account page, API client", func() response { return cached.get("/_2fa/account", apiClient) }, 503, 200, true},
		{"account action", func() response {
			return cached.post("/_2fa/account", url.Values{"csrf": {accountCSRF}, "action": {"others"}})
		}, 503, 303, false},
		{"authenticator page", func() response { return cached.get("/_2fa/account/authenticator") }, 503, 200, false},
		{"authenticator", func() response {
			return cached.post("/_2fa/account/authenticator", url.Values{"csrf": {accountCSRF}, "code": {"x"}, "current": {"x"}})
		}, 503, 400, false},
		{"logout page", func() response { return cached.get("/_2fa/logout") }, 503, 200, false},
		{"logout page, no cookie", func() response { return anon.get("/_2fa/logout") }, 200, 200, false},
		{"logout, unknown cookie", func() response { return stale.post("/_2fa/logout", url.Values{"csrf": {"x"}}) }, 503, 200, false},
		{"gate, before logout", func() response { return leaving.get("/admin/") }, 503, 200, false},
		{"logout", func() response { return leaving.post("/_2fa/logout", url.Values{"csrf": {leavingCSRF}}) }, 503, 200, false},
	}
	adminUsers := func() response {
		resp, err := adminDo(adminAddress(), http.MethodGet, "/two_factor/users", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return response{status: resp.StatusCode, header: resp.Header, body: string(body)}
	}

	faults.fail()
	pages := 0
	for _, tc := range rows {
		r := tc.do()
		if r.status != tc.outage {
			t.Errorf("outage: %s: status %d, want %d\n%s", tc.name, r.status, tc.outage, r.body)
			continue
		}
		if r.status == http.StatusServiceUnavailable {
			checkUnavailable(t, "outage: "+tc.name, r, !tc.api)
			if !tc.api {
				pages++
			}
		}
	}
	r := adminUsers()
	var refused adminError
	if r.status != http.StatusServiceUnavailable || json.Unmarshal([]byte(r.body), &refused) != nil || refused.Code != codeUnavailable ||
		r.header.Get("Retry-After") != storeRetryAfterValue {
		t.Errorf("outage: admin API: %d %v %s, want 503 with code %s and Retry-After", r.status, r.header, r.body, codeUnavailable)
	}

	faults.heal()
	for _, tc := range rows {
		if r := tc.do(); r.status != tc.healthy {
			t.Errorf("healthy again: %s: status %d, want %d\n%s", tc.name, r.status, tc.healthy, r.body)
		}
	}
	if r := adminUsers(); r.status != http.StatusOK {
		t.Errorf("healthy again: admin API: %d %s", r.status, r.body)
	}
	if r := leaving.get("/admin/"); r.status != http.StatusFound {
		t.Errorf("erin signed out once the store answered, yet the gate says %d", r.status)
	}

	// Each page answered in an outage is logged once, with what failed,
	// and no log line holds a secret.
	stopSites(t)
	raw, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	logged := 0
	secrets := []string{testPassword, token, cached.sessionToken(), fresh.sessionToken()}
	scanner := bufio.NewScanner(strings.NewReader(string(raw)))
	scanner.Buffer(make([]byte, 1<<20), 1<<20)
	for scanner.Scan() {
		line := scanner.Text()
		if strings.Contains(line, "two-factor sign-in unavailable") {
			logged++
			if !strings.Contains(line, `"op":`) || !strings.Contains(line, "injected fault") {
				t.Errorf("unavailable log line without the operation or the cause: %s", line)
			}
		}
		for _, s := range secrets {
			if s != "" && strings.Contains(line, s) {
				t.Errorf("log line contains a secret %q: %s", s, line)
			}
		}
	}
	if logged != pages {
		t.Errorf("%d unavailable pages logged, want one for each of the %d served", logged, pages)
	}
}

func TestStoreOutageServesOnlyCachedSessions(t *testing.T) {
	// The rule of failure.go: during an outage a session the gate has
	// cached passes, as the store vouched for it and no write of this
	// Caddy can have ended it since; one the store ended before the outage
	// does not come back, and one never cached does not pass.
	_, faults := startFaultySite(t, siteConfig{})
	alice := newBrowser(t)
	alice.enroll("alice")
	bob := newBrowser(t)
	bob.enroll("bob")
	for _, b := range []*browser{alice, bob} {
		if r := b.get("/admin/"); r.status != http.StatusOK {
			t.Fatalf("signed in: %d", r.status)
		}
	}
	if status, body := adminCall(t, http.MethodPost, "/two_factor/users/bob/revoke", ""); status != http.StatusOK {
		t.Fatalf("revoke: %d %s", status, body)
	}
	logoutCSRF := alice.csrfFrom(alice.get("/_2fa/logout"))

	faults.fail()
	if r := alice.get("/admin/"); r.status != http.StatusOK || !strings.Contains(r.body, "user=alice") {
		t.Errorf("outage: alice's cached session: %d %q, want 200 as alice", r.status, r.body)
	}
	if r := bob.get("/admin/"); r.status != http.StatusServiceUnavailable {
		t.Errorf("outage: bob, revoked before it: %d, want 503", r.status)
	}
	// Sign-out cannot happen now, and says so rather than clear the cookie.
	r := alice.post("/_2fa/logout", url.Values{"csrf": {logoutCSRF}})
	checkUnavailable(t, "outage: logout", r, true)
	if r.status != http.StatusServiceUnavailable || alice.sessionToken() == "" {
		t.Errorf("outage: logout: %d, cookie kept %v; want 503 and the cookie kept", r.status, alice.sessionToken() != "")
	}

	faults.heal()
	if r := alice.get("/admin/"); r.status != http.StatusOK {
		t.Errorf("healthy again: alice: %d", r.status)
	}
	if r := bob.get("/admin/"); r.status != http.StatusFound {
		t.Errorf("healthy again: bob, revoked: %d, want 302 to sign in", r.status)
	}
	token := alice.sessionToken()
	if r := alice.post("/_2fa/logout", url.Values{"csrf": {logoutCSRF}}); r.status != http.StatusOK {
		t.Errorf("healthy again: logout: %d", r.status)
	}
	setSessionCookie(t, alice, token) // a copy of the cookie kept elsewhere
	if r := alice.get("/admin/"); r.status != http.StatusFound {
		t.Errorf("after logout, the old cookie: %d, want 302", r.status)
	}
}

func TestStoreOutageNeverTellsAWrongPassword(t *testing.T) {
	// One read fails, the one that finds a database user's password: the
	// user is not taken to be unknown (and the password wrong), the
	// request gets 503, and the next attempt signs in.
	_, faults := startFaultySite(t, siteConfig{})
	if status, body := adminCall(t, http.MethodPost, "/two_factor/users", `{"name":"zoe","password_hash":"`+testHash()+`"}`); status != http.StatusCreated {
		t.Fatalf("add-user: %d %s", status, body)
	}
	b := newBrowser(t)
	csrf := b.csrfFrom(b.get("/_2fa/login"))
	form := url.Values{"csrf": {csrf}, "username": {"zoe"}, "password": {testPassword}, "next": {"/admin/"}}
	faults.failViews(1)
	r := b.post("/_2fa/login", form)
	if r.status != http.StatusServiceUnavailable || strings.Contains(r.body, msgBadLogin) {
		t.Fatalf("login while the user's record could not be read: %d\n%s", r.status, r.body)
	}
	checkUnavailable(t, "login", r, true)
	if r := b.post("/_2fa/login", form); r.status != http.StatusSeeOther || r.location() != "/_2fa/setup" {
		t.Fatalf("login once the store answers: %d to %q", r.status, r.location())
	}
}
