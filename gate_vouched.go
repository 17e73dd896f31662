package twofactor

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-two-factor/caddy-two-factor/signin"
)

// user_from: the second factor after another login. An earlier handler
// (basic_auth, forward_auth with copy_headers, another auth module) has
// authenticated the user and named them in a placeholder; the gate shows
// no password page and asks only for the second factor, on the same setup
// and confirm pages. A session counts only while the placeholder names
// its user: another user on the same browser (a different Authorization
// header) starts a sign-in of their own, and an empty placeholder (the
// earlier login did not run) is refused and logged, never let through.

// msgSignInFirst is the login page's answer under user_from when nothing
// named the user: the earlier login guards the site's pages, not this one.
const msgSignInFirst = "This site signs you in before this page. Open the page you wanted again."

var (
	errNoVouchedUser = errors.New("user_from names no user: the login that sets it did not run before two_factor")
	errNotVouchable  = errors.New("the user named by user_from may not pass")
)

// checkUserFrom reports what keeps s from being a user_from value: one
// placeholder, {name}, whatever an earlier handler sets.
func checkUserFrom(s string) error {
	if len(s) < 3 || s[0] != '{' || s[len(s)-1] != '}' || strings.ContainsAny(s[1:len(s)-1], "{} \t") {
		return fmt.Errorf("user_from needs one placeholder that names the user an earlier handler authenticated, like {http.auth.user.id}, not %q", s)
	}
	return nil
}

// vouchedUser is the user the earlier login named on this request ("" for
// none). It does not allocate for a placeholder holding a string.
func (h *TwoFactor) vouchedUser(repl *caddy.Replacer) string {
	v, _ := repl.Get(h.UserFrom[1 : len(h.UserFrom)-1])
	switch v := v.(type) {
	case string:
		return v
	case nil:
		return ""
	default:
		return caddy.ToString(v)
	}
}

// vouchedFor reports whether the earlier login named user on this request.
func (h *TwoFactor) vouchedFor(repl *caddy.Replacer, user string) bool {
	named := h.vouchedUser(repl)
	return named == user || (named != "" && normalizeUsername(named) == user)
}

// challengeVouched answers a guarded request without a session of the
// user the earlier login named: a browser begins that user's sign-in at
// the second factor; any other client gets 401. An empty placeholder is
// refused and logged as the configuration error it is.
func (h *TwoFactor) challengeVouched(w http.ResponseWriter, r *http.Request) error {
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	user := normalizeUsername(h.vouchedUser(repl))
	if user == "" {
		h.logger.Error("two-factor request refused: user_from names no user, so the login that should set it did not run before two_factor on this request; check that it is ordered before two_factor and guards the same paths",
			zap.String("user_from", h.UserFrom), zap.String("path", r.URL.Path), zap.String("client_ip", clientIP(r)))
		gateCounters.refused.Inc()
		return caddyhttp.Error(http.StatusUnauthorized, errNoVouchedUser)
	}
	if !wantsHTML(r) {
		gateCounters.refused.Inc()
		return caddyhttp.Error(http.StatusUnauthorized, errSignInRequired)
	}
	gateCounters.challenged.Inc()
	return h.beginVouched(w, r, user, originalRequestURI(r), http.StatusFound)
}

// beginVouched opens a sign-in of user, named by the earlier login, and
// sends the browser to the second factor.
func (h *TwoFactor) beginVouched(w http.ResponseWriter, r *http.Request, user, next string, status int) error {
	req := signin.VouchedRequest{User: user, Client: client(r), Next: h.safeNext(next)}
	// Whatever session the browser had (another user's) is replaced.
	if key, ok := sessionKey(r); ok {
		req.Replace = &key
	}
	res, err := h.signin.BeginVouched(req)
	if errors.Is(err, signin.ErrNotVouchable) {
		h.audit(clientIP(r), eventVouchedRefused, user, "not_declared")
		return caddyhttp.Error(http.StatusForbidden, errNotVouchable)
	}
	if err != nil {
		return h.answerFailure(h.withLanguage(w, r), r, "beginning a sign-in after another login", err)
	}
	h.setSessionCookie(w, r, res.Token)
	page := "setup"
	if res.Stage == signin.NeedsConfirm {
		page = "confirm"
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		status = http.StatusSeeOther
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Location", h.page(page))
	w.WriteHeader(status)
	return nil
}

// loginVouched is the login page under user_from: no password form; the
// sign-in of the user the earlier login named, when it ran here.
func (h *TwoFactor) loginVouched(w http.ResponseWriter, r *http.Request, next string) error {
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	user := normalizeUsername(h.vouchedUser(repl))
	if user == "" {
		return h.render(w, http.StatusUnauthorized, "error", pageData{Title: "Sign in", Error: msgSignInFirst})
	}
	return h.beginVouched(w, r, user, next, http.StatusSeeOther)
}
