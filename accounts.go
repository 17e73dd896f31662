package twofactor

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp/caddyauth"

	"github.com/caddy-two-factor/caddy-two-factor/store"
)

// maxPasswordBytes bounds what is hashed, so a huge password cannot buy
// a long computation. bcrypt itself reads only 72 bytes; longer passwords
// are refused for bcrypt hashes rather than silently cut.
const (
	maxPasswordBytes = 1024
	bcryptMaxBytes   = 72
)

// The hash algorithms, as `caddy hash-password --algorithm` names them.
const (
	algorithmArgon2id = "argon2id"
	algorithmBcrypt   = "bcrypt"
)

// hashClass is what checking a password hash costs: its algorithm and cost
// parameters. Checking any two hashes of one class takes the same time,
// whatever the password; hashes of different classes can be told apart by
// how long a sign-in takes.
type hashClass struct {
	// Algorithm is argon2id or bcrypt.
	Algorithm string `json:"algorithm"`
	// Cost is bcrypt's cost.
	Cost int `json:"cost,omitempty"`
	// Time (iterations), Memory (KiB), Threads and KeyLength (bytes) are
	// argon2id's parameters.
	Time      uint32 `json:"time,omitempty"`
	Memory    uint32 `json:"memory,omitempty"`
	Threads   uint8  `json:"threads,omitempty"`
	KeyLength uint32 `json:"key_length,omitempty"`
}

func (c hashClass) String() string {
	if c.Algorithm == algorithmBcrypt {
		return fmt.Sprintf("bcrypt cost %d", c.Cost)
	}
	return fmt.Sprintf("argon2id m=%d,t=%d,p=%d with a %d-byte key", c.Memory, c.Time, c.Threads, c.KeyLength)
}

// defaultHashClass is the class of `caddy hash-password --algorithm
// <algorithm>` with its default parameters: those of Caddy's own fake hashes.
func defaultHashClass(algorithm string) (hashClass, error) {
	switch algorithm {
	case algorithmArgon2id:
		return classOf(string(caddyauth.Argon2idHash{}.FakeHash()))
	case algorithmBcrypt:
		return classOf(string(caddyauth.BcryptHash{}.FakeHash()))
	}
	return hashClass{}, fmt.Errorf("unknown hash algorithm %q: use argon2id or bcrypt", algorithm)
}

// classOf recognises the algorithm of a hash made by `caddy hash-password`,
// from its Modular Crypt Format prefix, and reads its cost parameters.
func classOf(hash string) (hashClass, error) {
	switch {
	case strings.HasPrefix(hash, "$2a$"), strings.HasPrefix(hash, "$2b$"), strings.HasPrefix(hash, "$2y$"):
		cost, err := bcrypt.Cost([]byte(hash))
		if err != nil {
			return hashClass{}, fmt.Errorf("invalid bcrypt hash: %w", err)
		}
		return hashClass{Algorithm: algorithmBcrypt, Cost: cost}, nil
	case strings.HasPrefix(hash, "$argon2id$"):
		_, key, err := caddyauth.DecodeHash([]byte(hash))
		if err != nil {
			return hashClass{}, fmt.Errorf("invalid argon2id hash: %w", err)
		}
		// DecodeHash checked the shape: "$argon2id$v=19$m=M,t=T,p=P$salt$key".
		c := hashClass{Algorithm: algorithmArgon2id, KeyLength: uint32(len(key))}
		for _, param := range strings.Split(strings.Split(hash, "$")[3], ",") {
			name, value, _ := strings.Cut(param, "=")
			n, _ := strconv.ParseUint(value, 10, 32)
			switch name {
			case "m":
				c.Memory = uint32(n)
			case "t":
				c.Time = uint32(n)
			case "p":
				c.Threads = uint8(n)
			}
		}
		// argon2 panics on these rather than refuse them.
		if c.Time == 0 || c.Threads == 0 || c.Memory == 0 {
			return hashClass{}, errors.New("invalid argon2id hash: m, t and p must be named and at least 1")
		}
		return c, nil
	case hash == "":
		return hashClass{}, errors.New("password hash is empty")
	}
	return hashClass{}, errors.New("password must be a bcrypt or argon2id hash from `caddy hash-password`, not a plain password")
}

// hashPassword hashes password with a fresh salt into a hash of class c,
// in the format of Caddy's hash modules (`caddy hash-password`).
func hashPassword(c hashClass, password []byte) (string, error) {
	switch c.Algorithm {
	case algorithmArgon2id:
		salt := make([]byte, 16)
		if _, err := rand.Read(salt); err != nil {
			return "", err
		}
		key := argon2.IDKey(password, salt, c.Time, c.Memory, c.Threads, c.KeyLength)
		return argon2idHash(c, salt, key), nil
	case algorithmBcrypt:
		hash, err := bcrypt.GenerateFromPassword(password, c.Cost)
		return string(hash), err
	}
	return "", fmt.Errorf("unknown hash algorithm %q: use argon2id or bcrypt", c.Algorithm)
}

// argon2idHash formats an argon2id hash as Caddy's Argon2idHash does.
func argon2idHash(c hashClass, salt, key []byte) string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, c.Memory, c.Time, c.Threads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))
}

// account is a password hash and the Caddy hash module that checks it.
type account struct {
	hash   []byte
	cmp    caddyauth.Comparer
	class  hashClass
	bcrypt bool
	// credential names the hash in the sessions opened with it.
	credential store.Credential
}

// newAccount checks a hash made by `caddy hash-password` and returns the
// account that checks passwords against it.
func newAccount(hash string) (account, error) {
	class, err := classOf(hash)
	if err != nil {
		return account{}, err
	}
	a := account{hash: []byte(hash), class: class, cmp: caddyauth.Argon2idHash{}, credential: store.CredentialOf(hash)}
	if class.Algorithm == algorithmBcrypt {
		a.cmp, a.bcrypt = caddyauth.BcryptHash{}, true
	}
	return a, nil
}

// fakeAccount returns an account of class c that no password matches, for
// unknown user names: checking it costs what checking a user of that class
// costs. Caddy ships ready-made fake hashes for its default parameters.
func fakeAccount(c hashClass) (account, error) {
	for _, fake := range [][]byte{caddyauth.Argon2idHash{}.FakeHash(), caddyauth.BcryptHash{}.FakeHash()} {
		if fc, err := classOf(string(fake)); err == nil && fc == c {
			return newAccount(string(fake))
		}
	}
	random := make([]byte, 32)
	_, _ = rand.Read(random)
	if c.Algorithm == algorithmArgon2id {
		// A random key of the right length: the comparison does the full
		// work and never matches.
		key := make([]byte, c.KeyLength)
		_, _ = rand.Read(key)
		return newAccount(argon2idHash(c, random[:16], key))
	}
	fake, err := hashPassword(c, random)
	if err != nil {
		return account{}, fmt.Errorf("making timing-safe fake hash: %w", err)
	}
	return newAccount(fake)
}

// check reports whether password matches. It always does the full hash
// work, whatever the input, so that its time says nothing.
func (a account) check(password string) bool {
	tooLong := len(password) > maxPasswordBytes || (a.bcrypt && len(password) > bcryptMaxBytes)
	if tooLong {
		password = password[:min(len(password), bcryptMaxBytes)]
	}
	ok, err := a.cmp.Compare(a.hash, []byte(password))
	return ok && err == nil && !tooLong
}
