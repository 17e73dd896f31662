package signin

import "time"

// The kinds of Event.
const (
	// A right password: a pending session is open. Reason is
	// "unfinished_sign_ins" when the account has had more of these
	// without a second factor than throttle.UnfinishedAllowance.
	EventPasswordAccepted = "password_accepted"
	// An earlier login vouched for the user (user_from): a pending
	// session is open, for the second factor.
	EventVouched = "vouched"
	// A wrong password, or an unknown name (Known false).
	EventBadPassword = "bad_password"
	// A wrong second factor (Method totp, recovery or webauthn; for
	// webauthn, Reason says why: verification, unknown_credential,
	// cloned or malformed).
	EventBadCode = "bad_code"
	// A TOTP code of a step already used.
	EventReplayedCode = "replayed_code"
	// An attempt refused by a lock; Scope says whose, Until until when.
	// Reason ReasonFailures: a failure has just locked the account.
	EventLocked = "locked"
	// Both factors given (Method totp or recovery).
	EventSignedIn = "signed_in"
	// The first authenticator is active: the user is signed in.
	EventSetupComplete = "setup_complete"
	// A recovery code was used up; Remaining are left.
	EventRecoveryUsed = "recovery_used"
	// New recovery codes replaced the old ones.
	EventRecoveryReplaced = "recovery_replaced"
	// A new authenticator replaced the old one; Sessions ended.
	EventAuthenticatorReplaced = "authenticator_replaced"
	// A signed-in session gave its second factor again on the confirm
	// page (for a step-up rule or a re-check); its token was rotated.
	// Method is the factor.
	EventReconfirmed = "reconfirmed"
	// A request carried an app token that lets no one in (malformed,
	// unknown, expired, revoked, or given with another user's name).
	EventBadAppToken = "bad_app_token"
	// The user created or revoked an app token (Reason: its name).
	EventAppTokenCreated = "app_token_created"
	EventAppTokenRevoked = "app_token_revoked"
	// The user asked not to be asked for a second factor on this browser
	// again (remember_device); Reason is the browser ("Firefox on Linux").
	EventBrowserRemembered = "browser_remembered"
	// The user forgot Sessions of their remembered browsers; Reason is the
	// browser when one was forgotten.
	EventBrowsersForgotten = "browsers_forgotten"
	// The user signed out.
	EventSignedOut = "signed_out"
	// A passkey was added, renamed or removed (Reason: its name).
	EventPasskeyAdded   = "passkey_added"
	EventPasskeyRenamed = "passkey_renamed"
	EventPasskeyRemoved = "passkey_removed"
	// The user ended Sessions of their own; Scope is ScopeOne or
	// ScopeOthers.
	EventSessionsEnded = "sessions_ended"
	// Operator actions; Sessions is how many sessions they ended.
	EventUserAdded       = "user_added"
	EventPasswordChanged = "password_changed"
	EventReset           = "reset"
	EventRevoked         = "revoked"
	EventUnlocked        = "unlocked"
	EventRemoved         = "removed"
	EventEmailChanged    = "email_changed"
	// An e-mailed code was made and queued for the user (Step
	// StepEmailCode); a refused request is EventLocked with that step.
	EventEmailCodeSent = "email_code_sent"
	// Something went wrong that does not change the outcome (a count not
	// written): Reason says what, Err why. For the operator's log.
	EventError = "error"
)

// The steps of sign-in an Event can come from.
const (
	StepLogin         = "login"
	StepSetup         = "setup"
	StepConfirm       = "confirm"
	StepReenroll      = "reenroll"
	StepRecoveryCodes = "recovery_codes"
	StepReconfirm     = "reconfirm"
	StepAppToken      = "app_token"
	StepPasskeyLogin  = "passkey_login"
	StepAddPasskey    = "add_passkey"
	StepEmailCode     = "email_code"
)

// The scopes of EventSessionsEnded.
const (
	ScopeOne    = "one"
	ScopeOthers = "others"
)

// Event is one security-relevant outcome. It never holds a password, a
// code, a secret or a token.
type Event struct {
	Kind string
	// Step is where in sign-in it happened (a Step constant), if anywhere.
	Step string
	// User is the name the attempt or action was about; for a name that
	// is no user (Known false), observers should not record it: it may be
	// a password typed in the wrong field.
	User   string
	Known  bool
	Reason string
	// Method is the second factor: totp, recovery or email.
	Method string
	Client Client
	// Remaining counts recovery codes left (EventRecoveryUsed).
	Remaining int
	// Sessions counts sessions ended.
	Sessions int
	// Scope says what a lock or an ending covered.
	Scope string
	// Until is when a lock ends.
	Until time.Time
	// Err is set on EventError.
	Err error
	// NewBrowser is set on EventSignedIn when the user signed in from a
	// browser none of their last sign-ins came from (see browserDigest).
	NewBrowser bool
}

// observers are called with every event, in the order they were added,
// synchronously, once the outcome is committed; they must not block.
type observers []func(Event)

func (o observers) emit(e Event) {
	for _, fn := range o {
		fn(e)
	}
}

// Observe adds fn to the observers of the service's events. Add them
// before the service is used.
func (s *Service) Observe(fn func(Event)) { s.observers = append(s.observers, fn) }

// failed reports a failure that does not change the outcome.
func (s *Service) failed(what string, err error) {
	if err != nil {
		s.observers.emit(Event{Kind: EventError, Reason: what, Err: err})
	}
}
