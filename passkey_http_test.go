package twofactor

import (
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/caddy-two-factor/caddy-two-factor/internal/softauthn"
)

// The passkey pages over HTTP, with a software authenticator answering
// the ceremonies (package softauthn): what the browser tests show a person
// doing, here with the answers an attacker could send.

// newKey returns a software authenticator for the test site's origin.
func newKey(t *testing.T) *softauthn.Authenticator {
	t.Helper()
	a := softauthn.New(t, -7)
	a.Origin, a.RPID = testBase(), "localhost"
	return a
}

// passkeyOptions posts a page's csrf (and fields) to an options URL and
// returns the answer.
func (b *browser) passkeyOptions(path, csrf string, fields ...string) response {
	b.t.Helper()
	form := url.Values{"csrf": {csrf}}
	for i := 0; i+1 < len(fields); i += 2 {
		form.Set(fields[i], fields[i+1])
	}
	return b.post(path, form, "Accept: application/json")
}

// mustOptions is passkeyOptions that must succeed.
func (b *browser) mustOptions(path, csrf string, fields ...string) []byte {
	b.t.Helper()
	resp := b.passkeyOptions(path, csrf, fields...)
	if resp.status != http.StatusOK || !strings.Contains(resp.body, `"publicKey"`) {
		b.t.Fatalf("POST %s: %d %s", path, resp.status, resp.body)
	}
	return []byte(resp.body)
}

// enrollPasskey signs user in for the first time with key, and returns the
// recovery codes.
func (b *browser) enrollPasskey(user string, key *softauthn.Authenticator) []string {
	b.t.Helper()
	if resp := b.login(user, testPassword, "/admin/"); resp.location() != "/_2fa/setup" {
		b.t.Fatalf("login of %s: %d to %q", user, resp.status, resp.location())
	}
	page := b.get("/_2fa/setup/passkey")
	csrf := b.csrfFrom(page)
	options := b.mustOptions("/_2fa/setup/passkey/options", csrf)
	done := b.post("/_2fa/setup/passkey", url.Values{"csrf": {csrf}, "credential": {string(key.Create(b.t, options))}, "name": {"Key of " + user}})
	if done.status != http.StatusOK {
		b.t.Fatalf("passkey setup of %s: %d\n%s", user, done.status, done.body)
	}
	var codes []string
	for _, m := range recoveryPattern.FindAllStringSubmatch(done.body, -1) {
		codes = append(codes, m[1])
	}
	return codes
}

// beginPasskeyConfirm gives user's password and begins confirming with a
// passkey; it returns the page's csrf and the options.
func (b *browser) beginPasskeyConfirm(user string) (string, []byte) {
	b.t.Helper()
	if resp := b.login(user, testPassword, "/admin/"); resp.location() != "/_2fa/confirm" {
		b.t.Fatalf("login of %s: %d to %q", user, resp.status, resp.location())
	}
	csrf := b.csrfFrom(b.get("/_2fa/confirm"))
	return csrf, b.mustOptions("/_2fa/confirm/passkey/options", csrf)
}

// confirmPasskey posts an answer to the confirm page.
func (b *browser) confirmPasskey(csrf string, answer []byte) response {
	b.t.Helper()
	return b.post("/_2fa/confirm/passkey", url.Values{"csrf": {csrf}, "credential": {string(answer)}})
}

