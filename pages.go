package twofactor

import (
	"encoding/base64"
	"errors"
	"html/template"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	qrcode "github.com/skip2/go-qrcode"
	"go.uber.org/zap"

	"github.com/caddy-two-factor/caddy-two-factor/policy"
	"github.com/caddy-two-factor/caddy-two-factor/redirect"
	"github.com/caddy-two-factor/caddy-two-factor/signin"
	"github.com/caddy-two-factor/caddy-two-factor/store"
	"github.com/caddy-two-factor/caddy-two-factor/throttle"
	"github.com/caddy-two-factor/caddy-two-factor/totp"
)

// maxFormBytes caps a POST body to the module's pages.
const maxFormBytes = 64 << 10

// servePage serves one of the module's own pages.
func (h *TwoFactor) servePage(w http.ResponseWriter, r *http.Request, page string) error {
	type handlers struct {
		get, post func(http.ResponseWriter, *http.Request) error
	}
	var hs handlers
	switch page {
	case "", "login":
		hs = handlers{h.getLogin, h.postLogin}
	case "setup":
		hs = handlers{h.getSetup, h.postSetup}
	case "confirm":
		hs = handlers{h.getConfirm, h.postConfirm}
	case "confirm/email":
		hs = handlers{post: h.postConfirmEmail}
	case "logout":
		hs = handlers{h.getLogout, h.postLogout}
	case "account":
		hs = handlers{h.getAccount, h.postAccount}
	case "account/authenticator":
		hs = handlers{h.getAuthenticator, h.postAuthenticator}
	case "static/style.css", "static/app.js", "static/passkey.js":
		hs = handlers{get: h.serveStatic}
	case "static/custom.css", "static/logo":
		hs = handlers{get: h.serveBrandAsset}
	default:
		ph, ok := h.passkeyPage(page)
		if !ok {
			return h.render(w, http.StatusNotFound, "error", pageData{Title: "Page not found", Error: "There is no such page."})
		}
		hs = handlers(ph)
	}
	// The handlers answer what they can decide; a failure they return is
	// answered here, in one way for every page (see answerFailure).
	switch {
	case r.Method == http.MethodGet || r.Method == http.MethodHead:
		return h.answerFailure(w, r, r.Method+" "+h.page(page), hs.get(w, r))
	case r.Method == http.MethodPost && hs.post != nil:
		return h.answerFailure(w, r, r.Method+" "+h.page(page), hs.post(w, r))
	default:
		allow := "GET, HEAD"
		if hs.post != nil {
			allow += ", POST"
		}
		w.Header().Set("Allow", allow)
		return h.render(w, http.StatusMethodNotAllowed, "error", pageData{Title: "Method not allowed", Error: "This page does not accept " + r.Method + " requests."})
	}
}

func (h *TwoFactor) serveStatic(w http.ResponseWriter, r *http.Request) error {
	name := strings.TrimPrefix(r.URL.Path[len(h.PathPrefix):], "/static/")
	body, err := templatesFS.ReadFile("templates/" + name)
	if err != nil {
		return h.render(w, http.StatusNotFound, "error", pageData{Title: "Page not found", Error: "There is no such page."})
	}
	if strings.HasSuffix(name, ".css") {
		return writeAsset(w, body, "text/css; charset=utf-8")
	}
	return writeAsset(w, body, "text/javascript; charset=utf-8")
}

// readForm parses a POST body of at most maxFormBytes. It answers the
// request itself (413, 400) and returns false when the body is unusable.
func (h *TwoFactor) readForm(w http.ResponseWriter, r *http.Request) (url.Values, bool) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			_ = h.render(w, http.StatusRequestEntityTooLarge, "error", pageData{Title: "Request too large", Error: "The form sent was too large."})
		} else {
			_ = h.render(w, http.StatusBadRequest, "error", pageData{Title: "Bad request", Error: "The form could not be read."})
		}
		return nil, false
	}
	for _, values := range r.PostForm {
		if len(values) > 1 {
			_ = h.render(w, http.StatusBadRequest, "error", pageData{Title: "Bad request", Error: "The form has a repeated field."})
			return nil, false
		}
	}
	return r.PostForm, true
}

// rejectForgery answers a POST whose origin or anti-CSRF token is wrong.
func (h *TwoFactor) rejectForgery(w http.ResponseWriter, r *http.Request, user string) error {
	page, _ := h.pageName(r.URL.Path)
	countSignIn(formStep(page), outcomeCSRFRejected)
	h.audit(clientIP(r), eventCSRFRejected, user, "")
	return h.render(w, http.StatusForbidden, "error", pageData{Title: "Form expired", Error: msgExpiredForm})
}

