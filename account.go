package twofactor

import (
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/caddy-two-factor/caddy-two-factor/passkey"
	"github.com/caddy-two-factor/caddy-two-factor/signin"
	"github.com/caddy-two-factor/caddy-two-factor/store"
)

// The account page, {path_prefix}/account, lets a signed-in user see their
// enrollment and sessions, end sessions, and replace their authenticator
// or recovery codes. Each replacement asks for a second factor in the same
// form (a current code or a recovery code), checked and used up as at
// sign-in: a script that runs in the user's browser on the same site (an
// XSS in the application behind the gate) can read these pages and post
// their forms, but cannot give a code it does not have.

// accountNotices are the messages the account page shows after an action,
// named by its done query parameter: never text from the request.
var accountNotices = map[string]string{
	"ended":          "That session is signed out.",
	"others":         "You are signed out everywhere else.",
	"authenticator":  "Your new authenticator is active. You are signed out everywhere else.",
	"passkey-add":    "Your new passkey is ready to use.",
	"passkey-rename": "The passkey is renamed.",
	"passkey-remove": "The passkey is removed. You are signed out everywhere else.",
	"token_revoked":  msgAppTokenRevoked,
	"forgotten":      msgBrowsersForgotten,
}

// accountView is the account page's content.
type accountView struct {
	EnrolledAt string
	CodesLeft  int
	Sessions   []sessionView
	// Others counts the sessions other than the current one.
	Others int
	// AppTokensOn shows the app tokens part: the config accepts them
	// somewhere. NewAppToken is a token just created, shown once.
	AppTokensOn bool
	AppTokens   []appTokenView
	NewAppToken string
	// RememberOn shows the remembered browsers part (remember_device).
	RememberOn bool
	Browsers   []browserView
	// Email is the user's address for notices and e-mailed codes, shown
	// to them read-only (the operator sets it); "" if none.
	Email string
	// HasTOTP: the user has an authenticator app.
	HasTOTP bool
	// Passkeys are the user's passkeys and security keys.
	Passkeys []passkeyView
}

// passkeyView is one of the user's passkeys on the account page.
type passkeyView struct {
	// ID names it in the page's forms.
	ID      string
	Name    string
	Created string
	// LastUsed is "" for a passkey never used since it was added.
	LastUsed string
}

// sessionView is one of the user's sessions on the account page.
type sessionView struct {
	// Ref names the session in the page's forms.
	Ref       string
	Current   bool
	Pending   bool
	Device    string
	UserAgent string
	ClientIP  string
	Created   string
	LastSeen  string
}

// accountSession returns the request's signed-in session and its user,
// read afresh from the store.
func (h *TwoFactor) accountSession(r *http.Request, now time.Time) (*store.Session, *store.User, error) {
	if _, err := h.fullSession(r, now); err != nil {
		return nil, nil, err
	}
	key, _ := sessionKey(r)
	return h.signin.SignedIn(key)
}

// toSignIn sends a request without a signed-in session to the login page,
// to come back to the account page; any other error is returned for
// answerFailure.
func (h *TwoFactor) toSignIn(w http.ResponseWriter, err error) error {
	if errors.Is(err, signin.ErrNotSignedIn) {
		return redirectTo(w, h.page("login")+"?next="+url.QueryEscape(h.page("account")))
	}
	return err
}

// accountDone redirects to the account page with a notice.
func (h *TwoFactor) accountDone(w http.ResponseWriter, notice string) error {
	return redirectTo(w, h.page("account")+"?done="+notice)
}

func (h *TwoFactor) getAccount(w http.ResponseWriter, r *http.Request) error {
	now := h.now()
	sess, u, err := h.accountSession(r, now)
	if err != nil {
		return h.toSignIn(w, err)
	}
	return h.renderAccount(w, http.StatusOK, sess, u, now, accountNotices[r.URL.Query().Get("done")], "")
}

func (h *TwoFactor) renderAccount(w http.ResponseWriter, status int, sess *store.Session, u *store.User, now time.Time, notice, msg string) error {
	return h.renderAccountPage(w, status, sess, u, now, notice, msg, "")
}

