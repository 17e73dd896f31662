package twofactor

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// phoneWidth is the narrowest screen the pages are laid out for.
const phoneWidth = 360

// screenshotLanguages are the languages whose login and setup pages
// docs/branding.md shows at phone width.
var screenshotLanguages = []string{"de", "ja"}

// TestBrowserLanguages opens the login page (with and without an error) and
// the setup page (key shown) in every shipped language on a 360 px phone,
// and checks each page is in that language and no wider than the screen:
// the longest translation must wrap, not scroll. With
// TWO_FACTOR_SCREENSHOTS=1 it writes those of screenshotLanguages to
// docs/screenshots.
func TestBrowserLanguages(t *testing.T) {
	write := os.Getenv("TWO_FACTOR_SCREENSHOTS") == "1"
	c := newTab(t, true)
	startSite(t, siteConfig{matcher: "/admin/*", extra: "title \"Example Intranet\""})
	c.do(chromedp.EmulateViewport(phoneWidth, 740, chromedp.EmulateScale(2), func(p *emulation.SetDeviceMetricsOverrideParams, _ *emulation.SetTouchEmulationEnabledParams) {
		p.Mobile = true
	}))

	languages := defaultPages().bundle.Languages()
	if len(languages) < 10 {
		t.Fatalf("%d languages ship, want at least 10", len(languages))
	}
	for i, tag := range languages {
		lang := tag.String()
		c.do(chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
			_, err := chromedp.Call(ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{
				Headers: network.Headers{"Accept-Language": lang},
			})
			return err
		}))
		check := func(page string) {
			t.Helper()
			if got := run(c, chromedp.Evaluate[string](`document.documentElement.lang`)); got != lang {
				t.Errorf("%s %s: <html lang=%q>", lang, page, got)
			}
			if w := run(c, chromedp.Evaluate[int](`document.documentElement.scrollWidth`)); w > phoneWidth {
				t.Errorf("%s %s: the page is %d px wide, more than the %d px screen", lang, page, w, phoneWidth)
			}
			if !write || !slices.Contains(screenshotLanguages, lang) {
				return
			}
			png := run(c, chromedp.FullScreenshot(100))
			if err := os.WriteFile(filepath.Join(screenshotDir, fmt.Sprintf("%s-%s-phone.png", page, lang)), png, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		// A user of its own per language: each reaches setup afresh.
		user := testUsers[i%len(testUsers)]
		c.open("/_2fa/login", http.StatusOK)
		check("login")
		c.signIn(user, "wrong password", http.StatusUnauthorized)
		check("login-error")
		c.signIn(user, testPassword, http.StatusOK)
		c.do(chromedp.Click(chromedp.CSS("details.more > summary")), chromedp.WaitVisible(chromedp.ID("totp-secret")))
		check("setup")
		c.open("/_2fa/logout", http.StatusOK)
		c.load(http.StatusOK, chromedp.Click(chromedp.CSS(`form[action$="/logout"] button`)))
	}
}
