package twofactor

import (
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/caddy-two-factor/caddy-two-factor/signin"
	"github.com/caddy-two-factor/caddy-two-factor/throttle"
)

// The module's metrics are registered with the registry Caddy gives each
// config (caddy.Context.GetMetricsRegistry), so they are served on the
// admin endpoint's /metrics and by the metrics handler, next to Caddy's.
//
// Caddy makes a new registry for every config it loads. The collectors
// are made once per process and registered with each config's registry,
// so a reload neither fails on a duplicate registration nor starts the
// counters over; a second handler in one config finds them registered
// already. Their labels take only values from fixed sets (steps,
// outcomes, decisions, scopes) or from the config (a store's name): never
// a user name, an address or anything else a client chooses.
// docs/metrics.md describes each one.

const (
	metricsNamespace = "caddy"
	metricsSubsystem = "two_factor"
)

// metricName is the full name of one of the module's metrics.
func metricName(name string) string {
	return prometheus.BuildFQName(metricsNamespace, metricsSubsystem, name)
}

// Steps and outcomes the module counts beside the sign-in service's
// events (signin.Event kinds and steps).
const (
	// outcomeCSRFRejected: a form post whose origin or anti-CSRF token
	// was wrong.
	outcomeCSRFRejected = "csrf_rejected"
	// outcomeBusy: a password not checked because too many were being
	// hashed at once.
	outcomeBusy = "busy"
	// outcomePasskeyRefused: a passkey answer refused (the service's
	// bad_code with method webauthn; why is in the audit log, not in a
	// label).
	outcomePasskeyRefused = "passkey_refused"
	// stepNone labels events that belong to no sign-in step (sign-out,
	// sessions ended by their user).
	stepNone = "none"
	// stepAccount and stepLogout are the forms of the account page and
	// of sign-out, which can be refused for CSRF.
	stepAccount = "account"
	stepLogout  = "logout"
)

// The gate's decisions on a request it guards.
const (
	gateAllowed     = "allowed"
	gateChallenged  = "challenged"
	gateRefused     = "refused"
	gateUnavailable = "unavailable"
	gateError       = "error"
	gateStepUp      = "step_up"
	gateRecheck     = "recheck"
	gateAppToken    = "app_token"
)

var (
	signInOutcomes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: metricName("sign_ins_total"),
		Help: "Outcomes of sign-in steps and account actions, by step and outcome.",
	}, []string{"step", "outcome"})

	gateDecisions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: metricName("gate_decisions_total"),
		Help: "Decisions of the gate on the requests it guards.",
	}, []string{"decision"})

	lockouts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: metricName("lockouts_total"),
		Help: "Locks started by failed attempts, by what they lock: account_network, account or client.",
	}, []string{"scope"})

	passwordHashSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    metricName("password_hash_seconds"),
		Help:    "Time a password-hashing slot was held: the hash of a sign-in's password, known user or not.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	})

	passwordHashWaitSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    metricName("password_hash_wait_seconds"),
		Help:    "Time a sign-in waited for a password-hashing slot, by result: acquired, or refused (queue full or wait too long: answered 429).",
		Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2},
	}, []string{"result"})

	storeOperationSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    metricName("store_operation_seconds"),
		Help:    "Duration of the store's transactions, by backend and operation (view or update).",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	}, []string{"backend", "operation"})

	storeErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: metricName("store_errors_total"),
		Help: "Store transactions that failed because the store could not answer, by backend and operation.",
	}, []string{"backend", "operation"})

	storesMetrics = storesCollector{}
)

// moduleCollectors are every collector of the module, registered with
// each config's registry.
var moduleCollectors = []prometheus.Collector{
	signInOutcomes, gateDecisions, lockouts,
	passwordHashSeconds, passwordHashWaitSeconds,
	storeOperationSeconds, storeErrors, storesMetrics,
}

