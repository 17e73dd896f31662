package signin

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/caddy-two-factor/caddy-two-factor/policy"
)

// TestRememberedBrowser: after the right password, a remembered browser is
// signed in without a second factor, with no confirmation time; the
// cookie alone, a wrong password, another user, an expired or forgotten
// device, and the operator's revoke get nothing from it.
func TestRememberedBrowser(t *testing.T) {
	e := newEnv(t, func(p *Policy) {
		p.Remember = policy.Remember{For: 30 * 24 * time.Hour}
		p.ConcurrentSessions = true
	})
	secret, _, _ := e.enroll(t, "alice")
	e.enroll(t, "bob")
	p, _ := e.pending(t, "alice")
	res, err := e.svc.Confirm(p, e.code(t, secret), alpha)
	if err != nil {
		t.Fatal(err)
	}
	cookie, err := e.svc.RememberBrowser(res.Token, alpha)
	if err != nil {
		t.Fatal(err)
	}
	login := func(user, password string) (LoginResult, error) {
		return e.svc.Login(context.Background(), LoginRequest{User: user, Password: password, Client: alpha, RememberToken: cookie})
	}
	r, err := login("alice", testPassword)
	if err != nil || r.Stage != SignedIn {
		t.Fatalf("remembered browser: %v, %v", r.Stage, err)
	}
	sess := e.signedIn(t, r.Token)
	if sess.Method != policy.MethodRemembered || !sess.ConfirmedAt.IsZero() {
		t.Errorf("remembered session: method %q, confirmed %v", sess.Method, sess.ConfirmedAt)
	}
	if _, err := login("alice", "wrong"); !errors.Is(err, ErrBadCredentials) {
		t.Errorf("the cookie with a wrong password: %v", err)
	}
	if r, _ := login("bob", testPassword); r.Stage != NeedsConfirm {
		t.Errorf("alice's cookie for bob: %v", r.Stage)
	}
	// A remembered session cannot remember again: it gave no factor.
	if _, err := e.svc.RememberBrowser(r.Token, alpha); err == nil {
		t.Error("a session without a factor remembered a browser")
	}

	if err := e.svc.ForgetBrowsers(sess, "", alpha); err != nil {
		t.Fatal(err)
	}
	if r, _ := login("alice", testPassword); r.Stage != NeedsConfirm {
		t.Errorf("after forgetting: %v", r.Stage)
	}

	e.advance(time.Minute)
	p, _ = e.pending(t, "alice")
	res, err = e.svc.Confirm(p, e.code(t, secret), alpha)
	if err != nil {
		t.Fatal(err)
	}
	if cookie, err = e.svc.RememberBrowser(res.Token, alpha); err != nil {
		t.Fatal(err)
	}
	op := NewOperator(Scope{Declared: map[string]bool{"alice": true, "bob": true}, Idle: 30 * time.Minute}, Deps{Store: e.store, Attempts: e.tracker, Now: e.clock})
	if _, err := op.Revoke("alice"); err != nil {
		t.Fatal(err)
	}
	if r, _ := login("alice", testPassword); r.Stage != NeedsConfirm {
		t.Errorf("after the operator's revoke: %v", r.Stage)
	}
}
