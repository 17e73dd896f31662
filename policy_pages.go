package twofactor

import (
	"errors"
	"net/http"
	"net/url"

	"github.com/caddy-two-factor/caddy-two-factor/signin"
	"github.com/caddy-two-factor/caddy-two-factor/store"
)

// The confirm page of a signed-in session: where a step-up rule or a
// re-check sends a browser (see gate_policy.go). It asks for the second
// factor only, never the password; once one is given it records the
// confirmation (signin.Service.Reconfirm), moves the session to a new
// token and returns to next.

// getReconfirm shows the confirm page to a signed-in session, or sends a
// browser without one to sign in, to come back to next.
func (h *TwoFactor) getReconfirm(w http.ResponseWriter, r *http.Request) error {
	next := h.safeNext(r.URL.Query().Get("next"))
	sess, _, err := h.accountSession(r, h.now())
	if err != nil {
		return h.toSignInThen(w, err, next)
	}
	return h.renderReconfirm(w, http.StatusOK, sess, next, "")
}

func (h *TwoFactor) renderReconfirm(w http.ResponseWriter, status int, sess *store.Session, next, msg string) error {
	return h.render(w, status, "confirm", h.reconfirmPage(sess, next, pageData{Error: msg}))
}

// reconfirmPage fills in d, an error or notice, as the confirm page of
// the signed-in session sess, to return to next. It offers an e-mailed
// code only with email_codes step_up.
func (h *TwoFactor) reconfirmPage(sess *store.Session, next string, d pageData) pageData {
	d.Title = "Confirm it's you"
	d.CSRF = h.sessionCSRF(sess.Key)
	d.Username = sess.User
	d.Next = next
	d.StepUp = true
	if d.EmailCodeTo == "" && h.signin.Policy().EmailCodesStepUp {
		d.EmailCodeTo = h.emailOffer(sess)
	}
	return d
}

// postReconfirmEmail e-mails a code to the user of a signed-in session
// that the confirm page asks for a fresh factor (email_codes step_up),
// and shows the page again.
func (h *TwoFactor) postReconfirmEmail(w http.ResponseWriter, r *http.Request, form url.Values) error {
	sess, next, ok, err := h.reconfirmPost(w, r, form)
	if !ok {
		return err
	}
	masked, err := h.signin.SendEmailCode(sess, client(r))
	if errors.Is(err, signin.ErrSessionEnded) && !h.signin.Policy().EmailCodesStepUp {
		// A signed-in session is never sent a code without step_up.
		err = signin.ErrEmailCodesOff
	}
	if answered, err := h.answerEmailCode(w, masked, err, func(status int, d pageData) error {
		return h.render(w, status, "confirm", h.reconfirmPage(sess, next, d))
	}); answered {
		return err
	}
	return h.toSignInThen(w, err, next)
}

// reconfirmPost reads the signed-in session and next of a post to the
// confirm page that a policy sent the browser to. Unless ok, it has
// answered the request (sign in first, or a forged post), with err.
func (h *TwoFactor) reconfirmPost(w http.ResponseWriter, r *http.Request, form url.Values) (sess *store.Session, next string, ok bool, err error) {
	next = h.safeNext(form.Get("next"))
	sess, _, err = h.accountSession(r, h.now())
	if err != nil {
		return nil, next, false, h.toSignInThen(w, err, next)
	}
	if !h.validSessionPost(r, form, sess.Key) {
		return nil, next, false, h.rejectForgery(w, r, sess.User)
	}
	return sess, next, true, nil
}

// postReconfirm takes a signed-in session's fresh second factor, puts the
// new session token in the cookie and returns to next.
func (h *TwoFactor) postReconfirm(w http.ResponseWriter, r *http.Request, form url.Values) error {
	sess, next, ok, err := h.reconfirmPost(w, r, form)
	if !ok {
		return err
	}
	token, err := h.signin.Reconfirm(sess, form.Get("code"), client(r))
	if err != nil {
		answered, err := h.answerRefusal(w, r, err, func(status int, msg string) error {
			return h.renderReconfirm(w, status, sess, next, msg)
		})
		if answered {
			return err
		}
		return h.toSignInThen(w, err, next)
	}
	h.setSessionCookie(w, r, token)
	return redirectTo(w, next)
}

// toSignInThen sends a request whose session is not (or no longer)
// signed in to the login page, to come back to next; any other error is
// returned for answerFailure.
func (h *TwoFactor) toSignInThen(w http.ResponseWriter, err error, next string) error {
	if errors.Is(err, signin.ErrNotSignedIn) || errors.Is(err, signin.ErrSessionEnded) {
		return redirectTo(w, h.page("login")+"?next="+url.QueryEscape(next))
	}
	return err
}
