package twofactor

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

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
		zap.String("op", op), zap.String("client_ip", clientIP(r)), zap.Error(err))
	return h.render(w, http.StatusServiceUnavailable, "unavailable", pageData{
		Title:      "Sign-in is temporarily unavailable",
		RetryAfter: humanDuration(storeRetryAfter),
	})
}

// asNoSession turns a missing record into errNoSession; any other error (a
// store that could not answer) stays what it is.
func asNoSession(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return errNoSession
	}
	return err
}
