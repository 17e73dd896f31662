package twofactor

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// App tokens on a real Caddy, with a clock the test moves.

var (
	appTokenPattern   = regexp.MustCompile(`<code class="app-token">(tfa_[A-Za-z0-9_-]+)</code>`)
	appTokenIDPattern = regexp.MustCompile(`name="token" value="([A-Za-z0-9_-]+)"`)
)

// createAppToken makes an app token on the account page, behind a fresh
// code of user's, and returns it.
func (b *browser) createAppToken(user string, secret []byte, name, expires string) string {
	b.t.Helper()
	page := b.account()
	r := b.post("/_2fa/account", url.Values{"csrf": {b.csrfFrom(page)}, "action": {"app_token"}, "name": {name}, "expires": {expires}, "code": {b.code(user, secret)}})
	m := appTokenPattern.FindStringSubmatch(r.body)
	if r.status != http.StatusOK || m == nil {
		b.t.Fatalf("creating an app token: %d\n%s", r.status, r.body)
	}
	if strings.Contains(b.account().body, m[1]) {
		b.t.Fatal("the account page shows the token again")
	}
	return m[1]
}

// tokenClient requests path as a client that is no browser, with an
// Authorization header.
func tokenClient(t *testing.T, path, authorization string) response {
	t.Helper()
	return newBrowser(t).get(path, "Accept: */*", "Authorization: "+authorization)
}

func bearer(token string) string { return "Bearer " + token }

func basic(user, password string) string {
	r := &http.Request{Header: http.Header{}}
	r.SetBasicAuth(user, password)
	return r.Header.Get("Authorization")
}

// TestAppTokensOnRealCaddy: a token made on the account page lets its
// client in as its user, by Bearer or by Basic with the user's name, on
// the listed paths only: never elsewhere, never on the module's pages;
// until it expires, is revoked on the account page, or the operator
// revokes or resets the user.
func TestAppTokensOnRealCaddy(t *testing.T) {
	clock, b := clockedSite(t, siteConfig{
		extra:  "app_tokens /api/* /dav/*",
		routes: `respond "area user={http.auth.user.id} method={http.two_factor.method}"`,
	})
	secret, _ := b.enroll("alice")
	token := b.createAppToken("alice", secret, "dav", "30")

	r := tokenClient(t, "/api/items", bearer(token))
	wantStatus(t, "bearer on a listed path", r, http.StatusOK)
	if r.body != "area user=alice method=app_token" {
		t.Fatalf("placeholders: %q", r.body)
	}
	wantStatus(t, "basic with the user's name", tokenClient(t, "/DAV/cal/1.ics", basic("alice", token)), http.StatusOK)
	wantStatus(t, "basic with another name", tokenClient(t, "/dav/x", basic("bob", token)), http.StatusUnauthorized)
	wantStatus(t, "an unlisted path", tokenClient(t, "/admin/", bearer(token)), http.StatusUnauthorized)
	wantStatus(t, "the listed prefix itself", tokenClient(t, "/api", bearer(token)), http.StatusUnauthorized)
	for _, page := range []string{"/_2fa/account", "/_2FA/Account", "/_2fa/logout"} {
		if r := newBrowser(t).get(page, "Authorization: "+bearer(token)); strings.Contains(r.body, "alice") {
			t.Errorf("%s with a token shows alice's page: %d", page, r.status)
		}
	}
	if !strings.Contains(b.account().body, "dav") {
		t.Error("the account page does not list the token")
	}

	// Expiry, on the server's clock.
	clock.Advance(30*24*time.Hour + time.Second)
	wantStatus(t, "an expired token", tokenClient(t, "/api/items", bearer(token)), http.StatusUnauthorized)

	// Revoked on the account page (the session is new: the old one idled out).
	b.signIn("alice", secret)
	clock.Advance(2 * time.Minute) // fresh TOTP steps
	second := b.createAppToken("alice", secret, "script", "never")
	wantStatus(t, "the second token", tokenClient(t, "/api/items", bearer(second)), http.StatusOK)
	page := b.account()
	ids := appTokenIDPattern.FindAllStringSubmatch(page.body, -1)
	if len(ids) != 2 {
		t.Fatalf("want 2 tokens listed, got %v", ids)
	}
	for _, id := range ids {
		wantGoesTo(t, "revoke", b.post("/_2fa/account", url.Values{"csrf": {b.csrfFrom(page)}, "action": {"revoke_token"}, "token": {id[1]}}), http.StatusSeeOther, "/_2fa/account?done=token_revoked")
	}
	wantStatus(t, "a revoked token", tokenClient(t, "/api/items", bearer(second)), http.StatusUnauthorized)

	// The operator's revoke and reset end them too.
	var ended []string
	for i, action := range []string{"revoke", "reset"} {
		clock.Advance(2 * time.Minute) // fresh TOTP steps
		if i > 0 {
			b.signIn("alice", secret) // the revoke ended the session
		}
		tok := b.createAppToken("alice", secret, action, "90")
		wantStatus(t, "before "+action, tokenClient(t, "/api/items", bearer(tok)), http.StatusOK)
		if status, body := adminCall(t, http.MethodPost, "/two_factor/users/alice/"+action, ""); status != http.StatusOK {
			t.Fatalf("%s: %d %s", action, status, body)
		}
		wantStatus(t, "after "+action, tokenClient(t, "/api/items", bearer(tok)), http.StatusUnauthorized)
		ended = append(ended, tok)
	}
	// Enrolled again after the reset: the old tokens stay dead.
	clock.Advance(2 * time.Minute)
	b.enroll("alice")
	for _, tok := range ended {
		wantStatus(t, "an ended token after a new enrollment", tokenClient(t, "/api/items", bearer(tok)), http.StatusUnauthorized)
	}
}

// TestWrongAppTokensSpendTheClientBudget: wrong tokens count against the
// client's budget, after which even a right one is refused for a while;
// they do not lock the user whose name they carry.
func TestWrongAppTokensSpendTheClientBudget(t *testing.T) {
	_, b := clockedSite(t, siteConfig{extra: "app_tokens /api/*\n\t\tmax_ip_attempts 3", routes: `respond "area"`})
	secret, _ := b.enroll("bob")
	token := b.createAppToken("bob", secret, "cli", "30")
	wrong := token[:len(token)-3] + "AAA"
	if wrong == token {
		wrong = token[:len(token)-3] + "BBB"
	}
	for range 3 {
		wantStatus(t, "wrong token", tokenClient(t, "/api/x", bearer(wrong)), http.StatusUnauthorized)
	}
	r := tokenClient(t, "/api/x", bearer(token))
	wantStatus(t, "the right token from a locked client", r, http.StatusTooManyRequests)
	if r.header.Get("Retry-After") == "" {
		t.Error("no Retry-After")
	}
}
