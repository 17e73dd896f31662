package twofactor

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-two-factor/caddy-two-factor/passkey"
	"github.com/caddy-two-factor/caddy-two-factor/signin"
	"github.com/caddy-two-factor/caddy-two-factor/store"
)

// The passkey pages. Each ceremony takes two requests (see
// templates/passkey.js): a POST to an options URL, answered with the JSON
// the browser's WebAuthn call takes (or {"error": message}), then an
// ordinary form POST with the browser's answer in the credential field,
// answered with a page as every form is. Both carry the page's anti-CSRF
// token; the ceremony's state stays in the session, on the server.
//
//	setup/passkey            GET the page, POST the new passkey (first sign-in)
//	setup/passkey/options    POST: begin registering it
//	confirm/passkey          POST the answer (confirm.html has the button)
//	confirm/passkey/options  POST: begin confirming with a passkey
//	login/passkey            POST the answer (passkey_login only)
//	login/passkey/options    POST: begin a passkey login
//	account/passkey          POST action=add|rename|remove
//	account/passkey/options  POST: step up (code, or stepup answer), then begin adding one
//	account/passkey/verify   POST: begin the passkey step-up of a passkey-only user

// pageHandlers are a page's GET and POST handlers.
type pageHandlers struct {
	get, post func(http.ResponseWriter, *http.Request) error
}

// passkeyPage returns the handlers of a passkey page, if page is one.
func (h *TwoFactor) passkeyPage(page string) (pageHandlers, bool) {
	switch page {
	case "setup/passkey":
		return pageHandlers{h.getPasskeySetup, h.postPasskeySetup}, true
	case "setup/passkey/options":
		return pageHandlers{post: h.passkeySetupOptions}, true
	case "confirm/passkey":
		return pageHandlers{post: h.postPasskeyConfirm}, true
	case "confirm/passkey/options":
		return pageHandlers{post: h.passkeyConfirmOptions}, true
	case "account/passkey":
		return pageHandlers{post: h.postAccountPasskey}, true
	case "account/passkey/options":
		return pageHandlers{post: h.addPasskeyOptions}, true
	case "account/passkey/verify":
		return pageHandlers{post: h.passkeyStepUpOptions}, true
	}
	if !h.signin.Offers().PasskeyLogin {
		return pageHandlers{}, false // passkey login: 404 unless it is on
	}
	switch page {
	case "login/passkey":
		return pageHandlers{post: h.postPasskeyLogin}, true
	case "login/passkey/options":
		return pageHandlers{post: h.passkeyLoginOptions}, true
	}
	return pageHandlers{}, false
}

// credential is the browser's answer in a passkey form.
func credential(form url.Values) []byte {
	if v := form.Get("credential"); v != "" {
		return []byte(v)
	}
	return nil
}

// ---- options (JSON) ----

// answerOptions answers an options request: the options, or the refusal
// as {"error": message} with its status.
func (h *TwoFactor) answerOptions(w http.ResponseWriter, options []byte, err error) error {
	hdr := w.Header()
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")
	if err == nil {
		hdr.Set("Content-Type", "application/json")
		hdr.Set("Content-Length", strconv.Itoa(len(options)))
		_, err := w.Write(options)
		return err
	}
	status, msg := http.StatusInternalServerError, msgPasskeyFailed
	locked, isLocked := errors.AsType[*signin.LockedError](err)
	switch {
	case isLocked:
		hdr.Set("Retry-After", strconv.Itoa(int(locked.RetryAfter(h.now())/time.Second)))
		status, msg = http.StatusTooManyRequests, msgLocked
	case storeUnavailable(err):
		hdr.Set("Retry-After", storeRetryAfterValue)
		status, msg = http.StatusServiceUnavailable, msgPasskeyUnavailable
	case errors.Is(err, signin.ErrPasskeysOff):
		status, msg = http.StatusNotFound, msgPasskeysOff
	case errors.Is(err, signin.ErrNoPending), errors.Is(err, signin.ErrNotSignedIn):
		status, msg = http.StatusUnauthorized, msgPasskeySession
	case errors.Is(err, signin.ErrAlreadyEnrolled):
		status, msg = http.StatusConflict, msgPasskeySession
	case errors.Is(err, signin.ErrNotEnrolled):
		status, msg = http.StatusBadRequest, msgNoPasskeys
	default:
		for _, f := range formRefusals {
			if errors.Is(err, f.err) {
				status, msg = f.status, f.msg
				break
			}
		}
	}
	if status == http.StatusInternalServerError {
		h.logger.Error("beginning a passkey ceremony", zap.Error(err))
	}
	return writeJSON(w, status, map[string]string{"error": h.translated(w, msg)})
}

