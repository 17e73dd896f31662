package store

import "testing"

// TestPasskeyEnrolls: a passkey alone is a second factor, so a user who
// has only passkeys holds the sessions confirmed with one.
func TestPasskeyEnrolls(t *testing.T) {
	full := &Session{User: "alice", Stage: StageFull, UserSessionID: "sid"}
	for _, tc := range []struct {
		name     string
		u        *User
		enrolled bool
	}{
		{"nothing", &User{Name: "alice", SessionID: "sid"}, false},
		{"TOTP", &User{Name: "alice", SessionID: "sid", TOTP: &Enrollment{}}, true},
		{"a passkey", &User{Name: "alice", SessionID: "sid", Passkeys: []Passkey{{ID: []byte{1}}}}, true},
		{"a user handle but no passkey left", &User{Name: "alice", SessionID: "sid", WebAuthnID: []byte{1}, Passkeys: []Passkey{}}, false},
	} {
		if got := tc.u.Enrolled(); got != tc.enrolled {
			t.Errorf("%s: Enrolled = %v, want %v", tc.name, got, tc.enrolled)
		}
		if got := full.HeldBy(tc.u); got != tc.enrolled {
			t.Errorf("%s: HeldBy = %v, want %v", tc.name, got, tc.enrolled)
		}
	}
}
