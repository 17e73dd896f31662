// Package store keeps what two-factor sign-in must remember: users'
// enrollments, server-side sessions and failed-attempt counters.
//
// Callers see only the [Store] and [Tx] interfaces and plain Go values, so a
// shared backend (for several Caddy instances) can stand beside the embedded
// bbolt one without any change above this package. Every read-check-write
// that must not race (a TOTP step accepted once, a recovery code used once,
// a session rotated) happens inside one [Store.Update].
package store

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"time"
)

// ErrNotFound is returned by lookups of records that do not exist.
var ErrNotFound = errors.New("not found")

// ErrUnavailable is wrapped by every error that means the store could not
// answer: the backend is closed, unreachable or failed to read or write.
// It says nothing about the records asked for, so a caller must never take
// it for a missing record or a refusal; asking again later may succeed.
var ErrUnavailable = errors.New("2FA store unavailable")

// Store is a transactional store. Implementations must be safe for
// concurrent use. Package storetest checks every implementation against
// this contract:
//
//   - Update transactions are serialisable: the result is as if they ran
//     one at a time, so a read-check-write inside one cannot race another.
//     A store may run fn more than once (an optimistic store retries it
//     when a concurrent transaction changed what it read), so fn has no
//     effects outside the transaction that would matter if repeated, and
//     only the run whose Update returns nil counts.
//   - A transaction reads its own writes.
//   - Each read of a View sees committed data; a View need not be one
//     snapshot across reads (read what must agree in one Update).
//   - Records come back as they were put, with times in UTC and without a
//     monotonic clock reading, and empty slices as nil (Meta values come
//     back with length 0). Values returned are copies, and values given
//     to Put methods are not kept past the transaction.
//   - A store may drop a session on its own once the wall clock passes its
//     Expires, and a counter once the wall clock passes its LockedUntil
//     and its WindowStart plus a retention the store documents (at least a
//     day); DeleteExpiredSessions and DeleteStaleAttempts then only clean
//     up what is left. Callers check expiry themselves either way.
//   - Errors. Lookups of missing records return ErrNotFound. Every failure
//     of the backend itself (beginning or committing a transaction, a read
//     or write that did not reach it) wraps ErrUnavailable, in View and
//     Update and in the Tx methods alike, and is never ErrNotFound. An
//     error fn returns is returned as it is.
type Store interface {
	// View runs fn in a read-only transaction: writes fail.
	View(fn func(Tx) error) error
	// Update runs fn in a read-write transaction that is committed if fn
	// returns nil and rolled back otherwise (then nothing is written and
	// Update returns fn's error).
	Update(fn func(Tx) error) error
	// Close releases the store.
	Close() error
}

// Tx is one transaction. Values returned by it are copies: changing them
// changes nothing until they are put back.
type Tx interface {
	// Meta returns a value of the store's own (like the key that signs
	// anti-CSRF tokens), or ErrNotFound.
	Meta(name string) ([]byte, error)
	PutMeta(name string, value []byte) error

	// User returns a user's record, or ErrNotFound.
	User(name string) (*User, error)
	PutUser(u *User) error
	DeleteUser(name string) error
	// ForEachUser calls fn for every user record, in name order.
	ForEachUser(fn func(*User) error) error

	// Session returns a session, or ErrNotFound.
	Session(key SessionKey) (*Session, error)
	PutSession(s *Session) error
	DeleteSession(key SessionKey) error
	// UserSessions returns every stored session of a user.
	UserSessions(user string) ([]*Session, error)
	// DeleteExpiredSessions deletes at most limit sessions whose absolute
	// expiry is at or before now, earliest expiry first, and returns how
	// many it deleted (counting those the store had already dropped
	// itself, whose index entries it removes).
	DeleteExpiredSessions(now time.Time, limit int) (int, error)
	// ForEachSession calls fn for every session, in key order. It reads
	// them all: it is for rare operator actions, not for requests.
	ForEachSession(fn func(*Session) error) error
	// CountSessions returns the number of stored sessions by stage (a
	// store that drops expired sessions itself may count them until
	// DeleteExpiredSessions has run). It reads no session: stores keep
	// the counts, or an index by stage, beside the sessions.
	CountSessions() (SessionCounts, error)

	// Attempts returns a failure counter, or ErrNotFound.
	Attempts(key string) (*Attempts, error)
	PutAttempts(key string, a *Attempts) error
	DeleteAttempts(key string) error
	// ForEachAttempts calls fn for every counter whose key starts with
	// prefix, in key order.
	ForEachAttempts(prefix string, fn func(key string, a *Attempts) error) error
	// DeleteAttemptsWithPrefix deletes every counter whose key starts with
	// prefix, and returns how many it deleted.
	DeleteAttemptsWithPrefix(prefix string) (int, error)
	// DeleteStaleAttempts deletes at most limit counters that are neither
	// locked at now (now is after LockedUntil) nor counting (now is more
	// than window after WindowStart), and returns how many it deleted
	// (counting those the store had already dropped itself).
	DeleteStaleAttempts(now time.Time, window time.Duration, limit int) (int, error)
}

