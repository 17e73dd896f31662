package twofactor

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	cdpwebauthn "github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
)

// The browser tests drive the sign-in pages in headless Chromium, as a
// person would, against the test Caddy. Without Chromium they skip, except
// in CI (CI=true), where a skip would hide a missing install and so fails.
//
// TWO_FACTOR_SCREENSHOTS=1 makes TestBrowserScreenshots write the PNGs of
// docs/screenshots/.

// chromiumPackage is the Debian package the browser tests need.
const chromiumPackage = "chromium"

// browserTimeout bounds one browser test; stepTimeout one page load.
const (
	browserTimeout = 3 * time.Minute
	stepTimeout    = 20 * time.Second
)

// chromiumPath returns the Chromium binary, or skips the test without one.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless_shell"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	msg := fmt.Sprintf("no Chromium found for the browser tests: install Debian's %s package (apt-get install %s)", chromiumPackage, chromiumPackage)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// tab is a headless Chromium with one tab, for one test. It records what
// the pages log as errors (a CSP violation, a failed asset, a script
// error) and the Origin header of every POST it sends.
type tab struct {
	t         *testing.T
	ctx       context.Context
	base      string
	js        bool
	downloads string

	mu       sync.Mutex
	problems []string
	requests map[network.RequestID][]string // "METHOD URL" of each request
	origins  map[network.RequestID][]string // the Origin header sent with each
}

// newTab starts Chromium, with or without JavaScript, and ends it with the
// test. The test fails if a page logged an error.
func newTab(t *testing.T, js bool) *tab {
	t.Helper()
	path := chromiumPath(t)
	c := &tab{
		t:         t,
		base:      testBase(),
		js:        js,
		downloads: t.TempDir(),
		requests:  map[network.RequestID][]string{},
		origins:   map[network.RequestID][]string{},
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		// Only loopback: any other host name fails to resolve.
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE localhost"),
		chromedp.WindowSize(1280, 800),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(allocCtx, chromedp.WithListener(c.record))
	if err := chromedp.Do(ctx); err != nil {
		cancelTab()
		cancelAlloc()
		t.Fatalf("starting %s: %v", path, err)
	}
	deadline, cancelDeadline := context.WithTimeout(ctx, browserTimeout)
	c.ctx = deadline
	t.Cleanup(func() {
		cancelDeadline()
		cancelTab()
		cancelAlloc()
	})
	t.Cleanup(c.checkProblems)

	if _, err := chromedp.CallBrowser(ctx, cdpbrowser.SetDownloadBehavior, cdpbrowser.SetDownloadBehaviorParams{
		Behavior:      cdpbrowser.SetDownloadBehaviorBehaviorAllow,
		DownloadPath:  c.downloads,
		EventsEnabled: new(true),
	}); err != nil {
		t.Fatal(err)
	}
	if !js {
		if _, err := chromedp.Call(ctx, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true}); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// record runs in the tab's event loop: it only takes notes.
func (c *tab) record(ev any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch ev := ev.(type) {
	case *log.EventEntryAdded:
		e := ev.Entry
		// A page answered 401 or 429 is logged as a failed load: that is the
		// page working. A failed style sheet or script is not.
		if e.Level == log.EntryLevelError && (e.Source != log.EntrySourceNetwork || strings.Contains(e.URL, "/static/")) {
			c.problems = append(c.problems, fmt.Sprintf("%s: %s (%s)", e.Source, e.Text, e.URL))
		}
	case *runtime.EventExceptionThrown:
		c.problems = append(c.problems, "script error: "+ev.ExceptionDetails.Text)
	case *network.EventRequestWillBeSent:
		// A redirect keeps the request's ID: the n-th request of an ID
		// goes with the n-th set of headers sent for it.
		c.requests[ev.RequestID] = append(c.requests[ev.RequestID], ev.Request.Method+" "+ev.Request.URL)
	case *network.EventRequestWillBeSentExtraInfo:
		origin, ok := ev.Headers["Origin"]
		if !ok {
			origin = "(none)"
		}
		c.origins[ev.RequestID] = append(c.origins[ev.RequestID], fmt.Sprint(origin))
	}
}

func (c *tab) checkProblems() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.problems {
		c.t.Errorf("the browser logged: %s", p)
	}
}

// postOrigins returns the Origin header of each POST sent to path.
func (c *tab) postOrigins(path string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var origins []string
	for id, requests := range c.requests {
		for i, r := range requests {
			if r != "POST "+c.base+path {
				continue
			}
			if i < len(c.origins[id]) {
				origins = append(origins, c.origins[id][i])
			} else {
				origins = append(origins, "(headers not seen)")
			}
		}
	}
	return origins
}

// do runs actions that need no navigation.
func (c *tab) do(actions ...chromedp.Action[chromedp.Void]) {
	c.t.Helper()
	if err := chromedp.Do(c.ctx, actions...); err != nil {
		c.t.Fatal(err)
	}
}

// run runs one action and returns its value.
func run[T any](c *tab, a chromedp.Action[T]) T {
	c.t.Helper()
	v, err := chromedp.Run(c.ctx, a)
	if err != nil {
		c.t.Fatal(err)
	}
	return v
}

// load runs actions that end in a navigation, and checks the status of the
// page it ends on.
func (c *tab) load(wantStatus int64, actions ...chromedp.Action[chromedp.Void]) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(c.ctx, stepTimeout)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, actions...)
	if err != nil {
		c.t.Fatal(err)
	}
	if resp.Status != wantStatus {
		c.t.Fatalf("%s: status %d, want %d\n%s", resp.URL, resp.Status, wantStatus, c.text("body"))
	}
}