// renderAccountPage is renderAccount, with newToken, an app token just
// created, shown once.
func (h *TwoFactor) renderAccountPage(w http.ResponseWriter, status int, sess *store.Session, u *store.User, now time.Time, notice, msg, newToken string) error {
	sessions, err := h.signin.Sessions(u, sess.Key)
	if err != nil {
		return err
	}
	view := &accountView{Email: h.signin.Address(u.Name, u), HasTOTP: u.TOTP != nil, CodesLeft: len(u.RecoveryDigests)}
	enrolled := time.Time{}
	if u.TOTP != nil {
		enrolled = u.TOTP.EnrolledAt
		view.CodesLeft = len(u.TOTP.RecoveryDigests)
	}
	for _, p := range u.Passkeys {
		if enrolled.IsZero() || p.Created.Before(enrolled) {
			enrolled = p.Created
		}
		pv := passkeyView{ID: passkey.EncodeID(p.ID), Name: p.Name, Created: formatTime(p.Created)}
		if !p.LastUsed.IsZero() {
			pv.LastUsed = formatTime(p.LastUsed)
		}
		view.Passkeys = append(view.Passkeys, pv)
	}
	view.EnrolledAt = formatTime(enrolled)
	for _, s := range sessions {
		current := s.Key == sess.Key
		if !current {
			view.Others++
		}
		view.Sessions = append(view.Sessions, sessionView{
			Ref:       h.sessionRef(s.Key),
			Current:   current,
			Pending:   s.Stage != store.StageFull,
			Device:    device(s.UserAgent),
			UserAgent: s.UserAgent,
			ClientIP:  s.ClientIP,
			Created:   formatTime(s.Created),
			LastSeen:  formatTime(s.LastSeen),
		})
	}
	h.appTokenViews(view, u, newToken)
	h.browserViews(view, u, now)
	return h.render(w, status, "account", pageData{
		Title:    "Your account",
		CSRF:     h.sessionCSRF(sess.Key),
		Username: u.Name,
		Error:    msg,
		Notice:   notice,
		Account:  view,
		// For the passkey-add button, and a passkey-only user's step-up.
		PasskeyScript: h.signin.Offers().EnrollPasskey || (u.TOTP == nil && len(u.Passkeys) > 0),
	})
}

func formatTime(t time.Time) string { return t.UTC().Format("2 Jan 2006 15:04 UTC") }

// sessionRef names a session in the account page's forms: a MAC of its
// key, which tells nothing of the key or the token.
func (h *TwoFactor) sessionRef(key store.SessionKey) string {
	return h.csrfToken("session-ref", key[:])
}

// accountForm is a POST to the account pages, checked.
type accountForm struct {
	url.Values
	sess *store.Session
	user *store.User
	now  time.Time
}

// withAccountForm reads a POST to the account pages and hands it to fn
// once it has a signed-in session, the same origin and the session's
// anti-CSRF token; otherwise it answers the request itself.
func (h *TwoFactor) withAccountForm(w http.ResponseWriter, r *http.Request, fn func(accountForm) error) error {
	values, ok := h.readForm(w, r)
	if !ok {
		return nil
	}
	now := h.now()
	sess, u, err := h.accountSession(r, now)
	if err != nil {
		return h.toSignIn(w, err)
	}
	if !h.validSessionPost(r, values, sess.Key) {
		return h.rejectForgery(w, r, sess.User)
	}
	return fn(accountForm{Values: values, sess: sess, user: u, now: now})
}

func (h *TwoFactor) postAccount(w http.ResponseWriter, r *http.Request) error {
	return h.withAccountForm(w, r, func(f accountForm) error {
		switch f.Get("action") {
		case "codes":
			return h.replaceRecoveryCodes(w, r, f)
		case "end":
			ref := f.Get("session")
			_, err := h.signin.EndSessions(f.sess, signin.ScopeOne, client(r), func(s *store.Session) bool { return h.sessionRef(s.Key) == ref })
			return h.accountAnswer(w, err, "ended")
		case "others":
			_, err := h.signin.EndOtherSessions(f.sess, client(r))
			return h.accountAnswer(w, err, "others")
		case "app_token", "revoke_token":
			return h.appTokenAction(w, r, f)
		case "forget_browser", "forget_browsers":
			return h.forgetBrowsers(w, r, f)
		}
		return h.render(w, http.StatusBadRequest, "error", pageData{Title: "Bad request", Error: "The form asked for something this page does not do."})
	})
}

