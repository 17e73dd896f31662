package policy

import (
	"testing"
	"time"

	"github.com/caddy-two-factor/caddy-two-factor/store"
)

func TestValidatePattern(t *testing.T) {
	for _, tt := range []struct {
		pattern string
		ok      bool
	}{
		{"/admin/settings/*", true},
		{"/admin", true},
		{"/", true},
		{"*", true},
		{"*.zip", true},
		{"*/edit/*", true},
		{"/ADMIN/*", true},
		{"/users/*/keys", true},
		{"/a/[abc]/*/x", true},
		{"/caf%C3%A9", true},
		{"/a[*", true}, // a prefix form: Caddy compares it as text, [ and all
		{"/☃/*", true},
		{"", false},
		{"admin/*", false},
		{"{http.vars.x}/*", false},
		{" /admin", false},
		{"/admin /users", false},
		{"/admin\t", false},
		{"/admin\n", false},
		{"/admin\x00", false},
		{"/admin\u00a0", false},
		{"/admin?x=1", false},
		{"/admin#top", false},
		{"/a/[b/*/c", false},
		{"/a/*/b\\", false},
		{"/a[", false},
	} {
		if err := ValidatePattern(tt.pattern); (err == nil) != tt.ok {
			t.Errorf("ValidatePattern(%q) = %v, want ok %v", tt.pattern, err, tt.ok)
		}
	}
}

func TestStepUpValidate(t *testing.T) {
	for _, tt := range []struct {
		name string
		rule StepUp
		ok   bool
	}{
		{"one pattern", StepUp{MaxAge: 5 * time.Minute, Patterns: []string{"/admin/*"}}, true},
		{"several", StepUp{MaxAge: time.Second, Patterns: []string{"/a/*", "*.zip"}}, true},
		{"no max age", StepUp{Patterns: []string{"/a/*"}}, false},
		{"negative max age", StepUp{MaxAge: -time.Minute, Patterns: []string{"/a/*"}}, false},
		{"no pattern", StepUp{MaxAge: time.Minute}, false},
		{"one bad pattern among good", StepUp{MaxAge: time.Minute, Patterns: []string{"/a/*", "b"}}, false},
	} {
		if err := tt.rule.Validate(); (err == nil) != tt.ok {
			t.Errorf("%s: Validate = %v, want ok %v", tt.name, err, tt.ok)
		}
	}
}

func TestFresh(t *testing.T) {
	for _, tt := range []struct {
		name      string
		confirmed time.Time
		maxAge    time.Duration
		want      bool
	}{
		{"just now", now, time.Minute, true},
		{"a nanosecond inside", now.Add(-time.Minute + 1), time.Minute, true},
		{"exactly max age", now.Add(-time.Minute), time.Minute, false},
		{"older", now.Add(-time.Hour), time.Minute, false},
		{"never confirmed", time.Time{}, 1 << 62, false},
		{"in the future (another instance's clock ahead)", now.Add(time.Second), time.Minute, true},
	} {
		if got := Fresh(&store.Session{ConfirmedAt: tt.confirmed}, now, tt.maxAge); got != tt.want {
			t.Errorf("%s: Fresh = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestStrictestMaxAge(t *testing.T) {
	rules := []StepUp{{MaxAge: time.Hour}, {MaxAge: 5 * time.Minute}, {MaxAge: 30 * time.Minute}}
	for _, tt := range []struct {
		name    string
		matches []bool
		want    time.Duration
	}{
		{"none", []bool{false, false, false}, 0},
		{"one", []bool{true, false, false}, time.Hour},
		{"the strictest of two", []bool{true, false, true}, 30 * time.Minute},
		{"all", []bool{true, true, true}, 5 * time.Minute},
	} {
		if got := StrictestMaxAge(rules, func(i int) bool { return tt.matches[i] }); got != tt.want {
			t.Errorf("%s: StrictestMaxAge = %v, want %v", tt.name, got, tt.want)
		}
	}
	if got := StrictestMaxAge(nil, func(int) bool { return true }); got != 0 {
		t.Errorf("no rules: %v", got)
	}
}