func (c *tab) open(path string, wantStatus int64) {
	c.t.Helper()
	c.load(wantStatus, chromedp.Navigate(c.base+path))
}

// text returns the visible text of the first element matching a CSS selector.
func (c *tab) text(css string) string {
	c.t.Helper()
	return run(c, chromedp.Text(chromedp.CSS(css)))
}

// expectPage checks the page's heading, and its alert when want is not "".
func (c *tab) expectPage(heading, alert string) {
	c.t.Helper()
	if got := c.text("h1"); got != heading {
		c.t.Fatalf("page heading is %q, want %q", got, heading)
	}
	if alert != "" {
		if got := c.text(`[role=alert]`); got != alert {
			c.t.Fatalf("alert is %q, want %q", got, alert)
		}
	}
}

// expectProtected checks that the protected route answered, for user and
// the second factor given by method.
func (c *tab) expectProtected(user, method string) {
	c.t.Helper()
	want := fmt.Sprintf("admin area: user=%s method=%s", user, method)
	if got := c.text("body"); got != want {
		c.t.Fatalf("protected page says %q, want %q", got, want)
	}
}

// typeInto types s, key by key, into a field of a freshly loaded page,
// in place of the value the page filled in. It focuses the field and
// sends the keys to the page rather than using chromedp.SendKeys, which
// reads the node's attributes without their lock: a script that changes
// an attribute meanwhile (passkey.js does) is a data race in chromedp.
func (c *tab) typeInto(id, s string) {
	c.t.Helper()
	c.do(chromedp.Clear(chromedp.ID(id)), chromedp.Focus(chromedp.ID(id)), chromedp.KeyEvent(s))
}

// signIn fills the login form and sends it; the form must lead to a page
// with status wantStatus.
func (c *tab) signIn(user, password string, wantStatus int64) {
	c.t.Helper()
	c.typeInto("username", user)
	c.typeInto("password", password)
	c.load(wantStatus, chromedp.Click(chromedp.CSS(`form[action$="/login"] button[type=submit]`)))
}

// enterCode types a 6-digit code into the page's code field. With
// JavaScript, the full code sends the form by itself; without, the person
// presses the button.
func (c *tab) enterCode(code string, wantStatus int64) {
	c.t.Helper()
	if c.js {
		c.load(wantStatus, chromedp.Focus(chromedp.ID("code")), chromedp.KeyEvent(code))
		return
	}
	c.typeInto("code", code)
	c.load(wantStatus, chromedp.Click(chromedp.CSS(`#code ~ button[type=submit]`)))
}

