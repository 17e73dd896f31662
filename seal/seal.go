// Package seal encrypts small secrets (TOTP keys) before they are written to
// disk, with AES-256-GCM and the owner's name as associated data, so a
// sealed value copied onto another user's record does not open.
//
// A sealed value starts with a one-byte format tag: values written without a
// key stay readable after a key is configured, and values written with a key
// refuse to open without it instead of being mistaken for plaintext.
package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
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
	aead cipher.AEAD
}

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

// New returns a Sealer that encrypts with key, or one that stores values
// in the clear when key is nil.
func New(key []byte) (*Sealer, error) {
	if key == nil {
		return &Sealer{}, nil
	}
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
	return &Sealer{aead: aead}, nil
}

// Encrypts reports whether the sealer has a key.
func (s *Sealer) Encrypts() bool { return s.aead != nil }

// Seal returns plaintext sealed for owner.
func (s *Sealer) Seal(plaintext []byte, owner string) ([]byte, error) {
	if s.aead == nil {
		return append([]byte{formatPlain}, plaintext...), nil
	}
	out := make([]byte, 1+s.aead.NonceSize(), 1+s.aead.NonceSize()+len(plaintext)+s.aead.Overhead())
	out[0] = formatGCM
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, fmt.Errorf("generating nonce: %w", err)
	}
	return s.aead.Seal(out, out[1:], plaintext, []byte(owner)), nil
}

// Open returns the plaintext of a value sealed for owner.
func (s *Sealer) Open(sealed []byte, owner string) ([]byte, error) {
	if len(sealed) == 0 {
		return nil, errors.New("sealed value is empty")
	}
	switch sealed[0] {
	case formatPlain:
		return append([]byte(nil), sealed[1:]...), nil
	case formatGCM:
		if s.aead == nil {
			return nil, ErrNoKey
		}
		body := sealed[1:]
		if len(body) < s.aead.NonceSize() {
			return nil, errors.New("sealed value is truncated")
		}
		nonce, ciphertext := body[:s.aead.NonceSize()], body[s.aead.NonceSize():]
		plaintext, err := s.aead.Open(nil, nonce, ciphertext, []byte(owner))
		if err != nil {
			return nil, fmt.Errorf("decrypting: wrong key, or value does not belong to %q", owner)
		}
		return plaintext, nil
	default:
		return nil, fmt.Errorf("unknown sealed format %d", sealed[0])
	}
}

// Reseal returns a value stored without a key sealed with the sealer's
// key, and true; any other value is returned as it is, with false. It lets
// secrets enrolled before a key was configured be encrypted as they are
// used.
func (s *Sealer) Reseal(sealed []byte, owner string) ([]byte, bool, error) {
	if s.aead == nil || len(sealed) == 0 || sealed[0] != formatPlain {
		return sealed, false, nil
	}
	resealed, err := s.Seal(sealed[1:], owner)
	if err != nil {
		return nil, false, err
	}
	return resealed, true, nil
}
