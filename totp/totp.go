// Package totp generates and verifies RFC 6238 time-based one-time passwords
// with the parameters every authenticator app understands: SHA-1, six digits,
// 30-second steps. It adds what the underlying library leaves to its callers:
// strict parsing of user input, verification that reports which time step
// matched (so callers can refuse a step they have already accepted) and a
// constant-time comparison.
package totp

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base32"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"
)

const (
	// Digits is the length of a code.
	Digits = 6
	// Period is the length of one time step.
	Period = 30 * time.Second
	// Skew is how many steps before and after the current one are accepted,
	// to forgive clocks that drift and users who type slowly.
	Skew = 1
	// SecretSize is the secret length in bytes: 160 bits, as RFC 4226 recommends.
	SecretSize = 20
)

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// NewSecret returns a fresh random secret from crypto/rand.
func NewSecret() ([]byte, error) {
	secret := make([]byte, SecretSize)
	if _, err := rand.Read(secret); err != nil {
		return nil, fmt.Errorf("generating TOTP secret: %w", err)
	}
	return secret, nil
}

// EncodeSecret returns the secret in unpadded base32, the form users type
// into an authenticator app by hand.
func EncodeSecret(secret []byte) string {
	return b32.EncodeToString(secret)
}

// URI returns the otpauth:// provisioning URI that QR codes carry.
//
// It is built here rather than by the otp library, whose query encoding
// leaves "&" and "+" in the issuer unescaped (so "Smith & Sons" became the
// issuer "Smith ") and which silently invents a random secret when given
// an empty one.
func URI(issuer, account string, secret []byte) (string, error) {
	switch {
	case issuer == "":
		return "", fmt.Errorf("building TOTP provisioning URI: %w", otp.ErrGenerateMissingIssuer)
	case account == "":
		return "", fmt.Errorf("building TOTP provisioning URI: %w", otp.ErrGenerateMissingAccountName)
	case len(secret) == 0:
		return "", errors.New("building TOTP provisioning URI: empty secret")
	}
	query := url.Values{
		"secret":    {EncodeSecret(secret)},
		"issuer":    {issuer},
		"algorithm": {otp.AlgorithmSHA1.String()},
		"digits":    {otp.DigitsSix.String()},
		"period":    {strconv.Itoa(int(Period / time.Second))},
	}
	u := url.URL{
		Scheme: "otpauth",
		Host:   "totp",
		Path:   "/" + issuer + ":" + account,
		// Spaces as %20, not +: some authenticator apps show a + as is.
		// Encode has already escaped every literal + as %2B.
		RawQuery: strings.ReplaceAll(query.Encode(), "+", "%20"),
	}
	return u.String(), nil
}

// Step returns the RFC 6238 time step that t falls in.
func Step(t time.Time) uint64 {
	return uint64(t.Unix()) / uint64(Period/time.Second)
}

// Code returns the code for the given step using algorithm and digits;
// callers outside tests use [Verify] and never need it.
func Code(secret []byte, step uint64, algorithm otp.Algorithm, digits otp.Digits) (string, error) {
	return hotp.GenerateCodeCustom(EncodeSecret(secret), step, hotp.ValidateOpts{
		Digits:    digits,
		Algorithm: algorithm,
	})
}

// CodeAt returns the standard code for the time t.
func CodeAt(secret []byte, t time.Time) (string, error) {
	return Code(secret, Step(t), otp.AlgorithmSHA1, otp.DigitsSix)
}

// ParseCode returns the code in s if s is a well-formed code: exactly
// [Digits] ASCII digits once surrounding and inner spaces are removed
// (apps show "123 456"). Anything else, including signs, fullwidth digits
// and control characters, is rejected.
func ParseCode(s string) (string, bool) {
	if len(s) > 32 {
		return "", false
	}
	var buf [Digits]byte
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ':
			continue
		case c >= '0' && c <= '9':
			if n == Digits {
				return "", false
			}
			buf[n] = c
			n++
		default:
			return "", false
		}
	}
	if n != Digits {
		return "", false
	}
	return string(buf[:]), true
}

// Verify reports whether code is valid at now for secret, within [Skew]
// steps, and returns the step it matched. Steps at or before notAfter are
// never accepted: callers pass the last step they accepted for this
// secret, which makes every code usable once. code must come from
// [ParseCode].
func Verify(secret []byte, code string, now time.Time, notAfter uint64) (uint64, bool) {
	current := Step(now)
	var matched uint64
	ok := false
	// Check every candidate step, without stopping at the first match, so the
	// time taken does not say which step matched.
	for delta := -Skew; delta <= Skew; delta++ {
		step := current + uint64(delta)
		if delta < 0 && current < uint64(-delta) {
			continue
		}
		want, err := Code(secret, step, otp.AlgorithmSHA1, otp.DigitsSix)
		if err != nil {
			continue
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 && step > notAfter && !ok {
			matched, ok = step, true
		}
	}
	return matched, ok
}

// GroupSecret splits an encoded secret into blocks of four characters,
// which are easier to read and type.
func GroupSecret(encoded string) string {
	var b strings.Builder
	for i := 0; i < len(encoded); i += 4 {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(encoded[i:min(i+4, len(encoded))])
	}
	return b.String()
}
