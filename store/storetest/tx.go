package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-two-factor/caddy-two-factor/store"
)

// mutateLists changes the WebAuthn fields, the remembered devices and the
// app tokens of u (as alice gives them) in place.
func mutateLists(u *store.User) {
	u.WebAuthnID[0], u.RecoveryDigests[0][0] = 0xff, 0xff
	p := &u.Passkeys[0]
	p.ID[0], p.PublicKey[0], p.AAGUID[0], p.SignCount, p.Transports[0] = 0xff, 0xff, 0xff, 7, "usb"
	u.Passkeys[1].Name = "changed"
	d := &u.RememberedDevices[0]
	d.Digest[0], d.Factors[0], d.Expires, d.Browser = 0xff, 0xff, base, "changed"
	tok := &u.AppTokens[0]
	tok.Digest[0], tok.LastUsed, tok.Name = 0xff, base.Add(time.Hour), "changed"
}

// testCopies changes every value a transaction returned or was given, and
// checks that the store did not change.
func testCopies(t *testing.T, open func(*testing.T) store.Store) {
	s := open(t)
	u, sess := alice(), fullSession()
	a := &store.Attempts{Failures: 1, WindowStart: base}
	meta := []byte{1, 2, 3}
	update(t, s, func(tx store.Tx) error {
		if err := tx.PutUser(u); err != nil {
			return err
		}
		if err := tx.PutSession(sess); err != nil {
			return err
		}
		if err := tx.PutAttempts("k", a); err != nil {
			return err
		}
		return tx.PutMeta("m", meta)
	})
	// Values given to Put methods, after the commit.
	u.TOTP.Secret[0], u.TOTP.RecoveryDigests[0][0], u.TOTP.LastStep = 0xff, 0xff, 99
	mutateLists(u)
	sess.PendingSecret[0], sess.Credential[0], sess.Ceremony[0], sess.RecheckAt = 0xff, 0xff, 0xff, base
	a.Failures = 99
	meta[0] = 0xff
	check := func(when string) {
		t.Helper()
		view(t, s, func(tx store.Tx) error {
			if got, err := tx.User("alice"); err != nil || !reflect.DeepEqual(got, alice()) {
				t.Errorf("%s: User = %+v, %v", when, got, err)
			}
			if got, err := tx.Session(key("full")); err != nil || !reflect.DeepEqual(got, fullSession()) {
				t.Errorf("%s: Session = %+v, %v", when, got, err)
			}
			if got, err := tx.Attempts("k"); err != nil || got.Failures != 1 {
				t.Errorf("%s: Attempts = %+v, %v", when, got, err)
			}
			if got, err := tx.Meta("m"); err != nil || !bytes.Equal(got, []byte{1, 2, 3}) {
				t.Errorf("%s: Meta = %v, %v", when, got, err)
			}
			return nil
		})
	}
	check("after changing what was put")

	// Values returned, in a View and in an Update (which is then
	// committed without putting anything back).
	mutate := func(tx store.Tx) error {
		u, err := tx.User("alice")
		if err != nil {
			return err
		}
		u.TOTP.Secret[0], u.TOTP.RecoveryDigests[1][0], u.TOTP.LastStep, u.SessionID = 0xff, 0xff, 99, "changed"
		mutateLists(u)
		sess, err := tx.Session(key("full"))
		if err != nil {
			return err
		}
		sess.PendingSecret[0], sess.Credential[0], sess.Stage, sess.Ceremony[1] = 0xff, 0xff, store.StagePending, 0xff
		sessions, err := tx.UserSessions("alice")
		if err != nil {
			return err
		}
		for _, sess := range sessions {
			sess.PendingSecret[1] = 0xff
		}
		if err := tx.ForEachSession(func(s *store.Session) error {
			s.Credential[1] = 0xff
			return nil
		}); err != nil {
			return err
		}
		if err := tx.ForEachUser(func(u *store.User) error {
			u.TOTP.Secret[1] = 0xff
			mutateLists(u)
			return nil
		}); err != nil {
			return err
		}
		a, err := tx.Attempts("k")
		if err != nil {
			return err
		}
		a.Failures = 99
		if err := tx.ForEachAttempts("", func(_ string, a *store.Attempts) error {
			a.InFlight = 99
			return nil
		}); err != nil {
			return err
		}
		m, err := tx.Meta("m")
		if err != nil {
			return err
		}
		m[0] = 0xff
		return nil
	}
	view(t, s, mutate)
	check("after changing what a View returned")
	update(t, s, mutate)
	check("after changing what an Update returned")

	// Within one transaction, too: a second read gives the stored value.
	update(t, s, func(tx store.Tx) error {
		if err := mutate(tx); err != nil {
			return err
		}
		if got, err := tx.User("alice"); err != nil || !reflect.DeepEqual(got, alice()) {
			t.Errorf("User read again in the transaction = %+v, %v", got, err)
		}
		if got, err := tx.Meta("m"); err != nil || !bytes.Equal(got, []byte{1, 2, 3}) {
			t.Errorf("Meta read again in the transaction = %v, %v", got, err)
		}
		return nil
	})
}

