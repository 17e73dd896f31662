// Package recovery makes and checks one-time recovery codes, the way back in
// for a user who has lost their authenticator.
//
// A code is 16 characters of lowercase base32 (80 random bits) shown in
// four groups, like "k7qm-2xva-9cde-hrtw". Only a SHA-256 digest of each code
// is stored: with 80 bits of entropy a fast hash is safe, and it keeps the
// check cheap.
package recovery

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"fmt"
	"strings"
)

const (
	// Length is the number of characters in a code, without dashes.
	Length = 16
	group  = 4
)

var encoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// Generate returns n fresh codes, formatted for display, and their digests
// for storage, in the same order.
func Generate(n int) (codes []string, digests [][]byte, err error) {
	raw := make([]byte, Length*5/8)
	for range n {
		if _, err := rand.Read(raw); err != nil {
			return nil, nil, fmt.Errorf("generating recovery code: %w", err)
		}
		code := encoding.EncodeToString(raw)
		codes = append(codes, format(code))
		digests = append(digests, digest(code))
	}
	return codes, digests, nil
}

func format(code string) string {
	var b strings.Builder
	for i := 0; i < len(code); i += group {
		if i > 0 {
			b.WriteByte('-')
		}
		b.WriteString(code[i : i+group])
	}
	return b.String()
}

func digest(normalized string) []byte {
	sum := sha256.Sum256([]byte(normalized))
	return sum[:]
}

// Parse normalises what a user typed (case, dashes and spaces are
// forgiven) and reports whether it has the shape of a recovery code.
func Parse(s string) (string, bool) {
	if len(s) > 64 {
		return "", false
	}
	var b [Length]byte
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '-' || c == ' ':
			continue
		case c >= 'A' && c <= 'Z':
			c += 'a' - 'A'
		case c >= 'a' && c <= 'z', c >= '2' && c <= '7':
		default:
			return "", false
		}
		if n == Length {
			return "", false
		}
		b[n] = c
		n++
	}
	if n != Length {
		return "", false
	}
	return string(b[:]), true
}

// Match returns the index of the digest in digests that matches the parsed
// code, or -1. Every digest is compared, in constant time.
func Match(parsed string, digests [][]byte) int {
	d := digest(parsed)
	found := -1
	for i, candidate := range digests {
		if subtle.ConstantTimeCompare(d, candidate) == 1 && found < 0 {
			found = i
		}
	}
	return found
}