// TestPasskeyOverHTTP enrols with a passkey, signs in with it, and checks
// the gate's method placeholder and the pages' policy.
func TestPasskeyOverHTTP(t *testing.T) {
	startSite(t, siteConfig{matcher: "/admin/*"})
	b, key := newBrowser(t), newKey(t)
	if codes := b.enrollPasskey("alice", key); len(codes) != DefaultRecoveryCodes {
		t.Fatalf("%d recovery codes, want %d", len(codes), DefaultRecoveryCodes)
	}
	if got := b.get("/admin/").body; got != "admin area: user=alice method=webauthn" {
		t.Fatalf("after setup: %q", got)
	}
	b = newBrowser(t)
	csrf, options := b.beginPasskeyConfirm("alice")
	page := b.get("/_2fa/confirm")
	if strings.Contains(page.body, `id="code"`) || !strings.Contains(page.body, `id="passkey-signin"`) || !strings.Contains(page.body, `id="recovery-code"`) {
		t.Errorf("confirm page of a passkey-only user: want the passkey button and a recovery code, no code form:\n%s", page.body)
	}
	if csp := page.header.Get("Content-Security-Policy"); !strings.Contains(csp, "connect-src 'self'") {
		t.Errorf("CSP %q lets passkey.js fetch nothing", csp)
	}
	if resp := b.confirmPasskey(csrf, key.Get(t, options)); resp.status != http.StatusSeeOther || resp.location() != "/admin/" {
		t.Fatalf("passkey confirmation: %d to %q\n%s", resp.status, resp.location(), resp.body)
	}
	if got := b.get("/admin/").body; got != "admin area: user=alice method=webauthn" {
		t.Fatalf("after confirmation: %q", got)
	}
}

// TestPasskeyRecoveryCode: a user with passkeys only signs in with a
// recovery code, once.
func TestPasskeyRecoveryCode(t *testing.T) {
	startSite(t, siteConfig{matcher: "/admin/*"})
	codes := newBrowser(t).enrollPasskey("bob", newKey(t))
	b := newBrowser(t)
	b.login("bob", testPassword, "/admin/")
	if resp := b.confirm(codes[0]); resp.status != http.StatusSeeOther {
		t.Fatalf("recovery code: %d\n%s", resp.status, resp.body)
	}
	if got := b.get("/admin/").body; got != "admin area: user=bob method=recovery" {
		t.Fatalf("after a recovery code: %q", got)
	}
	b = newBrowser(t)
	b.login("bob", testPassword, "/admin/")
	if resp := b.confirm(codes[0]); resp.status != http.StatusUnauthorized {
		t.Fatalf("a used recovery code: %d, want 401", resp.status)
	}
}

