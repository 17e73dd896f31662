// Package notify tells users, and the operator's webhooks, what happened to
// their accounts: a sign-in from a new browser, a recovery code used, an
// authenticator added, an operator reset. It also carries the e-mailed
// fallback sign-in code.
//
// A Notice is what happened; a Sender delivers notices over one transport
// (SMTP e-mail or a JSON webhook); a Dispatcher queues notices per transport
// and sends them in the background with retries, so a slow or broken
// transport never slows the request that caused the notice. The package knows
// nothing of Caddy: the sign-in service builds notices and hands them to
// Dispatcher.Enqueue.
//
// Secrets stay out: a notice carries no password, token or key, and the
// e-mailed fallback code travels only in the e-mail to the user (never in a
// webhook, never in a log line).
package notify

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Event is the kind of a notice. Its string is the name used in
// notify_events and in the webhook's "event" field.
type Event string

// The events. Each is on by default; notify_events narrows them.
const (
	// SignInNewBrowser: a sign-in completed from a browser the user has
	// not used before.
	SignInNewBrowser Event = "sign_in_new_browser"
	// RecoveryCodeUsed: a recovery code completed a sign-in
	// (RecoveryCodesLeft says how many are left).
	RecoveryCodeUsed Event = "recovery_code_used"
	// RecoveryCodesLow: only a few recovery codes are left.
	RecoveryCodesLow Event = "recovery_codes_low"

	AuthenticatorAdded       Event = "authenticator_added"
	AuthenticatorRemoved     Event = "authenticator_removed"
	PasskeyAdded             Event = "passkey_added"
	PasskeyRemoved           Event = "passkey_removed"
	AppTokenAdded            Event = "app_token_added"
	AppTokenRemoved          Event = "app_token_removed"
	RememberedBrowserAdded   Event = "remembered_browser_added"
	RememberedBrowserRemoved Event = "remembered_browser_removed"

	// AccountLocked: failed attempts locked the account.
	AccountLocked Event = "account_locked"

	// OperatorReset, OperatorRevoke, OperatorPasswordChange: the operator
	// reset the user's second factor, revoked their sessions, or changed
	// their password.
	OperatorReset          Event = "operator_reset"
	OperatorRevoke         Event = "operator_revoke"
	OperatorPasswordChange Event = "operator_password_change"

	// EmailCode is the e-mailed fallback sign-in code. The e-mail carries
	// the code; webhooks learn only that a code was sent. It cannot be
	// turned off with notify_events (it is sent only when e-mailed codes
	// are enabled and a user asks for one).
	EmailCode Event = "email_code"
)

// AllEvents lists every event, in the order the docs list them.
var AllEvents = []Event{
	SignInNewBrowser,
	RecoveryCodeUsed, RecoveryCodesLow,
	AuthenticatorAdded, AuthenticatorRemoved,
	PasskeyAdded, PasskeyRemoved,
	AppTokenAdded, AppTokenRemoved,
	RememberedBrowserAdded, RememberedBrowserRemoved,
	AccountLocked,
	OperatorReset, OperatorRevoke, OperatorPasswordChange,
	EmailCode,
}

// Valid reports whether e is a known event.
func (e Event) Valid() bool { return slices.Contains(AllEvents, e) }

// Notice is one thing that happened to one account. Fields tagged
// json:"-" never leave the process except in the user's e-mail.
type Notice struct {
	// ID names the notice across instances: with a shared store, the
	// dispatcher claims ID per transport so only one instance sends it.
	// Enqueue fills in a random ID when it is empty.
	ID    string    `json:"id"`
	Event Event     `json:"event"`
	User  string    `json:"user"`
	Time  time.Time `json:"time"`
	// ClientIP and Browser describe the client that caused the event
	// (for operator events: the operator's client, if any).
	ClientIP string `json:"client_ip,omitempty"`
	Browser  string `json:"browser,omitempty"`
	// RecoveryCodesLeft is set for recovery_code_used and
	// recovery_codes_low; a pointer so that 0 left is still sent.
	RecoveryCodesLeft *int `json:"recovery_codes_left,omitempty"`
	// Item names the authenticator, passkey, app token or browser that was
	// added or removed, as the user labelled it.
	Item string `json:"item,omitempty"`
	// AccountURL is the account page, where a user can see and revoke
	// what is theirs.
	AccountURL string `json:"account_url,omitempty"`

	// Language is the language tag to write the notice in (see
	// MessagesFor); empty means English. Operators' own texts
	// (NewMessages) are used whatever it says.
	Language string `json:"language,omitempty"`
	// To is the user's e-mail address; empty means no e-mail is sent.
	To string `json:"-"`
	// Code is the fallback sign-in code of an email_code notice.
	Code string `json:"-"`
	// Expires, if set, is when the notice is no longer worth sending
	// (an e-mailed code past its lifetime). Retries stop there.
	Expires time.Time `json:"-"`
}

// NewID returns a random notice ID.
func NewID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand.Read does not fail
	return hex.EncodeToString(b)
}

// Events is a set of events to send; the zero value (nil) means all.
type Events map[Event]bool

// ParseEvents reads notify_events names. No names, or "all", means every
// event. email_code is always included.
func ParseEvents(names []string) (Events, error) {
	if len(names) == 0 {
		return nil, nil
	}
	set := Events{EmailCode: true}
	for _, name := range names {
		if name == "all" {
			return nil, nil
		}
		e := Event(strings.TrimSpace(name))
		if !e.Valid() {
			return nil, fmt.Errorf("unknown notify event %q (known: %s)", name, eventNames())
		}
		set[e] = true
	}
	return set, nil
}

// Has reports whether e is in the set.
func (s Events) Has(e Event) bool { return s == nil || e == EmailCode || s[e] }

func eventNames() string {
	names := make([]string, len(AllEvents))
	for i, e := range AllEvents {
		names[i] = string(e)
	}
	return strings.Join(names, ", ")
}

// errPermanent marks an error that retrying cannot fix.
var errPermanent = errors.New("permanent")

type permanentError struct{ err error }

func (e permanentError) Error() string        { return e.err.Error() }
func (e permanentError) Unwrap() error        { return e.err }
func (e permanentError) Is(target error) bool { return target == errPermanent }

// Permanent marks err as one that retrying will not fix: the dispatcher
// gives up on the notice for that transport at once.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

// IsPermanent reports whether err, or an error it wraps, was marked
// Permanent.
func IsPermanent(err error) bool { return errors.Is(err, errPermanent) }
