package signin

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"

	"github.com/caddy-two-factor/caddy-two-factor/store"
)

// MaxPasswordBytes bounds what is hashed, so a huge password cannot buy
// a long computation. bcrypt itself reads only 72 bytes; longer passwords
// are refused for bcrypt hashes rather than silently cut.
const (
	MaxPasswordBytes = 1024
	BcryptMaxBytes   = 72
)

// Caddy's own fake hashes (caddyauth's FakeHash: `caddy hash-password
// --plaintext antitiming` with the default parameters). Unknown names are
// checked against them when the users' hashes have Caddy's defaults, as
// Caddy's basic_auth does; a test pins them to Caddy's.
const (
	caddyArgon2idFake = "$argon2id$v=19$m=47104,t=1,p=1$P2nzckEdTZ3bxCiBCkRTyA$xQL3Z32eo5jKl7u5tcIsnEKObYiyNZQQf5/4sAau6Pg"
	caddyBcryptFake   = "$2a$14$X3ulqf/iGxnf1k6oMZ.RZeJUoqI9PX2PM4rS5lkIKJXduLGXGPrt6"
)

// minArgon2idKey is the shortest argon2id key (tag) accepted, RFC 9106's
// least tag length.
const minArgon2idKey = 4

// Bounds on the cost of a config's hashes. A sign-in checks the hash while
// holding one of the few hashing slots, and an unknown name is checked
// against a fake hash of the same class, so a hash beyond them would let
// anyone hold every slot for hours (bcrypt cost 31 takes days) or end the
// process for want of memory (argon2id's m is in KiB: m=4294967295 asks
// for 4 TiB). They sit well above what `caddy hash-password` makes
// (bcrypt 14, argon2id m=47104 t=1) and what RFC 9106 recommends.
const (
	maxBcryptCost     = 16
	maxArgon2idMemory = 1 << 20 // KiB: 1 GiB
	maxArgon2idTime   = 64
	maxArgon2idKey    = 1024
)

// The hash algorithms, as `caddy hash-password --algorithm` names them.
const (
	Argon2id = "argon2id"
	Bcrypt   = "bcrypt"
)

// HashClass is what checking a password hash costs: its algorithm and cost
// parameters. Checking any two hashes of one class takes the same time,
// whatever the password; hashes of different classes can be told apart by
// how long a sign-in takes.
type HashClass struct {
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

func (c HashClass) String() string {
	if c.Algorithm == Bcrypt {
		return fmt.Sprintf("bcrypt cost %d", c.Cost)
	}
	return fmt.Sprintf("argon2id m=%d,t=%d,p=%d with a %d-byte key", c.Memory, c.Time, c.Threads, c.KeyLength)
}

// DefaultHashClass is the class of `caddy hash-password --algorithm
// <algorithm>` with its default parameters: those of Caddy's own fake hashes.
func DefaultHashClass(algorithm string) (HashClass, error) {
	switch algorithm {
	case Argon2id:
		return ClassOf(caddyArgon2idFake)
	case Bcrypt:
		return ClassOf(caddyBcryptFake)
	}
	return HashClass{}, fmt.Errorf("unknown hash algorithm %q: use argon2id or bcrypt", algorithm)
}

// ClassOf recognises the algorithm of a hash made by `caddy hash-password`,
// from its Modular Crypt Format prefix, and reads its cost parameters.
func ClassOf(hash string) (HashClass, error) {
	switch {
	case strings.HasPrefix(hash, "$2a$"), strings.HasPrefix(hash, "$2b$"), strings.HasPrefix(hash, "$2y$"):
		cost, err := bcrypt.Cost([]byte(hash))
		if err != nil {
			return HashClass{}, fmt.Errorf("invalid bcrypt hash: %w", err)
		}
		if cost > maxBcryptCost {
			return HashClass{}, fmt.Errorf("bcrypt cost %d is above %d: one sign-in would hold a hashing slot for hours", cost, maxBcryptCost)
		}
		return HashClass{Algorithm: Bcrypt, Cost: cost}, nil
	case strings.HasPrefix(hash, "$argon2id$"):
		_, key, err := decodeArgon2id(hash)
		if err != nil {
			return HashClass{}, fmt.Errorf("invalid argon2id hash: %w", err)
		}
		// decodeArgon2id checked the shape: "$argon2id$v=19$m=M,t=T,p=P$salt$key".
		c := HashClass{Algorithm: Argon2id, KeyLength: uint32(len(key))}
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
			return HashClass{}, errors.New("invalid argon2id hash: m, t and p must be named and at least 1")
		}
		// argon2 panics on an empty key too, and a key of a byte or two
		// matches one password in a few hundred.
		if c.KeyLength < minArgon2idKey {
			return HashClass{}, fmt.Errorf("invalid argon2id hash: the key is %d bytes, at least %d are needed", c.KeyLength, minArgon2idKey)
		}
		switch {
		case c.Memory > maxArgon2idMemory:
			return HashClass{}, fmt.Errorf("invalid argon2id hash: m=%d KiB is above %d KiB (1 GiB): each sign-in would ask for that much memory", c.Memory, maxArgon2idMemory)
		case c.Time > maxArgon2idTime:
			return HashClass{}, fmt.Errorf("invalid argon2id hash: t=%d is above %d", c.Time, maxArgon2idTime)
		case c.KeyLength > maxArgon2idKey:
			return HashClass{}, fmt.Errorf("invalid argon2id hash: the key is %d bytes, at most %d are accepted", c.KeyLength, maxArgon2idKey)
		}
		return c, nil
	case hash == "":
		return HashClass{}, errors.New("password hash is empty")
	}
	return HashClass{}, errors.New("password must be a bcrypt or argon2id hash from `caddy hash-password`, not a plain password")
}

