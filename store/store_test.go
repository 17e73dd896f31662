package store

import (
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"testing"
	"time"
)

func newToken(t *testing.T) (string, SessionKey) {
	t.Helper()
	token, key, err := NewSessionToken()
	if err != nil {
		t.Fatalf("NewSessionToken: %v", err)
	}
	return token, key
}

func TestSessionTokenRoundTrip(t *testing.T) {
	if TokenLength != 43 {
		t.Fatalf("TokenLength = %d, want 43 (32 bytes in unpadded base64)", TokenLength)
	}
	seen := map[string]bool{}
	seenKey := map[SessionKey]bool{}
	for range 64 {
		token, key := newToken(t)
		if len(token) != TokenLength {
			t.Fatalf("token %q has length %d, want %d", token, len(token), TokenLength)
		}
		if strings.Trim(token, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
			t.Fatalf("token %q is not base64url", token)
		}
		if seen[token] || seenKey[key] {
			t.Fatalf("token %q or its key repeated", token)
		}
		seen[token], seenKey[key] = true, true

		got, ok := ParseSessionToken(token)
		if !ok || got != key {
			t.Fatalf("ParseSessionToken(%q) = %x, %v; want %x, true", token, got, ok, key)
		}
		raw, _ := base64.RawURLEncoding.DecodeString(token)
		if key != sha256.Sum256(raw) {
			t.Fatalf("key of %q is not the SHA-256 of its bytes", token)
		}
		if key == (SessionKey{}) {
			t.Fatal("zero key")
		}
	}
}

func TestParseSessionTokenRejects(t *testing.T) {
	valid, _ := newToken(t)
	// A token whose last character carries data in its two unused bits:
	// 'A' encodes 0, 'B' encodes 1.
	canonical := strings.Repeat("A", TokenLength)
	nonCanonical := canonical[:TokenLength-1] + "B"
	if _, ok := ParseSessionToken(canonical); !ok {
		t.Fatalf("ParseSessionToken(%q) rejected a canonical token", canonical)
	}
	replaceAt := func(s string, i int, c string) string { return s[:i] + c + s[i+1:] }
	tests := []struct {
		name string
		in   string
	}{
		{"empty", ""},
		{"one short", valid[:TokenLength-1]},
		{"one long", valid + "A"},
		{"padded", base64.URLEncoding.EncodeToString(make([]byte, TokenBytes))},
		{"padding instead of the last character", replaceAt(valid, TokenLength-1, "=")},
		{"standard alphabet plus", replaceAt(valid, 0, "+")},
		{"standard alphabet slash", replaceAt(valid, 0, "/")},
		{"dot", replaceAt(valid, 5, ".")},
		{"space", replaceAt(valid, 5, " ")},
		{"leading space", " " + valid[1:]},
		{"newline inside", replaceAt(valid, 20, "\n")},
		{"trailing CR", valid[:TokenLength-1] + "\r"},
		{"NUL", replaceAt(valid, 0, "\x00")},
		{"invalid UTF-8", replaceAt(valid, 0, "\xc3")},
		{"non-ASCII letter", valid[:TokenLength-2] + "é"},
		{"unused bits set", nonCanonical},
		{"31 bytes", base64.RawURLEncoding.EncodeToString(make([]byte, 31))},
		{"33 bytes", base64.RawURLEncoding.EncodeToString(make([]byte, 33))},
		{"long", strings.Repeat("A", 10<<10)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if key, ok := ParseSessionToken(tt.in); ok || key != (SessionKey{}) {
				t.Errorf("ParseSessionToken(%q) = %x, %v; want rejected", tt.in, key, ok)
			}
		})
	}
}

func TestNewID(t *testing.T) {
	seen := map[string]bool{}
	for range 64 {
		id, err := NewID()
		if err != nil {
			t.Fatal(err)
		}
		if len(id) != 22 {
			t.Fatalf("NewID() = %q: length %d, want 22", id, len(id))
		}
		if raw, err := base64.RawURLEncoding.Strict().DecodeString(id); err != nil || len(raw) != 16 {
			t.Fatalf("NewID() = %q: not 16 bytes of base64url (%v)", id, err)
		}
		if seen[id] {
			t.Fatalf("NewID returned %q twice", id)
		}
		seen[id] = true
	}
}

