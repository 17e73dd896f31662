package twofactor

import (
	"net/http"
	"time"

	"github.com/caddy-two-factor/caddy-two-factor/store"
)

// The account page's app tokens (see gate_apptoken.go): listed with their
// last use, created behind a fresh second factor and shown once, revoked
// one by one.

// msgAppTokenRevoked is the account page's notice after a revocation.
const msgAppTokenRevoked = "That app token is revoked."

// appTokenView is one of the user's app tokens on the account page.
type appTokenView struct {
	ID, Name                   string
	Created, LastUsed, Expires string
}

// appTokenExpiries are the expiries the account page offers.
var appTokenExpiries = map[string]time.Duration{
	"30":    30 * 24 * time.Hour,
	"90":    90 * 24 * time.Hour,
	"365":   365 * 24 * time.Hour,
	"never": 0,
}

// appTokenViews fills the app tokens part of the account page of u.
func (h *TwoFactor) appTokenViews(view *accountView, u *store.User, newToken string) {
	view.AppTokensOn = h.AppTokens != nil
	view.NewAppToken = newToken
	for _, t := range u.AppTokens {
		v := appTokenView{ID: t.ID, Name: t.Name, Created: formatTime(t.Created)}
		if !t.LastUsed.IsZero() {
			v.LastUsed = formatTime(t.LastUsed)
		}
		if !t.Expires.IsZero() {
			v.Expires = formatTime(t.Expires)
		}
		view.AppTokens = append(view.AppTokens, v)
	}
}

// appTokenAction creates or revokes an app token from the account page.
func (h *TwoFactor) appTokenAction(w http.ResponseWriter, r *http.Request, f accountForm) error {
	if h.AppTokens == nil {
		return h.render(w, http.StatusBadRequest, "error", pageData{Title: "Bad request", Error: "The form asked for something this page does not do."})
	}
	if f.Get("action") == "revoke_token" {
		return h.accountAnswer(w, h.signin.RevokeAppToken(f.sess, f.Get("token"), client(r)), "token_revoked")
	}
	life, ok := appTokenExpiries[f.Get("expires")]
	if !ok {
		return h.render(w, http.StatusBadRequest, "error", pageData{Title: "Bad request", Error: "The form could not be read."})
	}
	var expires time.Time
	if life > 0 {
		expires = f.now.Add(life)
	}
	token, err := h.signin.CreateAppToken(f.sess, f.Get("code"), f.Get("name"), expires, client(r))
	if err != nil {
		return h.accountRefusal(w, r, f, err)
	}
	// Read again: the user's record now holds the token.
	sess, u, err := h.accountSession(r, f.now)
	if err != nil {
		return h.toSignIn(w, err)
	}
	return h.renderAccountPage(w, http.StatusOK, sess, u, f.now, "", "", token)
}