// redirectTo sends the browser to a path of ours or to a checked next.
func redirectTo(w http.ResponseWriter, target string) error {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Location", target)
	w.WriteHeader(http.StatusSeeOther)
	return nil
}

func (h *TwoFactor) page(name string) string { return h.PathPrefix + "/" + name }

// safeNext returns next if it is safe to send the user to after sign-in.
// Of our own pages, only the account page is.
func (h *TwoFactor) safeNext(next string) string {
	if next == h.page("account") {
		return next
	}
	return redirect.Safe(next, h.PathPrefix)
}

// ---- login ----

func (h *TwoFactor) getLogin(w http.ResponseWriter, r *http.Request) error {
	next := h.safeNext(r.URL.Query().Get("next"))
	_, err := h.fullSession(r, h.now())
	switch {
	case err == nil:
		return redirectTo(w, next)
	case !errors.Is(err, signin.ErrNotSignedIn):
		return err
	case h.UserFrom != "":
		return h.loginVouched(w, r, next)
	}
	// The form is offered only while the store answers: a user should not
	// type a password that cannot be checked.
	if err := h.db.ping(); err != nil {
		return err
	}
	return h.renderLogin(w, r, http.StatusOK, next, "", "")
}

func (h *TwoFactor) renderLogin(w http.ResponseWriter, r *http.Request, status int, next, username, msg string) error {
	token, err := h.loginCSRF(w, r)
	if err != nil {
		return err
	}
	return h.render(w, status, "login", pageData{Title: "Sign in", CSRF: token, Next: next, Username: username, Error: msg, PasskeyScript: h.signin.Offers().PasskeyLogin})
}

// withLoginForm reads a POST of the login page and hands it to fn, with
// its checked next, once it has the same origin and the login form's
// anti-CSRF token; otherwise it answers the request itself.
func (h *TwoFactor) withLoginForm(w http.ResponseWriter, r *http.Request, fn func(form url.Values, next string) error) error {
	form, ok := h.readForm(w, r)
	if !ok {
		return nil
	}
	if !sameOrigin(r) || !h.validLoginCSRF(r, form.Get("csrf")) {
		return h.rejectForgery(w, r, "")
	}
	return fn(form, h.safeNext(form.Get("next")))
}

func (h *TwoFactor) postLogin(w http.ResponseWriter, r *http.Request) error {
	if h.UserFrom != "" {
		// No password here: the earlier login took it.
		return h.getLogin(w, r)
	}
	return h.withLoginForm(w, r, func(form url.Values, next string) error {
		return h.passwordLogin(w, r, form, next)
	})
}

func (h *TwoFactor) passwordLogin(w http.ResponseWriter, r *http.Request, form url.Values, next string) error {
	req := signin.LoginRequest{
		User:     normalizeUsername(form.Get("username")),
		Password: form.Get("password"),
		Client:   client(r),
		Next:     next,
	}
	// Whatever session the browser had is replaced, never upgraded.
	if key, ok := sessionKey(r); ok {
		req.Replace = &key
	}
	req.RememberToken = h.rememberToken(r)
	res, err := h.signin.Login(r.Context(), req)
	if err != nil {
		_, err = h.answerRefusal(w, r, err, func(status int, msg string) error {
			return h.renderLogin(w, r, status, next, form.Get("username"), msg)
		})
		return err
	}
	h.setSessionCookie(w, r, res.Token)
	switch res.Stage {
	case signin.SignedIn: // a remembered browser
		return redirectTo(w, next)
	case signin.NeedsConfirm:
		return redirectTo(w, h.page("confirm"))
	}
	return redirectTo(w, h.page("setup"))
}

// maxPendingSessions bounds a user's password-only sessions (see
// signin.DefaultMaxPending).
const maxPendingSessions = signin.DefaultMaxPending

func (h *TwoFactor) limits() throttle.Limits {
	window, lockout := time.Duration(h.AttemptWindow), time.Duration(h.Lockout)
	return throttle.Limits{
		Pair:    throttle.Budget{Limit: h.MaxAttempts, Window: window, Lockout: lockout},
		Account: throttle.Budget{Limit: h.MaxAccountAttempts, Window: throttle.MaxWindow, Lockout: lockout, Consecutive: true},
		Client:  throttle.Budget{Limit: h.MaxIPAttempts, Window: window, Lockout: lockout},
	}
}

