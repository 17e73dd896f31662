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
		if e.Scope == signin.ScopeClient {
			h.audit(ip, e.Step+"_locked", "", "client_locked")
		} else {
			h.audit(ip, e.Step+"_locked", user, "locked")
		}
	case signin.EventBadPassword:
		h.audit(ip, "login_failed", user, "bad_password")
	case signin.EventBadCode, signin.EventReplayedCode:
		reason := e.Kind
		if e.Method == signin.MethodWebAuthn {
			reason = "passkey_" + e.Reason // passkey_cloned, passkey_verification, ...
		}
		h.audit(ip, e.Step+"_failed", user, reason, zap.String("method", e.Method))
	case signin.EventPasskeyAdded, signin.EventPasskeyRenamed:
		h.audit(ip, e.Kind, user, "")
	case signin.EventPasskeyRemoved:
		h.audit(ip, e.Kind, user, "", zap.Int("sessions_ended", e.Sessions))
	case signin.EventPasswordAccepted:
		h.audit(ip, "password_accepted", user, e.Reason)
	case signin.EventSetupComplete:
		h.audit(ip, "enrolled", user, "", zap.String("method", e.Method))
	case signin.EventSignedIn:
		h.audit(ip, "signed_in", user, "", zap.String("method", e.Method), zap.String("step", e.Step))
	case signin.EventRecoveryReplaced:
		h.audit(ip, "recovery_codes_replaced", user, "")
	case signin.EventAuthenticatorReplaced:
		h.audit(ip, "authenticator_replaced", user, "", zap.Int("sessions_ended", e.Sessions))
	case signin.EventSessionsEnded:
		event := "other_sessions_ended"
		if e.Scope == signin.ScopeOne {
			event = "session_ended"
		}
		h.audit(ip, event, user, "", zap.Int("sessions_ended", e.Sessions))
	case signin.EventSignedOut:
		h.audit(ip, "logout", user, "")
	case signin.EventError:
		h.logger.Error(e.Reason, zap.Error(e.Err))
	}
	// The rest (recovery_used) has no audit line of its own: the sign-in
	// it belongs to has one. Operator actions are written by auditAdmin.
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
func (h *TwoFactor) audit(clientIP, event, user, reason string, fields ...zap.Field) {
	fs := append([]zap.Field{
		zap.String("event", event),
		zap.String("user", user),
		zap.String("client_ip", clientIP),
	}, fields...)
	if reason != "" {
		fs = append(fs, zap.String("reason", reason))
	}
	h.logger.Info("two-factor", fs...)
}
