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

	"github.com/caddy-two-factor/caddy-two-factor/recovery"
	"github.com/caddy-two-factor/caddy-two-factor/redirect"
	"github.com/caddy-two-factor/caddy-two-factor/store"
	"github.com/caddy-two-factor/caddy-two-factor/throttle"
	"github.com/caddy-two-factor/caddy-two-factor/totp"
)

// maxFormBytes caps a POST body to the module's pages.
const maxFormBytes = 64 << 10

// Messages shown to users. One message for every kind of bad sign-in, so
// the page never tells an unknown user from a wrong password.
const (
	msgBadLogin      = "The user name or password is not right."
	msgBadCode       = "That code is not right. Codes change every 30 seconds, and each works only once."
	msgCodeFormat    = "Enter the 6-digit code from your authenticator app."
	msgConfirmFormat = "Enter the 6-digit code from your authenticator app, or one of your recovery codes."
	msgExpiredForm   = "This form has expired or was sent from another site. Please start again."
	msgLocked        = "Too many failed attempts. Please wait before trying again."
)

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
	case "logout":
		hs = handlers{h.getLogout, h.postLogout}
	case "account":
		hs = handlers{h.getAccount, h.postAccount}
	case "account/authenticator":
		hs = handlers{h.getAuthenticator, h.postAuthenticator}
	case "static/style.css", "static/app.js":
		hs = handlers{get: h.serveStatic}
	case "static/custom.css", "static/logo":
		hs = handlers{get: h.serveBrandAsset}
	default:
		return h.render(w, http.StatusNotFound, "error", pageData{Title: "Page not found", Error: "There is no such page."})
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
	h.audit(r, "csrf_rejected", user, "")
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
	case !errors.Is(err, errNoSession):
		return err
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
	return h.render(w, status, "login", pageData{Title: "Sign in", CSRF: token, Next: next, Username: username, Error: msg})
}

func (h *TwoFactor) postLogin(w http.ResponseWriter, r *http.Request) error {
	form, ok := h.readForm(w, r)
	if !ok {
		return nil
	}
	next := h.safeNext(form.Get("next"))
	if !sameOrigin(r) || !h.validLoginCSRF(r, form.Get("csrf")) {
		return h.rejectForgery(w, r, "")
	}
	name := normalizeUsername(form.Get("username"))
	password := form.Get("password")
	if len(name) > 128 {
		name = name[:128]
	}

	now := h.now()
	ip := clientIP(r)
	// A locked client is turned away before it can take a hashing slot;
	// that tells nothing about any account.
	if until := h.attempts.ClientLockedUntil(ip, now); !until.IsZero() {
		h.audit(r, "login_locked", "", "client_locked")
		return h.renderLocked(w, until, now)
	}
	acct, known, err := h.lookupAccount(name)
	if err != nil {
		return err
	}
	// A locked account is turned away by a read, before hashing: a refused
	// attempt writes nothing to the store (see attemptTracker).
	limits := h.limits()
	until, err := h.attempts.LockedUntil(name, known, ip, limits, now)
	if err != nil {
		return err
	}
	if !until.IsZero() {
		h.attempts.Refused(ip, limits, now)
		h.audit(r, "login_locked", knownName(name, known), "locked")
		return h.renderLocked(w, until, now)
	}
	// The hash is checked for known and unknown names alike: every answer
	// before a right password costs the same.
	hashed, ok := h.db.hashing.Acquire(r.Context())
	if !ok {
		h.attempts.Refused(ip, limits, now)
		return h.renderBusy(w, r)
	}
	// The budgets were read just above: take the places without reading
	// them again.
	a, until, err := h.attempts.Reserve(name, known, ip, limits, now)
	attempt, err := h.attemptOrLocked(w, r, "login", name, known, now, a, until, err)
	if attempt == nil {
		hashed()
		return err
	}
	defer h.release(attempt)
	passwordOK := acct.check(password) && known
	hashed()
	if !passwordOK {
		if err := attempt.Failed(); err != nil {
			return err
		}
		h.audit(r, "login_failed", knownName(name, known), "bad_password")
		return h.renderLogin(w, r, http.StatusUnauthorized, next, form.Get("username"), msgBadLogin)
	}
	var (
		token    string
		enrolled bool
	)
	err = h.db.store.Update(func(tx store.Tx) error {
		// Whatever session the browser had is replaced, never upgraded.
		if key, ok := sessionKey(r); ok {
			if err := tx.DeleteSession(key); err != nil {
				return err
			}
		}
		if err := endOldestPending(tx, name, maxPendingSessions-1); err != nil {
			return err
		}
		u, err := tx.User(name)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		enrolled = u != nil && u.TOTP != nil
		token, err = h.newSession(tx, r, store.Session{
			User:     name,
			Stage:    store.StagePending,
			Created:  now,
			LastSeen: now,
			Expires:  now.Add(time.Duration(h.PendingLifetime)),
			Next:     next,
			// The session holds only where the user keeps this password.
			Credential: acct.credential,
		})
		return err
	})
	if err != nil {
		return err // the deferred release gives the attempt's place back
	}
	// A right password that never leads to a second factor counts, past an
	// allowance, as a failure: the pending session is open all the same.
	// It is counted once the session is, so a sign-in that failed is not.
	reason := ""
	if unfinished, err := attempt.PasswordAccepted(); err != nil {
		// The sign-in stands; only its count is lost, and the place it
		// held frees itself (throttle.MaxAttemptTime).
		h.logger.Error("counting a 2FA sign-in without a second factor", zap.Error(err))
	} else if unfinished {
		reason = "unfinished_sign_ins"
	}
	h.setSessionCookie(w, r, token)
	h.audit(r, "password_accepted", name, reason)
	if enrolled {
		return redirectTo(w, h.page("confirm"))
	}
	return redirectTo(w, h.page("setup"))
}