func FuzzParseSessionToken(f *testing.F) {
	f.Add(strings.Repeat("A", 43))
	f.Add(strings.Repeat("A", 42) + "B")
	f.Add(strings.Repeat("_", 42) + "w")
	f.Add(strings.Repeat("A", 42) + "=")
	f.Add(base64.URLEncoding.EncodeToString(make([]byte, 32)))
	f.Add(strings.Repeat("A", 21) + "\n" + strings.Repeat("A", 21))
	f.Add("")
	f.Add(strings.Repeat("+", 43))
	f.Fuzz(func(t *testing.T, token string) {
		key, ok := ParseSessionToken(token)
		if !ok {
			if key != (SessionKey{}) {
				t.Fatalf("ParseSessionToken(%q) = %x with ok = false", token, key)
			}
			return
		}
		if len(token) != TokenLength {
			t.Fatalf("ParseSessionToken accepted %q of length %d", token, len(token))
		}
		// Only tokens NewSessionToken could have made: the canonical
		// encoding of 32 bytes, whose key is their SHA-256.
		raw, err := base64.RawURLEncoding.DecodeString(token)
		if err != nil || len(raw) != TokenBytes {
			t.Fatalf("ParseSessionToken accepted %q, which is not 32 bytes of base64url: %v", token, err)
		}
		if base64.RawURLEncoding.EncodeToString(raw) != token {
			t.Fatalf("ParseSessionToken accepted the non-canonical %q", token)
		}
		if key != sha256.Sum256(raw) {
			t.Fatalf("ParseSessionToken(%q) = %x, not the SHA-256 of its bytes", token, key)
		}
	})
}

func TestSessionRules(t *testing.T) {
	now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	enrolled := &User{Name: "alice", SessionID: "id-2", TOTP: &Enrollment{}}
	full := func(change func(*Session)) *Session {
		s := &Session{User: "alice", Stage: StageFull, UserSessionID: "id-2", LastSeen: now.Add(-time.Minute), Expires: now.Add(time.Hour)}
		if change != nil {
			change(s)
		}
		return s
	}
	for _, tc := range []struct {
		name       string
		s          *Session
		u          *User
		idle       time.Duration
		live, held bool
	}{
		{"signed in", full(nil), enrolled, time.Hour, true, true},
		{"past its end", full(func(s *Session) { s.Expires = now }), enrolled, time.Hour, false, true},
		{"idle", full(nil), enrolled, time.Minute, false, true},
		{"no idle limit", full(func(s *Session) { s.LastSeen = now.Add(-24 * time.Hour) }), enrolled, 0, true, true},
		{"identifier rotated", full(func(s *Session) { s.UserSessionID = "id-1" }), enrolled, time.Hour, true, false},
		{"user reset (not enrolled)", full(nil), &User{Name: "alice", SessionID: "id-2"}, time.Hour, true, false},
		{"identifier cleared (revoked)", full(func(s *Session) { s.UserSessionID = "" }), &User{Name: "alice", TOTP: &Enrollment{}}, time.Hour, true, false},
		{"another user's", full(nil), &User{Name: "bob", SessionID: "id-2", TOTP: &Enrollment{}}, time.Hour, true, false},
		{"pending, idle does not apply", &Session{User: "alice", Stage: StagePending, LastSeen: now.Add(-time.Hour), Expires: now.Add(time.Minute)}, &User{Name: "alice"}, time.Minute, true, true},
	} {
		if got := tc.s.Live(now, tc.idle); got != tc.live {
			t.Errorf("%s: Live = %v, want %v", tc.name, got, tc.live)
		}
		if got := tc.s.HeldBy(tc.u); got != tc.held {
			t.Errorf("%s: HeldBy = %v, want %v", tc.name, got, tc.held)
		}
	}
}

type claimingStore struct{ Store }

func (claimingStore) Claim(string, time.Duration) (bool, error) { return true, nil }

type wrappingStore struct{ Store }

func (w wrappingStore) Unwrap() Store { return w.Store }

func TestAsReachesThroughWrappers(t *testing.T) {
	backend := claimingStore{}
	for name, tc := range map[string]struct {
		st   Store
		want bool
	}{
		"the backend":          {backend, true},
		"wrapped once":         {wrappingStore{backend}, true},
		"wrapped twice":        {wrappingStore{wrappingStore{backend}}, true},
		"a store without it":   {wrappingStore{wrappingStore{}}, false},
		"a wrapper of nothing": {wrappingStore{}, false},
		"nil":                  {nil, false},
	} {
		t.Run(name, func(t *testing.T) {
			if _, ok := As[Claimer](tc.st); ok != tc.want {
				t.Errorf("As[Claimer] = %v, want %v", ok, tc.want)
			}
		})
	}
}
