package twofactor

import (
	"encoding/json"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-two-factor/caddy-two-factor/store"
)

// The gate's policies on a real Caddy, with a clock the test moves (see
// testClocks): step-up rules and re-checks.

// clockedSite starts a test site whose handlers read clock, and returns
// it with a browser that computes its codes for that clock.
func clockedSite(t *testing.T, cfg siteConfig) (*fakeClock, *browser) {
	t.Helper()
	if cfg.db == "" {
		cfg.db = filepath.Join(t.TempDir(), "two_factor.db")
	}
	// The real clock's date: the store's sweeper ends sessions by it.
	clock := &fakeClock{now: time.Now().UTC()}
	testClocks.Store(cfg.db, clock.Now)
	t.Cleanup(func() { testClocks.Delete(cfg.db) })
	startSite(t, cfg)
	b := newBrowser(t)
	b.now = clock.Now
	return clock, b
}

// getAPI requests path as a client that is no browser.
func (b *browser) getAPI(path string) response {
	b.t.Helper()
	return b.get(path, "Accept: */*")
}

// stepUpPage asks for the confirm page where a policy sent the browser
// and checks that it asks for the second factor only.
func (b *browser) stepUpPage(next string) response {
	b.t.Helper()
	page := b.get("/_2fa/confirm?next=" + url.QueryEscape(next))
	if page.status != http.StatusOK {
		b.t.Fatalf("confirm page of a signed-in session: %d\n%s", page.status, page.body)
	}
	if strings.Contains(page.body, `name="password"`) {
		b.t.Fatal("the confirm page of a signed-in session asks for the password")
	}
	if !strings.Contains(page.body, `name="next" value="`+next+`"`) || !strings.Contains(page.body, `class="notice"`) {
		b.t.Fatalf("confirm page does not carry next %q or the step-up notice:\n%s", next, page.body)
	}
	return page
}

// reconfirm gives a code on the confirm page of a signed-in session.
func (b *browser) reconfirm(page response, next, code string) response {
	b.t.Helper()
	return b.post("/_2fa/confirm", url.Values{"csrf": {b.csrfFrom(page)}, "next": {next}, "code": {code}})
}

func wantGoesTo(t *testing.T, what string, r response, status int, location string) {
	t.Helper()
	if r.status != status || r.location() != location {
		t.Fatalf("%s: got %d to %q, want %d to %q\n%s", what, r.status, r.location(), status, location, r.body)
	}
}

func wantStatus(t *testing.T, what string, r response, status int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("%s: got %d, want %d\n%s", what, r.status, status, r.body)
	}
}

// TestStepUpOnRealCaddy: a listed path needs a second factor given within
// the max age; a stale one is refused there only (a browser goes to the
// confirm page, other clients get 401); the confirm page asks for the
// factor only, rotates the session token and returns to the request.
func TestStepUpOnRealCaddy(t *testing.T) {
	clock, b := clockedSite(t, siteConfig{matcher: "/admin/*", extra: "step_up 5m /admin/settings/* /admin/users/*\n\t\tstep_up 1h /admin/keys"})
	secret, _ := b.enroll("alice")

	wantStatus(t, "listed path right after sign-in", b.get("/admin/settings/mail"), http.StatusOK)
	clock.Advance(5*time.Minute + time.Second)
	wantStatus(t, "unlisted path with a stale factor", b.get("/admin/dashboard"), http.StatusOK)
	wantStatus(t, "path under the longer rule", b.get("/admin/keys"), http.StatusOK)
	const next = "/admin/settings/mail?tab=2"
	wantGoesTo(t, "listed path with a stale factor", b.get(next), http.StatusFound, "/_2fa/confirm?next="+url.QueryEscape(next))
	wantGoesTo(t, "listed path in other case", b.get("/ADMIN/Users/1"), http.StatusFound, "/_2fa/confirm?next="+url.QueryEscape("/ADMIN/Users/1"))
	wantStatus(t, "listed path from a client that is no browser", b.getAPI("/admin/users/1"), http.StatusUnauthorized)
	if r := b.getAPI("/admin/users/1"); strings.Contains(r.body, "admin area") {
		t.Fatal("a refused step-up let the route answer")
	}

	// A wrong code changes nothing: the page again, the session as it was.
	page := b.stepUpPage(next)
	wantStatus(t, "wrong code", b.reconfirm(page, next, "000000"), http.StatusUnauthorized)
	wantStatus(t, "unlisted path after a wrong code", b.get("/admin/dashboard"), http.StatusOK)

	old := b.sessionToken()
	page = b.stepUpPage(next)
	wantGoesTo(t, "fresh factor", b.reconfirm(page, next, b.code("alice", secret)), http.StatusSeeOther, next)
	if b.sessionToken() == old || b.sessionToken() == "" {
		t.Fatal("the confirm page did not rotate the session token")
	}
	r := b.get(next)
	wantStatus(t, "listed path after a fresh factor", r, http.StatusOK)
	if !strings.Contains(r.body, "method=totp") {
		t.Errorf("placeholders after step-up: %s", r.body)
	}

	// The token from before the factor names no session any more.
	stale := newBrowser(t)
	stale.client.Jar.SetCookies(mustURL(t, b.base), []*http.Cookie{{Name: sessionCookie, Value: old}})
	wantGoesTo(t, "the old token", stale.get("/admin/dashboard"), http.StatusFound, "/_2fa/login?next="+url.QueryEscape("/admin/dashboard"))

	// The max age counts from the new factor.
	clock.Advance(5*time.Minute - time.Second)
	wantStatus(t, "just within the max age", b.get(next), http.StatusOK)
	clock.Advance(2 * time.Second)
	wantStatus(t, "past it again", b.getAPI(next), http.StatusUnauthorized)

	// Without a session, the confirm page sends the browser to sign in,
	// to come back to next.
	wantGoesTo(t, "confirm page without a session", newBrowser(t).get("/_2fa/confirm?next="+url.QueryEscape(next)), http.StatusSeeOther, "/_2fa/login?next="+url.QueryEscape(next))
	// next is checked as at sign-in: never another site.
	page = b.stepUpPage("/admin/x")
	wantGoesTo(t, "next to another site", b.reconfirm(page, "https://evil.example/", b.code("alice", secret)), http.StatusSeeOther, "/")
}

