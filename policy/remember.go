package policy

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/caddy-two-factor/caddy-two-factor/store"
)

// A remembered browser holds a random token of RememberTokenBytes in its
// own cookie, base64url without padding (43 characters). The store keeps
// the token's SHA-256 in the user's record: the token is 256 random bits,
// so no key is needed to make the digest useless to whoever reads the
// database. The token names no user: it only spares the second factor of
// the user who has just given the right password, so a stolen cookie
// without the password gets nothing, and it is looked for among that one
// user's devices only (at most MaxRememberedDevices).
const (
	RememberTokenBytes = 32
	// MaxRememberedDevices bounds a user's remembered browsers; a new one
	// beyond it replaces the least recently used.
	MaxRememberedDevices = 16
	// maxBrowserLabel bounds the stored label, in bytes.
	maxBrowserLabel = 100
)

// rememberTokenLength is the length of an encoded remember token.
var rememberTokenLength = base64.RawURLEncoding.EncodedLen(RememberTokenBytes)

// ErrNoFactors is returned when asked to remember a browser for a user who
// has no second factor: there would be nothing to spare.
var ErrNoFactors = errors.New("user has no second factor to remember")

// Remember is the remember_device option: how long a remembered browser
// is spared the second factor. The zero Remember is off.
type Remember struct {
	For time.Duration
}

// Enabled reports whether browsers may be remembered.
func (r Remember) Enabled() bool { return r.For != 0 }

// Validate checks that an enabled Remember has a positive lifetime.
func (r Remember) Validate() error {
	if r.For < 0 {
		return fmt.Errorf("remember_device %v must be positive", r.For)
	}
	return nil
}

// Device adds a remembered browser to u at now and returns the token for
// its cookie, to be set with the same lifetime. It drops u's devices that
// no longer count (expired, or bound to other factors) and, past
// MaxRememberedDevices, the least recently used. browser is a label for
// the account page (the User-Agent will do; it is cut to a bound). The
// caller puts u.
func (r Remember) Device(u *store.User, now time.Time, browser string, rnd io.Reader) (string, error) {
	if !u.Enrolled() {
		return "", ErrNoFactors
	}
	raw := make([]byte, RememberTokenBytes)
	if _, err := io.ReadFull(orCrypto(rnd), raw); err != nil {
		return "", fmt.Errorf("generating remember token: %w", err)
	}
	id, err := newID(rnd)
	if err != nil {
		return "", err
	}
	digest := sha256.Sum256(raw)
	factors := FactorsFingerprint(u)
	u.RememberedDevices = slices.DeleteFunc(u.RememberedDevices, func(d store.RememberedDevice) bool {
		return !counts(&d, factors[:], now)
	})
	for len(u.RememberedDevices) >= MaxRememberedDevices {
		oldest := 0
		for i, d := range u.RememberedDevices {
			if lastActive(&d).Before(lastActive(&u.RememberedDevices[oldest])) {
				oldest = i
			}
		}
		u.RememberedDevices = slices.Delete(u.RememberedDevices, oldest, oldest+1)
	}
	u.RememberedDevices = append(u.RememberedDevices, store.RememberedDevice{
		ID:      id,
		Digest:  digest[:],
		Factors: factors[:],
		Created: now,
		Expires: now.Add(r.For),
		Browser: cut(browser, maxBrowserLabel),
	})
	return base64.RawURLEncoding.EncodeToString(raw), nil
}

// Remembered returns the device of u's that token (a remember cookie)
// names, if it still counts at now: not expired, and bound to u's current
// factors. The caller, having checked u's password, signs the browser in
// without a second factor (see Policy.SignedInRemembered), sets the
// device's LastUsed to now and puts u. The returned pointer is into
// u.RememberedDevices.
func Remembered(u *store.User, token string, now time.Time) (*store.RememberedDevice, bool) {
	digest, ok := rememberDigest(token)
	if !ok || !u.Enrolled() {
		return nil, false
	}
	factors := FactorsFingerprint(u)
	found := -1
	// Every device is compared, so the time taken tells nothing of which
	// one matched.
	for i := range u.RememberedDevices {
		if subtle.ConstantTimeCompare(u.RememberedDevices[i].Digest, digest[:]) == 1 {
			found = i
		}
	}
	if found < 0 || !counts(&u.RememberedDevices[found], factors[:], now) {
		return nil, false
	}
	return &u.RememberedDevices[found], true
}