// maxPendingSessions bounds a user's password-only sessions: someone who
// knows the password cannot fill the store (or the user's account page)
// with them. A new one ends the oldest.
const maxPendingSessions = 5

// endOldestPending deletes name's oldest pending sessions until at most
// keep are left.
func endOldestPending(tx store.Tx, name string, keep int) error {
	sessions, err := tx.UserSessions(name)
	if err != nil {
		return err
	}
	pending := slices.DeleteFunc(sessions, func(s *store.Session) bool { return s.Stage != store.StagePending })
	if len(pending) <= keep {
		return nil
	}
	slices.SortFunc(pending, func(a, b *store.Session) int { return a.Created.Compare(b.Created) })
	for _, s := range pending[:len(pending)-keep] {
		if err := tx.DeleteSession(s.Key); err != nil {
			return err
		}
	}
	return nil
}

// lookupAccount returns the account of a user declared in the config or
// managed in the database, or a fake one that costs the same to check. A
// store that cannot answer is an error, never an unknown user.
func (h *TwoFactor) lookupAccount(name string) (account, bool, error) {
	if a, ok := h.accounts[name]; ok {
		return a, true, nil
	}
	var hash string
	err := h.db.store.View(func(tx store.Tx) error {
		u, err := tx.User(name)
		if err == nil {
			hash = u.PasswordHash
		}
		return err
	})
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return account{}, false, err
	}
	if hash != "" {
		if a, err := newAccount(hash); err == nil {
			return a, true, nil
		}
	}
	return h.fakeAccount, false, nil
}

func (h *TwoFactor) limits() throttle.Limits {
	window, lockout := time.Duration(h.AttemptWindow), time.Duration(h.Lockout)
	return throttle.Limits{
		Pair:    throttle.Budget{Limit: h.MaxAttempts, Window: window, Lockout: lockout},
		Account: throttle.Budget{Limit: h.MaxAccountAttempts, Window: throttle.MaxWindow, Lockout: lockout, Consecutive: true},
		Client:  throttle.Budget{Limit: h.MaxIPAttempts, Window: window, Lockout: lockout},
	}
}

func (h *TwoFactor) renderLocked(w http.ResponseWriter, until, now time.Time) error {
	wait := max(int(until.Sub(now).Round(time.Second)/time.Second), 1)
	w.Header().Set("Retry-After", strconv.Itoa(wait))
	return h.render(w, http.StatusTooManyRequests, "locked", pageData{
		Title:      "Too many attempts",
		Error:      msgLocked,
		RetryAfter: humanDuration(time.Duration(wait) * time.Second),
	})
}

