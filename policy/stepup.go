package policy

import (
	"errors"
	"fmt"
	"path"
	"strings"
	"time"
	"unicode"

	"github.com/caddy-two-factor/caddy-two-factor/store"
)

// StepUp is one step_up line: requests to a path that one of Patterns
// matches need a second factor given within MaxAge.
type StepUp struct {
	// MaxAge is how old the session's last second factor may be.
	MaxAge time.Duration
	// Patterns are path patterns with the meaning of Caddy's path
	// matcher: case-insensitive, exact unless they hold a *, a prefix
	// (/admin/*), suffix (*.zip) or substring (*/edit/*) form, and a glob
	// (path.Match) otherwise.
	Patterns []string
}

// Validate checks the rule: a positive max age and at least one pattern,
// each a pattern by ValidatePattern.
func (r *StepUp) Validate() error {
	if r.MaxAge <= 0 {
		return fmt.Errorf("step_up max age %v must be positive", r.MaxAge)
	}
	if len(r.Patterns) == 0 {
		return errors.New("step_up needs at least one path pattern")
	}
	for _, p := range r.Patterns {
		if err := ValidatePattern(p); err != nil {
			return fmt.Errorf("step_up: %w", err)
		}
	}
	return nil
}

// ValidatePattern reports what keeps p from being a path pattern that
// Caddy's path matcher would ever match as meant. It refuses:
//   - the empty pattern, and one that starts with neither / nor * (a
//     request path always starts with /, so it could never match);
//   - white space and control characters (a pattern is one Caddyfile
//     token; these are a pasted line or a typo);
//   - ? and # : the path matcher sees the path only, never the query or
//     fragment, and in a glob ? would stand for any one character;
//   - a malformed glob (an unclosed [ or a trailing \), which would
//     silently match nothing and so leave the paths unprotected.
func ValidatePattern(p string) error {
	if p == "" {
		return errors.New("empty path pattern")
	}
	if p[0] != '/' && p[0] != '*' {
		return fmt.Errorf("path pattern %q must start with / or *", p)
	}
	if i := strings.IndexFunc(p, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }); i >= 0 {
		return fmt.Errorf("path pattern %q holds white space or a control character", p)
	}
	if strings.ContainsAny(p, "?#") {
		return fmt.Errorf("path pattern %q holds ? or #: patterns match the path only, not a query or fragment", p)
	}
	if isGlob(p) {
		if _, err := path.Match(strings.ToLower(p), "/"); err != nil {
			return fmt.Errorf("path pattern %q is not a valid glob: %w", p, err)
		}
	}
	return nil
}

// isGlob reports whether Caddy's path matcher compares p with path.Match:
// every pattern but "*", those with an escape sequence (%), and the fast
// forms whose only stars are at the ends (*x*, *x, x*).
func isGlob(p string) bool {
	if p == "*" || strings.Contains(p, "%") {
		return false
	}
	switch n := strings.Count(p, "*"); {
	case n == 2 && len(p) >= 2 && p[0] == '*' && p[len(p)-1] == '*':
		return false
	case n == 1 && (p[0] == '*' || p[len(p)-1] == '*'):
		return false
	}
	return true
}

// Fresh reports whether s has given a second factor within maxAge of now.
// A session with no confirmation time (a remembered browser's) never is.
func Fresh(s *store.Session, now time.Time, maxAge time.Duration) bool {
	return !s.ConfirmedAt.IsZero() && now.Sub(s.ConfirmedAt) < maxAge
}

// StrictestMaxAge returns the smallest max age of the rules for which
// matches(i) is true, or 0 when none is. matches is the caller's match of
// rule i against the request (Caddy's path matcher on rules[i].Patterns).
func StrictestMaxAge(rules []StepUp, matches func(i int) bool) time.Duration {
	var strictest time.Duration
	for i := range rules {
		if (strictest == 0 || rules[i].MaxAge < strictest) && matches(i) {
			strictest = rules[i].MaxAge
		}
	}
	return strictest
}
