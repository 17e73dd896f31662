package throttle

import (
	"fmt"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-two-factor/caddy-two-factor/store"
	boltstore "github.com/caddy-two-factor/caddy-two-factor/store/bolt"
)

func TestNetworkOfGroupsIPv6By64(t *testing.T) {
	for _, tc := range []struct{ ip, want string }{
		{"192.0.2.7", "192.0.2.7"},
		{"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"},
		{"2001:db8:1:2:ffff::1", "2001:db8:1:2::/64"},
		{"::ffff:192.0.2.7", "::ffff:192.0.2.7"},
		{"not an ip", "not an ip"},
	} {
		if got := NetworkOf(tc.ip); got != tc.want {
			t.Errorf("NetworkOf(%q) = %q, want %q", tc.ip, got, tc.want)
		}
	}
}

func TestAttemptsInFlightHoldPlacesButNeverLock(t *testing.T) {
	b := Budget{Limit: 3, Window: time.Minute, Lockout: time.Hour}
	now := time.Unix(1_000_000, 0)
	var a store.Attempts
	a.WindowStart = now
	for i := range 3 {
		if until := reserve(&a, b, now); !until.IsZero() {
			t.Fatalf("reservation %d refused", i)
		}
	}
	if until := reserve(&a, b, now); until.IsZero() || a.InFlight != 3 {
		t.Fatalf("a fourth attempt got a place beside three in flight (in flight %d)", a.InFlight)
	}
	settle(&a, true, b, now)  // right
	settle(&a, false, b, now) // wrong: one failure, no lock
	if !a.LockedUntil.IsZero() || a.Failures != 1 || a.InFlight != 1 {
		t.Fatalf("after one right and one wrong: %+v", a)
	}
	settle(&a, false, b, now)
	if until := reserve(&a, b, now); !until.IsZero() {
		t.Fatal("two failures of three used the budget up")
	}
	settle(&a, false, b, now)
	if !a.LockedUntil.Equal(now.Add(time.Hour)) {
		t.Fatalf("three failures did not lock: %+v", a)
	}
	if until := reserve(&a, b, now.Add(time.Hour-time.Second)); !until.Equal(now.Add(time.Hour)) {
		t.Fatalf("reserve while locked: %v", until)
	}
}

func TestLostReservationsAreForgotten(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	for _, tc := range []struct {
		name  string
		b     Budget
		later time.Duration
	}{
		// A crash between reserve and settle: the next window forgets it.
		{"with the window", Budget{Limit: 3, Window: time.Minute, Lockout: time.Hour}, time.Minute},
		// A store failure when settling, in a day-long window: the places
		// free once no attempt could still be running.
		{"after an attempt's longest time", Budget{Limit: 3, Window: MaxWindow, Lockout: time.Hour, Consecutive: true}, MaxAttemptTime + time.Second},
	} {
		a := store.Attempts{WindowStart: now, InFlight: 3, ReservedAt: now}
		if until := reserve(&a, tc.b, now); until.IsZero() {
			t.Fatalf("%s: a full budget gave a place", tc.name)
		}
		if until := reserve(&a, tc.b, now.Add(tc.later)); !until.IsZero() || a.InFlight != 1 {
			t.Fatalf("%s: lost reservations still held places (in flight %d)", tc.name, a.InFlight)
		}
	}
}

// countingStore counts the write transactions that commit.
type countingStore struct {
	store.Store
	commits atomic.Int64
}

func (c *countingStore) Update(fn func(store.Tx) error) error {
	err := c.Store.Update(fn)
	if err == nil {
		c.commits.Add(1)
	}
	return err
}

// trackerFixture is an Tracker on a real bbolt file.
type trackerFixture struct {
	*Tracker
	st  *countingStore
	l   Limits
	now time.Time
}

// eachMode runs test with trackers of both kinds: for a store one process
// owns, and for a shared one (where every counter is in the store).
func eachMode(t *testing.T, test func(t *testing.T, newTrackerFixture func(*testing.T) *trackerFixture)) {
	for _, shared := range []bool{false, true} {
		name := map[bool]string{false: "one process", true: "shared store"}[shared]
		t.Run(name, func(t *testing.T) {
			test(t, func(t *testing.T) *trackerFixture { return newTrackerFixture(t, shared) })
		})
	}
}