// beginAttempt reserves an attempt by user from the request's client (see
// attemptTracker). When the account or the client may not try now, it
// answers 429 itself, logs "<event>_locked", and returns no attempt.
// Callers defer h.release of the attempt they get.
func (h *TwoFactor) beginAttempt(w http.ResponseWriter, r *http.Request, event, user string, known bool, now time.Time) (*throttle.Attempt, error) {
	a, until, err := h.attempts.Begin(user, known, clientIP(r), h.limits(), now)
	return h.attemptOrLocked(w, r, event, user, known, now, a, until, err)
}

// attemptOrLocked answers a request whose attempt was refused (see
// beginAttempt), or returns the attempt.
func (h *TwoFactor) attemptOrLocked(w http.ResponseWriter, r *http.Request, event, user string, known bool, now time.Time, a *throttle.Attempt, until time.Time, err error) (*throttle.Attempt, error) {
	if err != nil {
		return nil, err
	}
	if a == nil {
		h.audit(r, event+"_locked", knownName(user, known), "locked")
		return nil, h.renderLocked(w, until, now)
	}
	return a, nil
}

// release gives back an attempt's place unless it failed. A store error
// here only leaves one attempt counted, so it is logged, not returned.
func (h *TwoFactor) release(a *throttle.Attempt) {
	if err := a.Release(); err != nil {
		h.logger.Error("settling a 2FA attempt", zap.Error(err))
	}
}

// signedIn forgets the user's failures once they have given both factors.
func (h *TwoFactor) signedIn(a *throttle.Attempt) {
	if err := a.SignedIn(); err != nil {
		h.logger.Error("clearing 2FA failure count", zap.Error(err))
	}
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
	now := h.now()
	sess, user, err := h.pendingSession(r, now)
	if err != nil {
		return h.noPending(w, err)
	}
	if user.TOTP != nil {
		return redirectTo(w, h.page("confirm"))
	}
	secret, err := h.pendingSecret(sess, false)
	if err != nil {
		return err
	}
	return h.renderSetup(w, r, http.StatusOK, sess, secret, "")
}

// noPending answers a step page reached without a password-only session;
// any other error is returned for answerFailure.
func (h *TwoFactor) noPending(w http.ResponseWriter, err error) error {
	if errors.Is(err, errNoSession) {
		return redirectTo(w, h.page("login"))
	}
	return err
}

