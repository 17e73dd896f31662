package twofactor

import (
	"net/http"
	"strings"
	"testing"

	cdpwebauthn "github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"

	"github.com/caddy-two-factor/caddy-two-factor/internal/redistest"
)

// passkeySite is the two_factor block of the passkey browser tests:
// passkey login on, which needs user verification.
const passkeySite = "passkey_login\n\t\twebauthn {\n\t\t\tuser_verification required\n\t\t}"

// addAuthenticator enables WebAuthn in the tab and adds a virtual
// authenticator: CTAP 2.1 over transport (Chromium takes one internal
// one; a second is a USB key), with resident keys, user verification that
// passes, and presence given at once. It returns the authenticator's ID.
func (c *tab) addAuthenticator(transport cdpwebauthn.AuthenticatorTransport) cdpwebauthn.AuthenticatorID {
	c.t.Helper()
	if _, err := chromedp.Call(c.ctx, cdpwebauthn.Enable, cdpwebauthn.EnableParams{}); err != nil {
		c.t.Fatal(err)
	}
	added, err := chromedp.Call(c.ctx, cdpwebauthn.AddVirtualAuthenticator, cdpwebauthn.AddVirtualAuthenticatorParams{
		Options: &cdpwebauthn.VirtualAuthenticatorOptions{
			Protocol:                    cdpwebauthn.AuthenticatorProtocolCtap2,
			Ctap2version:                cdpwebauthn.Ctap2versionCtap21,
			Transport:                   transport,
			HasResidentKey:              true,
			HasUserVerification:         true,
			IsUserVerified:              true,
			AutomaticPresenceSimulation: true,
		},
	})
	if err != nil {
		c.t.Fatal(err)
	}
	return added.AuthenticatorID
}

// removeAuthenticator takes an authenticator away, as a lost key.
func (c *tab) removeAuthenticator(id cdpwebauthn.AuthenticatorID) {
	c.t.Helper()
	if _, err := chromedp.Call(c.ctx, cdpwebauthn.RemoveVirtualAuthenticator, cdpwebauthn.RemoveVirtualAuthenticatorParams{AuthenticatorID: id}); err != nil {
		c.t.Fatal(err)
	}
}

// passkeyButton clicks a passkey button once passkey.js has enabled it;
// the ceremony ends in a form submission with status wantStatus.
func (c *tab) passkeyButton(id string, wantStatus int64) {
	c.t.Helper()
	c.load(wantStatus, chromedp.Click(chromedp.ID(id), chromedp.NodeEnabled))
}

// signOut signs the tab out.
func (c *tab) signOut() {
	c.t.Helper()
	c.open("/_2fa/logout", http.StatusOK)
	c.load(http.StatusOK, chromedp.Click(chromedp.CSS(`form[action$="/logout"] button`)))
	c.expectPage("Signed out", "")
}

// passkeyNames returns the names of the passkeys on the account page.
func (c *tab) passkeyNames() []string {
	c.t.Helper()
	return run(c, chromedp.Evaluate[[]string](`[...document.querySelectorAll(".passkey .passkey-name")].map(e => e.textContent)`))
}