// readSecret opens "Can't scan it?" on the setup page and reads the key
// shown there, in groups of four, as a person typing it would.
func (c *tab) readSecret() []byte {
	c.t.Helper()
	c.do(chromedp.Click(chromedp.CSS("details.more > summary")), chromedp.WaitVisible(chromedp.ID("totp-secret")))
	shown := c.text("#totp-secret")
	groups := strings.Fields(shown)
	for _, g := range groups[:len(groups)-1] {
		if len(g) != 4 {
			c.t.Fatalf("secret %q is not in groups of 4", shown)
		}
	}
	secret, err := totpDecode(strings.Join(groups, ""))
	if err != nil {
		c.t.Fatalf("secret %q on the page: %v", shown, err)
	}
	return secret
}

// downloadCodes clicks the download link of the recovery page and returns
// the file the browser saved.
func (c *tab) downloadCodes() string {
	c.t.Helper()
	progress := chromedp.BrowserEvents(c.ctx, cdpbrowser.DownloadProgress)
	c.do(chromedp.Click(chromedp.ID("download")))
	for ev, err := range progress {
		if err != nil {
			c.t.Fatalf("waiting for the recovery codes download: %v", err)
		}
		if ev.State == cdpbrowser.DownloadProgressStateCanceled {
			c.t.Fatal("the browser canceled the recovery codes download")
		}
		if ev.State == cdpbrowser.DownloadProgressStateCompleted {
			break
		}
	}
	body, err := os.ReadFile(filepath.Join(c.downloads, "recovery-codes.txt"))
	if err != nil {
		c.t.Fatal(err)
	}
	return string(body)
}

// visible reports whether the first element matching css is shown.
func (c *tab) visible(css string) bool {
	c.t.Helper()
	return run(c, chromedp.Evaluate[bool](fmt.Sprintf(`document.querySelector(%q).checkVisibility()`, css)))
}

// TestBrowserSignInJourney is a person's whole journey, with and without
// JavaScript: first sign-in and enrollment, recovery codes, the protected
// page, sign-out, sign-in with the app's code and with a recovery code.
func TestBrowserSignInJourney(t *testing.T) {
	for _, tc := range []struct {
		name string
		js   bool
		user string
	}{
		{"javascript", true, "alice"},
		{"no-javascript", false, "bob"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newTab(t, tc.js)
			startSite(t, siteConfig{matcher: "/admin/*"})

			c.open("/admin/reports", http.StatusOK)
			c.expectPage("Sign in", "")
			c.signIn(tc.user, "wrong password", http.StatusUnauthorized)
			c.expectPage("Sign in", msgBadLogin)
			c.signIn(tc.user, testPassword, http.StatusOK)
			c.expectPage("Set up two-factor sign-in", "")
			secret := c.readSecret()
			if got := c.visible("[data-copy]"); got != tc.js {
				t.Errorf("copy key button shown: %v, want %v", got, tc.js)
			}
			c.enterCode(newBrowser(t).code(tc.user, secret), http.StatusOK)
			c.expectPage("Save your recovery codes", "")
			codes := strings.Fields(c.text("#recovery-codes"))
			if len(codes) != DefaultRecoveryCodes {
				t.Fatalf("the page shows %d recovery codes, want %d: %q", len(codes), DefaultRecoveryCodes, codes)
			}
			file := c.downloadCodes()
			for _, code := range codes {
				if !strings.Contains(file, code+"\n") {
					t.Errorf("recovery code %s is missing from the downloaded file:\n%s", code, file)
				}
			}
			c.do(chromedp.Click(chromedp.ID("saved")))
			c.load(http.StatusOK, chromedp.Click(chromedp.ID("continue")))
			c.expectProtected(tc.user, "setup")

			c.open("/_2fa/logout", http.StatusOK)
			c.load(http.StatusOK, chromedp.Click(chromedp.CSS(`form[action$="/logout"] button`)))
			c.expectPage("Signed out", "")
			c.open("/admin/", http.StatusOK)
			c.expectPage("Sign in", "")

			c.signIn(tc.user, testPassword, http.StatusOK)
			c.expectPage("Two-factor sign-in", "")
			c.enterCode(newBrowser(t).code(tc.user, secret), http.StatusOK)
			c.expectProtected(tc.user, "totp")

			c.open("/_2fa/logout", http.StatusOK)
			c.load(http.StatusOK, chromedp.Click(chromedp.CSS(`form[action$="/logout"] button`)))
			c.open("/admin/", http.StatusOK)
			c.signIn(tc.user, testPassword, http.StatusOK)
			c.do(chromedp.Click(chromedp.CSS("details.more > summary")), chromedp.WaitVisible(chromedp.ID("recovery-code")))
			c.typeInto("recovery-code", codes[3])
			c.load(http.StatusOK, chromedp.Click(chromedp.CSS(`#recovery-code ~ button[type=submit]`)))
			c.expectProtected(tc.user, "recovery")

			// The pages send Referrer-Policy: no-referrer, so Chromium sends
			// "Origin: null" with their forms; sign-in works all the same.
			origins := c.postOrigins("/_2fa/login")
			if len(origins) == 0 {
				t.Fatal("saw no POST to /_2fa/login")
			}
			for _, o := range origins {
				if o != "null" {
					t.Errorf("Chromium sent Origin %q with the login form, want \"null\"", o)
				}
			}
		})
	}
}

