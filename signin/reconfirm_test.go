package signin

import (
	"errors"
	"testing"
	"time"

	"github.com/caddy-two-factor/caddy-two-factor/policy"
)

// TestReconfirm: a signed-in session that gives its second factor again
// moves to a new token, with the confirmation time now and a re-check
// deadline drawn from now; the old token is gone, and a wrong factor
// changes nothing.
func TestReconfirm(t *testing.T) {
	e := newEnv(t, func(p *Policy) {
		p.Gate = policy.Policy{Recheck: policy.Recheck{Min: time.Hour, Max: 2 * time.Hour}}
	})
	secret, _, sess := e.enroll(t, "alice")
	if sess.RecheckAt.Before(sess.ConfirmedAt.Add(time.Hour)) || sess.RecheckAt.After(sess.ConfirmedAt.Add(2*time.Hour)) {
		t.Fatalf("sign-in drew re-check deadline %v for a confirmation at %v", sess.RecheckAt, sess.ConfirmedAt)
	}
	e.advance(90 * time.Minute)

	if _, err := e.svc.Reconfirm(sess, "000000", alpha); !errors.Is(err, ErrBadCode) && e.code(t, secret) != "000000" {
		t.Fatalf("wrong code: %v", err)
	}
	if _, err := e.svc.Reconfirm(sess, "not a code", alpha); !errors.Is(err, ErrMalformedFactor) {
		t.Fatalf("malformed factor: %v", err)
	}
	if still, _, err := e.svc.SignedIn(sess.Key); err != nil || !still.ConfirmedAt.Equal(sess.ConfirmedAt) {
		t.Fatalf("after refused factors: %v, %v", still, err)
	}

	e.take()
	token, err := e.svc.Reconfirm(sess, e.code(t, secret), alpha)
	if err != nil {
		t.Fatal(err)
	}
	if ev := e.last(t); ev.Kind != EventReconfirmed || ev.Method != MethodTOTP || ev.User != "alice" {
		t.Errorf("event %+v", ev)
	}
	if _, _, err := e.svc.SignedIn(sess.Key); !errors.Is(err, ErrNotSignedIn) {
		t.Errorf("the old token still names a session: %v", err)
	}
	fresh := e.signedIn(t, token)
	now := e.clock()
	if !fresh.LastSeen.Equal(now) {
		t.Errorf("last seen %v, want %v: a factor given is activity", fresh.LastSeen, now)
	}
	if !fresh.ConfirmedAt.Equal(now) || fresh.Method != MethodTOTP {
		t.Errorf("confirmed at %v by %q, want %v by totp", fresh.ConfirmedAt, fresh.Method, now)
	}
	if fresh.RecheckAt.Before(now.Add(time.Hour)) || fresh.RecheckAt.After(now.Add(2*time.Hour)) {
		t.Errorf("re-check deadline %v not within [1h, 2h] of %v", fresh.RecheckAt, now)
	}
	if !fresh.Created.Equal(sess.Created) || !fresh.Expires.Equal(sess.Expires) {
		t.Errorf("the session's start or end moved: %v–%v, was %v–%v", fresh.Created, fresh.Expires, sess.Created, sess.Expires)
	}
}
