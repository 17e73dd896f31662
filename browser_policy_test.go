package twofactor

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// checkPage checks that every field of the page has a label and that it
// fits a phone's width, and with TWO_FACTOR_SCREENSHOTS=1 writes its
// screenshot (desktop, light) to docs/screenshots/<name>.png.
func (c *tab) checkPage(name string) {
	c.t.Helper()
	for _, bad := range run(c, chromedp.Evaluate[[]string](unlabelledJS)) {
		c.t.Errorf("%s: %s has no label or alt text", name, bad)
	}
	c.do(chromedp.EmulateViewport(390, 844))
	if wide := run(c, chromedp.Evaluate[int](`document.documentElement.scrollWidth - window.innerWidth`)); wide > 0 {
		c.t.Errorf("%s: the page is %d px wider than a 390 px screen", name, wide)
	}
	c.do(chromedp.EmulateViewport(1280, 900))
	if os.Getenv("TWO_FACTOR_SCREENSHOTS") != "1" {
		return
	}
	png := run(c, chromedp.FullScreenshot(100))
	if err := os.WriteFile(filepath.Join(screenshotDir, name+".png"), png, 0o644); err != nil {
		c.t.Fatal(err)
	}
}

// TestBrowserRememberAndStepUp drives the remember checkbox and the
// step-up page in headless Chromium, with JavaScript (the code field
// sends its form by itself, so the box is ticked first): a remembered
// browser signs in with the password alone, and a step-up path then asks
// for the code only, and returns to the page asked for.
func TestBrowserRememberAndStepUp(t *testing.T) {
	c := newTab(t, true)
	clock, codes := clockedSite(t, siteConfig{matcher: "/admin/*", extra: "step_up 5m /admin/settings/*\n\t\tremember_device 30d\n\t\tapp_tokens /api/*"})
	const user = "judy"

	c.open("/admin/", http.StatusOK)
	c.signIn(user, testPassword, http.StatusOK)
	c.expectPage("Set up two-factor sign-in", "")
	secret := c.readSecret()
	c.enterCode(codes.code(user, secret), http.StatusOK)
	c.do(chromedp.Click(chromedp.ID("saved")))
	c.load(http.StatusOK, chromedp.Click(chromedp.ID("continue")))
	c.expectProtected(user, "setup")

	signOut := func() {
		c.open("/_2fa/logout", http.StatusOK)
		c.load(http.StatusOK, chromedp.Click(chromedp.CSS(`form[action$="/logout"] button`)))
	}
	signOut()
	c.open("/admin/", http.StatusOK)
	c.signIn(user, testPassword, http.StatusOK)
	c.expectPage("Two-factor sign-in", "")
	if !c.visible("#remember") {
		t.Fatal("the confirm page shows no remember checkbox")
	}
	c.checkPage("confirm-remember-desktop-light")
	c.do(chromedp.Click(chromedp.ID("remember")))
	c.enterCode(codes.code(user, secret), http.StatusOK)
	c.expectProtected(user, "totp")

	// The remembered browser: the password alone.
	signOut()
	clock.Advance(time.Minute)
	c.open("/admin/", http.StatusOK)
	c.signIn(user, testPassword, http.StatusOK)
	c.expectProtected(user, "remembered")

	// A step-up path: the code only, then back to the page.
	c.open("/admin/settings/mail", http.StatusOK)
	c.expectPage("Confirm it's you", "")
	c.checkPage("step-up-desktop-light")
	if c.visible("#code") == false || run(c, chromedp.Evaluate[bool](`document.querySelector("input[name=password], #remember") !== null`)) {
		t.Fatal("the step-up page asks for a password or offers to remember")
	}
	c.enterCode(codes.code(user, secret), http.StatusOK)
	if got := run(c, chromedp.Evaluate[string](`location.pathname`)); got != "/admin/settings/mail" {
		t.Fatalf("after the step-up the browser is at %s", got)
	}
	c.expectProtected(user, "totp")

	// The account page with app tokens and remembered browsers.
	c.open("/_2fa/account", http.StatusOK)
	c.checkPage("account-policies-desktop-light")
}
