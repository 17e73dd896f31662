package twofactor

import (
	"bytes"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-two-factor/caddy-two-factor/recovery"
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
	"ended":         "That session is signed out.",
	"others":        "You are signed out everywhere else.",
	"authenticator": "Your new authenticator is active. You are signed out everywhere else.",
}

// accountView is the account page's content.
type accountView struct {
	EnrolledAt string
	CodesLeft  int
	Sessions   []sessionView
	// Others counts the sessions other than the current one.
	Others int
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
	var (
		sess *store.Session
		u    *store.User
	)
	err := h.db.store.View(func(tx store.Tx) error {
		var err error
		if sess, err = tx.Session(key); err != nil {
			return err
		}
		u, err = tx.User(sess.User)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		err = errNoSession
	}
	return sess, u, err
}

// toSignIn sends a request without a signed-in session to the login page,
// to come back to the account page; any other error is returned for
// answerFailure.
func (h *TwoFactor) toSignIn(w http.ResponseWriter, err error) error {
	if errors.Is(err, errNoSession) {
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
	var sessions []*store.Session
	err := h.db.store.View(func(tx store.Tx) error {
		var err error
		sessions, err = tx.UserSessions(u.Name)
		return err
	})
	if err != nil {
		return err
	}
	view := &accountView{}
	if u.TOTP != nil {
		view.EnrolledAt = formatTime(u.TOTP.EnrolledAt)
		view.CodesLeft = len(u.TOTP.RecoveryDigests)
	}
	// The current session first, then the most recently used.
	slices.SortFunc(sessions, func(a, b *store.Session) int {
		switch {
		case a.Key == sess.Key:
			return -1
		case b.Key == sess.Key:
			return 1
		}
		return b.LastSeen.Compare(a.LastSeen)
	})
	for _, s := range sessions {
		if !h.live(s, now) || !s.HeldBy(u) {
			continue
		}
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
	return h.render(w, status, "account", pageData{
		Title:    "Your account",
		CSRF:     h.sessionCSRF(sess.Key),
		Username: u.Name,
		Error:    msg,
		Notice:   notice,
		Account:  view,
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
			return h.endOwnSessions(w, r, f.sess, "session_ended", "ended", func(s *store.Session) bool { return h.sessionRef(s.Key) == ref })
		case "others":
			return h.endOwnSessions(w, r, f.sess, "other_sessions_ended", "others", func(*store.Session) bool { return true })
		}
		return h.render(w, http.StatusBadRequest, "error", pageData{Title: "Bad request", Error: "The form asked for something this page does not do."})
	})
}

// withFreshFactor makes change, in one transaction, once input is a right
// second factor of the signed-in user: a current code or a recovery code,
// checked and used up as at sign-in, with the same attempt limits. When
// the factor is malformed or wrong it answers with rerender, and when the
// account may not try now with 429. The caller finishes the answer
// unless answered is true; an error it gets is one of the store or of
// change.
func (h *TwoFactor) withFreshFactor(w http.ResponseWriter, r *http.Request, sess *store.Session, input, event string, now time.Time,
	rerender func(status int, msg string) error, change func(tx store.Tx, s *store.Session, u *store.User) error,
) (answered bool, err error) {
	factor, ok := parseSecondFactor(input)
	if !ok {
		return true, rerender(http.StatusBadRequest, msgConfirmFormat)
	}
	attempt, err := h.beginAttempt(w, r, event, sess.User, true, now)
	if attempt == nil {
		return true, err
	}
	defer h.release(attempt)
	err = h.db.store.Update(func(tx store.Tx) error {
		s, u, err := fullRecords(tx, sess.Key)
		if err != nil {
			return err
		}
		if err := h.useSecondFactor(u, factor, now); err != nil {
			return err
		}
		s.ConfirmedAt, s.Method = now, factor.method()
		if err := change(tx, s, u); err != nil {
			return err
		}
		if err := tx.PutUser(u); err != nil {
			return err
		}
		return tx.PutSession(s)
	})
	switch {
	case errors.Is(err, errBadCode), errors.Is(err, errReplayedCode):
		if err := h.codeFailed(r, attempt, event+"_failed", sess.User, factor.method(), err); err != nil {
			return true, err
		}
		return true, rerender(http.StatusUnauthorized, msgBadCode)
	case err != nil:
		return false, err
	}
	h.signedIn(attempt)
	return false, nil
}

// fullRecords reads a signed-in session and its enrolled user in tx, or
// returns errNoSession.
func fullRecords(tx store.Tx, key store.SessionKey) (*store.Session, *store.User, error) {
	s, err := tx.Session(key)
	if err != nil {
		return nil, nil, asNoSession(err)
	}
	if s.Stage != store.StageFull {
		return nil, nil, errNoSession
	}
	u, err := tx.User(s.User)
	if err != nil {
		return nil, nil, asNoSession(err)
	}
	if u.TOTP == nil {
		return nil, nil, errNoSession
	}
	return s, u, nil
}

func (h *TwoFactor) replaceRecoveryCodes(w http.ResponseWriter, r *http.Request, f accountForm) error {
	var codes []string
	answered, err := h.withFreshFactor(w, r, f.sess, f.Get("code"), "recovery_codes", f.now,
		func(status int, msg string) error { return h.renderAccount(w, status, f.sess, f.user, f.now, "", msg) },
		func(_ store.Tx, _ *store.Session, u *store.User) error {
			var err error
			codes, u.TOTP.RecoveryDigests, err = recovery.Generate(h.RecoveryCodes)
			return err
		})
	if answered {
		return err
	}
	if err != nil {
		return h.toSignIn(w, err)
	}
	h.audit(r, "recovery_codes_replaced", f.sess.User, "")
	return h.render(w, http.StatusOK, "recovery", pageData{
		Title:         "Your new recovery codes",
		Username:      f.sess.User,
		RecoveryCodes: codes,
		CodesFile:     codesFile(h.issuer(r), f.sess.User, codes),
		Next:          h.page("account"),
	})
}

// endOwnSessions ends the user's sessions other than the current one
// that end selects.
func (h *TwoFactor) endOwnSessions(w http.ResponseWriter, r *http.Request, sess *store.Session, event, notice string, end func(*store.Session) bool) error {
	var ended int
	err := h.db.store.Update(func(tx store.Tx) error {
		var err error
		ended, err = h.db.endSessions(tx, sess.User, func(s *store.Session) bool { return s.Key != sess.Key && end(s) })
		return err
	})
	if err != nil {
		return err
	}
	h.audit(r, event, sess.User, "", zap.Int("sessions_ended", ended))
	return h.accountDone(w, notice)
}

// ---- replacing the authenticator ----

// getAuthenticator shows a new secret to replace the user's authenticator
// with. Each visit makes a new one, so a secret read by someone else (a
// script on the same site) is never the one the user goes on to activate.
func (h *TwoFactor) getAuthenticator(w http.ResponseWriter, r *http.Request) error {
	now := h.now()
	sess, _, err := h.accountSession(r, now)
	if err != nil {
		return h.toSignIn(w, err)
	}
	secret, err := h.pendingSecret(sess, true)
	if err != nil {
		return err
	}
	return h.renderSetup(w, r, http.StatusOK, sess, secret, "")
}

func (h *TwoFactor) postAuthenticator(w http.ResponseWriter, r *http.Request) error {
	return h.withAccountForm(w, r, func(f accountForm) error {
		return h.replaceAuthenticator(w, r, f)
	})
}

// errSecretReplaced refuses the activation of a secret that another visit
// of the page has replaced meanwhile.
var errSecretReplaced = errors.New("pending secret replaced")

// replaceAuthenticator activates the authenticator set up in the session
// once the form has a code of it and a current second factor, and ends
// the user's other sessions.
func (h *TwoFactor) replaceAuthenticator(w http.ResponseWriter, r *http.Request, f accountForm) error {
	sess := f.sess
	if sess.PendingSecret == nil {
		return redirectTo(w, h.page("account/authenticator"))
	}
	step, attempt, err := h.checkNewSecret(w, r, sess, f.Get("code"), "reenroll", f.now)
	if attempt == nil {
		return err
	}
	// The new code was right: that attempt is settled, and the current
	// factor is checked as an attempt of its own.
	h.release(attempt)
	secret, err := h.sealer.Open(sess.PendingSecret, sess.User)
	if err != nil {
		return err
	}
	var ended int
	answered, err := h.withFreshFactor(w, r, sess, f.Get("current"), "reenroll", f.now,
		func(status int, msg string) error { return h.renderSetup(w, r, status, sess, secret, msg) },
		func(tx store.Tx, s *store.Session, u *store.User) error {
			if !bytes.Equal(s.PendingSecret, sess.PendingSecret) {
				return errSecretReplaced // replaced in another tab meanwhile
			}
			// The recovery codes stay: they are not tied to the authenticator.
			u.TOTP = &store.Enrollment{Secret: s.PendingSecret, LastStep: step, RecoveryDigests: u.TOTP.RecoveryDigests, EnrolledAt: f.now}
			s.PendingSecret = nil
			// Sessions opened with the old authenticator end.
			var err error
			ended, err = h.db.endSessions(tx, u.Name, func(o *store.Session) bool { return o.Key != s.Key })
			return err
		})
	switch {
	case answered:
		return err
	case errors.Is(err, errSecretReplaced):
		return redirectTo(w, h.page("account/authenticator"))
	case err != nil:
		return h.toSignIn(w, err)
	}
	h.audit(r, "authenticator_replaced", sess.User, "", zap.Int("sessions_ended", ended))
	return h.accountDone(w, "authenticator")
}

// device names the browser and system of a User-Agent, roughly; the page
// shows the full string beside it.
func device(ua string) string {
	pick := func(names [][2]string) string {
		for _, n := range names {
			if strings.Contains(ua, n[0]) {
				return n[1]
			}
		}
		return ""
	}
	browser := pick([][2]string{{"Edg/", "Edge"}, {"OPR/", "Opera"}, {"Firefox/", "Firefox"}, {"Chrome/", "Chrome"}, {"Safari/", "Safari"}})
	system := pick([][2]string{{"Android", "Android"}, {"iPhone", "iPhone"}, {"iPad", "iPad"}, {"Windows", "Windows"}, {"Mac OS X", "macOS"}, {"CrOS", "ChromeOS"}, {"Linux", "Linux"}})
	switch {
	case browser != "" && system != "":
		return browser + " on " + system
	case browser != "" || system != "":
		return browser + system
	case ua != "":
		return truncate(ua, 40)
	}
	return "Unknown device"
}