// pendingSecret returns the secret being set up in sess, creating it on
// first use, or always when replace is set. It is kept, sealed, in the
// session, so the form never carries it (and, at first setup, reloading the
// page shows the same secret).
func (h *TwoFactor) pendingSecret(sess *store.Session, replace bool) ([]byte, error) {
	if sess.PendingSecret == nil || replace {
		fresh, err := totp.NewSecret()
		if err != nil {
			return nil, err
		}
		sealed, err := h.sealer.Seal(fresh, sess.User)
		if err != nil {
			return nil, err
		}
		err = h.db.store.Update(func(tx store.Tx) error {
			s, err := tx.Session(sess.Key)
			if err != nil {
				return err
			}
			if s.PendingSecret == nil || replace { // another tab may have won
				s.PendingSecret = sealed
				if err := tx.PutSession(s); err != nil {
					return err
				}
			}
			sess.PendingSecret = s.PendingSecret
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return h.sealer.Open(sess.PendingSecret, sess.User)
}

func (h *TwoFactor) renderSetup(w http.ResponseWriter, r *http.Request, status int, sess *store.Session, secret []byte, msg string) error {
	issuer := h.issuer(r)
	uri, err := totp.URI(issuer, sess.User, secret)
	if err != nil {
		return err
	}
	// The key is on the page whatever happens; a QR code that cannot be
	// made (a URI too long for one) leaves the page without it, not broken.
	var qr template.URL
	if png, err := qrcode.Encode(uri, qrcode.Medium, 256); err != nil {
		h.logger.Warn("two-factor setup page shown without a QR code", zap.Int("uri_length", len(uri)), zap.Error(err))
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
	form, ok := h.readForm(w, r)
	if !ok {
		return nil
	}
	now := h.now()
	sess, user, err := h.pendingSession(r, now)
	if err != nil {
		return h.noPending(w, err)
	}
	if !h.validSessionPost(r, form, sess.Key) {
		return h.rejectForgery(w, r, sess.User)
	}
	if user.TOTP != nil {
		// Enrolled meanwhile (another tab): a pending session can never
		// replace an existing authenticator.
		return redirectTo(w, h.page("confirm"))
	}
	if sess.PendingSecret == nil {
		return redirectTo(w, h.page("setup"))
	}
	step, attempt, err := h.checkNewSecret(w, r, sess, form.Get("code"), "setup", now)
	if attempt == nil {
		return err
	}
	defer h.release(attempt)

	var (
		token string
		codes []string
		next  string
	)
	err = h.db.store.Update(func(tx store.Tx) error {
		s, err := tx.Session(sess.Key)
		if err != nil {
			return asNoSession(err)
		}
		if s.Stage != store.StagePending || string(s.PendingSecret) != string(sess.PendingSecret) {
			return errNoSession
		}
		u, err := tx.User(s.User)
		if errors.Is(err, store.ErrNotFound) {
			u, err = &store.User{Name: s.User, Created: now}, nil
		}
		if err != nil {
			return err
		}
		if u.TOTP != nil {
			return errAlreadyEnrolled
		}
		var digests [][]byte
		if codes, digests, err = recovery.Generate(h.RecoveryCodes); err != nil {
			return err
		}
		u.TOTP = &store.Enrollment{Secret: s.PendingSecret, LastStep: step, RecoveryDigests: digests, EnrolledAt: now}
		next = s.Next
		token, err = h.completeSignIn(tx, r, u, s, "setup", now)
		return err
	})
	switch {
	case errors.Is(err, errAlreadyEnrolled):
		return redirectTo(w, h.page("confirm"))
	case errors.Is(err, errNoSession):
		return redirectTo(w, h.page("login"))
	case err != nil:
		return err
	}
	h.setSessionCookie(w, r, token)
	h.signedIn(attempt)
	h.audit(r, "enrolled", sess.User, "")
	return h.render(w, http.StatusOK, "recovery", pageData{
		Title:         "Save your recovery codes",
		Username:      sess.User,
		RecoveryCodes: codes,
		CodesFile:     codesFile(h.issuer(r), sess.User, codes),
		Next:          h.safeNext(next),
	})
}

var errAlreadyEnrolled = errors.New("already enrolled")

// checkNewSecret checks a code typed for the pending secret of sess (at
// setup and when replacing an authenticator), as one attempt by the user.
// Unless the code is right it answers the request itself (the setup page
// again, or 429) and returns no attempt; otherwise it returns the step the
// code matched and the attempt, which the caller releases.
func (h *TwoFactor) checkNewSecret(w http.ResponseWriter, r *http.Request, sess *store.Session, input, event string, now time.Time) (uint64, *throttle.Attempt, error) {
	secret, err := h.sealer.Open(sess.PendingSecret, sess.User)
	if err != nil {
		return 0, nil, err
	}
	code, ok := totp.ParseCode(input)
	if !ok {
		return 0, nil, h.renderSetup(w, r, http.StatusBadRequest, sess, secret, msgCodeFormat)
	}
	attempt, err := h.beginAttempt(w, r, event, sess.User, true, now)
	if attempt == nil {
		return 0, nil, err
	}
	step, ok := totp.Verify(secret, code, now, 0)
	if !ok {
		if err := h.codeFailed(r, attempt, event+"_failed", sess.User, "totp", errBadCode); err != nil {
			return 0, nil, err
		}
		return 0, nil, h.renderSetup(w, r, http.StatusUnauthorized, sess, secret, msgBadCode)
	}
	return step, attempt, nil
}

// codesFile is a data: URL of a text file with the codes, for the page's
// download link; it is built here so the template never writes a URL.
func codesFile(issuer, user string, codes []string) template.URL {
	var b strings.Builder
	b.WriteString("Recovery codes for " + user + " at " + issuer + "\n")
	b.WriteString("Each code works once, in place of an authenticator code.\n\n")
	for _, c := range codes {
		b.WriteString(c + "\n")
	}
	return template.URL("data:text/plain;charset=utf-8;base64," + base64.StdEncoding.EncodeToString([]byte(b.String())))
}

// completeSignIn ends the pending session s and starts a signed-in one for
// u, in the transaction tx. Unless concurrent sessions are allowed, the
// user's session identifier is rotated and every other session of theirs
// ends. The caller has already updated u's enrollment.
func (h *TwoFactor) completeSignIn(tx store.Tx, r *http.Request, u *store.User, s *store.Session, method string, now time.Time) (string, error) {
	if !h.ConcurrentSessions || u.SessionID == "" {
		id, err := store.NewID()
		if err != nil {
			return "", err
		}
		u.SessionID = id
	}
	if err := tx.PutUser(u); err != nil {
		return "", err
	}
	if err := tx.DeleteSession(s.Key); err != nil {
		return "", err
	}
	if !h.ConcurrentSessions {
		others, err := tx.UserSessions(u.Name)
		if err != nil {
			return "", err
		}
		for _, o := range others {
			if err := tx.DeleteSession(o.Key); err != nil {
				return "", err
			}
		}
	}
	return h.newSession(tx, r, store.Session{
		User:          u.Name,
		Stage:         store.StageFull,
		UserSessionID: u.SessionID,
		Created:       now,
		LastSeen:      now,
		Expires:       now.Add(time.Duration(h.SessionLifetime)),
		ConfirmedAt:   now,
		Method:        method,
		Credential:    s.Credential,
	})
}

// ---- confirm ----

func (h *TwoFactor) getConfirm(w http.ResponseWriter, r *http.Request) error {
	sess, user, err := h.pendingSession(r, h.now())
	if err != nil {
		return h.noPending(w, err)
	}
	if user.TOTP == nil {
		return redirectTo(w, h.page("setup"))
	}
	return h.renderConfirm(w, http.StatusOK, sess, "")
}

func (h *TwoFactor) renderConfirm(w http.ResponseWriter, status int, sess *store.Session, msg string) error {
	return h.render(w, status, "confirm", pageData{
		Title:    "Two-factor sign-in",
		CSRF:     h.sessionCSRF(sess.Key),
		Username: sess.User,
		Error:    msg,
	})
}

// errBadCode is a second factor that did not match; errReplayedCode one
// that matched a step already used (told apart in the audit log only).
var (
	errBadCode      = errors.New("bad code")
	errReplayedCode = errors.New("replayed code")
)

// secondFactor is what a user typed as a second factor: a TOTP code or a
// recovery code, parsed.
type secondFactor struct {
	totp, recovery string
}

func parseSecondFactor(input string) (secondFactor, bool) {
	if code, ok := totp.ParseCode(input); ok {
		return secondFactor{totp: code}, true
	}
	if code, ok := recovery.Parse(input); ok {
		return secondFactor{recovery: code}, true
	}
	return secondFactor{}, false
}

// method names the factor in sessions and logs: totp or recovery.
func (f secondFactor) method() string {
	if f.totp != "" {
		return "totp"
	}
	return "recovery"
}

// useSecondFactor checks f against u's enrollment and uses it up: a TOTP
// step is accepted once, a recovery code is removed. It returns
// errBadCode or errReplayedCode if f does not match. The caller stores u
// in the same transaction it read u in.
func (h *TwoFactor) useSecondFactor(u *store.User, f secondFactor, now time.Time) error {
	if f.totp != "" {
		secret, err := h.sealer.Open(u.TOTP.Secret, u.Name)
		if err != nil {
			return err
		}
		step, ok := totp.Verify(secret, f.totp, now, u.TOTP.LastStep)
		if !ok {
			if _, used := totp.Verify(secret, f.totp, now, 0); used {
				return errReplayedCode
			}
			return errBadCode
		}
		u.TOTP.LastStep = step
	} else {
		i := recovery.Match(f.recovery, u.TOTP.RecoveryDigests)
		if i < 0 {
			return errBadCode
		}
		u.TOTP.RecoveryDigests = append(u.TOTP.RecoveryDigests[:i], u.TOTP.RecoveryDigests[i+1:]...)
	}
	// A secret enrolled before encryption_key was set is encrypted now.
	resealed, _, err := h.sealer.Reseal(u.TOTP.Secret, u.Name)
	if err != nil {
		return err
	}
	u.TOTP.Secret = resealed
	return nil
}

// codeFailed settles attempt as a wrong second factor (codeErr is
// errBadCode or errReplayedCode), and logs it.
func (h *TwoFactor) codeFailed(r *http.Request, attempt *throttle.Attempt, event, user, method string, codeErr error) error {
	if err := attempt.Failed(); err != nil {
		return err
	}
	reason := "bad_code"
	if errors.Is(codeErr, errReplayedCode) {
		reason = "replayed_code"
	}
	h.audit(r, event, user, reason, zap.String("method", method))
	return nil
}

func (h *TwoFactor) postConfirm(w http.ResponseWriter, r *http.Request) error {
	form, ok := h.readForm(w, r)
	if !ok {
		return nil
	}
	now := h.now()
	sess, user, err := h.pendingSession(r, now)
	if err != nil {
		return h.noPending(w, err)
	}
	if !h.validSessionPost(r, form, sess.Key) {
		return h.rejectForgery(w, r, sess.User)
	}
	if user.TOTP == nil {
		return redirectTo(w, h.page("setup"))
	}
	factor, ok := parseSecondFactor(form.Get("code"))
	if !ok {
		return h.renderConfirm(w, http.StatusBadRequest, sess, msgConfirmFormat)
	}
	attempt, err := h.beginAttempt(w, r, "confirm", sess.User, true, now)
	if attempt == nil {
		return err
	}
	defer h.release(attempt)

	method := factor.method()
	var (
		token string
		next  string
	)
	err = h.db.store.Update(func(tx store.Tx) error {
		s, err := tx.Session(sess.Key)
		if err != nil {
			return asNoSession(err)
		}
		if s.Stage != store.StagePending {
			return errNoSession
		}
		u, err := tx.User(s.User)
		if err != nil {
			return asNoSession(err)
		}
		if u.TOTP == nil {
			return errNoSession
		}
		if err := h.useSecondFactor(u, factor, now); err != nil {
			return err
		}
		next = s.Next
		token, err = h.completeSignIn(tx, r, u, s, method, now)
		return err
	})
	switch {
	case errors.Is(err, errBadCode), errors.Is(err, errReplayedCode):
		if err := h.codeFailed(r, attempt, "confirm_failed", sess.User, method, err); err != nil {
			return err
		}
		return h.renderConfirm(w, http.StatusUnauthorized, sess, msgBadCode)
	case errors.Is(err, errNoSession):
		return redirectTo(w, h.page("login"))
	case err != nil:
		return err
	}
	h.setSessionCookie(w, r, token)
	h.signedIn(attempt)
	h.audit(r, "signed_in", sess.User, "", zap.String("method", method))
	return redirectTo(w, h.safeNext(next))
}

// ---- logout ----

// anySession returns the request's session, pending or signed in, or nil
// if it has none. With live, a session past its limits counts as none.
func (h *TwoFactor) anySession(r *http.Request, live bool) (*store.Session, error) {
	key, ok := sessionKey(r)
	if !ok {
		return nil, nil
	}
	var sess *store.Session
	err := h.db.store.View(func(tx store.Tx) error {
		var err error
		sess, err = tx.Session(key)
		return err
	})
	if errors.Is(err, store.ErrNotFound) || (err == nil && live && !h.live(sess, h.now())) {
		return nil, nil
	}
	return sess, err
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
		if err := h.db.revokeSession(sess.Key); err != nil {
			return err
		}
		h.audit(r, "logout", user, "")
	}
	h.clearSessionCookie(w, r)
	return h.render(w, http.StatusOK, "logout", pageData{Title: "Signed out", Username: user})
}

// ---- helpers ----

// knownName is the user name to log: a name that is no account may be a
// password typed in the wrong field, so it is never written down.
func knownName(name string, known bool) string {
	if known {
		return name
	}
	return ""
}

// audit writes one log line for a sign-in decision. It never logs a
// password, code, secret or token.
func (h *TwoFactor) audit(r *http.Request, event, user, reason string, fields ...zap.Field) {
	fs := append([]zap.Field{
		zap.String("event", event),
		zap.String("user", user),
		zap.String("client_ip", clientIP(r)),
	}, fields...)
	if reason != "" {
		fs = append(fs, zap.String("reason", reason))
	}
	h.logger.Info("two-factor", fs...)
}

// renderBusy answers a sign-in attempt that found no hashing slot.
func (h *TwoFactor) renderBusy(w http.ResponseWriter, r *http.Request) error {
	if ce := h.logger.Check(zap.DebugLevel, "two-factor sign-in refused: password hashing busy"); ce != nil {
		ce.Write(zap.String("client_ip", clientIP(r)))
	}
	w.Header().Set("Retry-After", strconv.Itoa(throttle.HashRetryAfter))
	return h.render(w, http.StatusTooManyRequests, "error", pageData{
		Title: "Busy",
		Error: "Too many sign-ins are being checked at once. Please try again in a moment.",
	})
}
