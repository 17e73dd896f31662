package twofactor

import (
	"go.uber.org/zap"

	"github.com/caddy-two-factor/caddy-two-factor/signin"
)

// logEvent is the "event" field of a log line of the module: what
// security teams search for and alert on. Every name the module can write
// is a constant below, and docs/audit-log.md has a row for each, with its
// fields; auditevents_test.go keeps the two in step. Names are stable: a
// new line gets a new name, an old name is never reused for another
// meaning.
type logEvent string

// Sign-in lines, message "two-factor", from the sign-in pages (audit.go).
const (
	eventLoginFailed             logEvent = "login_failed"
	eventLoginLocked             logEvent = "login_locked"
	eventPasswordAccepted        logEvent = "password_accepted"
	eventSetupFailed             logEvent = "setup_failed"
	eventSetupLocked             logEvent = "setup_locked"
	eventEnrolled                logEvent = "enrolled"
	eventConfirmFailed           logEvent = "confirm_failed"
	eventConfirmLocked           logEvent = "confirm_locked"
	eventSignedIn                logEvent = "signed_in"
	eventReenrollFailed          logEvent = "reenroll_failed"
	eventReenrollLocked          logEvent = "reenroll_locked"
	eventAuthenticatorReplaced   logEvent = "authenticator_replaced"
	eventRecoveryCodesFailed     logEvent = "recovery_codes_failed"
	eventRecoveryCodesLocked     logEvent = "recovery_codes_locked"
	eventRecoveryCodesReplaced   logEvent = "recovery_codes_replaced"
	eventSessionEnded            logEvent = "session_ended"
	eventOtherSessionsEnded      logEvent = "other_sessions_ended"
	eventLogout                  logEvent = "logout"
	eventAccountLocked           logEvent = "account_locked"
	eventEmailCodeSent           logEvent = "email_code_sent"
	eventReconfirmFailed         logEvent = "reconfirm_failed"
	eventReconfirmLocked         logEvent = "reconfirm_locked"
	eventReconfirmed             logEvent = "reconfirmed"
	eventVouched                 logEvent = "vouched"
	eventVouchedRefused          logEvent = "vouched_refused"
	eventAppTokenFailed          logEvent = "app_token_failed"
	eventAppTokenLocked          logEvent = "app_token_locked"
	eventAppTokenCreated         logEvent = "app_token_created"
	eventAppTokenRevoked         logEvent = "app_token_revoked"
	eventBrowserRemembered       logEvent = "browser_remembered"
	eventBrowsersForgotten       logEvent = "browsers_forgotten"
	eventEmailCodeFailed         logEvent = "email_code_failed"
	eventEmailCodeLocked         logEvent = "email_code_locked"
	eventPasskeyLoginFailed      logEvent = "passkey_login_failed"
	eventPasskeyLoginLocked      logEvent = "passkey_login_locked"
	eventAddPasskeyFailed        logEvent = "add_passkey_failed"
	eventAddPasskeyLocked        logEvent = "add_passkey_locked"
	eventPasskeyAdded            logEvent = "passkey_added"
	eventPasskeyRenamed          logEvent = "passkey_renamed"
	eventPasskeyRemoved          logEvent = "passkey_removed"
	eventCSRFRejected            logEvent = "csrf_rejected"
	eventSignInStepFailed        logEvent = "sign_in_step_failed"
	eventSignInStepLocked        logEvent = "sign_in_step_locked"
	eventSignInBookkeepingFailed logEvent = "sign_in_bookkeeping_failed"
)

// Operator lines, message "two-factor admin action" (or "... refused"),
// from the admin API and the command line (manage.go, migrate.go).
const (
	eventAdminUsers         logEvent = "admin_users"
	eventAdminAddUser       logEvent = "admin_add_user"
	eventAdminPasswd        logEvent = "admin_passwd"
	eventAdminRemoveUser    logEvent = "admin_remove_user"
	eventAdminReset         logEvent = "admin_reset"
	eventAdminRevoke        logEvent = "admin_revoke"
	eventAdminUnlock        logEvent = "admin_unlock"
	eventAdminRemovePasskey logEvent = "admin_remove_passkey"
	eventAdminSetEmail      logEvent = "admin_set_email"
	eventAdminReseal        logEvent = "admin_reseal"
	eventAdminMigrate       logEvent = "admin_migrate"
)

// Operations lines: the store and the module's background work.
const (
	eventStoreUnavailable          logEvent = "store_unavailable"
	eventSessionActivityNotWritten logEvent = "session_activity_not_written"
	eventSweepFailed               logEvent = "sweep_failed"
	eventSessionsSwept             logEvent = "sessions_swept"
	eventInvalidationLost          logEvent = "invalidation_lost"
	eventInvalidationRestored      logEvent = "invalidation_restored"
	eventPageRenderFailed          logEvent = "page_render_failed"
	eventSetupWithoutQR            logEvent = "setup_without_qr"
)

// stepEvents name the lines of a wrong password or code, and of an
// attempt refused by a lock, at each step of signin. A step missing here
// is logged as sign_in_step_failed or sign_in_step_locked with its step.
var stepEvents = map[string]struct{ failed, locked logEvent }{
	signin.StepLogin:         {eventLoginFailed, eventLoginLocked},
	signin.StepSetup:         {eventSetupFailed, eventSetupLocked},
	signin.StepConfirm:       {eventConfirmFailed, eventConfirmLocked},
	signin.StepReenroll:      {eventReenrollFailed, eventReenrollLocked},
	signin.StepRecoveryCodes: {eventRecoveryCodesFailed, eventRecoveryCodesLocked},
	signin.StepReconfirm:     {eventReconfirmFailed, eventReconfirmLocked},
	signin.StepAppToken:      {eventAppTokenFailed, eventAppTokenLocked},
	signin.StepPasskeyLogin:  {eventPasskeyLoginFailed, eventPasskeyLoginLocked},
	signin.StepAddPasskey:    {eventAddPasskeyFailed, eventAddPasskeyLocked},
	signin.StepEmailCode:     {eventEmailCodeFailed, eventEmailCodeLocked},
}

// adminEvents name the line of each operator action (actionHashClass has
// none: it reads nothing of the users).
var adminEvents = map[string]logEvent{
	actionUsers:         eventAdminUsers,
	actionAddUser:       eventAdminAddUser,
	actionPasswd:        eventAdminPasswd,
	actionRemoveUser:    eventAdminRemoveUser,
	actionReset:         eventAdminReset,
	actionRevoke:        eventAdminRevoke,
	actionUnlock:        eventAdminUnlock,
	actionRemovePasskey: eventAdminRemovePasskey,
	actionSetEmail:      eventAdminSetEmail,
	actionReseal:        eventAdminReseal,
}

// eventField is the "event" field of a line; lines get it only from here.
func eventField(e logEvent) zap.Field { return zap.String("event", string(e)) }