// testRollback fails transactions after every kind of write: nothing of
// them may be left, whatever was there before.
func testRollback(t *testing.T, open func(*testing.T) store.Store) {
	s := open(t)
	before := func(tx store.Tx) error {
		if err := tx.PutUser(&store.User{Name: "bob", SessionID: "old"}); err != nil {
			return err
		}
		if err := tx.PutSession(session("bob-1", "bob", base.Add(-time.Hour))); err != nil {
			return err
		}
		if err := tx.PutAttempts("user:bob", &store.Attempts{Failures: 1, WindowStart: base}); err != nil {
			return err
		}
		if err := tx.PutAttempts("user:bob\x00net", &store.Attempts{Failures: 1, WindowStart: base.Add(-time.Hour)}); err != nil {
			return err
		}
		return tx.PutMeta("m", []byte("old"))
	}
	update(t, s, before)
	fail := errors.New("fail")
	err := s.Update(func(tx store.Tx) error {
		if err := tx.PutUser(&store.User{Name: "alice"}); err != nil {
			return err
		}
		if err := tx.PutUser(&store.User{Name: "bob", SessionID: "new"}); err != nil {
			return err
		}
		if err := tx.PutSession(session("alice-1", "alice", base)); err != nil {
			return err
		}
		if err := tx.PutSession(session("bob-1", "alice", base.Add(time.Hour))); err != nil {
			return err
		}
		if err := tx.PutMeta("m", []byte("new")); err != nil {
			return err
		}
		if err := tx.PutAttempts("user:alice", &store.Attempts{Failures: 1, WindowStart: base}); err != nil {
			return err
		}
		if _, err := tx.DeleteAttemptsWithPrefix("user:bob"); err != nil {
			return err
		}
		if _, err := tx.DeleteStaleAttempts(base, time.Minute, 10); err != nil {
			return err
		}
		if _, err := tx.DeleteExpiredSessions(base.Add(2*time.Hour), 10); err != nil {
			return err
		}
		if err := tx.DeleteUser("bob"); err != nil {
			return err
		}
		return fail
	})
	if !errors.Is(err, fail) {
		t.Fatalf("Update = %v, want the function's error", err)
	}
	view(t, s, func(tx store.Tx) error {
		if _, err := tx.User("alice"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("user survived a rolled-back transaction: %v", err)
		}
		if u, err := tx.User("bob"); err != nil || u.SessionID != "old" {
			t.Errorf("bob after a rolled-back transaction: %+v, %v", u, err)
		}
		if v, err := tx.Meta("m"); err != nil || string(v) != "old" {
			t.Errorf("meta after a rolled-back transaction: %q, %v", v, err)
		}
		if _, err := tx.Attempts("user:alice"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("counter survived a rolled-back transaction: %v", err)
		}
		for _, k := range []string{"user:bob", "user:bob\x00net"} {
			if _, err := tx.Attempts(k); err != nil {
				t.Errorf("counter %q after a rolled-back transaction: %v", k, err)
			}
		}
		if sess, err := tx.Session(key("bob-1")); err != nil || sess.User != "bob" {
			t.Errorf("bob's session after a rolled-back transaction: %+v, %v", sess, err)
		}
		return nil
	})
	if n := countSessions(t, s); n != (store.SessionCounts{Full: 1}) {
		t.Errorf("%+v sessions after a rolled-back transaction, want 1 full", n)
	}
	if got := viewUserSessionKeys(t, s, "alice"); len(got) != 0 {
		t.Errorf("UserSessions(alice) after a rolled-back transaction: %d sessions", len(got))
	}
	checkConsistent(t, s, "alice", "bob")
}

