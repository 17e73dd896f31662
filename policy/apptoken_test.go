package policy

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/caddy-two-factor/caddy-two-factor/store"
)

func TestAppTokenLifecycle(t *testing.T) {
	u := &store.User{Name: "alice"}
	token, err := AddAppToken(u, "  DAVx⁵ phone ", now, time.Time{}, seeded(30))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(token, "tfa_") || len(u.AppTokens) != 1 {
		t.Fatalf("token %q, %d records", token, len(u.AppTokens))
	}
	rec := u.AppTokens[0]
	if rec.Name != "DAVx⁵ phone" || len(rec.Digest) != 32 || !rec.Created.Equal(now) || !rec.Expires.IsZero() || !rec.LastUsed.IsZero() {
		t.Errorf("record %+v", rec)
	}
	user, id, secret, ok := ParseAppToken(token)
	if !ok || user != "alice" || id != rec.ID {
		t.Fatalf("ParseAppToken = %q, %q, %v", user, id, ok)
	}
	got, ok := VerifyAppToken(u, id, secret, now.Add(100*365*24*time.Hour))
	if !ok || got.ID != rec.ID {
		t.Fatalf("VerifyAppToken of a token without expiry = %v", ok)
	}
	if !TouchAppToken(got, now) || !u.AppTokens[0].LastUsed.Equal(now) {
		t.Error("the first use was not recorded in the user's record")
	}
	if TouchAppToken(got, now.Add(AppTokenTouchEvery-1)) {
		t.Error("a use within AppTokenTouchEvery was recorded")
	}
	if !TouchAppToken(got, now.Add(AppTokenTouchEvery)) {
		t.Error("a use AppTokenTouchEvery later was not recorded")
	}
	if !RevokeAppToken(u, id) || u.AppTokens != nil {
		t.Errorf("RevokeAppToken left %+v", u.AppTokens)
	}
	if _, ok := VerifyAppToken(u, id, secret, now); ok {
		t.Error("a revoked token verified")
	}
	if RevokeAppToken(u, id) {
		t.Error("revoked a token twice")
	}
}

func TestVerifyAppToken(t *testing.T) {
	u := &store.User{Name: "bob"}
	expiring, err := AddAppToken(u, "expiring", now, now.Add(time.Hour), seeded(31))
	if err != nil {
		t.Fatal(err)
	}
	forever, err := AddAppToken(u, "forever", now, time.Time{}, seeded(32))
	if err != nil {
		t.Fatal(err)
	}
	_, expID, expSecret, _ := ParseAppToken(expiring)
	_, foreverID, foreverSecret, _ := ParseAppToken(forever)
	wrong := foreverSecret
	wrong[31] ^= 1
	for _, tt := range []struct {
		name   string
		id     string
		secret [AppTokenSecretBytes]byte
		at     time.Time
		ok     bool
	}{
		{"before expiry", expID, expSecret, now.Add(time.Hour - 1), true},
		{"at expiry", expID, expSecret, now.Add(time.Hour), false},
		{"after expiry", expID, expSecret, now.Add(2 * time.Hour), false},
		{"no expiry", foreverID, foreverSecret, now.Add(1 << 62), true},
		{"another token's secret", expID, foreverSecret, now, false},
		{"one bit off", foreverID, wrong, now, false},
		{"unknown id", "AAAAAAAAAAAA", foreverSecret, now, false},
		{"zero secret", foreverID, [AppTokenSecretBytes]byte{}, now, false},
	} {
		if _, ok := VerifyAppToken(u, tt.id, tt.secret, tt.at); ok != tt.ok {
			t.Errorf("%s: VerifyAppToken = %v, want %v", tt.name, ok, tt.ok)
		}
	}
	if n := RevokeAllAppTokens(u); n != 2 || u.AppTokens != nil {
		t.Errorf("RevokeAllAppTokens = %d, left %d", n, len(u.AppTokens))
	}
}

func TestAddAppTokenRefuses(t *testing.T) {
	full := &store.User{Name: "alice", AppTokens: make([]store.AppToken, MaxAppTokens)}
	for _, tt := range []struct {
		name    string
		u       *store.User
		token   string
		expires time.Time
		rnd     failing
		want    error
	}{
		{"no name", &store.User{Name: "a"}, "  ", time.Time{}, failing{}, ErrAppTokenName},
		{"a long name", &store.User{Name: "a"}, strings.Repeat("x", MaxAppTokenName+1), time.Time{}, failing{}, ErrAppTokenName},
		{"a control character", &store.User{Name: "a"}, "a\x00b", time.Time{}, failing{}, ErrAppTokenName},
		{"a line break", &store.User{Name: "a"}, "a\nb", time.Time{}, failing{}, ErrAppTokenName},
		{"invalid UTF-8", &store.User{Name: "a"}, "a\xffb", time.Time{}, failing{}, ErrAppTokenName},
		{"expiry now", &store.User{Name: "a"}, "x", now, failing{}, ErrAppTokenExpiry},
		{"expiry past", &store.User{Name: "a"}, "x", now.Add(-time.Hour), failing{}, ErrAppTokenExpiry},
		{"too many", full, "x", time.Time{}, failing{}, ErrTooManyAppTokens},
		{"no randomness", &store.User{Name: "a"}, "x", time.Time{}, failing{}, errNoRandom},
	} {
		n := len(tt.u.AppTokens)
		if _, err := AddAppToken(tt.u, tt.token, now, tt.expires, tt.rnd); !errors.Is(err, tt.want) || len(tt.u.AppTokens) != n {
			t.Errorf("%s: %v, want %v (%d records)", tt.name, err, tt.want, len(tt.u.AppTokens))
		}
	}
	if _, err := AddAppToken(&store.User{Name: strings.Repeat("a", maxTokenUser+1)}, "x", now, time.Time{}, seeded(1)); err == nil {
		t.Error("a token for a name too long to carry")
	}
	name := strings.Repeat("x", MaxAppTokenName)
	if _, err := AddAppToken(&store.User{Name: "a"}, name, now, time.Time{}, seeded(1)); err != nil {
		t.Errorf("a name of the largest length: %v", err)
	}
}

