package twofactor

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// Remembered browsers on a real Caddy, with a clock the test moves.

// confirmRemembering gives a code on the confirm page with the remember
// checkbox ticked, and returns the remember cookie it set.
func (b *browser) confirmRemembering(user string, secret []byte) *http.Cookie {
	b.t.Helper()
	page := b.get("/_2fa/confirm")
	if !strings.Contains(page.body, `name="remember"`) {
		b.t.Fatalf("the confirm page offers no remember checkbox:\n%s", page.body)
	}
	r := b.post("/_2fa/confirm", url.Values{"csrf": {b.csrfFrom(page)}, "code": {b.code(user, secret)}, "remember": {"1"}})
	wantGoesTo(b.t, "confirm", r, http.StatusSeeOther, "/admin/")
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		if c.Name == rememberCookie {
			if !c.HttpOnly || c.Path != "/" || c.MaxAge != 30*24*3600 {
				b.t.Errorf("remember cookie %+v: want HttpOnly, Path=/, Max-Age 30 days", c)
			}
			return c
		}
	}
	b.t.Fatal("no remember cookie set")
	return nil
}

// passwordOnly signs user in with the password and reports whether the
// browser was spared the second factor.
func (b *browser) passwordOnly(user string) bool {
	b.t.Helper()
	r := b.login(user, testPassword, "/admin/")
	switch {
	case r.status == http.StatusSeeOther && r.location() == "/admin/":
		return true
	case r.status == http.StatusSeeOther && r.location() == "/_2fa/confirm":
		return false
	}
	b.t.Fatalf("login of %s: %d to %q", user, r.status, r.location())
	return false
}

func (b *browser) logout() {
	b.t.Helper()
	page := b.get("/_2fa/logout")
	b.post("/_2fa/logout", url.Values{"csrf": {b.csrfFrom(page)}})
}

var browserIDPattern = regexp.MustCompile(`name="browser" value="([A-Za-z0-9_-]+)"`)