// pendingOptions answers an options request of a password-only session.
func (h *TwoFactor) pendingOptions(w http.ResponseWriter, r *http.Request, begin func(*store.Session) ([]byte, error)) error {
	form, ok := h.readForm(w, r)
	if !ok {
		return nil
	}
	sess, _, err := h.pendingSession(r)
	if err != nil {
		return h.answerOptions(w, nil, err)
	}
	if !h.validSessionPost(r, form, sess.Key) {
		return h.rejectForgeryJSON(w, r, sess.User)
	}
	options, err := begin(sess)
	return h.answerOptions(w, options, err)
}

// rejectForgeryJSON answers an options request whose origin or anti-CSRF
// token is wrong.
func (h *TwoFactor) rejectForgeryJSON(w http.ResponseWriter, r *http.Request, user string) error {
	page, _ := h.pageName(r.URL.Path)
	countSignIn(formStep(page), outcomeCSRFRejected)
	h.audit(clientIP(r), eventCSRFRejected, user, "")
	return writeJSON(w, http.StatusForbidden, map[string]string{"error": h.translated(w, msgExpiredForm)})
}

func (h *TwoFactor) passkeySetupOptions(w http.ResponseWriter, r *http.Request) error {
	return h.pendingOptions(w, r, h.signin.BeginPasskeySetup)
}

func (h *TwoFactor) passkeyConfirmOptions(w http.ResponseWriter, r *http.Request) error {
	if _, _, err := h.pendingSession(r); errors.Is(err, signin.ErrNoPending) {
		// A signed-in session that a step_up rule or a recheck sent to
		// the confirm page gives its passkey as for an account change.
		return h.passkeyStepUpOptions(w, r)
	}
	return h.pendingOptions(w, r, h.signin.BeginPasskeyConfirm)
}

func (h *TwoFactor) passkeyLoginOptions(w http.ResponseWriter, r *http.Request) error {
	form, ok := h.readForm(w, r)
	if !ok {
		return nil
	}
	if !sameOrigin(r) || !h.validLoginCSRF(r, form.Get("csrf")) {
		return h.rejectForgeryJSON(w, r, "")
	}
	var replace *store.SessionKey
	if key, ok := sessionKey(r); ok {
		replace = &key
	}
	token, options, err := h.signin.BeginPasskeyLogin(replace, client(r))
	if err == nil && token != "" {
		h.setSessionCookie(w, r, token)
	}
	return h.answerOptions(w, options, err)
}

// accountOptions answers an options request of a signed-in session.
func (h *TwoFactor) accountOptions(w http.ResponseWriter, r *http.Request, begin func(f accountForm) ([]byte, error)) error {
	form, ok := h.readForm(w, r)
	if !ok {
		return nil
	}
	now := h.now()
	sess, u, err := h.accountSession(r, now)
	if err != nil {
		return h.answerOptions(w, nil, err)
	}
	if !h.validSessionPost(r, form, sess.Key) {
		return h.rejectForgeryJSON(w, r, sess.User)
	}
	options, err := begin(accountForm{Values: form, sess: sess, user: u, now: now})
	return h.answerOptions(w, options, err)
}

func (h *TwoFactor) passkeyStepUpOptions(w http.ResponseWriter, r *http.Request) error {
	return h.accountOptions(w, r, func(f accountForm) ([]byte, error) {
		return h.signin.BeginPasskeyStepUp(f.sess)
	})
}

// addPasskeyOptions steps up with the form's current factor (a code, or
// the stepup field's passkey answer) and only then begins registering a
// new passkey.
func (h *TwoFactor) addPasskeyOptions(w http.ResponseWriter, r *http.Request) error {
	return h.accountOptions(w, r, func(f accountForm) ([]byte, error) {
		req := signin.StepUpRequest{Session: f.sess, Factor: f.Get("current"), Client: client(r)}
		if stepup := f.Get("stepup"); stepup != "" {
			req.Assertion = []byte(stepup)
		}
		return h.signin.BeginAddPasskey(req)
	})
}

// ---- forms ----

// withPendingForm reads a POST to a step of sign-in and hands it to fn
// once it has a password-only session, the same origin and the session's
// anti-CSRF token; otherwise it answers the request itself.
func (h *TwoFactor) withPendingForm(w http.ResponseWriter, r *http.Request, fn func(http.ResponseWriter, *http.Request, url.Values, *store.Session, *store.User) error) error {
	return h.withPendingOr(w, r, fn, nil)
}

// withPendingOr is withPendingForm, except that the post of a signed-in
// session goes to signedIn, if set: the confirm page's, where a step_up
// rule or a recheck sends a session for a fresh factor.
func (h *TwoFactor) withPendingOr(w http.ResponseWriter, r *http.Request, fn func(http.ResponseWriter, *http.Request, url.Values, *store.Session, *store.User) error, signedIn func(http.ResponseWriter, *http.Request, url.Values) error) error {
	form, ok := h.readForm(w, r)
	if !ok {
		return nil
	}
	sess, user, err := h.pendingSession(r)
	if signedIn != nil && errors.Is(err, signin.ErrNoPending) {
		return signedIn(w, r, form)
	}
	if err != nil {
		return h.noPending(w, err)
	}
	if !h.validSessionPost(r, form, sess.Key) {
		return h.rejectForgery(w, r, sess.User)
	}
	return fn(w, r, form, sess, user)
}

