package twofactor

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-two-factor/caddy-two-factor/policy"
	"github.com/caddy-two-factor/caddy-two-factor/signin"
)

// ServeHTTP serves the sign-in pages under path_prefix and lets the
// requests it guards through only with a signed-in session. Requests it
// does not guard go on to next with the identity placeholders empty.
func (h *TwoFactor) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if page, pr, ok := h.pageRequest(r); ok {
		setAnonymous(repl)
		return h.servePage(h.withLanguage(w, r), pr, page)
	}
	guarded, err := h.guards(r)
	if err != nil || !guarded {
		setAnonymous(repl)
		if err != nil {
			// As Caddy does with a route's matchers: the error decides
			// the status (400 or 500), and the request never passes.
			gateCounters.failed.Inc()
			return err
		}
		return next.ServeHTTP(w, r)
	}
	now := h.now()
	sess, err := h.fullSession(r, now)
	if err == nil && h.UserFrom != "" && !h.vouchedFor(repl, sess.User) {
		// The session is another user's, or the earlier login named none.
		err = signin.ErrNotSignedIn
	}
	if err != nil {
		setAnonymous(repl)
		if !errors.Is(err, signin.ErrNotSignedIn) {
			// Never let through what the store could not vouch for.
			if storeUnavailable(err) {
				gateCounters.unavailable.Inc()
			} else {
				gateCounters.failed.Inc()
			}
			return h.answerFailure(h.withLanguage(w, r), r, "checking the session", err)
		}
		if answered, err := h.serveAppToken(w, r, next); answered {
			return err
		}
		return h.challenge(w, r)
	}
	if d := h.policyDecision(r, sess, now); d != policy.Allow {
		setAnonymous(repl)
		return h.askSecondFactor(w, r, d)
	}
	gateCounters.allowed.Inc()
	// The values were boxed when the session was cached: no allocation.
	repl.Set("http.auth.user.id", sess.UserValue)
	repl.Set("http.two_factor.user", sess.UserValue)
	repl.Set("http.two_factor.method", sess.MethodValue)
	repl.Set("http.two_factor.confirmed_at", sess.ConfirmedValue)
	repl.Set("http.two_factor.session_expires", sess.ExpiresValue)
	return next.ServeHTTP(w, r)
}

// provisionMatchers loads the matcher set of the match field.
func (h *TwoFactor) provisionMatchers(ctx caddy.Context) error {
	if h.MatchersRaw == nil {
		return nil
	}
	mods, err := ctx.LoadModule(h, "MatchersRaw")
	if err != nil {
		return fmt.Errorf("loading matcher modules: %w", err)
	}
	var sets caddyhttp.MatcherSets
	if err := sets.FromInterface([]map[string]any{mods.(map[string]any)}); err != nil {
		return fmt.Errorf("loading matcher modules: %w", err)
	}
	h.matchers = sets[0]
	return nil
}

// guards reports whether the gate closes r: always without a matcher
// set, otherwise when the set matches r as it is now or as the client
// sent it. A rewrite, uri or try_files ordered before the gate changes
// the request a route's matcher sees; the client asked for the original,
// and that is what must be protected. A rewrite into a guarded path is
// guarded too.
func (h *TwoFactor) guards(r *http.Request) (bool, error) {
	if h.matchers == nil {
		return true, nil
	}
	if match, err := h.matchers.MatchWithError(r); match || err != nil {
		return match, err
	}
	orig, ok := sentRequest(r)
	if !ok {
		return false, nil
	}
	return h.matchers.MatchWithError(asSent(r, orig))
}

// pageRequest returns the page r asks for below path_prefix, and the
// request to serve it with. A page is found by the path as it is now, or
// else as the client sent it, so the pages stay reachable when a rewrite
// or try_files before the gate moves them; they are then served from the
// client's URL.
func (h *TwoFactor) pageRequest(r *http.Request) (string, *http.Request, bool) {
	if page, ok := h.pageName(r.URL.Path); ok {
		return page, r, true
	}
	orig, ok := sentRequest(r)
	if !ok {
		return "", nil, false
	}
	page, ok := h.pageName(orig.URL.Path)
	if !ok {
		return "", nil, false
	}
	return page, asSent(r, orig), true
}

// sentRequest is what Caddy kept of the request as the client sent it:
// its method, URL and RequestURI (and RemoteAddr).
func sentRequest(r *http.Request) (http.Request, bool) {
	orig, ok := r.Context().Value(caddyhttp.OriginalRequestCtxKey).(http.Request)
	return orig, ok && orig.URL != nil
}

