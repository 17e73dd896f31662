package twofactor

import (
	"testing"
	"time"

	"github.com/caddy-two-factor/caddy-two-factor/store"
)

func TestIPKeyGroupsIPv6By64(t *testing.T) {
	for _, tc := range []struct{ ip, want string }{
		{"192.0.2.7", "192.0.2.7"},
		{"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"},
		{"2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"},
		{"::ffff:192.0.2.7", "::ffff:192.0.2.7"},
		{"not an ip", "not an ip"},
	} {
		if got := ipKey(tc.ip); got != tc.want {
			t.Errorf("ipKey(%q) = %q, want %q", tc.ip, got, tc.want)
		}
	}
}

func TestAttemptsInFlightHoldPlacesButNeverLock(t *testing.T) {
	l := limits{window: time.Minute, lockout: time.Hour}
	now := time.Unix(1_000_000, 0)
	var a store.Attempts
	a.WindowStart = now
	for i := range 3 {
		if until := reserve(&a, 3, l, now); !until.IsZero() {
			t.Fatalf("reservation %d refused", i)
		}
	}
	if until := reserve(&a, 3, l, now); until.IsZero() || a.InFlight != 3 {
		t.Fatalf("a fourth attempt got a place beside three in flight (in flight %d)", a.InFlight)
	}
	settle(&a, true, 3, l, now)  // right
	settle(&a, false, 3, l, now) // wrong: one failure, no lock
	if !a.LockedUntil.IsZero() || a.Failures != 1 || a.InFlight != 1 {
		t.Fatalf("after one right and one wrong: %+v", a)
	}
	settle(&a, false, 3, l, now)
	if until := reserve(&a, 3, l, now); !until.IsZero() {
		t.Fatal("two failures of three used the budget up")
	}
	settle(&a, false, 3, l, now)
	if !a.LockedUntil.Equal(now.Add(time.Hour)) {
		t.Fatalf("three failures did not lock: %+v", a)
	}
	if until := reserve(&a, 3, l, now.Add(time.Hour-time.Second)); !until.Equal(now.Add(time.Hour)) {
		t.Fatalf("reserve while locked: %v", until)
	}
}

func TestLostReservationsAreForgottenWithTheWindow(t *testing.T) {
	l := limits{window: time.Minute, lockout: time.Hour}
	now := time.Unix(1_000_000, 0)
	a := store.Attempts{WindowStart: now, InFlight: 3}
	if until := reserve(&a, 3, l, now); until.IsZero() {
		t.Fatal("a full budget gave a place")
	}
	if until := reserve(&a, 3, l, now.Add(time.Minute)); !until.IsZero() {
		t.Fatal("reservations lost by a crash still held places in the next window")
	}
}