// policy is what this config decides about sign-in, for the service.
func (h *TwoFactor) policy() signin.Policy {
	return signin.Policy{
		SessionIdle:         time.Duration(h.SessionIdle),
		SessionLifetime:     time.Duration(h.SessionLifetime),
		PendingLifetime:     time.Duration(h.PendingLifetime),
		MaxPending:          maxPendingSessions,
		ConcurrentSessions:  h.ConcurrentSessions,
		RecoveryCodes:       h.RecoveryCodes,
		Limits:              h.limits(),
		Accounts:            h.accounts,
		Fake:                h.fakeAccount,
		Gate:                h.gate,
		Vouched:             h.UserFrom != "",
		Remember:            policy.Remember{For: time.Duration(h.RememberDevice)},
		NoTOTPEnrollment:    len(h.Factors) > 0 && !slices.Contains(h.Factors, factorTOTP),
		NoPasskeyEnrollment: len(h.Factors) > 0 && !slices.Contains(h.Factors, factorWebAuthn),
	}
}

// renderLocked answers an attempt refused by a lock, to retry after wait.
func (h *TwoFactor) renderLocked(w http.ResponseWriter, wait time.Duration) error {
	w.Header().Set("Retry-After", strconv.Itoa(int(wait/time.Second)))
	return h.render(w, http.StatusTooManyRequests, "locked", pageData{
		Title:      "Too many attempts",
		Error:      msgLocked,
		RetryAfter: humanDuration(wait),
	})
}

func humanDuration(d time.Duration) string {
	if d < time.Minute {
		return strconv.Itoa(int(d/time.Second)) + " seconds"
	}
	m := int((d + time.Minute - 1) / time.Minute)
	if m == 1 {
		return "1 minute"
	}
	return strconv.Itoa(m) + " minutes"
}

// ---- setup ----

func (h *TwoFactor) getSetup(w http.ResponseWriter, r *http.Request) error {
	sess, user, err := h.setupStep(w, r, h.signin.Offers().EnrollTOTP, "setup/passkey")
	if sess == nil {
		return err
	}
	secret, err := h.signin.SetupSecret(sess, false)
	if err != nil {
		return h.noPending(w, err)
	}
	return h.renderSetup(w, r, http.StatusOK, sess, user, secret, "")
}

// setupStep returns the pending session and user of a setup page, or
// answers the request itself and returns no session: the login page
// without one, the confirm page once enrolled, the other setup page
// (other) when this one's factor is not offered. An error it returns is
// for answerFailure.
func (h *TwoFactor) setupStep(w http.ResponseWriter, r *http.Request, offered bool, other string) (*store.Session, *store.User, error) {
	sess, user, err := h.pendingSession(r)
	switch {
	case err != nil:
		return nil, nil, h.noPending(w, err)
	case user.Enrolled():
		return nil, nil, redirectTo(w, h.page("confirm"))
	case !offered:
		return nil, nil, redirectTo(w, h.page(other))
	}
	return sess, user, nil
}

// noPending answers a step page reached without a password-only session;
// any other error is returned for answerFailure.
func (h *TwoFactor) noPending(w http.ResponseWriter, err error) error {
	if errors.Is(err, signin.ErrNoPending) {
		return redirectTo(w, h.page("login"))
	}
	return err
}

func (h *TwoFactor) renderSetup(w http.ResponseWriter, r *http.Request, status int, sess *store.Session, user *store.User, secret []byte, msg string) error {
	issuer := h.issuer(r)
	uri, err := totp.URI(issuer, sess.User, secret)
	if err != nil {
		return err
	}
	// The key is on the page whatever happens; a QR code that cannot be
	// made (a URI too long for one) leaves the page without it, not broken.
	var qr template.URL
	if png, err := qrcode.Encode(uri, qrcode.Medium, 256); err != nil {
		h.logger.Warn("two-factor setup page shown without a QR code", eventField(eventSetupWithoutQR), zap.Int("uri_length", len(uri)), zap.Error(err))
	} else {
		qr = template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(png))
	}
	encoded := totp.EncodeSecret(secret)
	data := pageData{
		Title:         "Set up two-factor sign-in",
		CSRF:          h.sessionCSRF(sess.Key),
		Username:      sess.User,
		Issuer:        issuer,
		Secret:        encoded,
		SecretGrouped: totp.GroupSecret(encoded),
		QR:            qr,
		Error:         msg,
	}
	if sess.Stage == store.StageFull { // from the account page
		data.Title, data.Reenroll = "Replace your authenticator", true
		if user.TOTP == nil { // a passkey-only user adds an app
			data.Title = "Add an authenticator app"
			data.Factors = factorsView{Passkeys: len(user.Passkeys) > 0}
			data.PasskeyScript = data.Factors.Passkeys
		}
	}
	return h.render(w, status, "setup", data)
}

