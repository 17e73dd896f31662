package twofactor

import (
	"slices"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"golang.org/x/crypto/bcrypt"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp/caddyauth"
)

// A small argon2id class, so tests stay fast.
var smallArgon2id = hashClass{Algorithm: algorithmArgon2id, Time: 2, Memory: 64, Threads: 2, KeyLength: 16}

func TestClassOf(t *testing.T) {
	bcrypt4, _ := bcrypt.GenerateFromPassword([]byte(testPassword), bcrypt.MinCost)
	for _, tc := range []struct {
		name, hash string
		want       hashClass
		err        string
	}{
		{"caddy's bcrypt default", string(caddyauth.BcryptHash{}.FakeHash()), hashClass{Algorithm: "bcrypt", Cost: 14}, ""},
		{"bcrypt cost 4", string(bcrypt4), hashClass{Algorithm: "bcrypt", Cost: 4}, ""},
		{"caddy's argon2id default", string(caddyauth.Argon2idHash{}.FakeHash()),
			hashClass{Algorithm: "argon2id", Time: 1, Memory: 47104, Threads: 1, KeyLength: 32}, ""},
		{"argon2id of other parameters", "$argon2id$v=19$m=64,t=2,p=2$c2FsdHNhbHRzYWx0c2FsdA$AAAAAAAAAAAAAAAAAAAAAA", smallArgon2id, ""},
		{"argon2id without rounds", "$argon2id$v=19$m=64,t=0,p=2$c2FsdHNhbHRzYWx0c2FsdA$AAAAAAAAAAAAAAAAAAAAAA", hashClass{}, "at least 1"},
		{"argon2id without threads", "$argon2id$v=19$m=64,t=1,p=0$c2FsdHNhbHRzYWx0c2FsdA$AAAAAAAAAAAAAAAAAAAAAA", hashClass{}, "at least 1"},
		{"argon2id with unnamed parameters", "$argon2id$v=19$64,1,1$c2FsdHNhbHRzYWx0c2FsdA$AAAAAAAAAAAAAAAAAAAAAA", hashClass{}, "at least 1"},
		{"bad bcrypt", "$2a$xx$nope", hashClass{}, "invalid bcrypt hash"},
		{"bad argon2id", "$argon2id$nope", hashClass{}, "invalid argon2id hash"},
		{"empty", "", hashClass{}, "empty"},
		{"plain password", "hunter2", hashClass{}, "not a plain password"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := classOf(tc.hash)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one saying %q", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

// TestHashPasswordMakesItsClass: a hash made for a class is of that class,
// Caddy's modules accept it, and each has its own salt.
func TestHashPasswordMakesItsClass(t *testing.T) {
	argon2Default, err := defaultHashClass(algorithmArgon2id)
	if err != nil {
		t.Fatal(err)
	}
	for _, class := range []hashClass{argon2Default, smallArgon2id, {Algorithm: algorithmBcrypt, Cost: bcrypt.MinCost}} {
		t.Run(class.String(), func(t *testing.T) {
			hash, err := hashPassword(class, []byte(testPassword))
			if err != nil {
				t.Fatal(err)
			}
			a, err := newAccount(hash)
			if err != nil || a.class != class {
				t.Fatalf("hash %q is of class %+v (%v), want %+v", hash, a.class, err, class)
			}
			if ok, err := a.cmp.Compare([]byte(hash), []byte(testPassword)); !ok || err != nil {
				t.Errorf("Caddy's %s module refuses the hash: %v", class.Algorithm, err)
			}
			if a.check(testPassword + "!") {
				t.Error("the hash takes a wrong password")
			}
			if again, _ := hashPassword(class, []byte(testPassword)); again == hash {
				t.Error("two hashes of one password are equal: no fresh salt")
			}
		})
	}
	if _, err := hashPassword(hashClass{Algorithm: "md5"}, []byte(testPassword)); err == nil {
		t.Error("md5 accepted")
	}
	if _, err := defaultHashClass("md5"); err == nil {
		t.Error("md5 has a default class")
	}
}

// TestFakeAccountIsOfItsClass: unknown names cost what a user of the class
// costs, and no password opens the fake.
func TestFakeAccountIsOfItsClass(t *testing.T) {
	argon2Default, _ := defaultHashClass(algorithmArgon2id)
	bcryptDefault, _ := defaultHashClass(algorithmBcrypt)
	for _, tc := range []struct {
		class hashClass
		// caddys is Caddy's own fake hash, used for its default classes.
		caddys []byte
	}{
		{argon2Default, caddyauth.Argon2idHash{}.FakeHash()},
		{bcryptDefault, caddyauth.BcryptHash{}.FakeHash()},
		{smallArgon2id, nil},
		{hashClass{Algorithm: algorithmBcrypt, Cost: bcrypt.MinCost}, nil},
	} {
		t.Run(tc.class.String(), func(t *testing.T) {
			fake, err := fakeAccount(tc.class)
			if err != nil {
				t.Fatal(err)
			}
			if fake.class != tc.class {
				t.Fatalf("fake of class %+v, want %+v", fake.class, tc.class)
			}
			if tc.caddys != nil && string(fake.hash) != string(tc.caddys) {
				t.Errorf("fake %q, want Caddy's %q", fake.hash, tc.caddys)
			}
			if tc.caddys == nil && (fake.check("") || fake.check(testPassword)) {
				t.Error("the fake takes a password")
			}
		})
	}
}

// TestMixedHashClassesAreLogged: a config whose users' hashes are of
// different classes says that timing tells them apart; one of a single
// class says nothing. Unknown names are checked like the first user.
func TestMixedHashClassesAreLogged(t *testing.T) {
	bcrypt4 := testHash()
	argon2, err := hashPassword(smallArgon2id, []byte(testPassword))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		hashes []string
		warn   bool
		fake   hashClass
	}{
		{"all bcrypt", []string{bcrypt4, bcrypt4}, false, hashClass{Algorithm: algorithmBcrypt, Cost: bcrypt.MinCost}},
		{"bcrypt first, then argon2id", []string{bcrypt4, argon2}, true, hashClass{Algorithm: algorithmBcrypt, Cost: bcrypt.MinCost}},
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
			if h.fakeAccount.class != tc.fake {
				t.Errorf("unknown names are checked against %v, want %v", h.fakeAccount.class, tc.fake)
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