// asSent is r with the client's method and URL. Headers, host, TLS state
// and the context (placeholders, vars) stay the live ones.
func asSent(r *http.Request, orig http.Request) *http.Request {
	sent := *r
	sent.Method = orig.Method
	sent.URL = orig.URL
	sent.RequestURI = orig.RequestURI
	return &sent
}

// identityPlaceholders are the placeholders the gate sets on a request it
// lets through.
var identityPlaceholders = [...]string{
	"http.auth.user.id",
	"http.two_factor.user",
	"http.two_factor.method",
	"http.two_factor.confirmed_at",
	"http.two_factor.session_expires",
}

// setAnonymous sets the identity placeholders that nothing has set yet
// to empty, so that header_up Remote-User {http.auth.user.id} sends an
// empty value, never the placeholder's literal text, on a request the
// gate did not sign in. A user set by an earlier handler (basic_auth, or
// another gate) is kept.
func setAnonymous(repl *caddy.Replacer) {
	for _, key := range identityPlaceholders {
		if _, known := repl.Get(key); !known {
			repl.Set(key, "")
		}
	}
}

// pageName returns the page a path names below path_prefix ("" for the
// prefix itself). The comparison ignores case, as Caddy's path matcher
// does, so "/_2FA/login" cannot slip past to the protected route.
func (h *TwoFactor) pageName(path string) (string, bool) {
	p := h.PathPrefix
	if len(path) < len(p) || !strings.EqualFold(path[:len(p)], p) {
		return "", false
	}
	rest := path[len(p):]
	if rest == "" {
		return "", true
	}
	if rest[0] != '/' {
		return "", false
	}
	return rest[1:], true
}

// The errors of a 401.
var (
	errSignInRequired       = errors.New("two-factor sign-in required")
	errSecondFactorRequired = errors.New("a fresh second factor is required")
)

// challenge answers a request that has no signed-in session: browsers go
// to the login page, everything else gets 401.
func (h *TwoFactor) challenge(w http.ResponseWriter, r *http.Request) error {
	if h.UserFrom != "" {
		return h.challengeVouched(w, r)
	}
	if !wantsHTML(r) {
		gateCounters.refused.Inc()
		return caddyhttp.Error(http.StatusUnauthorized, errSignInRequired)
	}
	gateCounters.challenged.Inc()
	return h.sendToPage(w, r, "login")
}

// sendToPage redirects a browser to one of the module's pages, to come
// back to the request it made.
func (h *TwoFactor) sendToPage(w http.ResponseWriter, r *http.Request, page string) error {
	target := h.page(page) + "?next=" + url.QueryEscape(originalRequestURI(r))
	status := http.StatusFound
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		status = http.StatusSeeOther
	}
	w.Header().Set("Cache-Control", "no-store")
	// Location is a path only: never built from Host or X-Forwarded-*.
	w.Header().Set("Location", target)
	w.WriteHeader(status)
	return nil
}

// wantsHTML reports whether r comes from a browser, which gets pages and
// redirects; other clients get a bare status for Caddy's error handling.
func wantsHTML(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "text/html")
}

// originalRequestURI is the path and query the client asked for, before
// any rewrite, so the user returns to what they requested.
func originalRequestURI(r *http.Request) string {
	if orig, ok := sentRequest(r); ok {
		return orig.URL.RequestURI()
	}
	return r.URL.RequestURI()
}

// clientIP is Caddy's idea of the client address, which honours the
// server's trusted_proxies; headers a client sends are never trusted here.
func clientIP(r *http.Request) string {
	if ip, ok := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string); ok && ip != "" {
		return ip
	}
	host := r.RemoteAddr
	if i := strings.LastIndexByte(host, ':'); i > 0 {
		host = host[:i]
	}
	return strings.Trim(host, "[]")
}

// setPageHeaders sets the headers of every page the module serves: no
// caching, no framing, no referrer, and a policy that allows only the
// module's own style sheet and images, and only the script that carries
// the page's nonce: 'self' would let any script of the site run here.
func setPageHeaders(hdr http.Header, nonce string) {
	hdr.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self' data:; script-src 'nonce-"+nonce+"'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	hdr.Set("X-Frame-Options", "DENY")
	hdr.Set("Referrer-Policy", "no-referrer")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")
}

// caddyhttpError reports an internal failure to Caddy's error handling.
func caddyhttpError(err error) error {
	return caddyhttp.Error(http.StatusInternalServerError, err)
}