// maxIssuerLength bounds the issuer, which the provisioning URI carries
// twice: with a user name of at most 128 bytes the URI always fits in a
// QR code.
const maxIssuerLength = 100

// issuer names the site in authenticator apps: the configured issuer, or
// the host the user signed in on (see publicOrigin; the client sends it,
// so it is bounded like a configured one).
func (h *TwoFactor) issuer(r *http.Request) string {
	if h.Issuer != "" {
		return h.Issuer
	}
	_, host := publicOrigin(r)
	if hst, _, err := net.SplitHostPort(host); err == nil {
		host = hst
	}
	if host == "" || len(host) > maxIssuerLength {
		return "Caddy"
	}
	return host
}

func (h *TwoFactor) postSetup(w http.ResponseWriter, r *http.Request) error {
	return h.withPendingForm(w, r, h.finishSetup)
}

func (h *TwoFactor) finishSetup(w http.ResponseWriter, r *http.Request, form url.Values, sess *store.Session, user *store.User) error {
	if user.Enrolled() {
		// Enrolled meanwhile (another tab): a pending session can never
		// replace an existing authenticator.
		return redirectTo(w, h.page("confirm"))
	}
	res, err := h.signin.FinishSetup(sess, form.Get("code"), client(r))
	switch {
	case errors.Is(err, signin.ErrNoSecret):
		return redirectTo(w, h.page("setup"))
	case errors.Is(err, signin.ErrAlreadyEnrolled):
		return redirectTo(w, h.page("confirm"))
	case errors.Is(err, signin.ErrAppsOff):
		return redirectTo(w, h.page("setup/passkey"))
	case err != nil:
		_, err = h.answerRefusal(w, r, err, func(status int, msg string) error {
			secret, err := h.signin.OpenSecret(sess)
			if err != nil {
				return err
			}
			return h.renderSetup(w, r, status, sess, user, secret, msg)
		})
		return h.noPending(w, err)
	}
	return h.enrolled(w, r, sess, res)
}

// enrolled answers a completed enrollment: the new session's cookie and
// the recovery codes, shown once, with the link on to next.
func (h *TwoFactor) enrolled(w http.ResponseWriter, r *http.Request, sess *store.Session, res signin.SignInResult) error {
	h.setSessionCookie(w, r, res.Token)
	return h.render(w, http.StatusOK, "recovery", pageData{
		Title:         "Save your recovery codes",
		Username:      sess.User,
		RecoveryCodes: res.RecoveryCodes,
		CodesFile:     h.codesFile(w, h.issuer(r), sess.User, res.RecoveryCodes),
		Next:          h.safeNext(res.Next),
	})
}

// codesFile is a data: URL of a text file with the codes, for the page's
// download link; it is built here so the template never writes a URL.
func (h *TwoFactor) codesFile(w http.ResponseWriter, issuer, user string, codes []string) template.URL {
	_, p := h.pageTemplates(w) // the page's language
	var b strings.Builder
	b.WriteString(p.T("codes_file.heading", user, issuer) + "\n")
	b.WriteString(p.T("codes_file.hint") + "\n\n")
	for _, c := range codes {
		b.WriteString(c + "\n")
	}
	return template.URL("data:text/plain;charset=utf-8;base64," + base64.StdEncoding.EncodeToString([]byte(b.String())))
}

// ---- confirm ----

func (h *TwoFactor) getConfirm(w http.ResponseWriter, r *http.Request) error {
	sess, user, err := h.pendingSession(r)
	if errors.Is(err, signin.ErrNoPending) {
		return h.getReconfirm(w, r)
	}
	if err != nil {
		return h.noPending(w, err)
	}
	if !user.Enrolled() {
		return redirectTo(w, h.page("setup"))
	}
	return h.renderConfirm(w, http.StatusOK, sess, user, "")
}

// renderConfirm shows the confirmation page with the factors user has.
func (h *TwoFactor) renderConfirm(w http.ResponseWriter, status int, sess *store.Session, user *store.User, msg string) error {
	data := h.confirmPage(sess, user)
	data.Error = msg
	return h.render(w, status, "confirm", data)
}