func newTrackerFixture(t *testing.T, shared bool) *trackerFixture {
	t.Helper()
	bolt, err := boltstore.Open(filepath.Join(t.TempDir(), "2fa.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bolt.Close() })
	st := &countingStore{Store: bolt}
	tracker := New(st)
	if shared {
		tracker = NewShared(st)
	}
	return &trackerFixture{
		Tracker: tracker,
		st:      st,
		l: Limits{
			Pair:    Budget{Limit: 3, Window: time.Minute, Lockout: time.Hour},
			Account: Budget{Limit: 7, Window: MaxWindow, Lockout: time.Hour, Consecutive: true},
			Client:  Budget{Limit: 20, Window: time.Minute, Lockout: time.Hour},
		},
		now: time.Unix(1_000_000, 0),
	}
}

// try makes one attempt and settles it as ok says; it reports whether the
// attempt was let in.
func (f *trackerFixture) try(t *testing.T, user string, known bool, ip string, ok bool) bool {
	t.Helper()
	a, _, err := f.Begin(user, known, ip, f.l, f.now)
	if err != nil {
		t.Fatal(err)
	}
	if a == nil {
		return false
	}
	if ok {
		err = a.SignedIn()
	} else {
		err = a.Failed()
	}
	if err != nil {
		t.Fatal(err)
	}
	return true
}

func TestLockoutIsPerNetworkUntilTheAccountCeiling(t *testing.T) {
	eachMode(t, func(t *testing.T, newTrackerFixture func(*testing.T) *trackerFixture) {
		for _, known := range []bool{true, false} {
			f := newTrackerFixture(t)
			for range f.l.Pair.Limit {
				if !f.try(t, "alice", known, "198.51.100.1", false) {
					t.Fatalf("known=%v: refused before the pair budget was used", known)
				}
			}
			if f.try(t, "alice", known, "198.51.100.1", false) {
				t.Fatalf("known=%v: the attacker's network was not locked", known)
			}
			if !f.try(t, "alice", known, "203.0.113.9", true) {
				t.Fatalf("known=%v: a lockout from one network locked the account everywhere", known)
			}
			// From many networks, the account-wide ceiling locks everywhere.
			f2 := newTrackerFixture(t)
			for i := range f2.l.Account.Limit {
				f2.try(t, "alice", known, "198.51.100."+string(rune('a'+i)), false)
			}
			if f2.try(t, "alice", known, "203.0.113.9", true) {
				t.Fatalf("known=%v: %d failures from many networks did not lock the account", known, f2.l.Account.Limit)
			}
		}
	})
}

func TestAccountCeilingHoldsThroughItsLockouts(t *testing.T) {
	eachMode(t, func(t *testing.T, newTrackerFixture func(*testing.T) *trackerFixture) {
		f := newTrackerFixture(t)
		network := 0
		fromNewNetwork := func(ok bool) bool {
			network++
			return f.try(t, "alice", true, fmt.Sprintf("198.51.100.%d", network), ok)
		}
		for range f.l.Account.Limit {
			fromNewNetwork(false)
		}
		failures := f.l.Account.Limit
		for range 3 { // three lockouts end in turn
			if fromNewNetwork(false) {
				t.Fatal("an attempt got in while the account was locked")
			}
			f.now = f.now.Add(f.l.Account.Lockout)
			if !fromNewNetwork(false) {
				t.Fatal("no attempt allowed once the lock ended")
			}
			failures++
		}
		if want := f.l.Account.Limit + 3; failures != want {
			t.Fatalf("%d failures got through, want %d: one per lockout past the ceiling", failures, want)
		}
		// A complete sign-in (after the lock) starts the count over.
		f.now = f.now.Add(f.l.Account.Lockout)
		if !fromNewNetwork(true) {
			t.Fatal("the right attempt was refused after the lock ended")
		}
		for i := range f.l.Account.Limit - 1 {
			if !fromNewNetwork(false) {
				t.Fatalf("failure %d after a sign-in was refused: the count did not start over", i)
			}
		}
		// The window ends 24 hours after the first failure, and the count with it.
		g := newTrackerFixture(t)
		for i := range g.l.Account.Limit {
			g.try(t, "bob", true, fmt.Sprintf("203.0.113.%d", i), false)
		}
		g.now = g.now.Add(MaxWindow)
		for i := range g.l.Account.Limit - 1 {
			if !g.try(t, "bob", true, fmt.Sprintf("192.0.2.%d", i), false) {
				t.Fatalf("failure %d of a new window refused", i)
			}
		}
	})
}

func TestRefusedAttemptsWriteNothingAndLockTheClient(t *testing.T) {
	eachMode(t, func(t *testing.T, newTrackerFixture func(*testing.T) *trackerFixture) {
		for _, known := range []bool{true, false} {
			f := newTrackerFixture(t)
			for range f.l.Pair.Limit {
				f.try(t, "alice", known, "198.51.100.1", false)
			}
			before := f.st.commits.Load()
			refused := 0
			for f.ClientLockedUntil("198.51.100.1", f.now).IsZero() {
				if f.try(t, "alice", known, "198.51.100.1", false) {
					t.Fatalf("known=%v: a locked account let an attempt in", known)
				}
				if refused++; refused > f.l.Client.Limit {
					t.Fatalf("known=%v: %d refusals did not lock the client (budget %d)", known, refused, f.l.Client.Limit)
				}
			}
			if writes := f.st.commits.Load() - before; writes != 0 {
				t.Errorf("known=%v: %d refused attempts committed %d writes, want 0", known, refused, writes)
			}
		}
	})
}

func TestAttemptsBeyondAFullClientBudgetWriteNothing(t *testing.T) {
	eachMode(t, func(t *testing.T, newTrackerFixture func(*testing.T) *trackerFixture) {
		f := newTrackerFixture(t)
		var inFlight []*Attempt
		for i := range f.l.Client.Limit {
			a, _, err := f.Begin(fmt.Sprint("user", i), true, "198.51.100.1", f.l, f.now)
			if err != nil || a == nil {
				t.Fatalf("attempt %d refused (%v)", i, err)
			}
			inFlight = append(inFlight, a)
		}
		before := f.st.commits.Load()
		if a, until, err := f.Begin("alice", true, "198.51.100.1", f.l, f.now); err != nil || a != nil || until.IsZero() {
			t.Fatalf("an attempt beyond the client's budget of attempts in flight: %v, %v", a, err)
		}
		if writes := f.st.commits.Load() - before; writes != 0 {
			t.Errorf("the refused attempt committed %d writes", writes)
		}
		for _, a := range inFlight {
			if err := a.Release(); err != nil {
				t.Fatal(err)
			}
		}
	})
}

func TestUnlockClearsEveryNetwork(t *testing.T) {
	eachMode(t, func(t *testing.T, newTrackerFixture func(*testing.T) *trackerFixture) {
		f := newTrackerFixture(t)
		for _, ip := range []string{"198.51.100.1", "198.51.100.2"} {
			for range f.l.Pair.Limit {
				f.try(t, "alice", true, ip, false)
			}
		}
		if err := f.Unlock("alice"); err != nil {
			t.Fatal(err)
		}
		for _, ip := range []string{"198.51.100.1", "198.51.100.2"} {
			if until, err := f.LockedUntil("alice", true, ip, f.l, f.now); err != nil || !until.IsZero() {
				t.Errorf("after unlock, %s still locked until %v (%v)", ip, until, err)
			}
		}
	})
}

func TestUnfinishedSignInsCountPastTheAllowance(t *testing.T) {
	eachMode(t, func(t *testing.T, newTrackerFixture func(*testing.T) *trackerFixture) {
		f := newTrackerFixture(t)
		f.l.Pair.Limit = 100 // only the account's own counting is under test
		f.l.Account.Limit = 100
		for i := range UnfinishedAllowance + 3 {
			a, _, err := f.Begin("alice", true, "198.51.100.1", f.l, f.now)
			if err != nil || a == nil {
				t.Fatalf("password %d refused (%v)", i, err)
			}
			counted, err := a.PasswordAccepted()
			if err != nil {
				t.Fatal(err)
			}
			if want := i >= UnfinishedAllowance; counted != want {
				t.Fatalf("password %d counted as a failure: %v, want %v", i, counted, want)
			}
		}
		a, _, _ := f.Begin("alice", true, "198.51.100.1", f.l, f.now)
		if err := a.SignedIn(); err != nil {
			t.Fatal(err)
		}
		a, _, _ = f.Begin("alice", true, "198.51.100.1", f.l, f.now)
		if counted, _ := a.PasswordAccepted(); counted {
			t.Fatal("a complete sign-in did not reset the unfinished count")
		}
	})
}

func TestReserveWithoutReadingFirstStillRefusesWithoutWriting(t *testing.T) {
	eachMode(t, func(t *testing.T, newTrackerFixture func(*testing.T) *trackerFixture) {
		f := newTrackerFixture(t)
		for range f.l.Pair.Limit {
			f.try(t, "alice", true, "198.51.100.1", false)
		}
		before := f.st.commits.Load()
		a, until, err := f.Reserve("alice", true, "198.51.100.1", f.l, f.now)
		if err != nil || a != nil || until.IsZero() {
			t.Fatalf("Reserve on a locked account: %v, %v, %v", a, until, err)
		}
		if writes := f.st.commits.Load() - before; writes != 0 {
			t.Errorf("the refused reservation committed %d writes", writes)
		}
	})
}

func TestLocksThatStartAreReported(t *testing.T) {
	eachMode(t, func(t *testing.T, newTrackerFixture func(*testing.T) *trackerFixture) {
		for _, known := range []bool{true, false} {
			var heard []string
			listen := func(f *trackerFixture) { f.OnLock(func(scope string) { heard = append(heard, scope) }) }

			f := newTrackerFixture(t)
			listen(f)
			for range f.l.Pair.Limit {
				f.try(t, "alice", known, "198.51.100.1", false)
			}
			for f.ClientLockedUntil("198.51.100.1", f.now).IsZero() {
				f.try(t, "alice", known, "198.51.100.1", false)
			}
			// Attempts refused by the locks start no lock of their own.
			f.try(t, "alice", known, "198.51.100.1", false)

			g := newTrackerFixture(t)
			listen(g)
			for i := range g.l.Account.Limit {
				g.try(t, "bob", known, fmt.Sprintf("203.0.113.%d", i), false)
			}
			want := []string{LockPair, LockClient, LockAccount}
			if !slices.Equal(heard, want) {
				t.Errorf("known=%v: locks heard %v, want %v", known, heard, want)
			}
		}
	})
}
