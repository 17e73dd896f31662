package twofactor

import (
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-two-factor/caddy-two-factor/store"
)

// withEveryPolicy turns on every policy option of h, as a deployment that
// uses them all, with rules that do not hold back the session of token
// (its re-check deadline is ahead), and returns a function that turns
// them off again, and the session's user, for the placeholder of
// user_from. (The sign-in service keeps its password policy, so the
// session is honoured as before: what user_from adds on each request is
// reading and comparing the placeholder.)
//
// confirmed is how long ago the session gave its factor: within the
// smallest step-up max age, the path is not looked at; past it, the
// rules' patterns are matched (and none matches the request).
func withEveryPolicy(b *testing.B, h *TwoFactor, token string, confirmed time.Duration) (func(), string) {
	b.Helper()
	h.UserFrom = "{http.auth.user.id}"
	h.StepUp = []StepUpRule{
		{MaxAge: caddy.Duration(5 * time.Minute), Paths: []string{"/admin/settings/*", "/admin/users/*"}},
		{MaxAge: caddy.Duration(time.Hour), Paths: []string{"/app/secret/*", "*.key"}},
	}
	h.Recheck = &RecheckRule{Min: caddy.Duration(3 * time.Hour), Max: caddy.Duration(6 * time.Hour)}
	if err := h.provisionPolicies(); err != nil {
		b.Fatal(err)
	}
	key, _ := store.ParseSessionToken(token)
	now := h.now()
	var user string
	err := h.db.store.Update(func(tx store.Tx) error {
		s, err := tx.Session(key)
		if err != nil {
			return err
		}
		user = s.User
		s.ConfirmedAt, s.RecheckAt = now.Add(-confirmed), now.Add(4*time.Hour)
		return tx.PutSession(s)
	})
	if err != nil {
		b.Fatal(err)
	}
	return func() {
		h.StepUp, h.Recheck, h.UserFrom = nil, nil, ""
		if err := h.provisionPolicies(); err != nil {
			b.Fatal(err)
		}
	}, user
}
