package twofactor

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// The policies with passkeys, on a real Caddy with a clock the test moves.

// TestStepUpTakesAPasskey: the confirm page that a step-up rule sends a
// passkey user to offers their passkey, and an answer to its ceremony
// satisfies the rule as a code does: back to the request, method webauthn.
func TestStepUpTakesAPasskey(t *testing.T) {
	clock, b := clockedSite(t, siteConfig{matcher: "/admin/*", extra: "step_up 5m /admin/settings/*"})
	key := newKey(t)
	b.enrollPasskey("alice", key)
	clock.Advance(10 * time.Minute)

	const target = "/admin/settings/x"
	wantGoesTo(t, "a stale factor", b.get(target), http.StatusFound, "/_2fa/confirm?next="+url.QueryEscape(target))
	page := b.get("/_2fa/confirm?next=" + url.QueryEscape(target))
	if !strings.Contains(page.body, `action="/_2fa/confirm/passkey"`) || !strings.Contains(page.body, `name="next" value="`+target+`"`) {
		t.Fatalf("the step-up page offers no passkey that returns to %s:\n%s", target, page.body)
	}
	csrf := b.csrfFrom(page)
	options := b.mustOptions("/_2fa/confirm/passkey/options", csrf)
	done := b.post("/_2fa/confirm/passkey", url.Values{"csrf": {csrf}, "credential": {string(key.Get(t, options))}, "next": {target}})
	wantGoesTo(t, "the passkey", done, http.StatusSeeOther, target)
	if r := b.get(target); r.status != http.StatusOK || !strings.Contains(r.body, "method=webauthn") {
		t.Fatalf("after the passkey: %d %q", r.status, r.body)
	}
}

// TestRememberedBrowserEndsWithANewPasskey: a passkey added from the
// account page changes the user's factors, so a browser remembered before
// asks for the second factor again.
func TestRememberedBrowserEndsWithANewPasskey(t *testing.T) {
	clock, b := clockedSite(t, siteConfig{matcher: "/admin/*", extra: "remember_device 30d"})
	secret, _ := b.enroll("bob")
	b.logout()
	b.login("bob", testPassword, "/admin/")
	b.confirmRemembering("bob", secret)
	b.logout()
	if !b.passwordOnly("bob") {
		t.Fatal("the remembered browser was asked for a code")
	}

	clock.Advance(2 * time.Minute) // fresh TOTP steps
	page := b.account()
	csrf := b.csrfFrom(page)
	options := b.mustOptions("/_2fa/account/passkey/options", csrf, "current", b.code("bob", secret))
	added := b.post("/_2fa/account/passkey", url.Values{"csrf": {csrf}, "action": {"add"}, "name": {"Desk key"}, "credential": {string(newKey(t).Create(t, options))}})
	if added.location() != "/_2fa/account?done=passkey-add" {
		t.Fatalf("adding a passkey: %d to %q\n%s", added.status, added.location(), added.body)
	}
	b.logout()
	if b.passwordOnly("bob") {
		t.Fatal("a browser remembered before a passkey was added is still spared the second factor")
	}
}
