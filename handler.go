package twofactor

import (
	"errors"
	"net/http"
	"net/url"
	"strings"

	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// ServeHTTP serves the sign-in pages under path_prefix and lets other
// requests through only with a signed-in session.
func (h *TwoFactor) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if page, ok := h.pageName(r.URL.Path); ok {
		return h.servePage(w, r, page)
	}
	now := h.now()
	sess, err := h.fullSession(r, now)
	if err != nil {
		if !errors.Is(err, errNoSession) {
			h.logger.Error("reading 2FA session", zap.Error(err))
			return caddyhttpError(err)
		}
		return h.challenge(w, r)
	}
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	// The values were boxed when the session was cached: no allocation.
	repl.Set("http.auth.user.id", sess.userValue)
	repl.Set("http.two_factor.user", sess.userValue)
	repl.Set("http.two_factor.method", sess.methodValue)
	repl.Set("http.two_factor.confirmed_at", sess.confirmedValue)
	repl.Set("http.two_factor.session_expires", sess.expiresValue)
	return next.ServeHTTP(w, r)
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

// errSignInRequired is the error of a 401.
var errSignInRequired = errors.New("two-factor sign-in required")

// challenge answers a request that has no signed-in session: browsers go
// to the login page, everything else gets 401.
func (h *TwoFactor) challenge(w http.ResponseWriter, r *http.Request) error {
	if !strings.Contains(r.Header.Get("Accept"), "text/html") {
		return caddyhttp.Error(http.StatusUnauthorized, errSignInRequired)
	}
	target := h.PathPrefix + "/login?next=" + url.QueryEscape(originalRequestURI(r))
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

// originalRequestURI is the path and query the client asked for, before
// any rewrite, so the user returns to what they requested.
func originalRequestURI(r *http.Request) string {
	if orig, ok := r.Context().Value(caddyhttp.OriginalRequestCtxKey).(http.Request); ok && orig.URL != nil {
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
	hdr.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self' data:; script-src 'nonce-"+nonce+"'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	hdr.Set("X-Frame-Options", "DENY")
	hdr.Set("Referrer-Policy", "no-referrer")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")
}

// caddyhttpError reports an internal failure to Caddy's error handling.
func caddyhttpError(err error) error {
	return caddyhttp.Error(http.StatusInternalServerError, err)
}
