package policy

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/caddy-two-factor/caddy-two-factor/store"
)

// An app token is
//
//	tfa_<id>_<secret>_<user>
//
// with <id> the token's 9-byte identifier (12 characters), <secret> 32
// random bytes (43 characters) and <user> the user's name, all base64url
// without padding; the underscores stand at fixed places (base64url has
// its own underscores, which is why they are not searched for). The token
// names its user and its record, so a request's token is checked against
// one record of one user's, read by name: no request scans the users, and
// no index beside the users' records has to be kept in step with them by
// a store that is not the only writer. The user's record keeps the
// SHA-256 of the secret (256 random bits need no key). The tfa_ prefix
// lets secret scanners and people tell the token for what it is.
const (
	AppTokenPrefix = "tfa_"
	// AppTokenSecretBytes is the entropy of a token: 256 bits.
	AppTokenSecretBytes = 32
	// MaxAppTokens bounds a user's app tokens.
	MaxAppTokens = 32
	// MaxAppTokenName bounds a token's name, in bytes.
	MaxAppTokenName = 64
	// AppTokenTouchEvery is how stale a token's LastUsed may get before a
	// use records it again: a use per request would be a write per request.
	AppTokenTouchEvery = time.Minute
	// maxTokenUser bounds the user name a token may carry, in bytes.
	maxTokenUser = 256
)

var (
	idLength     = base64.RawURLEncoding.EncodedLen(9)
	secretLength = base64.RawURLEncoding.EncodedLen(AppTokenSecretBytes)
	// userAt is where the user's name begins in a token.
	userAt = len(AppTokenPrefix) + idLength + 1 + secretLength + 1
)

// Errors of AddAppToken, all the user's to correct.
var (
	ErrAppTokenName     = fmt.Errorf("an app token needs a name of at most %d bytes, without control characters", MaxAppTokenName)
	ErrAppTokenExpiry   = errors.New("an app token's expiry must be in the future")
	ErrTooManyAppTokens = fmt.Errorf("a user may have at most %d app tokens", MaxAppTokens)
)

// AddAppToken gives u a new app token named name, expiring at expires
// (zero: never), and returns the token, to be shown once. The caller puts
// u.
func AddAppToken(u *store.User, name string, now, expires time.Time, rnd io.Reader) (string, error) {
	name = strings.TrimSpace(name)
	if name == "" || len(name) > MaxAppTokenName || !utf8.ValidString(name) || strings.IndexFunc(name, unicode.IsControl) >= 0 {
		return "", ErrAppTokenName
	}
	if !expires.IsZero() && !expires.After(now) {
		return "", ErrAppTokenExpiry
	}
	if len(u.AppTokens) >= MaxAppTokens {
		return "", ErrTooManyAppTokens
	}
	if u.Name == "" || len(u.Name) > maxTokenUser {
		return "", fmt.Errorf("user name of %d bytes cannot be carried by an app token", len(u.Name))
	}
	var id string
	for {
		var err error
		if id, err = newID(rnd); err != nil {
			return "", err
		}
		if !slices.ContainsFunc(u.AppTokens, func(t store.AppToken) bool { return t.ID == id }) {
			break
		}
	}
	var secret [AppTokenSecretBytes]byte
	if _, err := io.ReadFull(orCrypto(rnd), secret[:]); err != nil {
		return "", fmt.Errorf("generating app token: %w", err)
	}
	digest := sha256.Sum256(secret[:])
	u.AppTokens = append(u.AppTokens, store.AppToken{
		ID: id, Name: name, Digest: digest[:], Created: now, Expires: expires,
	})
	var b strings.Builder
	b.Grow(userAt + base64.RawURLEncoding.EncodedLen(len(u.Name)))
	b.WriteString(AppTokenPrefix)
	b.WriteString(id)
	b.WriteByte('_')
	b.WriteString(base64.RawURLEncoding.EncodeToString(secret[:]))
	b.WriteByte('_')
	b.WriteString(base64.RawURLEncoding.EncodeToString([]byte(u.Name)))
	return b.String(), nil
}

