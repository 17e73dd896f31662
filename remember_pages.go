package twofactor

import (
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-two-factor/caddy-two-factor/store"
)

// Remembered browsers (remember_device): the confirm page's checkbox, the
// browser's cookie, and the account page's list. The cookie is read only
// by the password step (signin.LoginRequest.RememberToken): it names no
// user and no session, so on its own it opens nothing.

// The remember cookie's names, as the session cookie's (see session.go).
const (
	rememberCookie       = "two_factor_remember"
	rememberCookieSecure = "__Host-two_factor_remember"
)

// msgBrowsersForgotten is the account page's notice after forgetting.
const msgBrowsersForgotten = "This browser and the others you chose will ask for a code again."

func rememberCookieName(r *http.Request) string {
	if isHTTPS(r) {
		return rememberCookieSecure
	}
	return rememberCookie
}

// rememberToken is the request's remember cookie, when remember_device is on.
func (h *TwoFactor) rememberToken(r *http.Request) string {
	if h.RememberDevice <= 0 {
		return ""
	}
	token, _ := cookieValue(r, rememberCookieName(r))
	return token
}

// rememberDays is the lifetime of a remembered browser in whole days,
// rounded up, for the confirm page's checkbox; 0 when off.
func (h *TwoFactor) rememberDays() int {
	if h.RememberDevice <= 0 {
		return 0
	}
	const day = 24 * time.Hour
	return int((time.Duration(h.RememberDevice) + day - 1) / day)
}

// rememberBrowser remembers the browser of the session just signed in
// with sessionToken and gives it the cookie. A failure leaves the sign-in
// as it is: the browser is asked for a code next time.
func (h *TwoFactor) rememberBrowser(w http.ResponseWriter, r *http.Request, sessionToken string) {
	if h.RememberDevice <= 0 {
		return
	}
	token, err := h.signin.RememberBrowser(sessionToken, client(r))
	if err != nil {
		h.logger.Warn("two-factor: the browser could not be remembered", zap.String("client_ip", clientIP(r)), zap.Error(err))
		return
	}
	h.setCookie(w, r, rememberCookieName(r), token, int(time.Duration(h.RememberDevice)/time.Second))
}

// browserView is one of the user's remembered browsers on the account page.
type browserView struct {
	ID, Browser                string
	Created, LastUsed, Expires string
}

// browserViews fills the remembered browsers part of the account page.
func (h *TwoFactor) browserViews(view *accountView, u *store.User, now time.Time) {
	view.RememberOn = h.RememberDevice > 0
	for _, d := range u.RememberedDevices {
		if !now.Before(d.Expires) {
			continue
		}
		v := browserView{ID: d.ID, Browser: device(d.Browser), Created: formatTime(d.Created), Expires: formatTime(d.Expires)}
		if !d.LastUsed.IsZero() {
			v.LastUsed = formatTime(d.LastUsed)
		}
		view.Browsers = append(view.Browsers, v)
	}
}

// forgetBrowsers forgets one remembered browser, or all of them (and
// clears this browser's cookie), from the account page.
func (h *TwoFactor) forgetBrowsers(w http.ResponseWriter, r *http.Request, f accountForm) error {
	id := f.Get("browser")
	if f.Get("action") == "forget_browser" && id == "" {
		return h.render(w, http.StatusBadRequest, "error", pageData{Title: "Bad request", Error: "The form could not be read."})
	}
	if f.Get("action") == "forget_browsers" {
		id = ""
		h.setCookie(w, r, rememberCookieName(r), "", -1)
	}
	return h.accountAnswer(w, h.signin.ForgetBrowsers(f.sess, id, client(r)), "forgotten")
}