// TestBrowserLockout fails the password until the account is locked.
func TestBrowserLockout(t *testing.T) {
	c := newTab(t, true)
	startSite(t, siteConfig{matcher: "/admin/*", extra: "max_attempts 3"})
	c.open("/_2fa/login", http.StatusOK)
	lockOut(c, "mallory", 3)
}

// lockOut fails user's password attempts times, then sees the lockout page.
func lockOut(c *tab, user string, attempts int) {
	c.t.Helper()
	for range attempts {
		c.signIn(user, "not the password", http.StatusUnauthorized)
		c.expectPage("Sign in", msgBadLogin)
	}
	c.signIn(user, testPassword, http.StatusTooManyRequests)
	c.expectPage("Too many attempts", msgLocked)
	if hint := c.text("main p:not([role])"); !strings.Contains(hint, "Try again in 15 minutes") {
		c.t.Errorf("lockout page says %q, want the wait", hint)
	}
}

// screenshotDir is where TestBrowserScreenshots writes, for the README.
const screenshotDir = "docs/screenshots"

// viewports are the widths every page is checked and shot at.
var viewports = []struct {
	name          string
	width, height int64
	scale         float64
	mobile        bool
}{
	{"desktop", 1280, 800, 1, false},
	{"phone", 360, 740, 2, true},
}

// unlabelledJS lists the page's fields without a label and images without
// alt text.
const unlabelledJS = `[...document.querySelectorAll("input:not([type=hidden]), select, textarea")]
	.filter(e => e.labels.length === 0)
	.concat([...document.images].filter(i => !i.hasAttribute("alt")))
	.map(e => e.outerHTML)`