// ParseAppToken splits a token into the user it names, its identifier and
// its secret, or reports false if token is not exactly one AddAppToken
// could have made (every part canonical base64url, of its length).
func ParseAppToken(token string) (user, id string, secret [AppTokenSecretBytes]byte, ok bool) {
	if len(token) <= userAt || len(token) > userAt+base64.RawURLEncoding.EncodedLen(maxTokenUser) ||
		!strings.HasPrefix(token, AppTokenPrefix) || token[len(AppTokenPrefix)+idLength] != '_' || token[userAt-1] != '_' {
		return "", "", secret, false
	}
	// The decoder skips line breaks; a token has none.
	if strings.ContainsFunc(token, func(r rune) bool { return !isBase64URL(r) }) {
		return "", "", secret, false
	}
	id = token[len(AppTokenPrefix) : len(AppTokenPrefix)+idLength]
	enc := base64.RawURLEncoding.Strict()
	var rawID [9]byte
	if n, err := enc.Decode(rawID[:], []byte(id)); err != nil || n != len(rawID) {
		return "", "", secret, false
	}
	if n, err := enc.Decode(secret[:], []byte(token[userAt-1-secretLength:userAt-1])); err != nil || n != len(secret) {
		return "", "", [AppTokenSecretBytes]byte{}, false
	}
	name, err := enc.DecodeString(token[userAt:])
	if err != nil || len(name) == 0 {
		return "", "", [AppTokenSecretBytes]byte{}, false
	}
	return string(name), id, secret, true
}

func isBase64URL(r rune) bool {
	return 'A' <= r && r <= 'Z' || 'a' <= r && r <= 'z' || '0' <= r && r <= '9' || r == '-' || r == '_'
}

// VerifyAppToken returns u's token id if secret is its secret and it has
// not expired at now. The secret is compared in constant time. The caller
// has read u by the name ParseAppToken gave (and, for Basic
// authentication, checked that the name given matches it).
func VerifyAppToken(u *store.User, id string, secret [AppTokenSecretBytes]byte, now time.Time) (*store.AppToken, bool) {
	// The identifier is no secret: only the secret is compared in
	// constant time.
	i := slices.IndexFunc(u.AppTokens, func(t store.AppToken) bool { return t.ID == id })
	if i < 0 {
		return nil, false
	}
	digest := sha256.Sum256(secret[:])
	t := &u.AppTokens[i]
	if subtle.ConstantTimeCompare(t.Digest, digest[:]) != 1 || (!t.Expires.IsZero() && !now.Before(t.Expires)) {
		return nil, false
	}
	return t, true
}

// TouchAppToken records a use of t at now if its LastUsed is at least
// AppTokenTouchEvery old, and reports whether it did: then the caller puts
// the user, in an Update that verifies the token again (it may have been
// revoked since it was read).
func TouchAppToken(t *store.AppToken, now time.Time) bool {
	if now.Sub(t.LastUsed) < AppTokenTouchEvery {
		return false
	}
	t.LastUsed = now
	return true
}

// RevokeAppToken removes u's token id and reports whether it was there. The
// caller puts u.
func RevokeAppToken(u *store.User, id string) bool {
	n := len(u.AppTokens)
	u.AppTokens = slices.DeleteFunc(u.AppTokens, func(t store.AppToken) bool { return t.ID == id })
	if len(u.AppTokens) == 0 {
		u.AppTokens = nil
	}
	return len(u.AppTokens) != n
}

// RevokeAllAppTokens removes every app token of u and returns how many
// there were: part of revoke and reset. The caller puts u.
func RevokeAllAppTokens(u *store.User) int {
	n := len(u.AppTokens)
	u.AppTokens = nil
	return n
}

// AppTokenRefused reports whether a request path is one where app tokens
// are refused whatever the app_tokens patterns say: the module's own pages
// under pathPrefix (sign-in, confirm, setup, the account page and every
// endpoint beside them). The comparison is case-insensitive and on the
// cleaned path, as Caddy's path matcher's, so /_2FA/Account and
// /api/../_2fa/account are refused too. Give it the request's decoded
// path (r.URL.Path) and the configured prefix (/_2fa by default).
func AppTokenRefused(pathPrefix, requestPath string) bool {
	p := path.Clean("/" + requestPath)
	prefix := strings.TrimSuffix(pathPrefix, "/")
	if len(p) < len(prefix) || !strings.EqualFold(p[:len(prefix)], prefix) {
		return false
	}
	return len(p) == len(prefix) || p[len(prefix)] == '/'
}