// decodeArgon2id returns the salt and key of an argon2id hash in the
// format of Caddy's Argon2idHash, refusing what Caddy's DecodeHash
// refuses.
func decodeArgon2id(hash string) (salt, key []byte, err error) {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != Argon2id {
		return nil, nil, errors.New("invalid hash format")
	}
	if version, err := strconv.Atoi(strings.TrimPrefix(parts[2], "v=")); err != nil || version != argon2.Version {
		return nil, nil, fmt.Errorf("incompatible version %q", parts[2])
	}
	params := strings.Split(parts[3], ",")
	if len(params) != 3 {
		return nil, nil, errors.New("invalid parameters")
	}
	for i, prefix := range []string{"m=", "t=", "p="} {
		bits := 32
		if prefix == "p=" {
			bits = 8
		}
		if _, err := strconv.ParseUint(strings.TrimPrefix(params[i], prefix), 10, bits); err != nil {
			return nil, nil, fmt.Errorf("invalid parameter %q: %w", params[i], err)
		}
	}
	if salt, err = base64.RawStdEncoding.Strict().DecodeString(parts[4]); err != nil {
		return nil, nil, fmt.Errorf("decode salt: %w", err)
	}
	if key, err = base64.RawStdEncoding.Strict().DecodeString(parts[5]); err != nil {
		return nil, nil, fmt.Errorf("decode key: %w", err)
	}
	return salt, key, nil
}

// HashPassword hashes password with a fresh salt into a hash of class c,
// in the format of Caddy's hash modules (`caddy hash-password`).
func HashPassword(c HashClass, password []byte) (string, error) {
	switch c.Algorithm {
	case Argon2id:
		salt := make([]byte, 16)
		if _, err := rand.Read(salt); err != nil {
			return "", err
		}
		key := argon2.IDKey(password, salt, c.Time, c.Memory, c.Threads, c.KeyLength)
		return argon2idHash(c, salt, key), nil
	case Bcrypt:
		hash, err := bcrypt.GenerateFromPassword(password, c.Cost)
		return string(hash), err
	}
	return "", fmt.Errorf("unknown hash algorithm %q: use argon2id or bcrypt", c.Algorithm)
}

// argon2idHash formats an argon2id hash as Caddy's Argon2idHash does.
func argon2idHash(c HashClass, salt, key []byte) string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, c.Memory, c.Time, c.Threads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key))
}

// Account is a password hash, ready to check passwords against.
type Account struct {
	// Class is what checking the hash costs.
	Class HashClass
	hash  []byte
	// salt and key are an argon2id hash's.
	salt, key []byte
	// Credential names the hash in the sessions opened with it.
	Credential store.Credential
	// Email is the user's e-mail address for notices and e-mailed codes,
	// as the config gives it (checked with notify.ParseAddress); "" if none.
	Email string
}

// NewAccount checks a hash made by `caddy hash-password` and returns the
// Account that checks passwords against it.
func NewAccount(hash string) (Account, error) {
	class, err := ClassOf(hash)
	if err != nil {
		return Account{}, err
	}
	a := Account{hash: []byte(hash), Class: class, Credential: store.CredentialOf(hash)}
	if class.Algorithm == Argon2id {
		if a.salt, a.key, err = decodeArgon2id(hash); err != nil {
			return Account{}, err
		}
	}
	return a, nil
}

// FakeAccount returns an Account of class c that no password matches, for
// unknown user names: checking it costs what checking a user of that class
// costs. Caddy ships ready-made fake hashes for its default parameters.
func FakeAccount(c HashClass) (Account, error) {
	for _, fake := range []string{caddyArgon2idFake, caddyBcryptFake} {
		if fc, err := ClassOf(fake); err == nil && fc == c {
			return NewAccount(fake)
		}
	}
	random := make([]byte, 32)
	_, _ = rand.Read(random)
	if c.Algorithm == Argon2id {
		// A random key of the right length: the comparison does the full
		// work and never matches.
		key := make([]byte, c.KeyLength)
		_, _ = rand.Read(key)
		return NewAccount(argon2idHash(c, random[:16], key))
	}
	fake, err := HashPassword(c, random)
	if err != nil {
		return Account{}, fmt.Errorf("making timing-safe fake hash: %w", err)
	}
	return NewAccount(fake)
}

// Check reports whether password matches. It always does the full hash
// work, whatever the input, so that its time says nothing.
func (a Account) Check(password string) bool {
	isBcrypt := a.Class.Algorithm == Bcrypt
	tooLong := len(password) > MaxPasswordBytes || (isBcrypt && len(password) > BcryptMaxBytes)
	if tooLong {
		password = password[:min(len(password), BcryptMaxBytes)]
	}
	var ok bool
	if isBcrypt {
		ok = bcrypt.CompareHashAndPassword(a.hash, []byte(password)) == nil
	} else {
		computed := argon2.IDKey([]byte(password), a.salt, a.Class.Time, a.Class.Memory, a.Class.Threads, a.Class.KeyLength)
		ok = subtle.ConstantTimeCompare(a.key, computed) == 1
	}
	return ok && !tooLong
}
