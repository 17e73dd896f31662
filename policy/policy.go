// Package policy decides what the gate asks of a signed-in session beyond
// being live: a fresh second factor on sensitive paths (step-up), a
// second factor again after a deadline drawn at random (re-checks), and
// what it takes to spare a remembered browser the second factor or to let
// a client in with an app token.
//
// Everything here is a pure decision on store records: the time is always
// given (so tests and the module's injected clock decide it), and
// randomness comes from an io.Reader the caller passes (crypto/rand.Reader
// in production, a seeded source in tests). Nothing here reads or writes a
// store, knows about HTTP or Caddy, or logs: the caller loads the records,
// asks, and puts back what a function changed, in one transaction.
package policy

import (
	"crypto/rand"
	"io"
	"time"

	"github.com/caddy-two-factor/caddy-two-factor/store"
)

// Methods of signing in that policy adds to those of store.Session.Method.
const (
	// MethodRemembered is the method of a session signed in with the
	// password on a remembered browser: no second factor was given.
	MethodRemembered = "remembered"
	// MethodAppToken names a request let in by an app token. No session
	// is ever stored with it: the root sets it as the request's method
	// (for logs and placeholders) only.
	MethodAppToken = "app_token"
)

// Decision is what the gate does with a live, held session.
type Decision uint8

const (
	// Allow lets the request through.
	Allow Decision = iota
	// NeedsStepUp asks for a fresh second factor: the path is under a
	// step-up rule and the session's last factor is older than its max
	// age (or it has none, as a remembered browser's session).
	NeedsStepUp
	// NeedsRecheck asks for the second factor again: the session's
	// random re-check deadline has passed.
	NeedsRecheck
)

func (d Decision) String() string {
	switch d {
	case Allow:
		return "allow"
	case NeedsStepUp:
		return "needs step-up"
	case NeedsRecheck:
		return "needs re-check"
	}
	return "unknown decision"
}

// Policy is the set of options a gate enforces on signed-in sessions. The
// zero Policy allows every session the gate already lets through.
type Policy struct {
	// StepUp are the step-up rules. Matching a request against their
	// patterns is the caller's (with Caddy's path matcher); Check is told
	// the strictest max age that applies (see StrictestMaxAge).
	StepUp []StepUp
	// Recheck draws and checks random re-check deadlines.
	Recheck Recheck
}

// Validate checks every option; it is meant to run once, at provisioning.
func (p *Policy) Validate() error {
	for i := range p.StepUp {
		if err := p.StepUp[i].Validate(); err != nil {
			return err
		}
	}
	return p.Recheck.Validate()
}

// Check decides a request of a session the gate found live and held by its
// user. stepUp is the strictest max age of the step-up rules that match
// the request (0: none does). It does not allocate: it runs on every
// request.
//
// A path under step-up is decided first, because its page says more: the
// same confirmation also satisfies a re-check that is due, as the caller
// records the confirmation time and draws a new deadline.
func (p *Policy) Check(s *store.Session, now time.Time, stepUp time.Duration) Decision {
	if stepUp > 0 && !Fresh(s, now, stepUp) {
		return NeedsStepUp
	}
	if p.Recheck.Due(s, now) {
		return NeedsRecheck
	}
	return Allow
}

// Confirm records in s that a second factor was given at now: the time
// step-up rules measure from, and, when re-checks are on, a new deadline.
// The caller also rotates the session token and sets s.Method, and puts s.
func (p *Policy) Confirm(s *store.Session, now time.Time, rnd io.Reader) error {
	if err := p.redraw(s, now, rnd); err != nil {
		return err
	}
	s.ConfirmedAt = now
	return nil
}

// SignedInRemembered prepares s, a new signed-in session of a browser that
// a remembered device spared the second factor: it has no confirmation
// time, so it satisfies no step-up rule, and, when re-checks are on, it
// gets a deadline as a confirmed session would.
func (p *Policy) SignedInRemembered(s *store.Session, now time.Time, rnd io.Reader) error {
	s.Method = MethodRemembered
	s.ConfirmedAt, s.RecheckAt = time.Time{}, time.Time{}
	return p.redraw(s, now, rnd)
}

// redraw gives s a new re-check deadline drawn from now, when re-checks
// are on.
func (p *Policy) redraw(s *store.Session, now time.Time, rnd io.Reader) error {
	if !p.Recheck.Enabled() {
		return nil
	}
	at, err := p.Recheck.Draw(now, rnd)
	if err != nil {
		return err
	}
	s.RecheckAt = at
	return nil
}

// orCrypto returns rnd, or crypto/rand's reader when rnd is nil.
func orCrypto(rnd io.Reader) io.Reader {
	if rnd == nil {
		return rand.Reader
	}
	return rnd
}
