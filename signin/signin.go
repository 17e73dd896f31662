// Package signin is the two-factor sign-in itself, with no HTTP in it:
// a password, then a TOTP code or a passkey (enrolled at the first
// sign-in, with recovery codes), or a passkey alone (see passkeys.go),
// server-side sessions, attempt budgets, the account actions that ask for
// a fresh second factor, and the operator's actions on users. A Service decides and writes to the store; the caller parses
// requests, keeps cookies and CSRF, and answers. It imports nothing of
// Caddy or net/http: it reads the password hashes of `caddy
// hash-password` itself.
//
// Every refusal is a typed error (see errors.go), so a caller maps them
// to its answers in one place, and every security-relevant outcome is
// reported as an Event to the observers (see Service.Observe): an audit
// log, metrics or notices are each one more observer.
//
// A store that cannot answer is never taken for an answer: its error,
// which wraps store.ErrUnavailable, comes back as it is, never as a wrong
// password, an unknown user or an ended session.
package signin

import (
	"strings"
	"time"

	"github.com/caddy-two-factor/caddy-two-factor/passkey"
	"github.com/caddy-two-factor/caddy-two-factor/policy"
	"github.com/caddy-two-factor/caddy-two-factor/seal"
	"github.com/caddy-two-factor/caddy-two-factor/store"
	"github.com/caddy-two-factor/caddy-two-factor/throttle"
)

// DefaultMaxPending bounds a user's password-only sessions: someone who
// knows the password cannot fill the store (or the user's account page)
// with them. A new one ends the oldest.
const DefaultMaxPending = 5

// Policy is what one config decides about sign-in.
type Policy struct {
	// SessionIdle ends a session unused for this long.
	SessionIdle time.Duration
	// SessionLifetime ends a signed-in session this long after the
	// second factor, however active.
	SessionLifetime time.Duration
	// PendingLifetime is the time to give the second factor after the
	// password.
	PendingLifetime time.Duration
	// MaxPending bounds a user's password-only sessions. Default:
	// DefaultMaxPending.
	MaxPending int
	// ConcurrentSessions keeps a user's other sessions at a new sign-in;
	// otherwise they end.
	ConcurrentSessions bool
	// RecoveryCodes is how many recovery codes an enrollment gets.
	RecoveryCodes int
	// Limits are the attempt budgets.
	Limits throttle.Limits
	// Accounts are the users this config declares, with their password
	// hashes; users it does not declare are looked up in the store. The
	// map is read, never written, by the service.
	Accounts map[string]Account
	// Fake is checked for names that are no user, so that a sign-in costs
	// the same whoever it names (see FakeAccount).
	Fake Account
	// Gate is what the gate asks of signed-in sessions beyond being live
	// (step-up, re-checks): every second factor given is recorded by it
	// (policy.Policy.Confirm). The zero Gate asks nothing more.
	Gate policy.Policy
	// Vouched takes users from an earlier login (user_from): sign-ins
	// begin with BeginVouched, never with a password, and Accounts, when
	// not empty, lists the users who may pass (their hashes unused).
	Vouched bool
	// Remember spares a remembered browser the second factor, after the
	// right password, for its lifetime. The zero Remember is off.
	Remember policy.Remember
	// NoTOTPEnrollment and NoPasskeyEnrollment keep users from enrolling
	// that factor (the config's factors); a factor a user has keeps
	// working.
	NoTOTPEnrollment, NoPasskeyEnrollment bool
	// EmailCodes lets a user with an e-mail address ask for a fallback
	// code by e-mail at the confirm step (see SendEmailCode); it needs
	// Deps.Mailer.
	EmailCodes bool
	// EmailCodesStepUp lets a signed-in session that a step-up rule or a
	// re-check asks for its second factor again ask for an e-mailed code
	// and give it to Reconfirm (email_codes step_up). It needs
	// EmailCodes. Other actions behind a fresh factor (a new
	// authenticator, new recovery codes, an app token) never take one.
	EmailCodesStepUp bool
}

// Deps are what a Service works with.
type Deps struct {
	// Store holds users, sessions and attempt counters.
	Store store.Store
	// Attempts counts attempts against Policy.Limits.
	Attempts *throttle.Tracker
	// Hashing bounds concurrent password hashing.
	Hashing *throttle.HashLimiter
	// Sealer encrypts TOTP secrets at rest.
	Sealer *seal.Sealer
	// Passkeys runs WebAuthn ceremonies; nil when the config has none,
	// and then no passkey works (recovery codes still do).
	Passkeys *passkey.Service
	// Now is the clock. Default: time.Now.
	Now func() time.Time
	// Mailer queues an e-mailed code (see SendEmailCode); it must not
	// block. Nil: no codes are sent.
	Mailer func(CodeMail)
	// CodeKey keys the digests of e-mailed codes (notify.CodeDigest).
	CodeKey []byte
}

// Service carries out sign-ins under one Policy.
type Service struct {
	policy Policy
	deps   Deps
	observers
}

// New returns a service for policy on deps.
func New(policy Policy, deps Deps) *Service {
	if policy.MaxPending <= 0 {
		policy.MaxPending = DefaultMaxPending
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	return &Service{policy: policy, deps: deps}
}

// Policy returns the service's policy.
func (s *Service) Policy() Policy { return s.policy }

// SetHashing replaces the bound on password hashing (tests use their own).
func (s *Service) SetHashing(l *throttle.HashLimiter) { s.deps.Hashing = l }

// Client is who asks: the client's address, which the attempt budgets
// count by network, and its User-Agent, kept in the sessions it opens.
type Client struct {
	IP        string
	UserAgent string
	// Language is the client's Accept-Language, as sent: the notices an
	// event causes are written in the language it asks for (as the pages
	// are). Never stored.
	Language string
}

// maxUserAgent bounds what is stored of a client's User-Agent.
const maxUserAgent = 200

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// newSession stores sess, opened by c, under a new key and returns its
// token.
func newSession(tx store.Tx, c Client, sess store.Session) (string, error) {
	token, key, err := store.NewSessionToken()
	if err != nil {
		return "", err
	}
	sess.Key = key
	sess.ClientIP = c.IP
	sess.UserAgent = truncate(c.UserAgent, maxUserAgent)
	return token, tx.PutSession(&sess)
}

// Device describes a User-Agent for people: "Firefox on Linux".
func Device(ua string) string {
	pick := func(names [][2]string) string {
		for _, n := range names {
			if strings.Contains(ua, n[0]) {
				return n[1]
			}
		}
		return ""
	}
	browser := pick([][2]string{{"Edg/", "Edge"}, {"OPR/", "Opera"}, {"Firefox/", "Firefox"}, {"Chrome/", "Chrome"}, {"Safari/", "Safari"}})
	system := pick([][2]string{{"Android", "Android"}, {"iPhone", "iPhone"}, {"iPad", "iPad"}, {"Windows", "Windows"}, {"Mac OS X", "macOS"}, {"CrOS", "ChromeOS"}, {"Linux", "Linux"}})
	switch {
	case browser != "" && system != "":
		return browser + " on " + system
	case browser != "" || system != "":
		return browser + system
	case ua != "":
		return truncate(ua, 40)
	}
	return "Unknown device"
}