// TestBrowserScreenshots shows each page at desktop and phone width, light
// and dark, and checks that none is wider than the screen. With
// TWO_FACTOR_SCREENSHOTS=1 it writes them to docs/screenshots.
func TestBrowserScreenshots(t *testing.T) {
	write := os.Getenv("TWO_FACTOR_SCREENSHOTS") == "1"
	if write {
		if err := os.MkdirAll(screenshotDir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	c := newTab(t, true)
	startSite(t, siteConfig{matcher: "/admin/*", extra: "max_attempts 3\n\t\ttitle \"Example Intranet\""})
	shoot := func(page string) {
		t.Helper()
		c.shoot(page, write)
	}

	c.open("/admin/", http.StatusOK)
	shoot("login")
	c.signIn("erin", "wrong password", http.StatusUnauthorized)
	shoot("login-error")
	c.signIn("erin", testPassword, http.StatusOK)
	shoot("setup")
	secret := c.readSecret()
	shoot("setup-key")
	c.enterCode(newBrowser(t).code("erin", secret), http.StatusOK)
	shoot("recovery")
	c.do(chromedp.Click(chromedp.ID("saved")))
	c.load(http.StatusOK, chromedp.Click(chromedp.ID("continue")))
	c.open("/_2fa/account", http.StatusOK)
	shoot("account")
	c.open("/_2fa/logout", http.StatusOK)
	shoot("logout")
	c.load(http.StatusOK, chromedp.Click(chromedp.CSS(`form[action$="/logout"] button`)))
	shoot("signed-out")
	c.open("/_2fa/login", http.StatusOK)
	c.signIn("erin", testPassword, http.StatusOK)
	shoot("confirm")
	c.do(chromedp.Click(chromedp.CSS("details.more > summary")), chromedp.WaitVisible(chromedp.ID("recovery-code")))
	shoot("confirm-recovery")
	c.open("/_2fa/no-such-page", http.StatusNotFound)
	shoot("error")
	c.open("/_2fa/login", http.StatusOK)
	lockOut(c, "frank", 3)
	shoot("locked")

	// The passkey pages, with a virtual authenticator.
	c.addAuthenticator(cdpwebauthn.AuthenticatorTransportInternal)
	c.open("/_2fa/login", http.StatusOK)
	c.signIn("grace", testPassword, http.StatusOK)
	c.load(http.StatusOK, chromedp.Click(chromedp.ID("use-passkey")))
	shoot("setup-passkey")
	c.typeInto("passkey-name", "Laptop")
	c.passkeyButton("passkey-register", http.StatusOK)
	c.do(chromedp.Click(chromedp.ID("saved")))
	c.load(http.StatusOK, chromedp.Click(chromedp.ID("continue")))
	c.open("/_2fa/account", http.StatusOK)
	shoot("account-passkeys")
	c.signOut()
	c.open("/_2fa/login", http.StatusOK)
	c.signIn("grace", testPassword, http.StatusOK)
	shoot("confirm-passkey")
}

// shoot checks page in every viewport and colour scheme (every field
// labelled, nothing wider than the screen) and, with write, saves a
// screenshot of each to screenshotDir as <page>-<viewport>-<scheme>.png.
func (c *tab) shoot(page string, write bool) {
	c.t.Helper()
	for _, v := range viewports {
		for _, scheme := range []string{"light", "dark"} {
			c.do(
				chromedp.EmulateViewport(v.width, v.height, chromedp.EmulateScale(v.scale), func(p *emulation.SetDeviceMetricsOverrideParams, _ *emulation.SetTouchEmulationEnabledParams) {
					p.Mobile = v.mobile
				}),
				chromedp.Func(func(ctx context.Context, tt *chromedp.Target) error {
					_, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
						Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}},
					})
					return err
				}),
			)
			name := fmt.Sprintf("%s-%s-%s", page, v.name, scheme)
			for _, bad := range run(c, chromedp.Evaluate[[]string](unlabelledJS)) {
				c.t.Errorf("%s: %s has no label or alt text", name, bad)
			}
			if wide := run(c, chromedp.Evaluate[int](`document.documentElement.scrollWidth - window.innerWidth`)); wide > 0 {
				c.t.Errorf("%s: the page is %d px wider than the %d px screen", name, wide, v.width)
			}
			if !write {
				continue
			}
			png := run(c, chromedp.FullScreenshot(100))
			if err := os.WriteFile(filepath.Join(screenshotDir, name+".png"), png, 0o644); err != nil {
				c.t.Fatal(err)
			}
		}
	}
}

// TestBrowserBranding checks that a logo file and a style sheet of the
// site's own load under the pages' Content-Security-Policy.
func TestBrowserBranding(t *testing.T) {
	c := newTab(t, true)
	dir := writeFiles(t, map[string]string{"logo.svg": testLogo, "brand.css": ":root { --accent: rgb(10, 124, 88); }"})
	startSite(t, siteConfig{extra: fmt.Sprintf("title Acme\n\t\tlogo_file %s/logo.svg\n\t\tcss_file %s/brand.css", dir, dir)})
	c.open("/_2fa/login", http.StatusOK)
	if w := run(c, chromedp.Evaluate[int](`document.querySelector("img.logo").naturalWidth`)); w != 40 {
		t.Errorf("the logo is %d px wide, want 40: it did not load", w)
	}
	if bg := run(c, chromedp.Evaluate[string](`getComputedStyle(document.querySelector("button[type=submit]")).backgroundColor`)); bg != "rgb(10, 124, 88)" {
		t.Errorf("the button is %s, not the custom style sheet's accent", bg)
	}
}
