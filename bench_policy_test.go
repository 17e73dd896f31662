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
// them off again.
func withEveryPolicy(b *testing.B, h *TwoFactor, token string) func() {
	b.Helper()
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
	err := h.db.store.Update(func(tx store.Tx) error {
		s, err := tx.Session(key)
		if err != nil {
			return err
		}
		s.ConfirmedAt, s.RecheckAt = now, now.Add(4*time.Hour)
		return tx.PutSession(s)
	})
	if err != nil {
		b.Fatal(err)
	}
	return func() {
		h.StepUp, h.Recheck = nil, nil
		if err := h.provisionPolicies(); err != nil {
			b.Fatal(err)
		}
	}
}
