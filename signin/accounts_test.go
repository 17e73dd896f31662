package signin

import (
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp/caddyauth"
)

// A small argon2id class, so tests stay fast.
var smallArgon2id = HashClass{Algorithm: Argon2id, Time: 2, Memory: 64, Threads: 2, KeyLength: 16}

func TestClassOf(t *testing.T) {
	bcrypt4, _ := bcrypt.GenerateFromPassword([]byte(testPassword), bcrypt.MinCost)
	for _, tc := range []struct {
		name, hash string
		want       HashClass
		err        string
	}{
		{"caddy's bcrypt default", string(caddyauth.BcryptHash{}.FakeHash()), HashClass{Algorithm: "bcrypt", Cost: 14}, ""},
		{"bcrypt cost 4", string(bcrypt4), HashClass{Algorithm: "bcrypt", Cost: 4}, ""},
		{"caddy's argon2id default", string(caddyauth.Argon2idHash{}.FakeHash()),
			HashClass{Algorithm: "argon2id", Time: 1, Memory: 47104, Threads: 1, KeyLength: 32}, ""},
		{"argon2id of other parameters", "$argon2id$v=19$m=64,t=2,p=2$c2FsdHNhbHRzYWx0c2FsdA$AAAAAAAAAAAAAAAAAAAAAA", smallArgon2id, ""},
		{"argon2id without rounds", "$argon2id$v=19$m=64,t=0,p=2$c2FsdHNhbHRzYWx0c2FsdA$AAAAAAAAAAAAAAAAAAAAAA", HashClass{}, "at least 1"},
		{"argon2id without threads", "$argon2id$v=19$m=64,t=1,p=0$c2FsdHNhbHRzYWx0c2FsdA$AAAAAAAAAAAAAAAAAAAAAA", HashClass{}, "at least 1"},
		{"argon2id with unnamed parameters", "$argon2id$v=19$64,1,1$c2FsdHNhbHRzYWx0c2FsdA$AAAAAAAAAAAAAAAAAAAAAA", HashClass{}, "at least 1"},
		{"argon2id without a key", "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$", HashClass{}, "the key is 0 bytes"},
		{"argon2id with a 3-byte key", "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$AAAA", HashClass{}, "the key is 3 bytes"},
		{"bcrypt cost 31", strings.Replace(string(bcrypt4), "$04$", "$31$", 1), HashClass{}, "cost 31 is above 16"},
		{"argon2id of 4 TiB", "$argon2id$v=19$m=4294967295,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$AAAAAAAAAAAAAAAAAAAAAA", HashClass{}, "above 1048576 KiB"},
		{"argon2id of 1 GiB", "$argon2id$v=19$m=1048576,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$AAAAAAAAAAAAAAAAAAAAAA",
			HashClass{Algorithm: "argon2id", Time: 1, Memory: 1048576, Threads: 1, KeyLength: 16}, ""},
		{"argon2id of 65 rounds", "$argon2id$v=19$m=64,t=65,p=1$c2FsdHNhbHRzYWx0c2FsdA$AAAAAAAAAAAAAAAAAAAAAA", HashClass{}, "t=65 is above 64"},
		{"bad bcrypt", "$2a$xx$nope", HashClass{}, "invalid bcrypt hash"},
		{"bad argon2id", "$argon2id$nope", HashClass{}, "invalid argon2id hash"},
		{"empty", "", HashClass{}, "empty"},
		{"plain password", "hunter2", HashClass{}, "not a plain password"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ClassOf(tc.hash)
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
	argon2Default, err := DefaultHashClass(Argon2id)
	if err != nil {
		t.Fatal(err)
	}
	for _, class := range []HashClass{argon2Default, smallArgon2id, {Algorithm: Bcrypt, Cost: bcrypt.MinCost}} {
		t.Run(class.String(), func(t *testing.T) {
			hash, err := HashPassword(class, []byte(testPassword))
			if err != nil {
				t.Fatal(err)
			}
			a, err := NewAccount(hash)
			if err != nil || a.Class != class {
				t.Fatalf("hash %q is of class %+v (%v), want %+v", hash, a.Class, err, class)
			}
			if ok, err := caddyComparer(class).Compare([]byte(hash), []byte(testPassword)); !ok || err != nil {
				t.Errorf("Caddy's %s module refuses the hash: %v", class.Algorithm, err)
			}
			if a.Check(testPassword + "!") {
				t.Error("the hash takes a wrong password")
			}
			if again, _ := HashPassword(class, []byte(testPassword)); again == hash {
				t.Error("two hashes of one password are equal: no fresh salt")
			}
		})
	}
	if _, err := HashPassword(HashClass{Algorithm: "md5"}, []byte(testPassword)); err == nil {
		t.Error("md5 accepted")
	}
	if _, err := DefaultHashClass("md5"); err == nil {
		t.Error("md5 has a default class")
	}
}

// TestFakeAccountIsOfItsClass: unknown names cost what a user of the class
// costs, and no password opens the fake.
func TestFakeAccountIsOfItsClass(t *testing.T) {
	argon2Default, _ := DefaultHashClass(Argon2id)
	bcryptDefault, _ := DefaultHashClass(Bcrypt)
	for _, tc := range []struct {
		class HashClass
		// caddys is Caddy's own fake hash, used for its default classes.
		caddys []byte
	}{
		{argon2Default, caddyauth.Argon2idHash{}.FakeHash()},
		{bcryptDefault, caddyauth.BcryptHash{}.FakeHash()},
		{smallArgon2id, nil},
		{HashClass{Algorithm: Bcrypt, Cost: bcrypt.MinCost}, nil},
	} {
		t.Run(tc.class.String(), func(t *testing.T) {
			fake, err := FakeAccount(tc.class)
			if err != nil {
				t.Fatal(err)
			}
			if fake.Class != tc.class {
				t.Fatalf("fake of class %+v, want %+v", fake.Class, tc.class)
			}
			if tc.caddys != nil && string(fake.hash) != string(tc.caddys) {
				t.Errorf("fake %q, want Caddy's %q", fake.hash, tc.caddys)
			}
			if tc.caddys == nil && (fake.Check("") || fake.Check(testPassword)) {
				t.Error("the fake takes a password")
			}
		})
	}
}

// caddyComparer is Caddy's module for hashes of class c.
func caddyComparer(c HashClass) caddyauth.Comparer {
	if c.Algorithm == Bcrypt {
		return caddyauth.BcryptHash{}
	}
	return caddyauth.Argon2idHash{}
}

// TestCaddyHashesCheck: hashes check here as they do in Caddy's modules
// (Caddy's argon2id fake is of the password "antitiming"; bcrypt at its
// lowest cost, as cost 14 takes half a minute under the race detector).
func TestCaddyHashesCheck(t *testing.T) {
	bcrypt4, err := bcrypt.GenerateFromPassword([]byte("antitiming"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		hash     []byte
		password string
		want     bool
	}{
		{"argon2id, right", caddyauth.Argon2idHash{}.FakeHash(), "antitiming", true},
		{"argon2id, wrong", caddyauth.Argon2idHash{}.FakeHash(), "antitiminG", false},
		{"bcrypt, right", bcrypt4, "antitiming", true},
		{"bcrypt, wrong", bcrypt4, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := NewAccount(string(tc.hash))
			if err != nil {
				t.Fatal(err)
			}
			caddys, err := caddyComparer(a.Class).Compare(tc.hash, []byte(tc.password))
			if err != nil || caddys != tc.want {
				t.Fatalf("Caddy says %v (%v), want %v", caddys, err, tc.want)
			}
			if got := a.Check(tc.password); got != tc.want {
				t.Errorf("Check says %v, Caddy %v", got, tc.want)
			}
		})
	}
}
