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
	sess, user, err := h.accountSession(r, h.now())
	if err != nil {
		return h.toSignInThen(w, err, r.URL.Query().Get("next"), next)
	}
	return h.renderReconfirm(w, http.StatusOK, sess, user, next, "")
}

func (h *TwoFactor) renderReconfirm(w http.ResponseWriter, status int, sess *store.Session, user *store.User, next, msg string) error {
	data := h.reconfirmPage(sess, user, next)
	data.Error = msg
	return h.render(w, status, "confirm", data)
}

// reconfirmPage is the confirm page of the signed-in session sess, to
// return to next: the factors user has, never the remember checkbox, and
// the e-mailed code only with email_codes step_up.
func (h *TwoFactor) reconfirmPage(sess *store.Session, user *store.User, next string) pageData {
	d := h.confirmPage(sess, user)
	d.Title = "Confirm it's you"
	d.Next = next
	d.StepUp = true
	d.RememberDays = 0
	if !h.signin.Policy().EmailCodesStepUp {
		d.EmailCodeTo = ""
	}
	return d
}

// postReconfirmEmail e-mails a code to the user of a signed-in session
// that the confirm page asks for a fresh factor (email_codes step_up),
// and shows the page again.
func (h *TwoFactor) postReconfirmEmail(w http.ResponseWriter, r *http.Request, form url.Values) error {
	sess, user, next, ok, err := h.reconfirmPost(w, r, form)
	if !ok {
		return err
	}
	masked, err := h.signin.SendEmailCode(sess, client(r))
	if errors.Is(err, signin.ErrSessionEnded) && !h.signin.Policy().EmailCodesStepUp {
		// A signed-in session is never sent a code without step_up.
		err = signin.ErrEmailCodesOff
	}
	if answered, err := h.answerEmailCode(w, masked, err, h.reconfirmPage(sess, user, next)); answered {
		return err
	}
	return h.toSignInThen(w, err, form.Get("next"), next)
}

// reconfirmPost reads the signed-in session, its user and next of a post
// to the confirm page that a policy sent the browser to. Unless ok, it
// has answered the request (sign in first, or a forged post), with err.
func (h *TwoFactor) reconfirmPost(w http.ResponseWriter, r *http.Request, form url.Values) (sess *store.Session, user *store.User, next string, ok bool, err error) {
	next = h.safeNext(form.Get("next"))
	sess, user, err = h.accountSession(r, h.now())
	if err != nil {
		return nil, nil, next, false, h.toSignInThen(w, err, form.Get("next"), next)
	}
	if !h.validSessionPost(r, form, sess.Key) {
		return nil, nil, next, false, h.rejectForgery(w, r, sess.User)
	}
	return sess, user, next, true, nil
}

// postReconfirm takes a signed-in session's fresh second factor (a code,
// or a passkey's answer in the credential field), puts the new session
// token in the cookie and returns to next.
func (h *TwoFactor) postReconfirm(w http.ResponseWriter, r *http.Request, form url.Values) error {
	sess, user, next, ok, err := h.reconfirmPost(w, r, form)
	if !ok {
		return err
	}
	token, err := h.signin.ReconfirmAfter(signin.StepUpRequest{Session: sess, Factor: form.Get("code"), Assertion: credential(form), Client: client(r)})
	if err != nil {
		answered, err := h.answerRefusal(w, r, err, func(status int, msg string) error {
			return h.renderReconfirm(w, status, sess, user, next, msg)
		})
		if answered {
			return err
		}
		return h.toSignInThen(w, err, form.Get("next"), next)
	}
	h.setSessionCookie(w, r, token)
	return redirectTo(w, next)
}

// toSignInThen sends a request whose session is not (or no longer)
// signed in to the login page, to come back to next when the request
// named one (asked, as it came); any other error is returned for
// answerFailure.
func (h *TwoFactor) toSignInThen(w http.ResponseWriter, err error, asked, next string) error {
	if errors.Is(err, signin.ErrNotSignedIn) || errors.Is(err, signin.ErrSessionEnded) || errors.Is(err, signin.ErrNoPending) {
		if asked == "" {
			return redirectTo(w, h.page("login"))
		}
		return redirectTo(w, h.page("login")+"?next="+url.QueryEscape(next))
	}
	return err
}