// TestRecheckOnRealCaddy: each second factor draws a deadline between min
// and max; after it, a guarded request asks for the factor again, and
// giving it draws the next. Idle and absolute limits still apply.
func TestRecheckOnRealCaddy(t *testing.T) {
	clock, b := clockedSite(t, siteConfig{matcher: "/admin/*", extra: "recheck 1h 2h\n\t\tsession_idle 90m\n\t\tsession_lifetime 5h"})
	secret, _ := b.enroll("bob")

	clock.Advance(time.Hour - time.Second)
	wantStatus(t, "before the minimum", b.get("/admin/"), http.StatusOK)
	clock.Advance(time.Hour + 2*time.Second)
	wantGoesTo(t, "after the maximum", b.get("/admin/x"), http.StatusFound, "/_2fa/confirm?next="+url.QueryEscape("/admin/x"))
	wantStatus(t, "after the maximum, no browser", b.getAPI("/admin/x"), http.StatusUnauthorized)
	wantStatus(t, "an unguarded path", b.get("/elsewhere"), http.StatusOK)

	page := b.stepUpPage("/admin/x")
	wantGoesTo(t, "re-check", b.reconfirm(page, "/admin/x", b.code("bob", secret)), http.StatusSeeOther, "/admin/x")
	wantStatus(t, "after the re-check", b.get("/admin/x"), http.StatusOK)
	clock.Advance(time.Hour - time.Second)
	wantStatus(t, "before the next minimum", b.get("/admin/"), http.StatusOK)
	clock.Advance(time.Hour + 2*time.Second)
	wantStatus(t, "after the next maximum", b.getAPI("/admin/"), http.StatusUnauthorized)

	// The idle limit still applies on top: past it, sign in again.
	page = b.stepUpPage("/admin/")
	wantGoesTo(t, "second re-check", b.reconfirm(page, "/admin/", b.code("bob", secret)), http.StatusSeeOther, "/admin/")
	clock.Advance(91 * time.Minute)
	wantGoesTo(t, "idle past session_idle", b.get("/admin/"), http.StatusFound, "/_2fa/login?next="+url.QueryEscape("/admin/"))
}

// TestRecheckDeadlinesAreDrawn: the deadlines of many sign-ins spread over
// [min, max], not all at one end.
func TestRecheckDeadlinesAreDrawn(t *testing.T) {
	s := newClockSite(t, func(h *TwoFactor) {
		h.Recheck = &RecheckRule{Min: caddy.Duration(time.Hour), Max: caddy.Duration(2 * time.Hour)}
		h.SessionIdle = caddy.Duration(3 * time.Hour)
		h.ConcurrentSessions = true
	})
	var early, late int
	for _, user := range testUsers[:8] {
		b := s.browser(t)
		b.enroll(user)
		key, _ := store.ParseSessionToken(b.sessionToken())
		sess, _, err := s.h.signin.SignedIn(key)
		if err != nil {
			t.Fatal(err)
		}
		d := sess.RecheckAt.Sub(sess.ConfirmedAt)
		if d < time.Hour || d > 2*time.Hour {
			t.Fatalf("%s: deadline %v after the factor", user, d)
		}
		if d < 90*time.Minute {
			early++
		} else {
			late++
		}
	}
	if early == 0 || late == 0 {
		t.Errorf("8 deadlines all in one half of [1h, 2h]: %d early, %d late", early, late)
	}
}

