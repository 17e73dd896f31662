package twofactor

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"net/http"
	"net/url"
	"strings"

	"github.com/caddy-two-factor/caddy-two-factor/store"
)

// Anti-CSRF tokens are derived, not stored: an HMAC, under a key kept in
// the database, of the session the form belongs to. Before the password
// step that is a random pre-login cookie; after it, the session itself. A
// token therefore works only with the cookie it was made for, and a new
// session (each step rotates it) makes old forms useless.

func (h *TwoFactor) csrfToken(purpose string, binding []byte) string {
	mac := hmac.New(sha256.New, h.db.csrfKey)
	mac.Write([]byte(purpose))
	mac.Write([]byte{0})
	mac.Write(binding)
	return encodeKey(mac.Sum(nil))
}

func (h *TwoFactor) validCSRF(got, purpose string, binding []byte) bool {
	want := h.csrfToken(purpose, binding)
	return len(got) == len(want) && hmac.Equal([]byte(got), []byte(want))
}

// sessionCSRF is the token for forms of a session.
func (h *TwoFactor) sessionCSRF(key store.SessionKey) string {
	return h.csrfToken("session", key[:])
}

// validSessionPost reports whether a POST made with the session key comes
// from our own pages: the same origin, and the session's token.
func (h *TwoFactor) validSessionPost(r *http.Request, form url.Values, key store.SessionKey) bool {
	return sameOrigin(r) && h.validCSRF(form.Get("csrf"), "session", key[:])
}

// loginCSRF returns the token for the login form, setting the pre-login
// cookie it is bound to if the request has none.
func (h *TwoFactor) loginCSRF(w http.ResponseWriter, r *http.Request) (string, error) {
	pre, ok := cookieValue(r, preCookieName(r))
	if !ok || len(pre) != store.TokenLength {
		raw := make([]byte, store.TokenBytes)
		if _, err := rand.Read(raw); err != nil {
			return "", err
		}
		pre = encodeKey(raw)
		h.setCookie(w, r, preCookieName(r), pre, 0)
	}
	return h.csrfToken("login", []byte(pre)), nil
}

func (h *TwoFactor) validLoginCSRF(r *http.Request, got string) bool {
	pre, ok := cookieValue(r, preCookieName(r))
	return ok && len(pre) == store.TokenLength && h.validCSRF(got, "login", []byte(pre))
}

// sameOrigin reports whether a POST may come from our own pages. Browsers
// say where a request comes from in Sec-Fetch-Site and Origin; either one
// naming another site (or, for Sec-Fetch-Site, anything but our own
// origin) refuses it. "Origin: null" (sent on same-origin posts under
// Referrer-Policy: no-referrer) counts as absent, and the token still has
// to match. Clients that send neither header rely on the token alone. Our
// origin is the one the browser uses (see publicOrigin).
func sameOrigin(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "", "same-origin":
	default:
		return false
	}
	origin := r.Header.Get("Origin")
	if origin == "" || origin == "null" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil {
		return false
	}
	scheme, host := publicOrigin(r)
	return u.Scheme == scheme && strings.EqualFold(u.Host, host)
}