// ForgetDevice removes the device id from u and reports whether it was
// there. The caller puts u.
func ForgetDevice(u *store.User, id string) bool {
	n := len(u.RememberedDevices)
	u.RememberedDevices = slices.DeleteFunc(u.RememberedDevices, func(d store.RememberedDevice) bool { return d.ID == id })
	if len(u.RememberedDevices) == 0 {
		u.RememberedDevices = nil
	}
	return len(u.RememberedDevices) != n
}

// ForgetAllDevices removes every remembered device of u and returns how
// many there were: the account page's "forget remembered browsers", and
// part of reset, revoke and a change of factors. The caller puts u.
func ForgetAllDevices(u *store.User) int {
	n := len(u.RememberedDevices)
	u.RememberedDevices = nil
	return n
}

// FactorsFingerprint returns a digest of u's second factors that changes
// when they do: a TOTP enrolment begun, replaced or removed, a passkey
// added or removed. A remembered device is bound to the fingerprint at the
// time it was remembered and counts only while it is unchanged, so a new
// authenticator (after a loss, say) ends every remembered browser without
// any code path having to remember to do so.
//
// It covers the TOTP enrolment's time (to the nanosecond) rather than its
// secret: the sealed secret changes whenever the sealing key is rotated,
// which must not forget every browser. It does not cover the user's
// session identifier, which changes at every sign-in, nor recovery codes,
// whose use is no change of factors. Reset, revoke and remove-user clear
// the list itself (ForgetAllDevices), as a reset can leave the passkeys.
func FactorsFingerprint(u *store.User) [sha256.Size]byte {
	b := []byte("caddy-two-factor factors v1\x00")
	if u.TOTP != nil {
		b = append(b, 1)
		b = binary.BigEndian.AppendUint64(b, uint64(u.TOTP.EnrolledAt.UnixNano()))
	} else {
		b = append(b, 0)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(u.Passkeys)))
	for i := range u.Passkeys {
		b = binary.BigEndian.AppendUint32(b, uint32(len(u.Passkeys[i].ID)))
		b = append(b, u.Passkeys[i].ID...)
	}
	return sha256.Sum256(b)
}

// counts reports whether d still spares the second factor at now for a
// user whose factors have the fingerprint factors.
func counts(d *store.RememberedDevice, factors []byte, now time.Time) bool {
	return now.Before(d.Expires) && subtle.ConstantTimeCompare(d.Factors, factors) == 1
}

func lastActive(d *store.RememberedDevice) time.Time {
	if d.LastUsed.After(d.Created) {
		return d.LastUsed
	}
	return d.Created
}

// rememberDigest returns the digest of a remember token, or false if token
// is not one Remember.Device could have made.
func rememberDigest(token string) ([sha256.Size]byte, bool) {
	var raw [RememberTokenBytes]byte
	if len(token) != rememberTokenLength {
		return [sha256.Size]byte{}, false
	}
	if n, err := base64.RawURLEncoding.Strict().Decode(raw[:], []byte(token)); err != nil || n != len(raw) {
		return [sha256.Size]byte{}, false
	}
	return sha256.Sum256(raw[:]), true
}

// newID returns a random identifier for a device or token: 9 bytes,
// base64url (12 characters), unique enough among one user's few.
func newID(rnd io.Reader) (string, error) {
	var raw [9]byte
	if _, err := io.ReadFull(orCrypto(rnd), raw[:]); err != nil {
		return "", fmt.Errorf("generating identifier: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(raw[:]), nil
}

// cut returns s cut to at most n bytes, on a UTF-8 boundary.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xc0 == 0x80 {
		n--
	}
	return s[:n]
}
