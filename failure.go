package twofactor

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-two-factor/caddy-two-factor/policy"
	"github.com/caddy-two-factor/caddy-two-factor/signin"
	"github.com/caddy-two-factor/caddy-two-factor/store"
)

// When the store cannot answer (store.ErrUnavailable), nothing it would
// have vouched for is let through, and nothing it would have told is
// guessed: a request is never taken to be signed out, a user never to be
// unknown, a password never to be wrong. The request gets 503 with
// Retry-After, and the next one that finds the store answering is served
// as usual: nothing is remembered of the outage, so no restart or reload
// is needed.
//
// One exception, by design: a signed-in session in the session cache
// (package sessioncache) passes the gate without the store. The store vouched for it
// when it was loaded, and every write of this Caddy that ends or changes
// it (sign-out, revocation, a new authenticator, a reset) drops it from
// the cache once committed; during an outage no such write can commit. So
// with the embedded store the cache never serves a session the store
// would refuse. A store shared by several instances (Redis) also tells
// each cache of the other instances' writes, and the cache distrusts
// itself, serving nothing, while it cannot hear of them (see
// sessioncache.NewDistrusting).

// storeRetryAfter is how long a client is asked to wait when the store
// could not answer.
const storeRetryAfter = 5 * time.Second

var storeRetryAfterValue = strconv.Itoa(int(storeRetryAfter / time.Second))

// storeUnavailable reports whether err means the store could not answer,
// as opposed to a record it does not have or a refusal.
func storeUnavailable(err error) bool { return errors.Is(err, store.ErrUnavailable) }

// answerFailure answers a request that op could not serve because of err;
// a nil err passes through. Decisions (no session, a wrong code, a lock)
// are answered where they are made; this is for what is left:
//   - a store that could not answer gets 503 and Retry-After: browsers a
//     page that says so, other clients a bare 503 for Caddy's error
//     handling (handle_errors). The failure is logged once: here for a
//     page, by Caddy for an error it is handed.
//   - an error already meant for Caddy (a HandlerError) goes as it is.
//   - anything else is an internal error: 500.
func (h *TwoFactor) answerFailure(w http.ResponseWriter, r *http.Request, op string, err error) error {
	if err == nil {
		return nil
	}
	if !storeUnavailable(err) {
		if _, ok := errors.AsType[caddyhttp.HandlerError](err); ok {
			return err
		}
		return caddyhttpError(fmt.Errorf("%s: %w", op, err))
	}
	w.Header().Set("Retry-After", storeRetryAfterValue)
	if !wantsHTML(r) {
		return caddyhttp.Error(http.StatusServiceUnavailable, fmt.Errorf("%s: %w", op, err))
	}
	h.logger.Error("two-factor sign-in unavailable: the store could not answer",
		eventField(eventStoreUnavailable), zap.String("op", op), zap.String("client_ip", clientIP(r)), zap.Error(err))
	return h.render(w, http.StatusServiceUnavailable, "unavailable", pageData{
		Title:      "Sign-in is temporarily unavailable",
		RetryAfter: humanDuration(storeRetryAfter),
	})
}

// Messages shown to users about a sign-in form. One message for every
// kind of bad sign-in, so the page never tells an unknown user from a
// wrong password.
const (
	msgBadLogin      = "The user name or password is not right."
	msgBadCode       = "That code is not right. Codes change every 30 seconds, and each works only once."
	msgCodeFormat    = "Enter the 6-digit code from your authenticator app."
	msgConfirmFormat = "Enter the 6-digit code from your authenticator app, or one of your recovery codes."
	msgExpiredForm   = "This form has expired or was sent from another site. Please start again."
	msgLocked        = "Too many failed attempts. Please wait before trying again."
	msgBusy          = "Too many sign-ins are being checked at once. Please try again in a moment."
	// The account page's refusals of a new app token.
	msgAppTokenName     = "Give the token a name of at most 64 characters."
	msgTooManyAppTokens = "You have as many app tokens as you may. Revoke one first."
)

// Messages shown to users about passkeys.
const (
	msgBadPasskey         = "That passkey or security key was not accepted. Try again, or use another way to sign in."
	msgPasskeyExpired     = "The passkey request has expired or was already used. Please try again."
	msgPasskeyRegistered  = "This security key or passkey is already registered for your account."
	msgPasskeyName        = "A passkey name must be 1 to 64 characters, without control characters."
	msgLastFactor         = "This is your only way to confirm sign-ins: add another passkey or an authenticator app before removing it."
	msgUnknownPasskey     = "That passkey is not one of yours any more. Reload the page."
	msgPasskeysOff        = "Passkeys are not offered here."
	msgPasskeySession     = "Your sign-in has expired. Please start again."
	msgNoPasskeys         = "Your account has no passkey. Use a code instead."
	msgPasskeyUnavailable = "Sign-in is temporarily unavailable. Please try again in a moment."
	msgPasskeyFailed      = "Something went wrong with the passkey. Reload the page and try again."
)

// formRefusals are the sign-in service's refusals that a form answers by
// showing itself again: the status, and the message it shows.
var formRefusals = []struct {
	err    error
	status int
	msg    string
}{
	{signin.ErrBadCredentials, http.StatusUnauthorized, msgBadLogin},
	{signin.ErrBadCode, http.StatusUnauthorized, msgBadCode},
	{signin.ErrReplayedCode, http.StatusUnauthorized, msgBadCode},
	{signin.ErrMalformedCode, http.StatusBadRequest, msgCodeFormat},
	{signin.ErrMalformedFactor, http.StatusBadRequest, msgConfirmFormat},
	{policy.ErrAppTokenName, http.StatusBadRequest, msgAppTokenName},
	{policy.ErrAppTokenExpiry, http.StatusBadRequest, "The form could not be read."},
	{policy.ErrTooManyAppTokens, http.StatusConflict, msgTooManyAppTokens},
	{signin.ErrBadPasskey, http.StatusUnauthorized, msgBadPasskey},
	{signin.ErrPasskeyExpired, http.StatusBadRequest, msgPasskeyExpired},
	{signin.ErrPasskeyRegistered, http.StatusConflict, msgPasskeyRegistered},
	{signin.ErrBadPasskeyName, http.StatusBadRequest, msgPasskeyName},
	{signin.ErrLastFactor, http.StatusConflict, msgLastFactor},
	{signin.ErrUnknownPasskey, http.StatusBadRequest, msgUnknownPasskey},
}

// answerRefusal answers err, from the sign-in service, if it is a refusal
// every page answers alike: a lock (429 and Retry-After), busy password
// hashing (429), or one of formRefusals, which rerender answers with the
// form and its message. Otherwise it returns false, and the caller
// answers what is its own (a missing session: a redirect) and returns the
// rest for answerFailure (a store that could not answer: 503).
func (h *TwoFactor) answerRefusal(w http.ResponseWriter, r *http.Request, err error, rerender func(status int, msg string) error) (bool, error) {
	if locked, ok := errors.AsType[*signin.LockedError](err); ok {
		return true, h.renderLocked(w, locked.RetryAfter(h.now()))
	}
	if errors.Is(err, signin.ErrBusy) {
		countSignIn(signin.StepLogin, outcomeBusy)
		return true, h.renderBusy(w, r)
	}
	for _, f := range formRefusals {
		if errors.Is(err, f.err) {
			return true, rerender(f.status, f.msg)
		}
	}
	return false, err
}