// TestPasskeyAttacks sends what an attacker could: an answer replayed, an
// answer by another user's passkey, wrong answers until the lock, the
// removal of a user's last factor, and passkey login while it is off.
func TestPasskeyAttacks(t *testing.T) {
	logFile := filepath.Join(t.TempDir(), "caddy.log")
	startSite(t, siteConfig{matcher: "/admin/*", extra: "max_attempts 3", logFile: logFile})
	carolKey, daveKey := newKey(t), newKey(t)
	newBrowser(t).enrollPasskey("carol", carolKey)
	newBrowser(t).enrollPasskey("dave", daveKey)

	t.Run("replayed answer", func(t *testing.T) {
		b := newBrowser(t)
		csrf, options := b.beginPasskeyConfirm("carol")
		answer := carolKey.Get(t, options)
		if resp := b.confirmPasskey(csrf, answer); resp.status != http.StatusSeeOther {
			t.Fatalf("first answer: %d", resp.status)
		}
		// The same answer again, in a new sign-in: without a ceremony,
		// then against a new challenge.
		b = newBrowser(t)
		csrf, _ = b.beginPasskeyConfirm("carol")
		if resp := b.confirmPasskey(csrf, answer); resp.status != http.StatusUnauthorized || !strings.Contains(resp.body, msgBadPasskey) {
			t.Fatalf("answer replayed against a new challenge: %d, want 401 and %q", resp.status, msgBadPasskey)
		}
		if resp := b.confirmPasskey(csrf, answer); resp.status != http.StatusBadRequest || !strings.Contains(resp.body, msgPasskeyExpired) {
			t.Fatalf("answer replayed with the ceremony spent: %d, want 400 and %q", resp.status, msgPasskeyExpired)
		}
		if got := b.get("/admin/").status; got == http.StatusOK {
			t.Fatal("a replayed answer signed in")
		}
	})

	t.Run("another user's passkey", func(t *testing.T) {
		b := newBrowser(t)
		csrf, options := b.beginPasskeyConfirm("carol")
		// Dave's key answers Carol's challenge: her ceremony allows only
		// her credentials.
		if resp := b.confirmPasskey(csrf, daveKey.Get(t, options)); resp.status != http.StatusUnauthorized {
			t.Fatalf("dave's passkey for carol: %d, want 401\n%s", resp.status, resp.body)
		}
	})

	t.Run("wrong answers lock the account", func(t *testing.T) {
		for i := range 3 {
			b := newBrowser(t)
			csrf, options := b.beginPasskeyConfirm("dave")
			bad := softauthn.New(t, -7) // dave's credential ID, another key
			bad.Origin, bad.RPID, bad.CredID, bad.Handle, bad.Counter = testBase(), "localhost", daveKey.CredID, daveKey.Handle, daveKey.Counter+10
			if resp := b.confirmPasskey(csrf, bad.Get(t, options)); resp.status != http.StatusUnauthorized {
				t.Fatalf("wrong signature %d: %d, want 401", i+1, resp.status)
			}
		}
		b := newBrowser(t)
		if resp := b.login("dave", testPassword, "/admin/"); resp.status != http.StatusTooManyRequests {
			t.Fatalf("password after 3 refused passkeys: %d, want 429", resp.status)
		}
	})

	t.Run("last factor", func(t *testing.T) {
		b := newBrowser(t)
		csrf, options := b.beginPasskeyConfirm("carol")
		b.confirmPasskey(csrf, carolKey.Get(t, options))
		page := b.account()
		id := passkeyIDPattern.FindStringSubmatch(page.body)
		if id == nil {
			t.Fatalf("no passkey on the account page:\n%s", page.body)
		}
		resp := b.post("/_2fa/account/passkey", url.Values{"csrf": {b.csrfFrom(page)}, "action": {"remove"}, "id": {id[1]}})
		if resp.status != http.StatusConflict || !strings.Contains(resp.body, msgLastFactor) {
			t.Fatalf("removing the last passkey: %d, want 409", resp.status)
		}
	})

	t.Run("cloned authenticator", func(t *testing.T) {
		b := newBrowser(t)
		csrf, options := b.beginPasskeyConfirm("carol")
		// A copy of carol's key that signed less often: its counter is
		// behind the one the server has seen.
		clone := *carolKey
		clone.Counter = 0
		if resp := b.confirmPasskey(csrf, clone.Get(t, options)); resp.status != http.StatusUnauthorized {
			t.Fatalf("a counter gone back: %d, want 401", resp.status)
		}
	})

	t.Run("audit log", func(t *testing.T) {
		log, err := os.ReadFile(logFile)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{`"reason":"passkey_unknown_credential"`, `"reason":"passkey_verification"`, `"reason":"passkey_cloned"`, `"method":"webauthn"`} {
			if !strings.Contains(string(log), want) {
				t.Errorf("the audit log has no %s", want)
			}
		}
	})

	t.Run("passkey login off", func(t *testing.T) {
		b := newBrowser(t)
		page := b.get("/_2fa/login")
		if strings.Contains(page.body, "passkey-login") {
			t.Error("the login page offers passkey login while it is off")
		}
		for _, path := range []string{"/_2fa/login/passkey/options", "/_2fa/login/passkey"} {
			if resp := b.passkeyOptions(path, b.csrfFrom(page)); resp.status != http.StatusNotFound {
				t.Errorf("POST %s: %d, want 404", path, resp.status)
			}
		}
	})
}

var passkeyIDPattern = regexp.MustCompile(`name="action" value="remove">\s*<input type="hidden" name="id" value="([A-Za-z0-9_-]+)"`)

// passkeyLogin begins and finishes a passkey login with key's answer.
func (b *browser) passkeyLogin(key *softauthn.Authenticator) response {
	b.t.Helper()
	csrf := b.csrfFrom(b.get("/_2fa/login"))
	options := b.mustOptions("/_2fa/login/passkey/options", csrf)
	return b.post("/_2fa/login/passkey", url.Values{"csrf": {csrf}, "next": {"/admin/"}, "credential": {string(key.Get(b.t, options))}})
}