// TestBrowserPasskeys is a person's journey with passkeys, in headless
// Chromium with a virtual authenticator, through Caddy: enrol with a
// passkey at the first sign-in (recovery codes shown once), confirm a
// later sign-in with it (no code form offered), add a second passkey on
// the account page behind a passkey step-up, remove one (the last is
// refused), add an authenticator app beside them, and sign in with a
// passkey alone. It runs on bbolt and on Redis.
func TestBrowserPasskeys(t *testing.T) {
	for _, backend := range []string{"bolt", "redis"} {
		t.Run(backend, func(t *testing.T) {
			c := newTab(t, true)
			cfg := siteConfig{matcher: "/admin/*", extra: passkeySite}
			if backend == "redis" {
				cfg.store = redisStoreBlock(redistest.Start(t), "pk:")
				t.Cleanup(func() { stopSites(t) }) // before Redis stops
			}
			startSite(t, cfg)
			first := c.addAuthenticator(cdpwebauthn.AuthenticatorTransportInternal)
			user := "grace"

			// Enrolment with a passkey.
			c.open("/admin/", http.StatusOK)
			c.signIn(user, testPassword, http.StatusOK)
			c.expectPage("Set up two-factor sign-in", "")
			c.load(http.StatusOK, chromedp.Click(chromedp.ID("use-passkey")))
			c.expectPage("Set up a passkey", "")
			c.typeInto("passkey-name", "Laptop")
			c.passkeyButton("passkey-register", http.StatusOK)
			c.expectPage("Save your recovery codes", "")
			codes := strings.Fields(c.text("#recovery-codes"))
			if len(codes) != DefaultRecoveryCodes {
				t.Fatalf("%d recovery codes shown, want %d", len(codes), DefaultRecoveryCodes)
			}
			c.do(chromedp.Click(chromedp.ID("saved")))
			c.load(http.StatusOK, chromedp.Click(chromedp.ID("continue")))
			c.expectProtected(user, "webauthn")

			// A later sign-in is confirmed with the passkey; there is no
			// code form, but a recovery code is still possible.
			c.signOut()
			c.open("/admin/", http.StatusOK)
			c.signIn(user, testPassword, http.StatusOK)
			c.expectPage("Two-factor sign-in", "")
			if n := run(c, chromedp.Evaluate[int](`document.querySelectorAll("#code").length`)); n != 0 {
				t.Error("the confirm page of a passkey-only user offers a code form")
			}
			if n := run(c, chromedp.Evaluate[int](`document.querySelectorAll("#recovery-code").length`)); n != 1 {
				t.Error("the confirm page of a passkey-only user offers no recovery code")
			}
			c.passkeyButton("passkey-signin", http.StatusOK)
			c.expectProtected(user, "webauthn")

			// Passkey login: no password, no code.
			c.signOut()
			c.open("/admin/", http.StatusOK)
			c.passkeyButton("passkey-login", http.StatusOK)
			c.expectProtected(user, "webauthn")

			// The last factor cannot be removed.
			c.open("/_2fa/account", http.StatusOK)
			if got := c.passkeyNames(); len(got) != 1 || got[0] != "Laptop" {
				t.Fatalf("account page lists passkeys %q, want [Laptop]", got)
			}
			c.load(http.StatusConflict, chromedp.Click(chromedp.CSS(`button[data-remove="Laptop"]`)))
			c.expectPage("Your account", msgLastFactor)

			// New recovery codes, confirmed with the passkey.
			c.passkeyButton("passkey-verify", http.StatusOK)
			c.expectPage("Your new recovery codes", "")
			if fresh := strings.Fields(c.text("#recovery-codes")); len(fresh) != DefaultRecoveryCodes || fresh[0] == codes[0] {
				t.Fatalf("new recovery codes %q", fresh)
			}
			c.open("/_2fa/account", http.StatusOK)

			// A second authenticator, added behind a step-up with the first.
			second := c.addAuthenticator(cdpwebauthn.AuthenticatorTransportUsb)
			c.typeInto("new-passkey-name", "Phone")
			c.passkeyButton("passkey-add", http.StatusOK)
			c.expectPage("Your account", "")
			if got := c.passkeyNames(); len(got) != 2 || got[1] != "Phone" {
				t.Fatalf("account page lists passkeys %q, want [Laptop Phone]", got)
			}

			// The first key is lost: removed from the browser and the account.
			c.removeAuthenticator(first)
			c.load(http.StatusOK, chromedp.Click(chromedp.CSS(`button[data-remove="Laptop"]`)))
			c.expectPage("Your account", "")
			if got := c.passkeyNames(); len(got) != 1 || got[0] != "Phone" {
				t.Fatalf("account page lists passkeys %q after removing Laptop, want [Phone]", got)
			}

			// An authenticator app beside the passkey, confirmed with it.
			c.load(http.StatusOK, chromedp.Click(chromedp.ID("replace-authenticator")))
			c.expectPage("Add an authenticator app", "")
			secret := c.readSecret()
			c.typeInto("code", newBrowser(t).code(user, secret))
			c.passkeyButton("passkey-verify", http.StatusOK)
			c.expectPage("Your account", "")
			if !c.visible("#passkey-current") {
				t.Error("the account page of a user with an app asks no code to add a passkey")
			}

			// The key fails to verify the user: the browser refuses, the
			// page says so and stays, and nobody is signed in.
			c.signOut()
			if _, err := chromedp.Call(c.ctx, cdpwebauthn.SetUserVerified, cdpwebauthn.SetUserVerifiedParams{AuthenticatorID: second, IsUserVerified: false}); err != nil {
				t.Fatal(err)
			}
			c.open("/admin/", http.StatusOK)
			c.do(chromedp.Click(chromedp.ID("passkey-login"), chromedp.NodeEnabled))
			if alert := run(c, chromedp.Text(chromedp.CSS("[data-passkey-error]"), chromedp.NodeVisible)); !strings.Contains(alert, "cancelled or timed out") {
				t.Errorf("alert after a failed user verification: %q", alert)
			}
			c.expectPage("Sign in", "")

		})
	}
}

// TestBrowserPasskeyWithoutJavaScript: without JavaScript the passkey
// button stays disabled and says why, and the app's setup still works.
func TestBrowserPasskeyWithoutJavaScript(t *testing.T) {
	c := newTab(t, false)
	startSite(t, siteConfig{matcher: "/admin/*"})
	c.open("/admin/", http.StatusOK)
	c.signIn("heidi", testPassword, http.StatusOK)
	c.load(http.StatusOK, chromedp.Click(chromedp.ID("use-passkey")))
	c.expectPage("Set up a passkey", "")
	if !c.visible("[data-passkey-nojs]") {
		t.Error("the passkey page does not say it needs JavaScript")
	}
	if enabled := run(c, chromedp.Evaluate[bool](`!document.getElementById("passkey-register").disabled`)); enabled {
		t.Error("the passkey button is enabled without JavaScript")
	}
	c.load(http.StatusOK, chromedp.Click(chromedp.ID("use-app")))
	c.expectPage("Set up two-factor sign-in", "")
}
