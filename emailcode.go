package twofactor

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/caddy-two-factor/caddy-two-factor/signin"
	"github.com/caddy-two-factor/caddy-two-factor/store"
)

// The e-mailed fallback code (email_codes): the confirm page offers a
// user with an address to e-mail them a code, {path_prefix}/confirm/email
// sends it, and the code is typed on the confirm page like any other
// second factor. The rules (limits, expiry, single use) are the sign-in
// service's (signin.SendEmailCode); the page shows the address masked
// only, and answers a request alike whatever the mail server does, since
// the mail is only queued.

// Messages of the e-mailed code, on the confirm page.
const (
	msgEmailCodeSent    = "If the address is right, a code is on its way to %s. It works once, for 10 minutes."
	msgEmailCodeTooMany = "You have asked for several codes already. Please wait %s, or use your authenticator or a recovery code."
	msgEmailCodeNone    = "E-mailed codes are not available for this account."
)

// emailOffer returns the masked address to offer an e-mailed code to the
// user of the pending session sess, or "" when none is offered. A user the
// config does not declare has their address in the store; if it cannot be
// read, the page goes without the offer.
func (h *TwoFactor) emailOffer(sess *store.Session) string {
	if !h.signin.Policy().EmailCodes {
		return ""
	}
	var u *store.User
	if _, declared := h.accounts[sess.User]; !declared {
		_ = h.db.store.View(func(tx store.Tx) error {
			u, _ = tx.User(sess.User)
			return nil
		})
	}
	masked, _ := h.signin.OffersEmailCode(sess.User, u)
	return masked
}

// postConfirmEmail sends a code and shows the confirm page again, with
// where it went.
func (h *TwoFactor) postConfirmEmail(w http.ResponseWriter, r *http.Request) error {
	form, ok := h.readForm(w, r)
	if !ok {
		return nil
	}
	sess, user, err := h.pendingSession(r)
	if errors.Is(err, signin.ErrNoPending) {
		return h.postReconfirmEmail(w, r, form)
	}
	if err != nil {
		return h.noPending(w, err)
	}
	if !h.validSessionPost(r, form, sess.Key) {
		return h.rejectForgery(w, r, sess.User)
	}
	if !user.Enrolled() {
		return redirectTo(w, h.page("setup"))
	}
	masked, err := h.signin.SendEmailCode(sess, client(r))
	if answered, err := h.answerEmailCode(w, masked, err, h.confirmPage(sess, user)); answered {
		return err
	}
	return h.noPending(w, err)
}

// answerEmailCode shows page, the confirm page, after a request for an
// e-mailed code: where it went, or why none was sent (the lock page for a
// locked account). It reports whether it answered; an error it did not is
// the caller's.
func (h *TwoFactor) answerEmailCode(w http.ResponseWriter, masked string, err error, page pageData) (bool, error) {
	if locked, ok := errors.AsType[*signin.LockedError](err); ok {
		return true, h.renderLocked(w, locked.RetryAfter(h.now()))
	}
	status := http.StatusOK
	switch tooMany, isTooMany := errors.AsType[*signin.TooManyCodesError](err); {
	case err == nil:
		page.EmailCodeTo, page.Notice = masked, fmt.Sprintf(msgEmailCodeSent, masked)
	case isTooMany:
		wait := max(tooMany.Until.Sub(h.now()).Round(time.Second), time.Second)
		w.Header().Set("Retry-After", strconv.Itoa(int(wait/time.Second)))
		status, page.Error = http.StatusTooManyRequests, fmt.Sprintf(msgEmailCodeTooMany, humanDuration(wait))
	case errors.Is(err, signin.ErrNoAddress), errors.Is(err, signin.ErrEmailCodesOff):
		status, page.Error = http.StatusBadRequest, msgEmailCodeNone
	default:
		return false, err
	}
	return true, h.render(w, status, "confirm", page)
}
