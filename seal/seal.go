// Package seal encrypts small secrets (TOTP keys) before they are written to
// disk, with AES-256-GCM and the owner's name as associated data, so a
// sealed value copied onto another user's record does not open.
//
// A sealed value starts with a one-byte format tag: values written without a
// key stay readable after a key is configured, and values written with a key
// refuse to open without it instead of being mistaken for plaintext.
//
// A Sealer may also hold previous keys, for rotation: values sealed with one
// still open, and [Sealer.Reseal] seals them again with the current key.
package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

const (
	formatPlain byte = 0
	formatGCM   byte = 1
	// KeySize is the length of an encryption key in bytes.
	KeySize = 32
)

// ErrNoKey means a value was sealed with a key that is not configured.
var ErrNoKey = errors.New("value is encrypted but no encryption key is configured")

// Sealer seals and opens values. The zero value seals nothing: it stores
// values as they are.
type Sealer struct {
	// aeads are the current key's cipher, then the previous keys'; empty
	// when there is no key.
	aeads []cipher.AEAD
	// id tells the current key apart from others without keeping it.
	id [sha256.Size]byte
}

// Key says with which of a Sealer's keys a value was sealed.
type Key int

const (
	// KeyNone is a value stored without a key.
	KeyNone Key = iota
	// KeyCurrent is a value sealed with the current key.
	KeyCurrent
	// KeyPrevious is a value sealed with one of the previous keys.
	KeyPrevious
)

// ParseKey decodes a base64 key (standard or URL alphabet, padded or not)
// that must be exactly [KeySize] bytes long.
func ParseKey(encoded string) ([]byte, error) {
	encoded = strings.TrimSpace(encoded)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		key, err := enc.DecodeString(encoded)
		if err != nil {
			continue
		}
		if len(key) != KeySize {
			return nil, fmt.Errorf("encryption key is %d bytes; want %d (generate one with: head -c 32 /dev/urandom | base64)", len(key), KeySize)
		}
		return key, nil
	}
	return nil, errors.New("encryption key is not valid base64")
}

// New returns a Sealer that encrypts with key and also opens values sealed
// with any of the previous keys, or one that stores values in the clear
// when key is nil (it then takes no previous keys).
func New(key []byte, previous ...[]byte) (*Sealer, error) {
	if key == nil {
		if len(previous) > 0 {
			return nil, errors.New("previous encryption keys need a current one")
		}
		return &Sealer{}, nil
	}
	s := &Sealer{id: keyID(key)}
	for i, k := range append([][]byte{key}, previous...) {
		aead, err := newAEAD(k)
		if err != nil {
			if i > 0 {
				return nil, fmt.Errorf("previous encryption key %d: %w", i, err)
			}
			return nil, err
		}
		s.aeads = append(s.aeads, aead)
	}
	return s, nil
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("encryption key is %d bytes; want %d", len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("creating cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("creating GCM: %w", err)
	}
	return aead, nil
}

// keyID is a digest that names a key without revealing it.
func keyID(key []byte) [sha256.Size]byte {
	return sha256.Sum256(append([]byte("caddy-two-factor key id\x00"), key...))
}

// Encrypts reports whether the sealer has a key.
func (s *Sealer) Encrypts() bool { return len(s.aeads) > 0 }

// SameKey reports whether s and other seal with the same key (or both
// with none): values either seals, the other opens.
func (s *Sealer) SameKey(other *Sealer) bool {
	return s.Encrypts() == other.Encrypts() && s.id == other.id
}

// Seal returns plaintext sealed for owner with the current key.
func (s *Sealer) Seal(plaintext []byte, owner string) ([]byte, error) {
	if !s.Encrypts() {
		return append([]byte{formatPlain}, plaintext...), nil
	}
	aead := s.aeads[0]
	out := make([]byte, 1+aead.NonceSize(), 1+aead.NonceSize()+len(plaintext)+aead.Overhead())
	out[0] = formatGCM
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, fmt.Errorf("generating nonce: %w", err)
	}
	return aead.Seal(out, out[1:], plaintext, []byte(owner)), nil
}

// Open returns the plaintext of a value sealed for owner.
func (s *Sealer) Open(sealed []byte, owner string) ([]byte, error) {
	plaintext, _, err := s.OpenKey(sealed, owner)
	return plaintext, err
}

// OpenKey is Open that also tells with which key the value was sealed.
// The current key is tried first, so a value sealed with it costs no more
// than with a single key.
func (s *Sealer) OpenKey(sealed []byte, owner string) ([]byte, Key, error) {
	if len(sealed) == 0 {
		return nil, KeyNone, errors.New("sealed value is empty")
	}
	switch sealed[0] {
	case formatPlain:
		return append([]byte(nil), sealed[1:]...), KeyNone, nil
	case formatGCM:
		if !s.Encrypts() {
			return nil, KeyNone, ErrNoKey
		}
		body := sealed[1:]
		for i, aead := range s.aeads {
			if len(body) < aead.NonceSize() {
				return nil, KeyNone, errors.New("sealed value is truncated")
			}
			nonce, ciphertext := body[:aead.NonceSize()], body[aead.NonceSize():]
			if plaintext, err := aead.Open(nil, nonce, ciphertext, []byte(owner)); err == nil {
				if i == 0 {
					return plaintext, KeyCurrent, nil
				}
				return plaintext, KeyPrevious, nil
			}
		}
		return nil, KeyNone, fmt.Errorf("decrypting: wrong key, or value does not belong to %q", owner)
	default:
		return nil, KeyNone, fmt.Errorf("unknown sealed format %d", sealed[0])
	}
}

// Reseal returns a value stored without a key, or sealed with a previous
// key, sealed again with the current key, and true; a value already sealed
// with the current key is returned as it is, with false, and so is any
// value when the sealer has no key. It lets secrets enrolled before a key
// was configured, or sealed before a rotation, be sealed with the current
// key as they are used. A value that does not open is an error.
func (s *Sealer) Reseal(sealed []byte, owner string) ([]byte, bool, error) {
	if !s.Encrypts() {
		return sealed, false, nil
	}
	plaintext, key, err := s.OpenKey(sealed, owner)
	if err != nil {
		return nil, false, err
	}
	if key == KeyCurrent {
		return sealed, false, nil
	}
	resealed, err := s.Seal(plaintext, owner)
	if err != nil {
		return nil, false, err
	}
	return resealed, true, nil
}
