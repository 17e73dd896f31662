package notify

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/big"
	"net/mail"
	"strings"
	"unicode/utf8"
)

// CodeDigits is the length of an e-mailed fallback code.
const CodeDigits = 8

var codeSpace = big.NewInt(100_000_000) // 10^CodeDigits

// NewCode returns a fresh fallback code: 8 decimal digits, each of the
// 10^8 values equally likely.
func NewCode() (string, error) {
	n, err := rand.Int(rand.Reader, codeSpace)
	if err != nil {
		return "", fmt.Errorf("generating e-mail code: %w", err)
	}
	return fmt.Sprintf("%0*d", CodeDigits, n), nil
}

// CodeDigest is what is stored for a code: HMAC-SHA256 under a server key,
// bound to the user. 10^8 codes are easy to try offline, so the key (not
// the digest) is what keeps a copy of the store from giving codes away; the
// binding keeps one user's pending code from serving another user.
func CodeDigest(key []byte, user, code string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(user))
	m.Write([]byte{0})
	m.Write([]byte(code))
	return m.Sum(nil)
}

// CheckCode reports, in constant time, whether input is the code whose
// digest is stored for user. Spaces and dashes in input are ignored.
func CheckCode(key []byte, user, input string, digest []byte) bool {
	code, ok := parseCode(input)
	if !ok {
		// Compare anyway, so a malformed code costs what a wrong one does.
		code = strings.Repeat("x", CodeDigits)
	}
	return hmac.Equal(CodeDigest(key, user, code), digest) && ok
}

// IsCode reports whether s has the form of an e-mailed code: 8 digits,
// with spaces and dashes ignored.
func IsCode(s string) bool {
	_, ok := parseCode(s)
	return ok
}

func parseCode(s string) (string, bool) {
	s = strings.Map(func(r rune) rune {
		if r == ' ' || r == '-' {
			return -1
		}
		return r
	}, s)
	if len(s) != CodeDigits {
		return "", false
	}
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return "", false
		}
	}
	return s, true
}

// maxAddress is the longest usable address (RFC 5321 path limit).
const maxAddress = 254

// ParseAddress checks a user's e-mail address and returns it in bare form
// ("alice@example.com"). A display name is accepted and dropped. Control
// characters (CR and LF among them) are refused, so the result is safe in a
// mail header and an SMTP command.
func ParseAddress(s string) (string, error) {
	if strings.ContainsFunc(s, isControl) {
		return "", errors.New("e-mail address contains a control character")
	}
	a, err := mail.ParseAddress(s)
	if err != nil {
		return "", fmt.Errorf("invalid e-mail address: %w", err)
	}
	addr := a.Address
	at := strings.LastIndexByte(addr, '@')
	switch {
	case len(addr) > maxAddress:
		return "", errors.New("e-mail address is too long")
	case at <= 0 || at == len(addr)-1:
		return "", errors.New("e-mail address needs a local part and a domain")
	case strings.Count(addr, "@") != 1 || !bare(addr):
		// A local part that needs quoting would need it in SMTP commands
		// too; no one uses them.
		return "", errors.New("e-mail address has a quoted local part")
	}
	return addr, nil
}

// bare reports whether addr parses, unquoted, to itself.
func bare(addr string) bool {
	a, err := mail.ParseAddress(addr)
	return err == nil && a.Address == addr && a.Name == ""
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// MaskAddress shows an address the way a page may: the first character of
// the local part and the domain ("a***@example.com"). An invalid address
// masks to "".
func MaskAddress(s string) string {
	addr, err := ParseAddress(s)
	if err != nil {
		return ""
	}
	at := strings.LastIndexByte(addr, '@')
	r, _ := utf8.DecodeRuneInString(addr)
	return string(r) + "***" + addr[at:]
}
