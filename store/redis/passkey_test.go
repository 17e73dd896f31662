package redisstore

import (
	"encoding/hex"
	"testing"

	"github.com/caddy-two-factor/caddy-two-factor/internal/redistest"
	"github.com/caddy-two-factor/caddy-two-factor/store"
)

// TestUserOfEarlierFormatGainsPasskeys reads a user record as the version
// before passkeys wrote it into Redis, adds a passkey, and reads it back.
func TestUserOfEarlierFormatGainsPasskeys(t *testing.T) {
	s := opener(redistest.Start(t))(t)
	old, _ := hex.DecodeString("0105616c6963650b2432612430342468617368037369640103010203070102040580cfe0b00d0580cfe0b00d05")
	if err := raw(t, s, "SET", s.keys.user("alice"), string(old)).Error(); err != nil {
		t.Fatal(err)
	}
	update(t, s, func(tx store.Tx) error {
		u, err := tx.User("alice")
		if err != nil {
			return err
		}
		if u.TOTP == nil || u.TOTP.LastStep != 7 || u.Passkeys != nil || u.WebAuthnID != nil {
			t.Errorf("earlier-format user read as %+v", u)
		}
		u.WebAuthnID = []byte{1}
		u.Passkeys = []store.Passkey{{ID: []byte{2}, PublicKey: []byte{3}, Name: "key"}}
		return tx.PutUser(u)
	})
	if err := s.View(func(tx store.Tx) error {
		u, err := tx.User("alice")
		if err == nil && (u.TOTP == nil || len(u.Passkeys) != 1 || u.Passkeys[0].Name != "key") {
			t.Errorf("user after adding a passkey: %+v", u)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
}