func (h *TwoFactor) getPasskeySetup(w http.ResponseWriter, r *http.Request) error {
	sess, _, err := h.setupStep(w, r, h.signin.Offers().EnrollPasskey, "setup")
	if sess == nil {
		return err
	}
	return h.renderPasskeySetup(w, http.StatusOK, sess, "")
}

func (h *TwoFactor) renderPasskeySetup(w http.ResponseWriter, status int, sess *store.Session, msg string) error {
	return h.render(w, status, "setup-passkey", pageData{
		Title:         "Set up a passkey",
		CSRF:          h.sessionCSRF(sess.Key),
		Username:      sess.User,
		Error:         msg,
		PasskeyScript: true,
	})
}

func (h *TwoFactor) postPasskeySetup(w http.ResponseWriter, r *http.Request) error {
	return h.withPendingForm(w, r, h.finishPasskeySetup)
}

func (h *TwoFactor) finishPasskeySetup(w http.ResponseWriter, r *http.Request, form url.Values, sess *store.Session, _ *store.User) error {
	res, err := h.signin.FinishPasskeySetup(sess, credential(form), form.Get("name"), client(r))
	switch {
	case errors.Is(err, signin.ErrAlreadyEnrolled):
		return redirectTo(w, h.page("confirm"))
	case errors.Is(err, signin.ErrPasskeysOff):
		return redirectTo(w, h.page("setup"))
	case err != nil:
		_, err = h.answerRefusal(w, r, err, func(status int, msg string) error {
			return h.renderPasskeySetup(w, status, sess, msg)
		})
		return h.noPending(w, err)
	}
	return h.enrolled(w, r, sess, res)
}

func (h *TwoFactor) postPasskeyConfirm(w http.ResponseWriter, r *http.Request) error {
	return h.withPendingOr(w, r, h.finishPasskeyConfirm, h.postReconfirm)
}

func (h *TwoFactor) finishPasskeyConfirm(w http.ResponseWriter, r *http.Request, form url.Values, sess *store.Session, user *store.User) error {
	res, err := h.signin.FinishPasskeyConfirm(sess, credential(form), client(r))
	return h.confirmed(w, r, form, sess, user, res, err)
}

func (h *TwoFactor) postPasskeyLogin(w http.ResponseWriter, r *http.Request) error {
	return h.withLoginForm(w, r, func(form url.Values, next string) error {
		return h.finishPasskeyLogin(w, r, form, next)
	})
}

func (h *TwoFactor) finishPasskeyLogin(w http.ResponseWriter, r *http.Request, form url.Values, next string) error {
	key, ok := sessionKey(r)
	if !ok {
		return h.renderLogin(w, r, http.StatusBadRequest, next, "", msgPasskeyExpired)
	}
	res, err := h.signin.FinishPasskeyLogin(key, credential(form), next, client(r))
	if errors.Is(err, signin.ErrNoPending) {
		err = signin.ErrPasskeyExpired
	}
	if err != nil {
		_, err = h.answerRefusal(w, r, err, func(status int, msg string) error {
			return h.renderLogin(w, r, status, next, "", msg)
		})
		return err
	}
	h.setSessionCookie(w, r, res.Token)
	return redirectTo(w, h.safeNext(res.Next))
}

// postAccountPasskey adds (after the step-up of addPasskeyOptions),
// renames or removes a passkey.
func (h *TwoFactor) postAccountPasskey(w http.ResponseWriter, r *http.Request) error {
	return h.withAccountForm(w, r, func(f accountForm) error {
		c := client(r)
		var err error
		notice := "passkey-" + f.Get("action")
		switch f.Get("action") {
		case "add":
			err = h.signin.FinishAddPasskey(f.sess, credential(f.Values), f.Get("name"), c)
		case "rename", "remove":
			id, derr := passkey.DecodeID(f.Get("id"))
			switch {
			case derr != nil:
				err = signin.ErrUnknownPasskey
			case f.Get("action") == "rename":
				err = h.signin.RenamePasskey(f.sess, id, f.Get("name"), c)
			default:
				_, err = h.signin.RemovePasskey(f.sess, id, c)
			}
		default:
			return h.render(w, http.StatusBadRequest, "error", pageData{Title: "Bad request", Error: "The form asked for something this page does not do."})
		}
		if err != nil {
			return h.accountRefusal(w, r, f, err)
		}
		return h.accountDone(w, notice)
	})
}
