package twofactor

import (
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/caddy-two-factor/caddy-two-factor/internal/mailtest"
)

// TestBrowserEmailCode signs in with an e-mailed code in Chromium, with
// and without JavaScript: the confirm page offers it behind "No
// authenticator at hand?", sends it, and takes it. With
// TWO_FACTOR_SCREENSHOTS=1 it writes confirm-email-* and
// confirm-email-sent-* to docs/screenshots.
func TestBrowserEmailCode(t *testing.T) {
	for _, js := range []bool{true, false} {
		name := map[bool]string{true: "js", false: "nojs"}[js]
		t.Run(name, func(t *testing.T) {
			write := js && os.Getenv("TWO_FACTOR_SCREENSHOTS") == "1"
			c := newTab(t, js)
			ms := mailtest.Start(t, mailtest.PlainOnly, nil)
			startNoticeSite(t, ms, "title \"Example Intranet\"")
			user := map[bool]string{true: "quinn", false: "rupert"}[js]
			newBrowser(t).enroll(user)
			c.open("/admin/", http.StatusOK)
			c.signIn(user, testPassword, http.StatusOK)
			c.expectPage("Two-factor sign-in", "")
			if c.visible("#send-email-code") {
				t.Fatal("the e-mail option is open before it is asked for")
			}
			c.do(chromedp.Click(chromedp.CSS("#email-code > summary")), chromedp.WaitVisible(chromedp.ID("send-email-code")))
			c.shoot("confirm-email", write)
			c.load(http.StatusOK, chromedp.Click(chromedp.ID("send-email-code")))
			if got := c.text(`[role=status]`); !strings.Contains(got, user[:1]+"***@example.com") || strings.Contains(got, user+"@") {
				t.Fatalf("status after sending: %q", got)
			}
			if !c.visible("#email-code-input") {
				t.Fatal("the e-mailed code's field is not shown after sending")
			}
			c.shoot("confirm-email-sent", write)
			_, body := mailTo(t, ms, user+"@example.com", "Your sign-in code")
			code := mailedCodePattern.FindStringSubmatch(body)
			if code == nil {
				t.Fatalf("no code in the mail:\n%s", body)
			}
			c.typeInto("email-code-input", code[1])
			c.load(http.StatusOK, chromedp.Click(chromedp.CSS(`#email-code-input ~ button[type=submit]`)))
			c.expectProtected(user, "email")
		})
	}
}
