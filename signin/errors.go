package signin

import (
	"errors"
	"time"

	"github.com/caddy-two-factor/caddy-two-factor/store"
)

// The refusals of the service. Every other error it returns is one of the
// store (wrapping store.ErrUnavailable when it could not answer) or of the
// system, which the caller answers as a failure, never as a refusal.
var (
	// ErrBadCredentials is a wrong password or an unknown user name: one
	// error for both, so no answer tells them apart.
	ErrBadCredentials = errors.New("wrong user name or password")
	// ErrBadCode is a second factor that did not match.
	ErrBadCode = errors.New("wrong code")
	// ErrReplayedCode is a TOTP code of a step already used; callers
	// should answer it as ErrBadCode (they are told apart in events only).
	ErrReplayedCode = errors.New("code already used")
	// ErrMalformedCode is input that is no TOTP code, where only one will do.
	ErrMalformedCode = errors.New("not a TOTP code")
	// ErrMalformedFactor is input that is neither a TOTP code nor a
	// recovery code.
	ErrMalformedFactor = errors.New("not a TOTP code or a recovery code")
	// ErrBusy is a sign-in that found no password hashing slot (see
	// throttle.HashRetryAfter).
	ErrBusy = errors.New("password hashing busy")
	// ErrNoPending is a step of sign-in without a live password-only session.
	ErrNoPending = errors.New("no pending sign-in")
	// ErrBadAppToken is an app token that lets no one in.
	ErrBadAppToken = errors.New("app token refused")
	// ErrNotVouchable is a vouched sign-in (BeginVouched) the policy does
	// not take: not a policy of vouched sign-ins, no user named, or a user
	// it does not declare.
	ErrNotVouchable = errors.New("user may not sign in after another login")
	// ErrNotSignedIn is an account action without a live signed-in session.
	ErrNotSignedIn = errors.New("not signed in")
	// ErrSessionEnded is a session that ended while the action ran (a
	// sign-out or revocation in between). It is an ErrNotSignedIn and an
	// ErrNoPending.
	ErrSessionEnded = &sessionEnded{}
	// ErrAlreadyEnrolled is a setup for a user who has an authenticator.
	ErrAlreadyEnrolled = errors.New("already enrolled")
	// ErrNotEnrolled is a second factor asked of a user who has none yet.
	ErrNotEnrolled = errors.New("not enrolled")
	// ErrNoSecret is the activation of an authenticator never shown, or
	// one that another visit of the page has replaced meanwhile.
	ErrNoSecret = errors.New("no authenticator being set up")
	// ErrUnknownUser is an operator action on a name that is no user.
	// Sign-in never returns it (see ErrBadCredentials).
	ErrUnknownUser = errors.New("unknown user")
	// ErrConflict is an operator action the user's state refuses (see
	// ConflictError).
	ErrConflict = errors.New("conflict")
	// ErrBadPasskey is a passkey answer that was refused: a signature,
	// origin, challenge or user verification that does not check, a
	// credential that is not the user's, a cloned authenticator, or an
	// answer that does not parse. It counts as a wrong code.
	ErrBadPasskey = errors.New("passkey refused")
	// ErrPasskeyExpired is a passkey answer without a ceremony to answer:
	// none begun, already answered, or begun too long ago.
	ErrPasskeyExpired = errors.New("no passkey request pending")
	// ErrPasskeysOff is a passkey action the config does not offer.
	ErrPasskeysOff = errors.New("passkeys are not enabled")
	// ErrAppsOff is the enrollment of an authenticator app where the
	// config's factors leave it out.
	ErrAppsOff = errors.New("authenticator apps are not enabled")
	// ErrPasskeyRegistered is a passkey the user has already.
	ErrPasskeyRegistered = errors.New("passkey already registered")
	// ErrBadPasskeyName is a name that is empty, too long or has control
	// characters.
	ErrBadPasskeyName = errors.New("bad passkey name")
	// ErrUnknownPasskey names no passkey of the user.
	ErrUnknownPasskey = errors.New("unknown passkey")
	// ErrLastFactor is the removal of a user's last second factor.
	ErrLastFactor = errors.New("the last second factor cannot be removed")
	// ErrUnavailable is store.ErrUnavailable, for callers that import
	// only this package: errors.Is(err, ErrUnavailable) tells an outage.
	ErrUnavailable = store.ErrUnavailable
)

type sessionEnded struct{}

func (*sessionEnded) Error() string { return "session ended" }

func (*sessionEnded) Is(target error) bool {
	return target == ErrNotSignedIn || target == ErrNoPending
}

// LockedError refuses an attempt while a budget is locked or used up.
type LockedError struct {
	// Until is when to try again.
	Until time.Time
	// Scope is what is locked: ScopeAccount (the account, from this
	// client's network or everywhere) or ScopeClient (the client's
	// network, over every account).
	Scope string
}

// The scopes of a lock.
const (
	ScopeAccount = "account"
	ScopeClient  = "client"
)

func (e *LockedError) Error() string {
	return "too many attempts, locked until " + e.Until.UTC().Format(time.RFC3339)
}

// ConflictError is an ErrConflict, and says why.
type ConflictError struct {
	// Reason is one of the Conflict constants.
	Reason string
	User   string
}

// The reasons of a ConflictError.
const (
	// ConflictExists: add a user that exists.
	ConflictExists = "exists"
	// ConflictDeclared: change a user the config declares.
	ConflictDeclared = "declared_in_config"
)

func (e *ConflictError) Error() string { return "user " + e.User + ": " + e.Reason }

func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// asEnded turns a missing record into ErrSessionEnded; any other error (a
// store that could not answer) stays what it is.
func asEnded(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return ErrSessionEnded
	}
	return err
}