// TestPasskeyLoginOverHTTP: with passkey_login, a passkey that verified
// the user signs in alone; one that did not is refused, and the session
// of an unfinished passkey login opens no other page.
func TestPasskeyLoginOverHTTP(t *testing.T) {
	startSite(t, siteConfig{matcher: "/admin/*", extra: passkeySite + "\n\t\tmax_attempts 3"})
	key := newKey(t)
	newBrowser(t).enrollPasskey("erin", key)

	b := newBrowser(t)
	if resp := b.passkeyLogin(key); resp.status != http.StatusSeeOther || resp.location() != "/admin/" {
		t.Fatalf("passkey login: %d to %q\n%s", resp.status, resp.location(), resp.body)
	}
	if got := b.get("/admin/").body; got != "admin area: user=erin method=webauthn" {
		t.Fatalf("after passkey login: %q", got)
	}

	b = newBrowser(t)
	key.UV = false
	for i := range 3 {
		if resp := b.passkeyLogin(key); resp.status != http.StatusUnauthorized {
			t.Fatalf("passkey login %d without user verification: %d, want 401", i+1, resp.status)
		}
	}
	for _, page := range []string{"/_2fa/setup", "/_2fa/confirm", "/_2fa/setup/passkey"} {
		if resp := b.get(page); resp.status != http.StatusSeeOther || resp.location() != "/_2fa/login" {
			t.Errorf("GET %s with an unfinished passkey login: %d to %q, want the login page", page, resp.status, resp.location())
		}
	}
	if got := b.get("/admin/").status; got == http.StatusOK {
		t.Fatal("a refused passkey login signed in")
	}
	// The refusals locked the account: a right passkey waits too.
	key.UV = true
	if resp := b.passkeyLogin(key); resp.status != http.StatusTooManyRequests || resp.header.Get("Retry-After") == "" {
		t.Fatalf("passkey login on a locked account: %d, want 429 with Retry-After", resp.status)
	}
}

// TestPasskeyBesideTOTP: a user with an app adds a passkey on the account
// page behind a code, confirms with either, and once the passkey is
// removed its answers are refused.
func TestPasskeyBesideTOTP(t *testing.T) {
	startSite(t, siteConfig{matcher: "/admin/*"})
	b := newBrowser(t)
	secret, _ := b.enroll("niaj")
	key := newKey(t)
	page := b.account()
	csrf := b.csrfFrom(page)
	if resp := b.passkeyOptions("/_2fa/account/passkey/options", csrf, "current", "000000"); resp.status != http.StatusUnauthorized {
		t.Fatalf("adding a passkey with a wrong code: %d, want 401\n%s", resp.status, resp.body)
	}
	options := b.mustOptions("/_2fa/account/passkey/options", csrf, "current", b.code("niaj", secret))
	resp := b.post("/_2fa/account/passkey", url.Values{"csrf": {csrf}, "action": {"add"}, "name": {"YubiKey"}, "credential": {string(key.Create(t, options))}})
	if resp.status != http.StatusSeeOther || resp.location() != "/_2fa/account?done=passkey-add" {
		t.Fatalf("adding a passkey: %d to %q\n%s", resp.status, resp.location(), resp.body)
	}
	page = b.account()
	if !strings.Contains(page.body, `class="passkey-name">YubiKey<`) {
		t.Fatalf("the account page does not list the new passkey:\n%s", page.body)
	}
	id := passkeyIDPattern.FindStringSubmatch(page.body)[1]
	for _, tc := range []struct {
		name   string
		status int
	}{
		{"", http.StatusBadRequest},
		{strings.Repeat("k", 65), http.StatusBadRequest},
		{"Blue\x07key", http.StatusBadRequest},
		{"Blue key", http.StatusSeeOther},
	} {
		resp := b.post("/_2fa/account/passkey", url.Values{"csrf": {csrf}, "action": {"rename"}, "id": {id}, "name": {tc.name}})
		if resp.status != tc.status {
			t.Errorf("renaming to %q: %d, want %d", tc.name, resp.status, tc.status)
		}
	}
	if resp := b.post("/_2fa/account/passkey", url.Values{"csrf": {csrf}, "action": {"rename"}, "id": {"bm8tc3VjaA"}, "name": {"x"}}); resp.status != http.StatusBadRequest {
		t.Errorf("renaming a passkey that is not the user's: %d, want 400", resp.status)
	}
	page = b.account()
	if !strings.Contains(page.body, `class="passkey-name">Blue key<`) {
		t.Fatalf("the account page does not show the new name:\n%s", page.body)
	}

	c := newBrowser(t)
	ccsrf, options := c.beginPasskeyConfirm("niaj")
	confirm := c.get("/_2fa/confirm")
	if !strings.Contains(confirm.body, `id="code"`) || !strings.Contains(confirm.body, `id="passkey-signin"`) {
		t.Errorf("the confirm page of a user with both does not offer both")
	}
	if resp := c.confirmPasskey(ccsrf, key.Get(t, options)); resp.status != http.StatusSeeOther {
		t.Fatalf("confirming with the added passkey: %d", resp.status)
	}

	// Removed (from the new session: the sign-in ended the old one), the
	// passkey signs in no more.
	page = c.account()
	id = passkeyIDPattern.FindStringSubmatch(page.body)[1]
	if resp := c.post("/_2fa/account/passkey", url.Values{"csrf": {c.csrfFrom(page)}, "action": {"remove"}, "id": {id}}); resp.location() != "/_2fa/account?done=passkey-remove" {
		t.Fatalf("removing the passkey: %d to %q", resp.status, resp.location())
	}
	d := newBrowser(t)
	d.login("niaj", testPassword, "/admin/")
	dcsrf := d.csrfFrom(d.get("/_2fa/confirm"))
	if resp := d.passkeyOptions("/_2fa/confirm/passkey/options", dcsrf); resp.status != http.StatusBadRequest {
		t.Errorf("passkey options of a user whose passkey is removed: %d, want 400", resp.status)
	}
	if resp := d.confirmPasskey(dcsrf, key.Get(t, options)); resp.status == http.StatusSeeOther {
		t.Fatal("a removed passkey signed in")
	}
}