// gateCounters are the gate's counters, resolved once: the gate counts a
// request without looking a label up or allocating.
var gateCounters = struct {
	allowed, challenged, refused, unavailable, failed prometheus.Counter
	stepUp, recheck, appToken                         prometheus.Counter
}{
	allowed:     gateDecisions.WithLabelValues(gateAllowed),
	challenged:  gateDecisions.WithLabelValues(gateChallenged),
	refused:     gateDecisions.WithLabelValues(gateRefused),
	unavailable: gateDecisions.WithLabelValues(gateUnavailable),
	failed:      gateDecisions.WithLabelValues(gateError),
	stepUp:      gateDecisions.WithLabelValues(gateStepUp),
	recheck:     gateDecisions.WithLabelValues(gateRecheck),
	appToken:    gateDecisions.WithLabelValues(gateAppToken),
}

func init() {
	// The hash limiter is process-wide, as its metrics are.
	throttle.PasswordHashing.SetObserver(hashMetrics{})
	// Every label value that can occur is there from the start, at 0, so
	// rate() and alerts see a series before its first increment.
	for _, scope := range []string{throttle.LockPair, throttle.LockAccount, throttle.LockClient} {
		lockouts.WithLabelValues(scope)
	}
	for _, result := range []string{"acquired", "refused"} {
		passwordHashWaitSeconds.WithLabelValues(result)
	}
}

// registerMetrics registers the module's collectors with reg, the
// registry of the config being provisioned. Collectors registered there
// already (by another handler of the same config) are left as they are.
func registerMetrics(reg *prometheus.Registry) error {
	if reg == nil {
		return nil
	}
	for _, c := range moduleCollectors {
		if err := reg.Register(c); err != nil {
			if are, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); ok && are.ExistingCollector == c {
				continue
			}
			return fmt.Errorf("registering 2FA metrics: %w", err)
		}
	}
	return nil
}

// observeSignIn is the observer that counts the sign-in service's events.
// Label values come from the signin package's constants, never from the
// request.
func observeSignIn(e signin.Event) {
	// An error is no outcome, and a lock that a failure started is
	// reported beside that failure (it is counted by lockouts_total):
	// "locked" counts the attempts a lock turned away.
	if e.Kind == signin.EventError || (e.Kind == signin.EventLocked && e.Reason == signin.ReasonFailures) {
		return
	}
	step := e.Step
	if step == "" {
		step = stepNone
	}
	outcome := e.Kind
	if e.Kind == signin.EventBadCode && e.Method == signin.MethodWebAuthn {
		outcome = outcomePasskeyRefused
	}
	signInOutcomes.WithLabelValues(step, outcome).Inc()
}

// countSignIn counts an outcome the module decides itself (a CSRF
// refusal, busy hashing) at step.
func countSignIn(step, outcome string) {
	signInOutcomes.WithLabelValues(step, outcome).Inc()
}

// formStep is the step a page's form belongs to, as a metric label: one
// of a fixed set, whatever the path.
func formStep(page string) string {
	switch page {
	case "", "login":
		return signin.StepLogin
	case "setup":
		return signin.StepSetup
	case "confirm":
		return signin.StepConfirm
	case "setup/passkey", "setup/passkey/options":
		return signin.StepSetup
	case "confirm/passkey", "confirm/passkey/options":
		return signin.StepConfirm
	case "login/passkey", "login/passkey/options":
		return signin.StepPasskeyLogin
	case "account/passkey", "account/passkey/options", "account/passkey/verify":
		return stepAccount
	case "account/authenticator":
		return signin.StepReenroll
	case "account":
		return stepAccount
	case "logout":
		return stepLogout
	}
	return stepNone
}

// countLockout is the tracker's OnLock observer.
func countLockout(scope string) { lockouts.WithLabelValues(scope).Inc() }

// hashMetrics observes the password hash limiter.
type hashMetrics struct{}

var (
	hashWaitAcquired = passwordHashWaitSeconds.WithLabelValues("acquired")
	hashWaitRefused  = passwordHashWaitSeconds.WithLabelValues("refused")
)

func (hashMetrics) Waited(d time.Duration, ok bool) {
	if ok {
		hashWaitAcquired.Observe(d.Seconds())
	} else {
		hashWaitRefused.Observe(d.Seconds())
	}
}

func (hashMetrics) Held(d time.Duration) { passwordHashSeconds.Observe(d.Seconds()) }

// Interface guards
var _ throttle.HashObserver = hashMetrics{}
