package passkey

import (
	"encoding/json"

	"github.com/caddy-two-factor/caddy-two-factor/store"
	"strings"
	"testing"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Config)
		want   string // in the error; "" for none
	}{
		{"defaults", func(*Config) {}, ""},
		{"subdomain origin", func(c *Config) { c.Origins = []string{"https://admin.example.com", "https://example.com:8443/"} }, ""},
		{"localhost over http", func(c *Config) { c.RPID, c.Origins = "localhost", []string{"http://localhost:8080"} }, ""},
		{"single label other than localhost", func(c *Config) { c.RPID, c.Origins = "intranet", []string{"https://intranet"} }, "one label must be localhost"},
		{"numeric last label", func(c *Config) { c.RPID, c.Origins = "example.123", []string{"https://example.123"} }, "rp_id"},
		{"passkey login with verification required", func(c *Config) { c.PasskeyLogin, c.UserVerification = true, Required }, ""},
		{"no RP ID", func(c *Config) { c.RPID = "" }, "rp_id is required"},
		{"IPv4 RP ID", func(c *Config) { c.RPID, c.Origins = "127.0.0.1", []string{"https://127.0.0.1"} }, "IP address"},
		{"IPv6 RP ID", func(c *Config) { c.RPID = "::1" }, "IP address"},
		{"bracketed IPv6 RP ID", func(c *Config) { c.RPID = "[::1]" }, "IP address"},
		{"RP ID with scheme", func(c *Config) { c.RPID = "https://example.com" }, "not a lowercase domain"},
		{"RP ID with port", func(c *Config) { c.RPID = "example.com:443" }, "not a lowercase domain"},
		{"RP ID in upper case", func(c *Config) { c.RPID = "Example.com" }, "not a lowercase domain"},
		{"top-level domain", func(c *Config) { c.RPID, c.Origins = "com", []string{"https://example.com"} }, "one label"},
		{"private public suffix", func(c *Config) { c.RPID, c.Origins = "github.io", []string{"https://me.github.io"} }, "public suffix"},
		{"two-label public suffix", func(c *Config) { c.RPID, c.Origins = "co.uk", []string{"https://example.co.uk"} }, "public suffix"},
		{"no name", func(c *Config) { c.RPName = "" }, "rp_name"},
		{"no origin", func(c *Config) { c.Origins = nil }, "at least one origin"},
		{"http origin", func(c *Config) { c.Origins = []string{"http://example.com"} }, "must be https"},
		{"origin without scheme", func(c *Config) { c.Origins = []string{"example.com"} }, "must be https"},
		{"origin with a path", func(c *Config) { c.Origins = []string{"https://example.com/admin"} }, "nothing more"},
		{"origin with a query", func(c *Config) { c.Origins = []string{"https://example.com?x"} }, "nothing more"},
		{"origin with an empty query", func(c *Config) { c.Origins = []string{"https://example.com?"} }, "nothing more"},
		{"origin with a fragment", func(c *Config) { c.Origins = []string{"https://example.com#x"} }, "nothing more"},
		{"origin with user info", func(c *Config) { c.Origins = []string{"https://u@example.com"} }, "nothing more"},
		{"origin of another site", func(c *Config) { c.Origins = []string{"https://example.org"} }, "not rp_id"},
		{"origin that only ends like the RP ID", func(c *Config) { c.Origins = []string{"https://badexample.com"} }, "not rp_id"},
		{"origin of a parent domain", func(c *Config) { c.RPID = "admin.example.com" }, "not rp_id"},
		{"origin in upper case", func(c *Config) { c.Origins = []string{"https://EXAMPLE.com"} }, "lowercase"},
		{"http on another host than localhost", func(c *Config) { c.RPID, c.Origins = "localhost", []string{"http://app.localhost"} }, "must be https"},
		{"unknown user verification", func(c *Config) { c.UserVerification = "always" }, "user_verification"},
		{"unknown resident key", func(c *Config) { c.ResidentKey = "yes" }, "resident_key"},
		{"passkey login without verification required", func(c *Config) { c.PasskeyLogin = true }, "passkey_login needs user_verification required"},
		{"negative timeout", func(c *Config) { c.Timeout = -1 }, "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Config{RPID: "example.com", RPName: "Example", Origins: []string{"https://example.com"}}
			tt.change(&c)
			_, err := New(c)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("New: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("New: %v, want an error with %q", err, tt.want)
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	for _, tt := range []struct {
		c      Config
		uv, rk string
	}{
		{Config{}, Preferred, Preferred},
		{Config{PasskeyLogin: true}, Preferred, Required},
		{Config{UserVerification: Discouraged, ResidentKey: Discouraged}, Discouraged, Discouraged},
	} {
		tt.c.SetDefaults()
		if tt.c.UserVerification != tt.uv || tt.c.ResidentKey != tt.rk || tt.c.Timeout != DefaultTimeout {
			t.Errorf("defaults: %+v", tt.c)
		}
	}
}

func TestOptionsFollowConfig(t *testing.T) {
	f := newFixture(t, func(c *Config) {
		c.UserVerification, c.ResidentKey = Discouraged, Required
		c.Timeout = 90e9
	})
	var o struct {
		PublicKey struct {
			RP struct {
				ID   string `json:"id"`
				Name string `json:"name"`
			} `json:"rp"`
			Timeout                int    `json:"timeout"`
			Attestation            string `json:"attestation"`
			AuthenticatorSelection struct {
				ResidentKey      string `json:"residentKey"`
				UserVerification string `json:"userVerification"`
			} `json:"authenticatorSelection"`
			PubKeyCredParams []struct {
				Alg int `json:"alg"`
			} `json:"pubKeyCredParams"`
		} `json:"publicKey"`
	}
	b, err := f.svc.BeginRegistration(&store.User{Name: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b.Options, &o); err != nil {
		t.Fatal(err)
	}
	p := o.PublicKey
	if p.RP.ID != "example.com" || p.RP.Name != "Example" || p.Timeout != 90000 || p.Attestation != "none" ||
		p.AuthenticatorSelection.ResidentKey != Required || p.AuthenticatorSelection.UserVerification != Discouraged {
		t.Errorf("registration options %s", b.Options)
	}
	algs := map[int]bool{}
	for _, a := range p.PubKeyCredParams {
		algs[a.Alg] = true
	}
	for _, want := range []int{-7, -8, -257} {
		if !algs[want] {
			t.Errorf("algorithm %d not offered: %s", want, b.Options)
		}
	}
}