// TestRememberDeviceOnRealCaddy: a browser remembered on the confirm page
// signs in with the password alone, as method remembered, which never
// satisfies step-up; the cookie alone or with another user's password
// gets nothing; it dies with its expiry, the account page's forget, the
// operator's revoke and reset, and a new authenticator.
func TestRememberDeviceOnRealCaddy(t *testing.T) {
	clock, b := clockedSite(t, siteConfig{
		matcher: "/admin/*",
		extra:   "remember_device 30d\n\t\tstep_up 5m /admin/settings/*\n\t\tconcurrent_sessions",
		routes:  "respond /admin/confirmed \"confirmed at {http.two_factor.confirmed_at}\"\n\t" + defaultRoutes,
	})
	secret, _ := b.enroll("alice")
	bobSecret, _ := sameSiteBrowser(t, b, clock).enroll("bob")
	b.logout()
	wantGoesTo(t, "login", b.login("alice", testPassword, "/admin/"), http.StatusSeeOther, "/_2fa/confirm")
	cookie := b.confirmRemembering("alice", secret)
	b.logout()

	if !b.passwordOnly("alice") {
		t.Fatal("the remembered browser was asked for a code")
	}
	r := b.get("/admin/")
	if r.status != http.StatusOK || !strings.Contains(r.body, "method=remembered") {
		t.Fatalf("remembered sign-in: %d %s", r.status, r.body)
	}
	if r := b.get("/admin/confirmed"); r.body != "confirmed at " {
		t.Errorf("a remembered session's confirmation time: %q, want none", r.body)
	}
	wantGoesTo(t, "step-up on a remembered session", b.get("/admin/settings/x"), http.StatusFound, "/_2fa/confirm?next="+url.QueryEscape("/admin/settings/x"))

	// The cookie alone, or with another user's password, gets nothing.
	thief := sameSiteBrowser(t, b, clock)
	thief.client.Jar.SetCookies(mustURL(t, b.base), []*http.Cookie{{Name: rememberCookie, Value: cookie.Value}})
	wantGoesTo(t, "the cookie alone", thief.get("/admin/"), http.StatusFound, "/_2fa/login?next="+url.QueryEscape("/admin/"))
	wantStatus(t, "the cookie with a wrong password", thief.login("alice", "wrong password", "/admin/"), http.StatusUnauthorized)
	if thief.passwordOnly("bob") {
		t.Fatal("alice's remember cookie spared bob the second factor")
	}
	_ = bobSecret

	// Forgotten on the account page.
	page := b.account()
	ids := browserIDPattern.FindAllStringSubmatch(page.body, -1)
	if len(ids) != 1 {
		t.Fatalf("the account page lists %d remembered browsers", len(ids))
	}
	wantGoesTo(t, "forget", b.post("/_2fa/account", url.Values{"csrf": {b.csrfFrom(page)}, "action": {"forget_browser"}, "browser": {ids[0][1]}}), http.StatusSeeOther, "/_2fa/account?done=forgotten")
	b.logout()
	if b.passwordOnly("alice") {
		t.Fatal("a forgotten browser was spared the second factor")
	}

	// Expiry.
	clock.Advance(time.Minute)
	b.confirmRemembering("alice", secret)
	clock.Advance(30*24*time.Hour + time.Second)
	if b.passwordOnly("alice") {
		t.Fatal("an expired remembered browser was spared the second factor")
	}

	// A new authenticator, from the account page.
	clock.Advance(time.Minute)
	b.confirmRemembering("alice", secret)
	page = b.get("/_2fa/account/authenticator")
	m := secretPattern.FindStringSubmatch(page.body)
	if m == nil {
		t.Fatalf("replace page: %d", page.status)
	}
	fresh, err := totpDecode(m[1])
	if err != nil {
		t.Fatal(err)
	}
	wantGoesTo(t, "new authenticator", b.post("/_2fa/account/authenticator", url.Values{"csrf": {b.csrfFrom(page)}, "current": {b.code("alice", secret)}, "code": {b.code("alice", fresh)}}), http.StatusSeeOther, "/_2fa/account?done=authenticator")
	secret = fresh
	b.logout()
	if b.passwordOnly("alice") {
		t.Fatal("a browser remembered with the old authenticator was spared the second factor")
	}

	// The operator's revoke and reset.
	for _, action := range []string{"revoke", "reset"} {
		clock.Advance(time.Minute)
		b.confirmRemembering("alice", secret)
		if status, body := adminCall(t, http.MethodPost, "/two_factor/users/alice/"+action, ""); status != http.StatusOK {
			t.Fatalf("%s: %d %s", action, status, body)
		}
		r := b.login("alice", testPassword, "/admin/")
		if r.status == http.StatusSeeOther && r.location() == "/admin/" {
			t.Fatalf("after %s the browser was spared the second factor", action)
		}
		if action == "reset" {
			break
		}
	}
}

// sameSiteBrowser is a new browser on b's site with b's clock.
func sameSiteBrowser(t *testing.T, b *browser, clock *fakeClock) *browser {
	nb := newBrowser(t)
	nb.base, nb.now = b.base, clock.Now
	return nb
}

// TestRememberCookieOnHTTPS: on HTTPS the remember cookie is a __Host-
// cookie, Secure, HttpOnly, for path /, so a sibling subdomain can
// neither read nor plant it.
func TestRememberCookieOnHTTPS(t *testing.T) {
	h := &TwoFactor{RememberDevice: caddy.Duration(30 * 24 * time.Hour)}
	h.applyDefaults()
	r := httptest.NewRequest(http.MethodGet, "https://example.com/_2fa/confirm", nil)
	if got := rememberCookieName(r); got != "__Host-two_factor_remember" {
		t.Fatalf("cookie name %q", got)
	}
	w := httptest.NewRecorder()
	h.setCookie(w, r, rememberCookieName(r), "token", int(time.Duration(h.RememberDevice)/time.Second))
	c := w.Result().Cookies()[0]
	if !c.Secure || !c.HttpOnly || c.Path != "/" || c.Domain != "" || c.MaxAge != 30*24*3600 {
		t.Fatalf("cookie %+v", c)
	}
}
