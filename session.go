package twofactor

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/caddy-two-factor/caddy-two-factor/sessioncache"
	"github.com/caddy-two-factor/caddy-two-factor/signin"
	"github.com/caddy-two-factor/caddy-two-factor/store"
)

// Cookie names. On HTTPS (as the browser sees it, see publicOrigin) the
// __Host- prefix makes browsers refuse the cookie unless it is Secure,
// host-only and for path /, so a sibling subdomain cannot plant or shadow
// it.
const (
	sessionCookie       = "two_factor"
	sessionCookieSecure = "__Host-two_factor"
	preCookie           = "two_factor_pre"
	preCookieSecure     = "__Host-two_factor_pre"
	// maxCookieValue bounds what is looked at in a cookie.
	maxCookieValue = 256
)

func sessionCookieName(r *http.Request) string {
	if isHTTPS(r) {
		return sessionCookieSecure
	}
	return sessionCookie
}

func preCookieName(r *http.Request) string {
	if isHTTPS(r) {
		return preCookieSecure
	}
	return preCookie
}

// cookieValue returns the value of the cookie name if the request carries
// it exactly once with a sane value. A duplicated cookie (one planted by a
// sibling site beside ours) counts as none.
func cookieValue(r *http.Request, name string) (string, bool) {
	var value string
	found := 0
	for _, line := range r.Header["Cookie"] {
		for len(line) > 0 {
			var part string
			part, line, _ = strings.Cut(line, ";")
			part = strings.TrimSpace(part)
			k, v, ok := strings.Cut(part, "=")
			if !ok || k != name {
				continue
			}
			found++
			value = v
		}
	}
	if found != 1 || value == "" || len(value) > maxCookieValue {
		return "", false
	}
	return value, true
}

// setCookie sets an HttpOnly cookie for path /; maxAge 0 makes it a
// browser-session cookie, and a negative one deletes it.
func (h *TwoFactor) setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name:     name,
		Value:    value,
		Path:     "/",
		MaxAge:   maxAge,
		HttpOnly: true,
		Secure:   isHTTPS(r),
		SameSite: h.sameSite,
	})
}

func (h *TwoFactor) setSessionCookie(w http.ResponseWriter, r *http.Request, token string) {
	h.setCookie(w, r, sessionCookieName(r), token, 0)
}

func (h *TwoFactor) clearSessionCookie(w http.ResponseWriter, r *http.Request) {
	h.setCookie(w, r, sessionCookieName(r), "", -1)
}

// sessionKey returns the key of the session the request's cookie names.
func sessionKey(r *http.Request) (store.SessionKey, bool) {
	token, ok := cookieValue(r, sessionCookieName(r))
	if !ok {
		return store.SessionKey{}, false
	}
	return store.ParseSessionToken(token)
}

// client is who sends r, as the sign-in service sees it.
func client(r *http.Request) signin.Client {
	return signin.Client{IP: clientIP(r), UserAgent: r.UserAgent(), Language: r.Header.Get("Accept-Language")}
}

// fullSession returns the request's signed-in session. It is served from
// the session cache (package sessioncache) and writes nothing: the checks that the
// user still exists, is still enrolled and still has the session
// identifier the session was confirmed with are made when the session is
// loaded, and any write to the user or the session drops it from the
// cache. Whether this config still declares the user with the password
// the session was opened with is checked on every request (see
// signin.Policy.Honours).
func (h *TwoFactor) fullSession(r *http.Request, now time.Time) (*sessioncache.Session, error) {
	key, ok := sessionKey(r)
	if !ok {
		return nil, signin.ErrNotSignedIn
	}
	e := h.db.cache.Get(key)
	if e == nil {
		var err error
		if e, err = h.loadSession(key, now); err != nil {
			return nil, err
		}
	}
	ns := now.UnixNano()
	if !e.Live(ns, time.Duration(h.SessionIdle)) && h.db.shared() {
		// Another instance may have seen the session since: its
		// last-seen time, written behind, is in the store.
		var err error
		if e, err = h.loadSession(key, now); err != nil {
			return nil, err
		}
	}
	if !e.Live(ns, time.Duration(h.SessionIdle)) {
		return nil, signin.ErrNotSignedIn
	}
	if !h.signin.Honours(e.User, e.Credential, e.DatabaseUser) {
		return nil, signin.ErrNotSignedIn
	}
	e.Seen(ns)
	return e, nil
}

// loadSession reads a signed-in session from the store and caches it. The
// store vouches for it when it is signed in (not pending), its user is
// enrolled and still has the session identifier it was confirmed with.
func (h *TwoFactor) loadSession(key store.SessionKey, now time.Time) (*sessioncache.Session, error) {
	e, err := h.db.cache.Load(h.db.raw, key, now, time.Duration(h.SessionIdle), func(s *store.Session, u *store.User) (bool, error) {
		if s.Stage != store.StageFull || !s.HeldBy(u) {
			return false, signin.ErrNotSignedIn
		}
		return signin.StillHasPassword(u, s), nil
	})
	if errors.Is(err, store.ErrNotFound) {
		err = signin.ErrNotSignedIn
	}
	return e, err
}

// pendingSession returns the request's password-only session, or
// signin.ErrNoPending.
func (h *TwoFactor) pendingSession(r *http.Request) (*store.Session, *store.User, error) {
	key, ok := sessionKey(r)
	if !ok {
		return nil, nil, signin.ErrNoPending
	}
	return h.signin.Pending(key)
}