// TestCommandPasskeys: `users` shows each user's factors, `remove-passkey`
// removes one passkey by name and ends the user's sessions, and `reset`
// drops passkeys as it drops the app, through a running Caddy.
func TestCommandPasskeys(t *testing.T) {
	startSite(t, siteConfig{matcher: "/admin/*"})
	run := cliFor(t)
	heidi, ivan := newBrowser(t), newBrowser(t)
	heidi.enrollPasskey("heidi", newKey(t))
	ivan.enrollPasskey("ivan", newKey(t))
	newBrowser(t).enroll("judy")

	out := run("", "users").mustSucceed(t).stdout
	for _, want := range []string{"FACTORS", `passkey "Key of heidi"`, `passkey "Key of ivan"`} {
		if !strings.Contains(out, want) {
			t.Errorf("users does not show %s:\n%s", want, out)
		}
	}
	if line := lineWith(out, "judy"); !strings.Contains(line, "totp") || strings.Contains(line, "passkey") {
		t.Errorf("users shows judy's factors as %q", line)
	}

	if r := run("", "remove-passkey", "heidi", "Key of nobody", "--json"); !r.failed || !strings.Contains(r.stdout, codeUnknownPasskey) {
		t.Errorf("remove-passkey of an unknown passkey: failed %v, %s", r.failed, r.stdout)
	}
	if out := run("", "remove-passkey", "heidi", "Key of heidi").mustSucceed(t).stdout; !strings.Contains(out, "1 session ended") {
		t.Errorf("remove-passkey: %s", out)
	}
	if got := heidi.get("/admin/"); got.status == http.StatusOK {
		t.Error("heidi's session outlived the removal of her passkey")
	}
	if resp := newBrowser(t).login("heidi", testPassword, "/admin/"); resp.location() != "/_2fa/setup" {
		t.Errorf("heidi without her only passkey signs in to %q, want setup", resp.location())
	}

	run("", "reset", "ivan").mustSucceed(t)
	if line := lineWith(run("", "users").mustSucceed(t).stdout, "ivan"); strings.Contains(line, "passkey") {
		t.Errorf("ivan keeps a passkey after reset: %q", line)
	}
	if resp := newBrowser(t).login("ivan", testPassword, "/admin/"); resp.location() != "/_2fa/setup" {
		t.Errorf("ivan after reset signs in to %q, want setup", resp.location())
	}
}