// testReadsOwnWrites reads, in the transaction that wrote them, what every
// write method changed.
func testReadsOwnWrites(t *testing.T, open func(*testing.T) store.Store) {
	s := open(t)
	update(t, s, func(tx store.Tx) error {
		if err := tx.PutSession(session("old", "alice", base.Add(-time.Hour))); err != nil {
			return err
		}
		if err := tx.PutAttempts("user:alice", &store.Attempts{Failures: 1, WindowStart: base}); err != nil {
			return err
		}
		return tx.PutUser(&store.User{Name: "bob"})
	})
	update(t, s, func(tx store.Tx) error {
		must := func(what string, err error) {
			t.Helper()
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
		}
		must("PutMeta", tx.PutMeta("m", []byte("v")))
		if v, err := tx.Meta("m"); err != nil || string(v) != "v" {
			t.Errorf("Meta after PutMeta = %q, %v", v, err)
		}

		must("PutUser", tx.PutUser(&store.User{Name: "alice", SessionID: "sid"}))
		if u, err := tx.User("alice"); err != nil || u.SessionID != "sid" {
			t.Errorf("User after PutUser = %+v, %v", u, err)
		}
		must("DeleteUser", tx.DeleteUser("bob"))
		if _, err := tx.User("bob"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("User after DeleteUser: %v", err)
		}
		var names []string
		must("ForEachUser", tx.ForEachUser(func(u *store.User) error {
			names = append(names, u.Name)
			return nil
		}))
		if !slices.Equal(names, []string{"alice"}) {
			t.Errorf("ForEachUser after PutUser and DeleteUser = %q", names)
		}

		must("PutSession", tx.PutSession(session("new", "alice", base)))
		if sess, err := tx.Session(key("new")); err != nil || sess.User != "alice" {
			t.Errorf("Session after PutSession = %+v, %v", sess, err)
		}
		if got := userSessionKeys(t, tx, "alice"); !slices.Equal(got, keysOf("old", "new")) {
			t.Errorf("UserSessions after PutSession = %d sessions, want 2", len(got))
		}
		if n, err := tx.CountSessions(); err != nil || n.Total() != 2 {
			t.Errorf("CountSessions after PutSession = %+v, %v; want 2", n, err)
		}
		n, err := tx.DeleteExpiredSessions(base.Add(-time.Minute), 10)
		must("DeleteExpiredSessions", err)
		if n != 1 {
			t.Errorf("DeleteExpiredSessions = %d, want 1", n)
		}
		if _, err := tx.Session(key("old")); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Session after DeleteExpiredSessions: %v", err)
		}
		must("PutSession", tx.PutSession(session("new", "bob", base)))
		if got := userSessionKeys(t, tx, "alice"); len(got) != 0 {
			t.Errorf("UserSessions(alice) after moving the session = %d sessions", len(got))
		}
		if got := userSessionKeys(t, tx, "bob"); !slices.Equal(got, keysOf("new")) {
			t.Errorf("UserSessions(bob) after moving the session = %d sessions", len(got))
		}
		var seen []store.SessionKey
		must("ForEachSession", tx.ForEachSession(func(s *store.Session) error {
			seen = append(seen, s.Key)
			return nil
		}))
		if !slices.Equal(seen, keysOf("new")) {
			t.Errorf("ForEachSession in the transaction saw %d sessions, want 1", len(seen))
		}
		must("DeleteSession", tx.DeleteSession(key("new")))
		if _, err := tx.Session(key("new")); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Session after DeleteSession: %v", err)
		}
		if n, err := tx.CountSessions(); err != nil || n.Total() != 0 {
			t.Errorf("CountSessions after DeleteSession = %+v, %v; want 0", n, err)
		}

		must("PutAttempts", tx.PutAttempts("user:alice\x00net", &store.Attempts{Failures: 2, WindowStart: base}))
		var keys []string
		must("ForEachAttempts", tx.ForEachAttempts("user:alice", func(k string, _ *store.Attempts) error {
			keys = append(keys, k)
			return nil
		}))
		if !slices.Equal(keys, []string{"user:alice", "user:alice\x00net"}) {
			t.Errorf("ForEachAttempts after PutAttempts = %q", keys)
		}
		must("DeleteAttempts", tx.DeleteAttempts("user:alice"))
		if _, err := tx.Attempts("user:alice"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Attempts after DeleteAttempts: %v", err)
		}
		if n, err := tx.DeleteAttemptsWithPrefix("user:"); err != nil || n != 1 {
			t.Errorf("DeleteAttemptsWithPrefix after DeleteAttempts = %d, %v; want the 1 left", n, err)
		}
		must("PutAttempts", tx.PutAttempts("user:alice", &store.Attempts{Failures: 1, WindowStart: base.Add(-time.Hour)}))
		if n, err := tx.DeleteStaleAttempts(base, time.Minute, 10); err != nil || n != 1 {
			t.Errorf("DeleteStaleAttempts after PutAttempts = %d, %v; want 1", n, err)
		}
		if _, err := tx.Attempts("user:alice"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Attempts after DeleteStaleAttempts: %v", err)
		}
		return nil
	})
	checkConsistent(t, s, "alice", "bob")
}

