package policy

import (
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/caddy-two-factor/caddy-two-factor/store"
)

// now is the tests' injected "now".
var now = time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)

// seeded returns a deterministic random source.
func seeded(seed byte) *rand.ChaCha8 {
	var s [32]byte
	s[0] = seed
	return rand.NewChaCha8(s)
}

// failing is a random source that fails.
type failing struct{}

var errNoRandom = errors.New("no randomness")

func (failing) Read([]byte) (int, error) { return 0, errNoRandom }

func TestCheck(t *testing.T) {
	p := &Policy{Recheck: Recheck{Min: 3 * time.Hour, Max: 6 * time.Hour}}
	confirmed := func(ago, recheckIn time.Duration) *store.Session {
		return &store.Session{Stage: store.StageFull, Created: now.Add(-ago), ConfirmedAt: now.Add(-ago), RecheckAt: now.Add(recheckIn)}
	}
	remembered := &store.Session{Stage: store.StageFull, Method: MethodRemembered, Created: now.Add(-time.Minute), RecheckAt: now.Add(time.Hour)}
	tests := []struct {
		name   string
		p      *Policy
		s      *store.Session
		stepUp time.Duration
		want   Decision
	}{
		{"no options", &Policy{}, &store.Session{}, 0, Allow},
		{"no options, remembered", &Policy{}, &store.Session{Method: MethodRemembered}, 0, Allow},
		{"fresh, no step-up path", p, confirmed(time.Hour, time.Hour), 0, Allow},
		{"step-up path, confirmed within max age", p, confirmed(4*time.Minute, time.Hour), 5 * time.Minute, Allow},
		{"step-up path, confirmed at max age", p, confirmed(5*time.Minute, time.Hour), 5 * time.Minute, NeedsStepUp},
		{"step-up path, stale", p, confirmed(time.Hour, time.Hour), 5 * time.Minute, NeedsStepUp},
		{"step-up path, remembered browser", p, remembered, 24 * time.Hour, NeedsStepUp},
		{"remembered, not on a step-up path", p, remembered, 0, Allow},
		{"re-check due", p, confirmed(time.Hour, 0), 0, NeedsRecheck},
		{"re-check past", p, confirmed(time.Hour, -time.Second), 0, NeedsRecheck},
		{"re-check and step-up both due: step-up", p, confirmed(time.Hour, -time.Second), time.Minute, NeedsStepUp},
		{"step-up fresh, re-check due", p, confirmed(time.Second, -time.Nanosecond), time.Minute, NeedsRecheck},
		{"no deadline while re-checks are on", p, &store.Session{ConfirmedAt: now}, 0, NeedsRecheck},
		{"no deadline, re-checks off", &Policy{}, &store.Session{ConfirmedAt: now}, 0, Allow},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.p.Check(tt.s, now, tt.stepUp); got != tt.want {
				t.Errorf("Check = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestCheckDoesNotAllocate(t *testing.T) {
	p := &Policy{Recheck: Recheck{Min: 3 * time.Hour, Max: 6 * time.Hour}}
	s := &store.Session{ConfirmedAt: now.Add(-time.Minute), RecheckAt: now.Add(time.Hour)}
	if n := testing.AllocsPerRun(100, func() { p.Check(s, now, 5*time.Minute) }); n != 0 {
		t.Errorf("Check allocates %v times per call", n)
	}
}

// BenchmarkCheck is the gate's hot path with every option on: a signed-in
// session on a step-up path, confirmed recently, re-check not yet due.
func BenchmarkCheck(b *testing.B) {
	p := &Policy{Recheck: Recheck{Min: 3 * time.Hour, Max: 6 * time.Hour}}
	s := &store.Session{ConfirmedAt: now.Add(-time.Minute), RecheckAt: now.Add(time.Hour)}
	b.ReportAllocs()
	for b.Loop() {
		if p.Check(s, now, 5*time.Minute) != Allow {
			b.Fatal("not allowed")
		}
	}
}

// recheckOptions are re-checks off and on (between one and two hours).
var recheckOptions = []struct {
	name    string
	recheck Recheck
}{{"re-checks off", Recheck{}}, {"re-checks on", Recheck{Min: time.Hour, Max: 2 * time.Hour}}}

func TestConfirm(t *testing.T) {
	for _, tt := range recheckOptions {
		t.Run(tt.name, func(t *testing.T) {
			p := &Policy{Recheck: tt.recheck}
			s := &store.Session{ConfirmedAt: now.Add(-time.Hour), RecheckAt: now.Add(-time.Minute)}
			if err := p.Confirm(s, now, seeded(1)); err != nil {
				t.Fatal(err)
			}
			if !s.ConfirmedAt.Equal(now) {
				t.Errorf("ConfirmedAt = %v, want now", s.ConfirmedAt)
			}
			if tt.recheck.Enabled() {
				if s.RecheckAt.Before(now.Add(time.Hour)) || s.RecheckAt.After(now.Add(2*time.Hour)) {
					t.Errorf("RecheckAt = %v, want within [now+1h, now+2h]", s.RecheckAt)
				}
			} else if !s.RecheckAt.Equal(now.Add(-time.Minute)) {
				t.Errorf("RecheckAt changed to %v with re-checks off", s.RecheckAt)
			}
			if got := p.Check(s, now.Add(time.Minute), 5*time.Minute); got != Allow {
				t.Errorf("Check after Confirm = %v", got)
			}
		})
	}
	p := &Policy{Recheck: Recheck{Min: time.Hour, Max: 2 * time.Hour}}
	s := &store.Session{}
	if err := p.Confirm(s, now, failing{}); !errors.Is(err, errNoRandom) || !s.ConfirmedAt.IsZero() {
		t.Errorf("Confirm without randomness: %v, ConfirmedAt %v", err, s.ConfirmedAt)
	}
}

func TestSignedInRemembered(t *testing.T) {
	for _, tt := range recheckOptions {
		t.Run(tt.name, func(t *testing.T) {
			p := &Policy{Recheck: tt.recheck}
			s := &store.Session{Created: now, ConfirmedAt: now, Method: "totp", RecheckAt: now.Add(time.Hour)}
			if err := p.SignedInRemembered(s, now, seeded(2)); err != nil {
				t.Fatal(err)
			}
			if s.Method != MethodRemembered || !s.ConfirmedAt.IsZero() {
				t.Errorf("Method %q, ConfirmedAt %v; want remembered and none", s.Method, s.ConfirmedAt)
			}
			if got := p.Check(s, now, time.Hour); got != NeedsStepUp {
				t.Errorf("step-up path: %v, want %v", got, NeedsStepUp)
			}
			if got := p.Check(s, now.Add(59*time.Minute), 0); got != Allow {
				t.Errorf("before the earliest re-check: %v, want %v", got, Allow)
			}
			wantLater := Allow
			if tt.recheck.Enabled() {
				wantLater = NeedsRecheck
			}
			if got := p.Check(s, now.Add(2*time.Hour), 0); got != wantLater {
				t.Errorf("after the latest re-check: %v, want %v", got, wantLater)
			}
		})
	}
}

func TestPolicyValidate(t *testing.T) {
	for _, tt := range []struct {
		name string
		p    Policy
		ok   bool
	}{
		{"zero", Policy{}, true},
		{"every option", Policy{StepUp: []StepUp{{MaxAge: time.Minute, Patterns: []string{"/admin/*"}}}, Recheck: Recheck{Min: time.Hour, Max: time.Hour}}, true},
		{"a bad step-up rule", Policy{StepUp: []StepUp{{MaxAge: time.Minute, Patterns: []string{"admin"}}}}, false},
		{"a bad re-check", Policy{Recheck: Recheck{Min: 2 * time.Hour, Max: time.Hour}}, false},
	} {
		if err := tt.p.Validate(); (err == nil) != tt.ok {
			t.Errorf("%s: Validate = %v, want ok %v", tt.name, err, tt.ok)
		}
	}
}

func TestDecisionString(t *testing.T) {
	for d, want := range map[Decision]string{Allow: "allow", NeedsStepUp: "needs step-up", NeedsRecheck: "needs re-check", 9: "unknown decision"} {
		if got := d.String(); got != want {
			t.Errorf("Decision(%d) = %q, want %q", d, got, want)
		}
	}
}
