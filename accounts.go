package twofactor

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/bcrypt"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp/caddyauth"
)

// maxPasswordBytes bounds what is hashed, so a huge password cannot buy
// a long computation. bcrypt itself reads only 72 bytes; longer passwords
// are refused for bcrypt hashes rather than silently cut.
const (
	maxPasswordBytes = 1024
	bcryptMaxBytes   = 72
)

// account is a password hash and the Caddy hash module that checks it.
type account struct {
	hash   []byte
	cmp    caddyauth.Comparer
	bcrypt bool
	// credential names the hash in the sessions opened with it.
	credential credential
}

// credential identifies a password hash: a session records the credential
// it was opened with, and is honoured only where its user still has it
// (see store.Session.Credential).
type credential [16]byte

// credentialOf returns the credential of a password hash. The hash is
// salted, so two users or two sites with the same password still have
// different credentials.
func credentialOf(hash string) credential {
	sum := sha256.Sum256([]byte(hash))
	return credential(sum[:16])
}

// is reports whether a stored session's credential is c.
func (c credential) is(stored []byte) bool { return string(stored) == string(c[:]) }

// newAccount recognises the algorithm of a hash made by
// `caddy hash-password`, from its Modular Crypt Format prefix.
func newAccount(hash string) (account, error) {
	switch {
	case strings.HasPrefix(hash, "$2a$"), strings.HasPrefix(hash, "$2b$"), strings.HasPrefix(hash, "$2y$"):
		if _, err := bcrypt.Cost([]byte(hash)); err != nil {
			return account{}, fmt.Errorf("invalid bcrypt hash: %w", err)
		}
		return account{hash: []byte(hash), cmp: caddyauth.BcryptHash{}, bcrypt: true, credential: credentialOf(hash)}, nil
	case strings.HasPrefix(hash, "$argon2id$"):
		if _, _, err := caddyauth.DecodeHash([]byte(hash)); err != nil {
			return account{}, fmt.Errorf("invalid argon2id hash: %w", err)
		}
		return account{hash: []byte(hash), cmp: caddyauth.Argon2idHash{}, credential: credentialOf(hash)}, nil
	case hash == "":
		return account{}, errors.New("password hash is empty")
	default:
		return account{}, errors.New("password must be a bcrypt or argon2id hash from `caddy hash-password`, not a plain password")
	}
}

// fakeAccountLike returns an account whose hash costs as much to check as
// like's, for unknown user names. Caddy ships ready-made fake hashes for its
// default parameters; other parameters get a hash made now.
func fakeAccountLike(like account) (account, error) {
	if like.cmp == nil {
		// No user in the config: users come from `caddy two-factor
		// add-user`, whose hashes are argon2id with Caddy's default
		// parameters, the parameters of this fake.
		return newAccount(string(caddyauth.Argon2idHash{}.FakeHash()))
	}
	if like.bcrypt {
		cost, _ := bcrypt.Cost(like.hash)
		if defaultFake := (caddyauth.BcryptHash{}).FakeHash(); mustCost(defaultFake) == cost {
			return newAccount(string(defaultFake))
		}
		random := make([]byte, 32)
		_, _ = rand.Read(random)
		fake, err := bcrypt.GenerateFromPassword(random, cost)
		if err != nil {
			return account{}, fmt.Errorf("making timing-safe fake hash: %w", err)
		}
		return newAccount(string(fake))
	}
	// An argon2id hash of the same parameters: reuse like's own parameters
	// and salt with a different key; the comparison costs the same and never
	// matches a password that was not like's.
	fake := string(like.hash)
	if i := strings.LastIndexByte(fake, '$'); i > 0 {
		random := make([]byte, 32)
		_, _ = rand.Read(random)
		fake = fake[:i+1] + strings.TrimRight(encodeStd(random), "=")
	}
	return newAccount(fake)
}

func mustCost(hash []byte) int {
	cost, _ := bcrypt.Cost(hash)
	return cost
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

func encodeStd(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