// confirmPage is the confirmation page's data for the factors user has,
// with the offers of remember_device and the e-mailed code (emailcode.go).
func (h *TwoFactor) confirmPage(sess *store.Session, user *store.User) pageData {
	hasPasskeys := len(user.Passkeys) > 0 && h.signin.Offers().Passkeys
	return pageData{
		Title:         "Two-factor sign-in",
		CSRF:          h.sessionCSRF(sess.Key),
		Username:      sess.User,
		Factors:       factorsView{TOTP: user.TOTP != nil, Passkeys: hasPasskeys},
		PasskeyScript: hasPasskeys,
		RememberDays:  h.rememberDays(),
		EmailCodeTo:   h.emailOffer(sess),
	}
}

func (h *TwoFactor) postConfirm(w http.ResponseWriter, r *http.Request) error {
	return h.withPendingOr(w, r, h.finishConfirm, h.postReconfirm)
}

func (h *TwoFactor) finishConfirm(w http.ResponseWriter, r *http.Request, form url.Values, sess *store.Session, user *store.User) error {
	if !user.Enrolled() {
		return redirectTo(w, h.page("setup"))
	}
	res, err := h.signin.Confirm(sess, form.Get("code"), client(r))
	return h.confirmed(w, r, form, sess, user, res, err)
}

// confirmed answers a confirmation (res, or err) posted with form: on to
// next, signed in, with the browser remembered if form asks for it;
// the confirm page again with the refusal; the login page when the user
// was reset meanwhile or the session ended.
func (h *TwoFactor) confirmed(w http.ResponseWriter, r *http.Request, form url.Values, sess *store.Session, user *store.User, res signin.SignInResult, err error) error {
	if errors.Is(err, signin.ErrNotEnrolled) {
		// Reset meanwhile: sign in again.
		return redirectTo(w, h.page("login"))
	}
	if err != nil {
		_, err = h.answerRefusal(w, r, err, func(status int, msg string) error {
			return h.renderConfirm(w, status, sess, user, msg)
		})
		return h.noPending(w, err)
	}
	h.setSessionCookie(w, r, res.Token)
	if form.Get("remember") != "" {
		h.rememberBrowser(w, r, res.Token)
	}
	return redirectTo(w, h.safeNext(res.Next))
}

// ---- logout ----

// anySession returns the request's session, pending or signed in, or nil
// if it has none. With live, a session past its limits counts as none.
func (h *TwoFactor) anySession(r *http.Request, live bool) (*store.Session, error) {
	key, ok := sessionKey(r)
	if !ok {
		return nil, nil
	}
	return h.signin.Session(key, live)
}

func (h *TwoFactor) getLogout(w http.ResponseWriter, r *http.Request) error {
	data := pageData{Title: "Sign out"}
	sess, err := h.anySession(r, true)
	if err != nil {
		return err
	}
	if sess != nil {
		data.SignedIn = true
		data.AccountLink = sess.Stage == store.StageFull
		data.Username = sess.User
		data.CSRF = h.sessionCSRF(sess.Key)
	}
	return h.render(w, http.StatusOK, "logout", data)
}

func (h *TwoFactor) postLogout(w http.ResponseWriter, r *http.Request) error {
	form, ok := h.readForm(w, r)
	if !ok {
		return nil
	}
	// Sign-out ends the session in the store, or says it could not: a
	// cookie cleared while the session lives on would only look signed out.
	sess, err := h.anySession(r, false)
	if err != nil {
		return err
	}
	var user string
	if sess != nil {
		if !h.validSessionPost(r, form, sess.Key) {
			return h.rejectForgery(w, r, sess.User)
		}
		user = sess.User
		if err := h.signin.Logout(sess, client(r)); err != nil {
			return err
		}
	}
	h.clearSessionCookie(w, r)
	return h.render(w, http.StatusOK, "logout", pageData{Title: "Signed out", Username: user})
}

// ---- helpers ----

// renderBusy answers a sign-in attempt that found no hashing slot.
func (h *TwoFactor) renderBusy(w http.ResponseWriter, r *http.Request) error {
	if ce := h.logger.Check(zap.DebugLevel, "two-factor sign-in refused: password hashing busy"); ce != nil {
		ce.Write(zap.String("client_ip", clientIP(r)))
	}
	w.Header().Set("Retry-After", strconv.Itoa(throttle.HashRetryAfter))
	return h.render(w, http.StatusTooManyRequests, "error", pageData{
		Title: "Busy",
		Error: msgBusy,
	})
}
