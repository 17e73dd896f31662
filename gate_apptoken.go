package twofactor

import (
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-two-factor/caddy-two-factor/policy"
	"github.com/caddy-two-factor/caddy-two-factor/signin"
)

// app_tokens: on the paths it lists, a request without a session may pass
// with one of its user's app tokens (made on the account page), for
// clients that cannot give a second factor. The token is looked at only
// there: on other paths, on the module's own pages and the account page,
// it is ignored as any other header.

var errAppTokenRefused = errors.New("app token refused")

// appTokenFrom returns the app token r carries: Authorization: Bearer
// <token>, or Basic with the token as the password. Other credentials
// (another kind of bearer token, a Basic password) are not app tokens.
func appTokenFrom(r *http.Request) (signin.AppTokenRequest, bool) {
	scheme, rest, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	switch {
	case strings.EqualFold(scheme, "Bearer"):
		if token := strings.TrimSpace(rest); strings.HasPrefix(token, policy.AppTokenPrefix) {
			return signin.AppTokenRequest{Token: token}, true
		}
	case strings.EqualFold(scheme, "Basic"):
		if user, pass, ok := r.BasicAuth(); ok && strings.HasPrefix(pass, policy.AppTokenPrefix) {
			return signin.AppTokenRequest{Token: pass, Basic: true, BasicUser: normalizeUsername(user)}, true
		}
	}
	return signin.AppTokenRequest{}, false
}

// acceptsAppTokens reports whether r is on a path that takes app tokens:
// as it is now and as the client sent it (a rewrite before the gate moves
// no request onto such a path), and neither is one of the module's pages.
func (h *TwoFactor) acceptsAppTokens(r *http.Request) bool {
	paths := []string{r.URL.Path}
	if orig, ok := sentRequest(r); ok {
		paths = append(paths, orig.URL.Path)
	}
	for _, p := range paths {
		if policy.AppTokenRefused(h.PathPrefix, p) || !h.appTokenPaths.match(matchablePath(p), r) {
			return false
		}
	}
	return true
}

// serveAppToken lets a request without a session through with an app
// token, when it carries one on a path that takes them, and reports
// whether it answered the request.
func (h *TwoFactor) serveAppToken(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) (bool, error) {
	if h.AppTokens == nil {
		return false, nil
	}
	req, ok := appTokenFrom(r)
	if !ok || !h.acceptsAppTokens(r) {
		return false, nil
	}
	req.Client = client(r)
	user, err := h.signin.UseAppToken(req)
	countAppToken(err)
	if locked, ok := errors.AsType[*signin.LockedError](err); ok {
		w.Header().Set("Retry-After", strconv.Itoa(int(locked.RetryAfter(h.now()).Seconds())))
		return true, caddyhttp.Error(http.StatusTooManyRequests, errAppTokenRefused)
	}
	if errors.Is(err, signin.ErrBadAppToken) {
		return true, caddyhttp.Error(http.StatusUnauthorized, errAppTokenRefused)
	}
	if err != nil {
		return true, h.answerFailure(h.withLanguage(w, r), r, "checking an app token", err)
	}
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	repl.Set("http.auth.user.id", user)
	repl.Set("http.two_factor.user", user)
	repl.Set("http.two_factor.method", policy.MethodAppToken)
	return true, next.ServeHTTP(w, r)
}

// countAppToken counts the gate's decision on a request that carried an
// app token, by UseAppToken's answer.
func countAppToken(err error) {
	switch {
	case err == nil:
		gateCounters.appToken.Inc()
	case errors.Is(err, signin.ErrBadAppToken) || errors.As(err, new(*signin.LockedError)):
		gateCounters.refused.Inc()
	case storeUnavailable(err):
		gateCounters.unavailable.Inc()
	default:
		gateCounters.failed.Inc()
	}
}