// User is what the store knows of a user. Users declared in the config
// have no password here; their record holds their enrollment only.
type User struct {
	Name string `json:"name"`
	// PasswordHash is set for users managed in the database rather than
	// in the config.
	PasswordHash string `json:"password_hash,omitempty"`
	// SessionID is the user's current session identifier. A signed-in
	// session carries the value it had when its second factor was
	// confirmed; changing it ends every session that carries another.
	SessionID string `json:"session_id,omitempty"`
	// TOTP is the active enrollment, nil until setup is complete.
	TOTP    *Enrollment `json:"totp,omitempty"`
	Created time.Time   `json:"created,omitzero"`
	// WebAuthnID is the user's WebAuthn user handle: random bytes given
	// at the first passkey registration and kept from then on, so every
	// authenticator knows the user by the same handle and none by name.
	// Nil until then.
	WebAuthnID []byte `json:"webauthn_id,omitempty"`
	// Passkeys are the user's WebAuthn credentials (passkeys and security
	// keys), in the order they were added.
	Passkeys []Passkey `json:"passkeys,omitempty"`
	// RecoveryDigests are the digests of the unused recovery codes of a
	// user who enrolled with a passkey and has no TOTP; an enrolled TOTP
	// keeps its codes in TOTP.RecoveryDigests.
	RecoveryDigests [][]byte `json:"recovery_digests,omitempty"`
	// RememberedDevices are the browsers the user asked not to be asked
	// a second factor on again, until each expires (see package policy).
	// They live in the user's record so that adding, using and forgetting
	// one is part of the same transaction as any change of the factors,
	// with no index to keep in step.
	RememberedDevices []RememberedDevice `json:"remembered_devices,omitempty"`
	// AppTokens are the user's tokens for clients that cannot give a
	// second factor (see package policy).
	AppTokens []AppToken `json:"app_tokens,omitempty"`
	// Email is the user's e-mail address, for security notices and
	// e-mailed fallback codes, in bare form (alice@example.com); empty if
	// none. A user the config declares has theirs in the config instead.
	Email string `json:"email,omitempty"`
	// KnownBrowsers are digests of the browsers the user has signed in
	// from (see signin's browserDigest), newest last, at most a few: a
	// sign-in from any other is a new browser.
	KnownBrowsers [][]byte `json:"known_browsers,omitempty"`
}

// RememberedDevice is a browser that signs in with the password alone. The
// browser holds a random token; only its digest is kept.
type RememberedDevice struct {
	// ID names the device on the account page and in a request to forget
	// it. It is not secret.
	ID string `json:"id"`
	// Digest is the SHA-256 of the token the browser holds.
	Digest []byte `json:"digest"`
	// Factors is the fingerprint of the user's second factors when the
	// device was remembered: a device counts only while it is unchanged
	// (a new authenticator, a passkey added or removed).
	Factors []byte    `json:"factors"`
	Created time.Time `json:"created,omitzero"`
	// LastUsed is the last sign-in that the device spared a second factor.
	LastUsed time.Time `json:"last_used,omitzero"`
	Expires  time.Time `json:"expires"`
	// Browser is a label for the user (from the User-Agent).
	Browser string `json:"browser,omitempty"`
}

// AppToken is a token that lets a client pass as its user on the paths
// that accept app tokens, without a session. Only its digest is kept.
type AppToken struct {
	// ID names the token; the token itself carries it, so a request's
	// token is found without trying every stored one.
	ID string `json:"id"`
	// Name is the user's name for it.
	Name string `json:"name,omitempty"`
	// Digest is the SHA-256 of the token's secret.
	Digest   []byte    `json:"digest"`
	Created  time.Time `json:"created,omitzero"`
	LastUsed time.Time `json:"last_used,omitzero"`
	// Expires is the end of the token; zero for a token that does not
	// expire.
	Expires time.Time `json:"expires,omitzero"`
}

// Enrolled reports whether u has a second factor: TOTP or a passkey.
func (u *User) Enrolled() bool {
	return u.TOTP != nil || len(u.Passkeys) > 0
}

