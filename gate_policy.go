package twofactor

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-two-factor/caddy-two-factor/policy"
	"github.com/caddy-two-factor/caddy-two-factor/sessioncache"
)

// The gate's policies on signed-in sessions (package policy decides them;
// see docs/policies.md): step-up rules for sensitive paths and random
// re-checks. Both send the browser to the confirm page, which asks a
// signed-in session for its second factor only (see policy_pages.go).

// StepUpRule is one step_up line.
type StepUpRule struct {
	// How recent the session's last second factor must be. Required.
	MaxAge caddy.Duration `json:"max_age"`
	// Path patterns with the meaning of Caddy's path matcher
	// (case-insensitive; /admin/*, *.zip, */edit/*, globs). Required.
	Paths []string `json:"paths"`
}

// RecheckRule is the recheck option.
type RecheckRule struct {
	// The shortest time from a second factor to the next re-check. Required.
	Min caddy.Duration `json:"min"`
	// The longest; at least min. Required.
	Max caddy.Duration `json:"max"`
}

// provisionPolicies builds the policy of step_up and recheck and the path
// matchers of the step-up rules.
func (h *TwoFactor) provisionPolicies() error {
	h.gate = policy.Policy{}
	h.stepUpPaths = nil
	for _, rule := range h.StepUp {
		h.gate.StepUp = append(h.gate.StepUp, policy.StepUp{MaxAge: time.Duration(rule.MaxAge), Patterns: rule.Paths})
		m, err := newPathPatterns(rule.Paths)
		if err != nil {
			return fmt.Errorf("step_up: %w", err)
		}
		h.stepUpPaths = append(h.stepUpPaths, m)
	}
	if h.Recheck != nil {
		h.gate.Recheck = policy.Recheck{Min: time.Duration(h.Recheck.Min), Max: time.Duration(h.Recheck.Max)}
	}
	if h.AppTokens != nil {
		var err error
		if h.appTokenPaths, err = newPathPatterns(h.AppTokens); err != nil {
			return fmt.Errorf("app_tokens: %w", err)
		}
	}
	h.shortestStepUp = 0
	for i, rule := range h.gate.StepUp {
		if i == 0 || rule.MaxAge < h.shortestStepUp {
			h.shortestStepUp = rule.MaxAge
		}
	}
	h.policies = len(h.gate.StepUp) > 0 || h.gate.Recheck.Enabled()
	return nil
}

// validatePolicies checks step_up, recheck and remember_device as JSON
// gives them; the Caddyfile checks the same while parsing, to name the
// file and line.
func (h *TwoFactor) validatePolicies() error {
	if h.RememberDevice < 0 {
		return fmt.Errorf("remember_device must be positive, not %s", time.Duration(h.RememberDevice))
	}
	if h.Recheck != nil && !h.gate.Recheck.Enabled() {
		return errors.New("recheck needs min and max")
	}
	return h.gate.Validate()
}

// policyDecision is what the policies say of a request of the live
// session e at now. It does not allocate: it runs on every request.
func (h *TwoFactor) policyDecision(r *http.Request, e *sessioncache.Session, now time.Time) policy.Decision {
	if !h.policies {
		return policy.Allow
	}
	var stepUp time.Duration
	// A factor more recent than the smallest max age satisfies every
	// rule, whichever match: the path need not be looked at.
	if !policy.Fresh(&e.Policy, now, h.shortestStepUp) {
		stepUp = h.stepUpMaxAge(r)
	}
	return h.gate.Check(&e.Policy, now, stepUp)
}

// stepUpMaxAge is the strictest max age of the step-up rules that match
// r, as it is now or as the client sent it (as the gate's own matcher is
// read, see guards), or 0 when none does.
func (h *TwoFactor) stepUpMaxAge(r *http.Request) time.Duration {
	if len(h.stepUpPaths) == 0 {
		return 0
	}
	p := matchablePath(r.URL.Path)
	var (
		sent     *http.Request
		sentPath string
	)
	if orig, ok := sentRequest(r); ok && orig.URL.Path != r.URL.Path {
		sent, sentPath = asSent(r, orig), matchablePath(orig.URL.Path)
	}
	return policy.StrictestMaxAge(h.gate.StepUp, func(i int) bool {
		return h.stepUpPaths[i].match(p, r) || (sent != nil && h.stepUpPaths[i].match(sentPath, sent))
	})
}

// askSecondFactor answers a request of a signed-in session that a policy
// holds back: a browser goes to the confirm page, to come back to the
// request; any other client gets 401.
func (h *TwoFactor) askSecondFactor(w http.ResponseWriter, r *http.Request, d policy.Decision) error {
	if ce := h.logger.Check(zap.DebugLevel, "two-factor gate asks for the second factor again"); ce != nil {
		ce.Write(zap.String("decision", d.String()), zap.String("client_ip", clientIP(r)))
	}
	if d == policy.NeedsRecheck {
		gateCounters.recheck.Inc()
	} else {
		gateCounters.stepUp.Inc()
	}
	if !wantsHTML(r) {
		return caddyhttp.Error(http.StatusUnauthorized, errSecondFactorRequired)
	}
	return h.sendToPage(w, r, "confirm")
}
