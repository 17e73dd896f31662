package twofactor

import (
	"go.uber.org/zap"

	"github.com/caddy-two-factor/caddy-two-factor/signin"
)

// auditEvent is the observer that writes the sign-in service's events as
// the "two-factor" audit log lines. The names of the lines and their
// fields are the ones operators already search for; they are not the
// service's names.
func (h *TwoFactor) auditEvent(e signin.Event) {
	ip := e.Client.IP
	user := knownName(e.User, e.Known)
	switch e.Kind {
	case signin.EventLocked:
		if e.Reason == signin.ReasonFailures {
			h.audit(ip, eventAccountLocked, user, e.Reason)
			break
		}
		event, fields := stepEvent(e.Step, true)
		if e.Scope == signin.ScopeClient {
			h.audit(ip, event, "", "client_locked", fields...)
		} else {
			h.audit(ip, event, user, "locked", fields...)
		}
	case signin.EventBadPassword:
		h.audit(ip, eventLoginFailed, user, "bad_password")
	case signin.EventBadCode, signin.EventReplayedCode:
		reason := e.Kind
		if e.Method == signin.MethodWebAuthn {
			reason = "passkey_" + e.Reason // passkey_cloned, passkey_verification, ...
		}
		event, fields := stepEvent(e.Step, false)
		h.audit(ip, event, user, reason, append(fields, zap.String("method", e.Method))...)
	case signin.EventPasskeyAdded:
		h.audit(ip, eventPasskeyAdded, user, "")
	case signin.EventPasskeyRenamed:
		h.audit(ip, eventPasskeyRenamed, user, "")
	case signin.EventPasskeyRemoved:
		h.audit(ip, eventPasskeyRemoved, user, "", zap.Int("sessions_ended", e.Sessions))
	case signin.EventBadAppToken:
		h.audit(ip, eventAppTokenFailed, "", "bad_app_token")
	case signin.EventAppTokenCreated:
		h.audit(ip, eventAppTokenCreated, user, "")
	case signin.EventAppTokenRevoked:
		h.audit(ip, eventAppTokenRevoked, user, "")
	case signin.EventVouched:
		h.audit(ip, eventVouched, user, "")
	case signin.EventReconfirmed:
		h.audit(ip, eventReconfirmed, user, "", zap.String("method", e.Method))
	case signin.EventBrowserRemembered:
		h.audit(ip, eventBrowserRemembered, user, "")
	case signin.EventBrowsersForgotten:
		h.audit(ip, eventBrowsersForgotten, user, "", zap.Int("browsers", e.Sessions))
	case signin.EventPasswordAccepted:
		h.audit(ip, eventPasswordAccepted, user, e.Reason)
	case signin.EventSetupComplete:
		h.audit(ip, eventEnrolled, user, "", zap.String("method", e.Method))
	case signin.EventSignedIn:
		h.audit(ip, eventSignedIn, user, "", zap.String("method", e.Method), zap.String("step", e.Step))
	case signin.EventRecoveryReplaced:
		h.audit(ip, eventRecoveryCodesReplaced, user, "")
	case signin.EventAuthenticatorReplaced:
		h.audit(ip, eventAuthenticatorReplaced, user, "", zap.Int("sessions_ended", e.Sessions))
	case signin.EventSessionsEnded:
		event := eventOtherSessionsEnded
		if e.Scope == signin.ScopeOne {
			event = eventSessionEnded
		}
		h.audit(ip, event, user, "", zap.Int("sessions_ended", e.Sessions))
	case signin.EventSignedOut:
		h.audit(ip, eventLogout, user, "")
	case signin.EventEmailCodeSent:
		h.audit(ip, eventEmailCodeSent, user, "")
	case signin.EventError:
		h.logger.Error(e.Reason, eventField(eventSignInBookkeepingFailed), zap.Error(e.Err))
	}
	// The rest (recovery_used) has no audit line of its own: the sign-in
	// it belongs to has one. Operator actions are written by auditAdmin.
}

// stepEvent names the line of a failure (or, if locked, a lock) at step,
// with the step as a field when it has no name of its own.
func stepEvent(step string, locked bool) (logEvent, []zap.Field) {
	if names, ok := stepEvents[step]; ok {
		if locked {
			return names.locked, nil
		}
		return names.failed, nil
	}
	fields := []zap.Field{zap.String("step", step)}
	if locked {
		return eventSignInStepLocked, fields
	}
	return eventSignInStepFailed, fields
}

// knownName is the user name to log: a name that is no account may be a
// password typed in the wrong field, so it is never written down.
func knownName(name string, known bool) string {
	if known {
		return name
	}
	return ""
}

// audit writes one log line for a sign-in decision. It never logs a
// password, code, secret or token.
func (h *TwoFactor) audit(clientIP string, event logEvent, user, reason string, fields ...zap.Field) {
	fs := append([]zap.Field{
		eventField(event),
		zap.String("user", user),
		zap.String("client_ip", clientIP),
	}, fields...)
	if reason != "" {
		fs = append(fs, zap.String("reason", reason))
	}
	h.logger.Info("two-factor", fs...)
}