// Passkey is a registered WebAuthn credential. Nothing in it is secret:
// the public key only checks signatures.
type Passkey struct {
	// ID is the credential ID the authenticator chose.
	ID []byte `json:"id"`
	// PublicKey is the credential's public key, a COSE_Key.
	PublicKey         []byte `json:"public_key"`
	AttestationType   string `json:"attestation_type,omitempty"`
	AttestationFormat string `json:"attestation_format,omitempty"`
	// AAGUID names the authenticator's model (all zero when not told).
	AAGUID []byte `json:"aaguid,omitempty"`
	// SignCount is the highest signature counter seen; a use that does
	// not raise it (unless both are 0) betrays a cloned authenticator.
	SignCount uint32 `json:"sign_count,omitempty"`
	// Flags are the authenticator data flags of the last ceremony, with
	// user verification latched as at registration (see the Flag
	// constants).
	Flags uint8 `json:"flags,omitempty"`
	// Transports are the transports the browser reported ("usb",
	// "internal", "hybrid", ...), passed back to it as hints.
	Transports []string `json:"transports,omitempty"`
	// Attachment is "platform", "cross-platform" or empty.
	Attachment string `json:"attachment,omitempty"`
	// Name is the user's name for it.
	Name     string    `json:"name,omitempty"`
	Created  time.Time `json:"created,omitzero"`
	LastUsed time.Time `json:"last_used,omitzero"`
}

// Authenticator data flags kept in Passkey.Flags (WebAuthn §6.1).
const (
	FlagUserPresent    uint8 = 1 << 0
	FlagUserVerified   uint8 = 1 << 2
	FlagBackupEligible uint8 = 1 << 3
	FlagBackedUp       uint8 = 1 << 4
)

// Enrollment is an activated TOTP authenticator.
type Enrollment struct {
	// Secret is sealed (see package seal).
	Secret []byte `json:"secret"`
	// LastStep is the last time step accepted, so no code is used twice.
	LastStep uint64 `json:"last_step"`
	// RecoveryDigests are the digests of unused recovery codes.
	RecoveryDigests [][]byte  `json:"recovery_digests"`
	EnrolledAt      time.Time `json:"enrolled_at"`
}

// Stage is how far a session has signed in.
type Stage uint8

const (
	// StagePending sessions have passed the password step only.
	StagePending Stage = 1
	// StageFull sessions have passed both steps.
	StageFull Stage = 2
)

// SessionCounts are the numbers of stored sessions at each stage.
type SessionCounts struct {
	Pending int `json:"pending"`
	Full    int `json:"full"`
}

// Total is the number of sessions of every stage.
func (c SessionCounts) Total() int { return c.Pending + c.Full }

// Add adds n sessions of stage st: full if st is StageFull, pending
// otherwise (as Live and HeldBy take them).
func (c *SessionCounts) Add(st Stage, n int) {
	if st == StageFull {
		c.Full += n
	} else {
		c.Pending += n
	}
}

// Session is a server-side session. Its key is a digest of the token the
// client holds, so the database alone does not let anyone in.
type Session struct {
	Key   SessionKey `json:"-"`
	User  string     `json:"u"`
	Stage Stage      `json:"st"`
	// UserSessionID is the user's SessionID when the second factor was
	// confirmed (full sessions only).
	UserSessionID string    `json:"sid,omitempty"`
	Created       time.Time `json:"c"`
	LastSeen      time.Time `json:"ls"`
	// Expires is the absolute end of the session; activity never moves it.
	Expires time.Time `json:"exp"`
	// ConfirmedAt is when a second factor was last given in this session
	// (at sign-in or on the confirm page since); step-up rules measure
	// their max age from it. A session signed in by a remembered browser
	// has none until a factor is given.
	ConfirmedAt time.Time `json:"ca,omitzero"`
	// Method is how the session signed in: "totp", "recovery", "setup" or
	// "webauthn" for a second factor given, "remembered" for a browser
	// that was spared one (see RememberedDevice).
	Method string `json:"m,omitempty"`
	// Next is where a pending session goes once signed in.
	Next string `json:"n,omitempty"`
	// PendingSecret is the sealed TOTP secret of an unfinished setup.
	PendingSecret []byte `json:"ps,omitempty"`
	ClientIP      string `json:"ip,omitempty"`
	UserAgent     string `json:"ua,omitempty"`
	// Credential identifies the password hash the session was opened with
	// (see CredentialOf). A session is valid only where its user still has
	// that hash: a site that shares the store but declares the user with
	// another password, or a changed password, does not honour it. The
	// zero Credential (a session of an older format) matches no hash.
	Credential Credential `json:"cr,omitzero"`
	// Ceremony is the WebAuthn ceremony the session has begun and not yet
	// finished, as package passkey encodes it (its kind, challenge and
	// expiry). It is single use: finishing takes it out, in the same
	// transaction that acts on the result.
	Ceremony []byte `json:"wc,omitempty"`
	// RecheckAt is the deadline drawn for a random re-check: from then on
	// the session must give a second factor again before it passes. Zero
	// when none was drawn.
	RecheckAt time.Time `json:"rc,omitzero"`
	// EmailCode is the digest of the fallback code e-mailed to the user of
	// a pending session (see notify.CodeDigest), nil if none; it works
	// until EmailCodeExpires and once only.
	EmailCode        []byte    `json:"ec,omitempty"`
	EmailCodeExpires time.Time `json:"ece,omitzero"`
}

