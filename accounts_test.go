package twofactor

import (
	"slices"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"golang.org/x/crypto/bcrypt"

	"github.com/caddy-two-factor/caddy-two-factor/signin"
	"github.com/caddyserver/caddy/v2"
)

// A small argon2id class, so tests stay fast.
var smallArgon2id = signin.HashClass{Algorithm: signin.Argon2id, Time: 2, Memory: 64, Threads: 2, KeyLength: 16}

// TestMixedHashClassesAreLogged: a config whose users' hashes are of
// different classes says that timing tells them apart; one of a single
// class says nothing. Unknown names are checked like the first user.
func TestMixedHashClassesAreLogged(t *testing.T) {
	bcrypt4 := testHash()
	argon2, err := signin.HashPassword(smallArgon2id, []byte(testPassword))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		hashes []string
		warn   bool
		fake   signin.HashClass
	}{
		{"all bcrypt", []string{bcrypt4, bcrypt4}, false, signin.HashClass{Algorithm: signin.Bcrypt, Cost: bcrypt.MinCost}},
		{"bcrypt first, then argon2id", []string{bcrypt4, argon2}, true, signin.HashClass{Algorithm: signin.Bcrypt, Cost: bcrypt.MinCost}},
		{"argon2id first, then bcrypt", []string{argon2, bcrypt4, bcrypt4}, true, smallArgon2id},
	} {
		t.Run(tc.name, func(t *testing.T) {
			core, logs := observer.New(zapcore.WarnLevel)
			h := &TwoFactor{logger: zap.New(core)}
			for i, hash := range tc.hashes {
				h.Users = append(h.Users, Account{Username: testUsers[i], Password: hash})
			}
			if err := h.provisionAccounts(caddy.NewReplacer()); err != nil {
				t.Fatal(err)
			}
			if h.fakeAccount.Class != tc.fake {
				t.Errorf("unknown names are checked against %v, want %v", h.fakeAccount.Class, tc.fake)
			}
			warnings := logs.FilterMessageSnippet("different algorithms or costs").All()
			if got := len(warnings) == 1; got != tc.warn {
				t.Fatalf("warned %d times, want a warning: %v", len(warnings), tc.warn)
			}
			if tc.warn {
				classes, _ := warnings[0].ContextMap()["hash_classes"].([]any)
				if len(classes) != 2 || !slices.ContainsFunc(classes, func(c any) bool { return strings.Contains(c.(string), ": alice") }) {
					t.Errorf("warning names the classes %v", classes)
				}
			}
		})
	}
}