// TestPolicyJSONIsChecked: the JSON form is checked as the Caddyfile is.
func TestPolicyJSONIsChecked(t *testing.T) {
	for name, tc := range map[string]struct {
		h    TwoFactor
		want string
	}{
		"recheck min above max":       {TwoFactor{Recheck: &RecheckRule{Min: caddy.Duration(2 * time.Hour), Max: caddy.Duration(time.Hour)}}, "the minimum is above the maximum"},
		"recheck without values":      {TwoFactor{Recheck: &RecheckRule{}}, "recheck needs min and max"},
		"step_up without paths":       {TwoFactor{StepUp: []StepUpRule{{MaxAge: caddy.Duration(time.Minute)}}}, "at least one path pattern"},
		"step_up bad pattern":         {TwoFactor{StepUp: []StepUpRule{{MaxAge: caddy.Duration(time.Minute), Paths: []string{"admin"}}}}, "must start with / or *"},
		"app_tokens bad pattern":      {TwoFactor{AppTokens: []string{"/api/[x"}}, "app_tokens: path pattern"},
		"user_from not a placeholder": {TwoFactor{UserFrom: "{http.auth.user.id"}, "user_from needs one placeholder"},
		"step_up no max age":          {TwoFactor{StepUp: []StepUpRule{{Paths: []string{"/admin/*"}}}}, "must be positive"},
	} {
		t.Run(name, func(t *testing.T) {
			h := tc.h
			h.applyDefaults()
			if err := h.provisionPolicies(); err != nil {
				t.Fatal(err)
			}
			if err := h.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func mustURL(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestStepUpSeesTheRequestAsSent: a rewrite before the gate moves neither
// a listed path out of its rule nor an unlisted one past a rule it is
// rewritten into, as with the gate's own matcher.
func TestStepUpSeesTheRequestAsSent(t *testing.T) {
	clock, b := clockedSite(t, siteConfig{
		matcher: "/admin/*",
		extra:   "step_up 5m /admin/settings/*",
		routes: `rewrite /admin/settings/* /admin/app.php
	rewrite /admin/s /admin/settings/mail
	respond "admin area"`,
	})
	b.enroll("carol")
	clock.Advance(6 * time.Minute)
	wantStatus(t, "a listed path rewritten out of the rule", b.getAPI("/admin/settings/mail"), http.StatusUnauthorized)
	wantStatus(t, "an unlisted path rewritten into the rule", b.getAPI("/admin/s"), http.StatusUnauthorized)
	wantStatus(t, "an unlisted path", b.getAPI("/admin/app.php"), http.StatusOK)
}

// TestPolicyJSONForm: the JSON of docs/policies.md loads into the fields
// the Caddyfile sets.
func TestPolicyJSONForm(t *testing.T) {
	const doc = `{
		"handler": "two_factor",
		"step_up": [{"max_age": "5m", "paths": ["/admin/settings/*", "/admin/users/*"]}],
		"recheck": {"min": "3h", "max": "6h"},
		"remember_device": "30d",
		"user_from": "{http.auth.user.id}",
		"app_tokens": ["/api/*", "/dav/*"]
	}`
	var h TwoFactor
	if err := json.Unmarshal([]byte(doc), &h); err != nil {
		t.Fatal(err)
	}
	if len(h.StepUp) != 1 || time.Duration(h.StepUp[0].MaxAge) != 5*time.Minute || len(h.StepUp[0].Paths) != 2 ||
		h.Recheck == nil || time.Duration(h.Recheck.Min) != 3*time.Hour || time.Duration(h.Recheck.Max) != 6*time.Hour ||
		time.Duration(h.RememberDevice) != 30*24*time.Hour || h.UserFrom != "{http.auth.user.id}" || len(h.AppTokens) != 2 {
		t.Fatalf("loaded %+v", h)
	}
	h.applyDefaults()
	if err := h.provisionPolicies(); err != nil {
		t.Fatal(err)
	}
	if err := h.Validate(); err != nil {
		t.Fatal(err)
	}
}