// Live reports whether s is within its absolute end at now and, once
// signed in, within idle of its last use (idle <= 0: no idle limit). With
// HeldBy, and the config's own check of the credential, it is the one rule
// of whether a session still counts, wherever sessions are judged.
func (s *Session) Live(now time.Time, idle time.Duration) bool {
	if !now.Before(s.Expires) {
		return false
	}
	return s.Stage != StageFull || idle <= 0 || now.Sub(s.LastSeen) < idle
}

// HeldBy reports whether u still holds s: a pending session of u's, or a
// signed-in one confirmed with u's current session identifier while u is
// enrolled (with TOTP or a passkey). Rotating the identifier (a new
// sign-in, a reset, a revoke) ends every signed-in session confirmed with
// another.
func (s *Session) HeldBy(u *User) bool {
	if s.User != u.Name {
		return false
	}
	if s.Stage != StageFull {
		return true
	}
	return u.Enrolled() && u.SessionID != "" && s.UserSessionID == u.SessionID
}

// Credential names a password hash in the sessions opened with it.
type Credential [16]byte

// CredentialOf returns the credential of a password hash: the first half
// of its SHA-256. Hashes are salted, so two users or two sites with the
// same password still have different credentials, and the digest tells
// nothing of the password.
func CredentialOf(passwordHash string) Credential {
	sum := sha256.Sum256([]byte(passwordHash))
	return Credential(sum[:16])
}

// Attempts counts failed sign-in attempts for one account or client.
type Attempts struct {
	// Failures counts the wrong attempts in the current window.
	Failures int `json:"f"`
	// InFlight counts attempts being checked right now: they hold a place
	// in the budget, so parallel attempts cannot all pass the lock check.
	InFlight int `json:"i,omitempty"`
	// Unfinished counts right passwords in the window that did not lead to
	// a completed second factor (kept in an account's counter only).
	Unfinished  int       `json:"u,omitempty"`
	WindowStart time.Time `json:"w"`
	LockedUntil time.Time `json:"l,omitzero"`
	// ReservedAt is when the latest attempt now in flight was reserved.
	// Places held much longer than an attempt takes were lost (a crash or
	// a store failure between reserve and settle), and are free again.
	ReservedAt time.Time `json:"r,omitzero"`
}

// SessionKey identifies a session in the store: the SHA-256 of its token.
type SessionKey [sha256.Size]byte

// TokenBytes is the entropy of a session token: 256 bits.
const TokenBytes = 32

// TokenLength is the length of an encoded session token.
var TokenLength = base64.RawURLEncoding.EncodedLen(TokenBytes)

// NewSessionToken returns a fresh random token for a client's cookie and
// the key under which its session is stored.
func NewSessionToken() (token string, key SessionKey, err error) {
	raw := make([]byte, TokenBytes)
	if _, err := rand.Read(raw); err != nil {
		return "", key, fmt.Errorf("generating session token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(raw), sha256.Sum256(raw), nil
}

// ParseSessionToken returns the key of a token, or false if token is not
// one this package could have made.
func ParseSessionToken(token string) (SessionKey, bool) {
	var raw [TokenBytes]byte
	if len(token) != TokenLength {
		return SessionKey{}, false
	}
	n, err := base64.RawURLEncoding.Strict().Decode(raw[:], []byte(token))
	if err != nil || n != TokenBytes {
		return SessionKey{}, false
	}
	return sha256.Sum256(raw[:]), true
}

// NewID returns a random identifier (128 bits, base64url), used for users'
// session identifiers.
func NewID() (string, error) {
	raw := make([]byte, 16)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("generating identifier: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(raw), nil
}

// As finds a capability T (an optional interface such as Claimer) on st
// or on a store it wraps: a wrapper that adds behaviour around a backend
// (timing, a cache) has Unwrap() Store, and the capability of the backend
// stays reachable through it, as errors.As reaches a wrapped error.
func As[T any](st Store) (T, bool) {
	for st != nil {
		if t, ok := st.(T); ok {
			return t, true
		}
		w, ok := st.(interface{ Unwrap() Store })
		if !ok {
			break
		}
		st = w.Unwrap()
	}
	var zero T
	return zero, false
}