// lineWith returns the first line of s that contains sub.
func lineWith(s, sub string) string {
	for line := range strings.Lines(s) {
		if strings.Contains(line, sub) {
			return line
		}
	}
	return ""
}

// TestPasskeyFactors: factors limits what users enroll. With webauthn
// only, setup goes to the passkey page and an app is refused; with totp
// only, the passkey pages are not offered.
func TestPasskeyFactors(t *testing.T) {
	startSite(t, siteConfig{matcher: "/admin/*", extra: "factors webauthn"})
	b := newBrowser(t)
	b.login("alice", testPassword, "/admin/")
	if resp := b.get("/_2fa/setup"); resp.status != http.StatusSeeOther || resp.location() != "/_2fa/setup/passkey" {
		t.Errorf("setup with factors webauthn: %d to %q, want the passkey page", resp.status, resp.location())
	}
	page := b.get("/_2fa/setup/passkey")
	if strings.Contains(page.body, `id="use-app"`) {
		t.Error("the passkey page offers an app while factors leave it out")
	}
	if resp := b.post("/_2fa/setup", url.Values{"csrf": {b.csrfFrom(page)}, "code": {"123456"}}); resp.location() != "/_2fa/setup/passkey" {
		t.Errorf("an app's code with factors webauthn: %d to %q, want the passkey page", resp.status, resp.location())
	}

	startSite(t, siteConfig{matcher: "/admin/*", extra: "factors totp"})
	b = newBrowser(t)
	b.login("bob", testPassword, "/admin/")
	page = b.get("/_2fa/setup")
	if strings.Contains(page.body, "use-passkey") {
		t.Error("the setup page offers passkeys while factors leave them out")
	}
	if resp := b.passkeyOptions("/_2fa/setup/passkey/options", b.csrfFrom(page)); resp.status != http.StatusNotFound {
		t.Errorf("passkey setup options with factors totp: %d, want 404", resp.status)
	}
}

// TestPasskeyPagesSpeakTheBrowsersLanguage: the passkey pages, the words
// passkey.js shows and the options' JSON errors follow Accept-Language.
func TestPasskeyPagesSpeakTheBrowsersLanguage(t *testing.T) {
	startSite(t, siteConfig{matcher: "/admin/*", extra: "passkey_login\n\t\twebauthn {\n\t\t\tuser_verification required\n\t\t}"})
	b := newBrowser(t)
	de := "Accept-Language: de"
	if login := b.get("/_2fa/login", de); !strings.Contains(login.body, "Mit einem Passkey anmelden") || !strings.Contains(login.body, `data-cancelled="Die Anfrage wurde abgebrochen`) {
		t.Errorf("German login page lacks the passkey button's or passkey.js's words:\n%s", login.body)
	}
	if resp := b.login("alice", testPassword, "/admin/"); resp.location() != "/_2fa/setup" {
		t.Fatalf("login: %d to %q", resp.status, resp.location())
	}
	page := b.get("/_2fa/setup/passkey", "Accept-Language: fr")
	if !strings.Contains(page.body, "Configurer une clé d’accès ou une clé de sécurité") || !strings.Contains(page.body, "<title>Configurer une clé d’accès") {
		t.Errorf("French passkey setup page:\n%s", page.body)
	}
	resp := b.post("/_2fa/setup/passkey/options", url.Values{"csrf": {"forged"}}, "Accept: application/json", de)
	if resp.status != http.StatusForbidden || !strings.Contains(resp.body, "Dieses Formular ist abgelaufen") {
		t.Errorf("a forged options request in German: %d %s", resp.status, resp.body)
	}
}