// TestAppTokenIDsAreUnique: a drawn identifier the user already has is
// drawn again.
func TestAppTokenIDsAreUnique(t *testing.T) {
	first := &store.User{Name: "a"}
	if _, err := AddAppToken(first, "x", now, time.Time{}, seeded(40)); err != nil {
		t.Fatal(err)
	}
	u := &store.User{Name: "a", AppTokens: []store.AppToken{{ID: first.AppTokens[0].ID}}}
	if _, err := AddAppToken(u, "y", now, time.Time{}, seeded(40)); err != nil {
		t.Fatal(err)
	}
	if u.AppTokens[0].ID == u.AppTokens[1].ID {
		t.Errorf("two tokens with the ID %q", u.AppTokens[0].ID)
	}
}

func TestParseAppToken(t *testing.T) {
	u := &store.User{Name: "a_b-c ☃"}
	token, err := AddAppToken(u, "x", now, time.Time{}, seeded(41))
	if err != nil {
		t.Fatal(err)
	}
	if user, _, _, ok := ParseAppToken(token); !ok || user != u.Name {
		t.Fatalf("ParseAppToken(%q) = %q, %v", token, user, ok)
	}
	head, user := token[:userAt], token[userAt:]
	b64 := base64.RawURLEncoding.EncodeToString
	for name, bad := range map[string]string{
		"empty":                          "",
		"prefix only":                    "tfa_",
		"no user":                        head,
		"another prefix":                 "TFA_" + token[4:],
		"a bearer scheme left in":        "Bearer " + token,
		"first separator moved":          token[:4] + token[5:16] + "_" + token[4:5] + token[17:],
		"second separator missing":       head[:userAt-1] + "." + user,
		"id with a bad character":        token[:5] + "." + token[6:],
		"secret with a bad character":    token[:20] + "+" + token[21:],
		"secret with non-canonical bits": token[:userAt-2] + string(nonCanonical(token[userAt-2])) + "_" + user,
		"user with padding":              head + b64([]byte("ab")) + "=",
		"user not base64":                head + "a b",
		"user with non-canonical bits":   head + "YR",
		"user too long":                  head + b64([]byte(strings.Repeat("a", maxTokenUser+1))),
		"trailing new line":              token + "\n",
	} {
		if user, id, _, ok := ParseAppToken(bad); ok {
			t.Errorf("%s: ParseAppToken(%q) = %q, %q", name, bad, user, id)
		}
	}
	longest := head + b64([]byte(strings.Repeat("a", maxTokenUser)))
	if _, _, _, ok := ParseAppToken(longest); !ok {
		t.Error("a token with the longest name refused")
	}
}

// FuzzParseAppToken: whatever parses is exactly the token its parts make
// again, so no two strings name the same token, and nothing panics.
func FuzzParseAppToken(f *testing.F) {
	u := &store.User{Name: "alice"}
	token, err := AddAppToken(u, "x", now, time.Time{}, seeded(50))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(token)
	f.Add("tfa_")
	f.Add("tfa_AAAAAAAAAAAA_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA_YQ")
	f.Fuzz(func(t *testing.T, s string) {
		user, id, secret, ok := ParseAppToken(s)
		if !ok {
			return
		}
		b64 := base64.RawURLEncoding.EncodeToString
		if again := AppTokenPrefix + id + "_" + b64(secret[:]) + "_" + b64([]byte(user)); again != s {
			t.Fatalf("%q parsed to parts that make %q", s, again)
		}
		if user == "" || len(user) > maxTokenUser || len(id) != 12 {
			t.Fatalf("%q parsed to user %q, id %q", s, user, id)
		}
	})
}

func TestAppTokenRefused(t *testing.T) {
	for _, tt := range []struct {
		prefix, path string
		refused      bool
	}{
		{"/_2fa", "/_2fa", true},
		{"/_2fa", "/_2fa/", true},
		{"/_2fa", "/_2fa/account", true},
		{"/_2fa", "/_2fa/confirm?next=/", true},
		{"/_2fa", "/_2FA/Account", true},
		{"/_2fa", "//_2fa/account", true},
		{"/_2fa", "/api/../_2fa/account", true},
		{"/_2fa", "/api/./../../_2fa/login", true},
		{"/_2fa", "_2fa/account", true},
		{"/_2fa/", "/_2fa/account", true},
		{"/auth/2fa", "/auth/2fa/account", true},
		{"/_2fa", "/api/items", false},
		{"/_2fa", "/dav/_2fa/account", false},
		{"/_2fa", "/_2fax", false},
		{"/_2fa", "/_2f", false},
		{"/_2fa", "/", false},
		{"/auth/2fa", "/auth/account", false},
	} {
		if got := AppTokenRefused(tt.prefix, tt.path); got != tt.refused {
			t.Errorf("AppTokenRefused(%q, %q) = %v, want %v", tt.prefix, tt.path, got, tt.refused)
		}
	}
}