// accountRefusal answers an account action the service refused: the
// account page with the refusal's message, or the login page if the
// session ended meanwhile; any other error is returned for answerFailure.
func (h *TwoFactor) accountRefusal(w http.ResponseWriter, r *http.Request, f accountForm, err error) error {
	answered, err := h.answerRefusal(w, r, err, func(status int, msg string) error {
		return h.renderAccount(w, status, f.sess, f.user, f.now, "", msg)
	})
	if answered {
		return err
	}
	return h.toSignIn(w, err)
}

// accountAnswer finishes an account action: the account page with notice
// once it is done; the login page if the session ended meanwhile.
func (h *TwoFactor) accountAnswer(w http.ResponseWriter, err error, notice string) error {
	if err != nil {
		return h.toSignIn(w, err)
	}
	return h.accountDone(w, notice)
}

func (h *TwoFactor) replaceRecoveryCodes(w http.ResponseWriter, r *http.Request, f accountForm) error {
	req := signin.StepUpRequest{Session: f.sess, Factor: f.Get("code"), Client: client(r)}
	if assertion := credential(f.Values); assertion != nil {
		req.Assertion = assertion // a passkey-only user confirms with a passkey
	}
	codes, err := h.signin.ReplaceRecoveryCodesAfter(req)
	if err != nil {
		return h.accountRefusal(w, r, f, err)
	}
	return h.render(w, http.StatusOK, "recovery", pageData{
		Title:         "Your new recovery codes",
		Username:      f.sess.User,
		RecoveryCodes: codes,
		CodesFile:     h.codesFile(w, h.issuer(r), f.sess.User, codes),
		Next:          h.page("account"),
	})
}

// ---- replacing the authenticator ----

// getAuthenticator shows a new secret to replace the user's authenticator
// with. Each visit makes a new one, so a secret read by someone else (a
// script on the same site) is never the one the user goes on to activate.
func (h *TwoFactor) getAuthenticator(w http.ResponseWriter, r *http.Request) error {
	now := h.now()
	sess, u, err := h.accountSession(r, now)
	if err != nil {
		return h.toSignIn(w, err)
	}
	secret, err := h.signin.SetupSecret(sess, true)
	if err != nil {
		return h.toSignIn(w, err)
	}
	return h.renderSetup(w, r, http.StatusOK, sess, u, secret, "")
}

func (h *TwoFactor) postAuthenticator(w http.ResponseWriter, r *http.Request) error {
	return h.withAccountForm(w, r, func(f accountForm) error {
		return h.replaceAuthenticator(w, r, f)
	})
}

// replaceAuthenticator activates the authenticator set up in the session
// once the form has a code of it and a current second factor, and ends
// the user's other sessions.
func (h *TwoFactor) replaceAuthenticator(w http.ResponseWriter, r *http.Request, f accountForm) error {
	sess := f.sess
	var err error
	if assertion := credential(f.Values); assertion != nil {
		// A passkey-only user adding an app confirms with a passkey.
		_, err = h.signin.AddAuthenticatorWithPasskey(sess, f.Get("code"), assertion, client(r))
	} else {
		_, err = h.signin.ReplaceAuthenticator(sess, f.Get("code"), f.Get("current"), client(r))
	}
	if errors.Is(err, signin.ErrNoSecret) {
		// Never shown, or replaced in another tab meanwhile.
		return redirectTo(w, h.page("account/authenticator"))
	}
	if errors.Is(err, signin.ErrAppsOff) {
		return h.render(w, http.StatusNotFound, "error", pageData{Title: "Page not found", Error: "There is no such page."})
	}
	if err != nil {
		answered, err := h.answerRefusal(w, r, err, func(status int, msg string) error {
			secret, err := h.signin.OpenSecret(sess)
			if err != nil {
				return err
			}
			return h.renderSetup(w, r, status, sess, f.user, secret, msg)
		})
		if answered {
			return err
		}
		return h.toSignIn(w, err)
	}
	return h.accountDone(w, "authenticator")
}

// device names the browser and system of a User-Agent, roughly; the page
// shows the full string beside it.
func device(ua string) string { return signin.Device(ua) }
