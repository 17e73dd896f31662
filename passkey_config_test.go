package twofactor

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/caddy-two-factor/caddy-two-factor/passkey"
)

// TestSiteRelyingParty: the default RP ID and origins come from the site's
// addresses, never from a request, and only from addresses that can have
// passkeys (a domain name over HTTPS, or localhost).
func TestSiteRelyingParty(t *testing.T) {
	for _, tc := range []struct {
		site, rpID string
		wantID     string
		want       []string
	}{
		{"admin.example.com", "", "admin.example.com", []string{"https://admin.example.com"}},
		{"https://admin.example.com:8443", "", "admin.example.com", []string{"https://admin.example.com:8443"}},
		{"http://localhost:8080", "", "localhost", []string{"http://localhost:8080"}},
		{"localhost", "", "localhost", []string{"https://localhost"}},
		{"example.com www.example.com other.org", "", "example.com", []string{"https://example.com", "https://www.example.com"}},
		{"a.example.com, b.example.com", "example.com", "example.com", []string{"https://a.example.com", "https://b.example.com"}},
		{"http://example.com", "", "", nil}, // no secure context
		{":443", "", "", nil},               // no host
		{"192.0.2.10", "", "", nil},         // an IP address
		{"*.example.com", "", "", nil},      // a wildcard
		{"{env.SITE}", "", "", nil},         // a placeholder
		{"intranet", "", "", nil},           // one label, not localhost
		{"", "", "", nil},
	} {
		t.Run(tc.site, func(t *testing.T) {
			id, origins := siteRelyingParty(tc.site, tc.rpID)
			if id != tc.wantID || !slices.Equal(origins, tc.want) {
				t.Errorf("siteRelyingParty(%q, %q) = %q, %q; want %q, %q", tc.site, tc.rpID, id, origins, tc.wantID, tc.want)
			}
		})
	}
}

// TestPasskeyConfig: what provisioning makes of the passkey options.
func TestPasskeyConfig(t *testing.T) {
	for _, tc := range []struct {
		name     string
		h        TwoFactor
		wantErr  string
		passkeys bool
	}{
		{"site with a domain", TwoFactor{Site: "admin.example.com"}, "", true},
		{"site without a domain", TwoFactor{Site: ":443"}, "", false},
		{"factors webauthn without a domain", TwoFactor{Site: ":443", Factors: []string{"webauthn"}}, "set rp_id and origins", false},
		{"webauthn block gives the domain", TwoFactor{Site: ":443", WebAuthn: &passkey.Config{RPID: "example.com", Origins: []string{"https://example.com"}}}, "", true},
		{"totp only: passkeys users have still work", TwoFactor{Site: "example.com", Factors: []string{"totp"}}, "", true},
		{"passkey login without user verification required", TwoFactor{Site: "example.com", PasskeyLogin: true}, "passkey_login needs user_verification required", false},
		{"origin off the RP ID", TwoFactor{Site: "example.com", WebAuthn: &passkey.Config{Origins: []string{"https://example.org"}}}, "is not rp_id", false},
		{"IP address as RP ID", TwoFactor{Site: "example.com", WebAuthn: &passkey.Config{RPID: "192.0.2.1"}}, "IP address", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := tc.h
			h.DB = filepath.Join(t.TempDir(), "2fa.db")
			h.Users = []Account{{Username: "alice", Password: testHash()}}
			err := h.provision(zap.NewNop())
			if err == nil {
				t.Cleanup(func() { _ = h.Cleanup() })
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("provision: %v, want an error with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			offers := h.signin.Offers()
			if offers.Passkeys != tc.passkeys {
				t.Errorf("passkeys offered: %v, want %v", offers.Passkeys, tc.passkeys)
			}
			if enroll := tc.passkeys && !slices.Equal(h.Factors, []string{"totp"}); offers.EnrollPasskey != enroll {
				t.Errorf("passkey enrollment offered: %v, want %v", offers.EnrollPasskey, enroll)
			}
		})
	}
}

func TestValidateFactors(t *testing.T) {
	for _, tc := range []struct {
		h    TwoFactor
		want string
	}{
		{TwoFactor{Factors: []string{"sms"}}, `unknown factor "sms"`},
		{TwoFactor{Factors: []string{"totp"}, PasskeyLogin: true}, "passkey_login needs webauthn"},
		{TwoFactor{Factors: []string{"totp", "webauthn"}}, ""},
	} {
		err := tc.h.validateFactors()
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("validateFactors(%v): %v, want %q", tc.h.Factors, err, tc.want)
		}
	}
}