// race runs n copies of fn at once and waits for them.
func race(n int, fn func(i int)) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			fn(i)
		})
	}
	close(start)
	wg.Wait()
}

func testConcurrentIncrement(t *testing.T, open func(*testing.T) store.Store) {
	s := open(t)
	const writers = 16
	race(writers, func(int) {
		err := s.Update(func(tx store.Tx) error {
			a, err := tx.Attempts("user:alice")
			if errors.Is(err, store.ErrNotFound) {
				a, err = &store.Attempts{WindowStart: base}, nil
			}
			if err != nil {
				return err
			}
			a.Failures++
			return tx.PutAttempts("user:alice", a)
		})
		if err != nil {
			t.Errorf("Update: %v", err)
		}
	})
	view(t, s, func(tx store.Tx) error {
		a, err := tx.Attempts("user:alice")
		if err == nil && a.Failures != writers {
			t.Errorf("Failures = %d after %d increments", a.Failures, writers)
		}
		return err
	})
}

// acceptStep is the compare-and-set the sign-in handler does: it accepts
// step for user unless a step at or after it was accepted already.
func acceptStep(s store.Store, user string, step uint64) (accepted bool, err error) {
	err = s.Update(func(tx store.Tx) error {
		accepted = false // fn may run more than once
		u, err := tx.User(user)
		if err != nil {
			return err
		}
		if u.TOTP == nil || step <= u.TOTP.LastStep {
			return nil
		}
		u.TOTP.LastStep = step
		if err := tx.PutUser(u); err != nil {
			return err
		}
		accepted = true
		return nil
	})
	return accepted, err
}

func testConcurrentTOTPStep(t *testing.T, open func(*testing.T) store.Store) {
	s := open(t)
	update(t, s, func(tx store.Tx) error {
		return tx.PutUser(&store.User{Name: "alice", TOTP: &store.Enrollment{Secret: []byte{1}, LastStep: 100}})
	})
	const writers = 16
	var wins atomic.Int32
	race(2*writers, func(i int) {
		if i%2 == 1 { // readers alongside the writers
			err := s.View(func(tx store.Tx) error {
				u, err := tx.User("alice")
				if err == nil && u.TOTP.LastStep != 100 && u.TOTP.LastStep != 101 {
					t.Errorf("reader saw LastStep %d", u.TOTP.LastStep)
				}
				return err
			})
			if err != nil {
				t.Errorf("View: %v", err)
			}
			return
		}
		ok, err := acceptStep(s, "alice", 101)
		if err != nil {
			t.Errorf("acceptStep: %v", err)
		}
		if ok {
			wins.Add(1)
		}
	})
	if n := wins.Load(); n != 1 {
		t.Errorf("%d of %d writers accepted the same step, want exactly 1", n, writers)
	}
}

func testConcurrentRecoveryCode(t *testing.T, open func(*testing.T) store.Store) {
	s := open(t)
	digests := [][]byte{[]byte("digest-1"), []byte("digest-2"), []byte("digest-3")}
	update(t, s, func(tx store.Tx) error {
		return tx.PutUser(&store.User{Name: "alice", TOTP: &store.Enrollment{Secret: []byte{1}, RecoveryDigests: digests}})
	})
	const writers = 16
	var wins [3]atomic.Int32
	race(writers, func(i int) {
		want := digests[i%2] // two codes, each raced by half the writers
		used := false
		err := s.Update(func(tx store.Tx) error {
			used = false
			u, err := tx.User("alice")
			if err != nil {
				return err
			}
			at := slices.IndexFunc(u.TOTP.RecoveryDigests, func(d []byte) bool { return bytes.Equal(d, want) })
			if at < 0 {
				return nil
			}
			u.TOTP.RecoveryDigests = slices.Delete(u.TOTP.RecoveryDigests, at, at+1)
			used = true
			return tx.PutUser(u)
		})
		if err != nil {
			t.Errorf("Update: %v", err)
		}
		if used {
			wins[i%2].Add(1)
		}
	})
	for i := range 2 {
		if n := wins[i].Load(); n != 1 {
			t.Errorf("recovery code %d used %d times, want exactly 1", i+1, n)
		}
	}
	view(t, s, func(tx store.Tx) error {
		u, err := tx.User("alice")
		if err == nil && !reflect.DeepEqual(u.TOTP.RecoveryDigests, digests[2:]) {
			t.Errorf("digests left: %q, want only the unused one", u.TOTP.RecoveryDigests)
		}
		return err
	})
}

