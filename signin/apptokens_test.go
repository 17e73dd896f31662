package signin

import (
	"errors"
	"testing"
	"time"

	"github.com/caddy-two-factor/caddy-two-factor/policy"
	"github.com/caddy-two-factor/caddy-two-factor/store"
)

// TestAppTokens: a token made behind a fresh factor lets its user in, by
// Bearer or by Basic with that user's name, until it expires or is
// revoked (by the user, or by the operator's revoke or reset); a wrong
// token counts against the client's budget only.
func TestAppTokens(t *testing.T) {
	e := newEnv(t, nil)
	secret, _, sess := e.enroll(t, "alice")
	if _, err := e.svc.CreateAppToken(sess, e.code(t, secret), "\x00", time.Time{}, alpha); !errors.Is(err, policy.ErrAppTokenName) {
		t.Fatalf("a bad name: %v", err)
	}
	// The factor of a refused creation was not used up.
	token, err := e.svc.CreateAppToken(sess, e.code(t, secret), "dav", e.clock().Add(time.Hour), alpha)
	if err != nil {
		t.Fatal(err)
	}
	use := func(req AppTokenRequest) (string, error) {
		req.Client = alpha
		return e.svc.UseAppToken(req)
	}
	for name, tc := range map[string]struct {
		req  AppTokenRequest
		user string
		err  error
	}{
		"bearer":              {AppTokenRequest{Token: token}, "alice", nil},
		"basic, its user":     {AppTokenRequest{Token: token, Basic: true, BasicUser: "alice"}, "alice", nil},
		"basic, another user": {AppTokenRequest{Token: token, Basic: true, BasicUser: "bob"}, "", ErrBadAppToken},
		"garbage":             {AppTokenRequest{Token: "tfa_nope"}, "", ErrBadAppToken},
		"one character off":   {AppTokenRequest{Token: token[:20] + otherChar(token[20]) + token[21:]}, "", ErrBadAppToken},
	} {
		t.Run(name, func(t *testing.T) {
			user, err := use(tc.req)
			if user != tc.user || !errors.Is(err, tc.err) {
				t.Fatalf("got %q, %v; want %q, %v", user, err, tc.user, tc.err)
			}
		})
	}
	var u *store.User
	if err := e.store.View(func(tx store.Tx) (err error) { u, err = tx.User("alice"); return err }); err != nil {
		t.Fatal(err)
	}
	if len(u.AppTokens) != 1 || !u.AppTokens[0].LastUsed.Equal(e.clock()) {
		t.Fatalf("the use was not recorded: %+v", u.AppTokens)
	}

	e.advance(time.Hour)
	if _, err := use(AppTokenRequest{Token: token}); !errors.Is(err, ErrBadAppToken) {
		t.Fatalf("expired: %v", err)
	}

	again, err := e.svc.CreateAppToken(sess, e.code(t, secret), "cli", time.Time{}, alpha)
	if err != nil {
		t.Fatal(err)
	}
	op := NewOperator(Scope{Declared: map[string]bool{"alice": true, "bob": true}, Idle: 30 * time.Minute}, Deps{Store: e.store, Attempts: e.tracker, Now: e.clock})
	if _, err := op.Revoke("alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := use(AppTokenRequest{Token: again}); !errors.Is(err, ErrBadAppToken) {
		t.Fatalf("after the operator's revoke: %v", err)
	}
}

// otherChar is a token character other than c.
func otherChar(c byte) string {
	if c == 'A' {
		return "B"
	}
	return "A"
}