// testConcurrentStepsSerialise races writers that accept steps 1 to 8: the
// transactions that committed must form one chain from the first value to
// the last, each having read what the one before wrote, which is what
// running one at a time gives (a lost update shows as two commits that
// read the same value).
func testConcurrentStepsSerialise(t *testing.T, open func(*testing.T) store.Store) {
	s := open(t)
	update(t, s, func(tx store.Tx) error {
		return tx.PutUser(&store.User{Name: "alice", TOTP: &store.Enrollment{Secret: []byte{1}}})
	})
	type commit struct{ read, wrote uint64 }
	var mu sync.Mutex
	var commits []commit
	const writers = 24
	race(writers, func(i int) {
		step := uint64(i%8 + 1)
		var c *commit
		err := s.Update(func(tx store.Tx) error {
			c = nil
			u, err := tx.User("alice")
			if err != nil || step <= u.TOTP.LastStep {
				return err
			}
			c = &commit{u.TOTP.LastStep, step}
			u.TOTP.LastStep = step
			return tx.PutUser(u)
		})
		if err != nil {
			t.Errorf("Update: %v", err)
			return
		}
		if c != nil {
			mu.Lock()
			commits = append(commits, *c)
			mu.Unlock()
		}
	})
	slices.SortFunc(commits, func(a, b commit) int { return int(a.read) - int(b.read) })
	var last uint64
	for _, c := range commits {
		if c.read != last || c.wrote <= c.read {
			t.Fatalf("committed transactions %v do not form a chain from 0", commits)
		}
		last = c.wrote
	}
	view(t, s, func(tx store.Tx) error {
		u, err := tx.User("alice")
		if err == nil && (u.TOTP.LastStep != last || last != 8) {
			t.Errorf("LastStep = %d; the chain of commits ends at %d, want 8", u.TOTP.LastStep, last)
		}
		return err
	})
}

// testConcurrentSessions runs writers on distinct sessions, movers of one
// session between users and a cleaner at once; the store's views of its
// sessions must agree at the end.
func testConcurrentSessions(t *testing.T, open func(*testing.T) store.Store) {
	s := open(t)
	const writers = 6
	users := []string{"user0", "user1", "user2"}
	race(writers+2, func(w int) {
		switch {
		case w < writers:
			for i := range 15 {
				sess := session(fmt.Sprintf("w%d-%d", w, i), users[w%3], base.Add(time.Duration(i-5)*time.Minute))
				if err := s.Update(func(tx store.Tx) error { return tx.PutSession(sess) }); err != nil {
					t.Errorf("PutSession: %v", err)
					return
				}
			}
		case w == writers:
			for i := range 15 {
				sess := session("mover", users[i%3], base.Add(time.Hour))
				if err := s.Update(func(tx store.Tx) error { return tx.PutSession(sess) }); err != nil {
					t.Errorf("PutSession: %v", err)
					return
				}
			}
		default:
			for range 15 {
				if err := s.Update(func(tx store.Tx) error {
					_, err := tx.DeleteExpiredSessions(base, 5)
					return err
				}); err != nil {
					t.Errorf("DeleteExpiredSessions: %v", err)
					return
				}
			}
		}
	})
	deleteExpired(t, s, base, 1000)
	checkConsistent(t, s, users...)
	// Each writer left 9 live sessions (i = 6..14), and the mover one.
	if n := countSessions(t, s); n.Total() != writers*9+1 {
		t.Errorf("CountSessions = %+v, want %d in all", n, writers*9+1)
	}
	if got := viewUserSessionKeys(t, s, users[14%3]); !slices.Contains(got, key("mover")) {
		t.Error("the moved session is not with the user it was last put under")
	}
}
