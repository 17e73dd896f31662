package twofactor

import (
	"errors"
	"sync"
	"time"

	"github.com/caddy-two-factor/caddy-two-factor/store"
)

const (
	// maxAttemptWindow bounds attempt_window and lockout, so the sweep can
	// tell a stale counter without knowing every config.
	maxAttemptWindow = 24 * time.Hour
	// memoryCounters bounds the counters kept in memory for names that are
	// not accounts and for client IPs, so random names or addresses cannot
	// grow memory without limit.
	memoryCounters = 10000
)

// limits are one config's throttling settings.
type limits struct {
	maxAccount int
	maxIP      int
	window     time.Duration
	lockout    time.Duration
}

// attemptTracker counts failed passwords and codes. Counters of real
// accounts are kept in the store, so neither a restart, a new sign-in flow
// nor a new IP resets them. Names that are not accounts are counted the
// same way, in memory, so they lock alike and a lockout tells nothing about
// which accounts exist; client IPs are counted in memory too.
type attemptTracker struct {
	store   store.Store
	mu      sync.Mutex
	unknown map[string]*store.Attempts
	ips     map[string]*store.Attempts
}

func newAttemptTracker(st store.Store) *attemptTracker {
	return &attemptTracker{
		store:   st,
		unknown: make(map[string]*store.Attempts),
		ips:     make(map[string]*store.Attempts),
	}
}

func accountKey(user string) string { return "user:" + user }

// lockedUntil returns when the account (or the client IP) may try again,
// or the zero time if it may try now.
func (t *attemptTracker) lockedUntil(user string, known bool, ip string, now time.Time) (time.Time, error) {
	var until time.Time
	if known {
		err := t.store.View(func(tx store.Tx) error {
			a, err := tx.Attempts(accountKey(user))
			if err == nil && now.Before(a.LockedUntil) {
				until = a.LockedUntil
			}
			if errors.Is(err, store.ErrNotFound) {
				return nil
			}
			return err
		})
		if err != nil {
			return time.Time{}, err
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if !known {
		if a := t.unknown[user]; a != nil && now.Before(a.LockedUntil) {
			until = later(until, a.LockedUntil)
		}
	}
	if a := t.ips[ip]; a != nil && now.Before(a.LockedUntil) {
		until = later(until, a.LockedUntil)
	}
	return until, nil
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// count adds one failure to a, starting a new window if the old one is
// over, and locks it once max failures fall in one window.
func count(a *store.Attempts, max int, l limits, now time.Time) {
	if now.Sub(a.WindowStart) >= l.window {
		a.Failures = 0
		a.WindowStart = now
	}
	a.Failures++
	if a.Failures >= max {
		a.LockedUntil = now.Add(l.lockout)
		a.Failures = 0
		a.WindowStart = now
	}
}

// fail records a failure for the account and the client IP.
func (t *attemptTracker) fail(user string, known bool, ip string, l limits, now time.Time) error {
	if known {
		err := t.store.Update(func(tx store.Tx) error {
			a, err := tx.Attempts(accountKey(user))
			if errors.Is(err, store.ErrNotFound) {
				a, err = &store.Attempts{WindowStart: now}, nil
			}
			if err != nil {
				return err
			}
			count(a, l.maxAccount, l, now)
			return tx.PutAttempts(accountKey(user), a)
		})
		if err != nil {
			return err
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if !known {
		t.countInMemory(t.unknown, user, l.maxAccount, l, now)
	}
	t.countInMemory(t.ips, ip, l.maxIP, l, now)
	return nil
}

func (t *attemptTracker) countInMemory(m map[string]*store.Attempts, key string, max int, l limits, now time.Time) {
	a := m[key]
	if a == nil {
		if len(m) >= memoryCounters {
			evictOne(m, now)
		}
		a = &store.Attempts{WindowStart: now}
		m[key] = a
	}
	count(a, max, l, now)
}

// evictOne drops a counter that is not locking anything if one is found
// among the first few visited, and otherwise any counter.
func evictOne(m map[string]*store.Attempts, now time.Time) {
	var victim string
	visited := 0
	for k, a := range m {
		victim = k
		if now.After(a.LockedUntil) || visited > 64 {
			break
		}
		visited++
	}
	delete(m, victim)
}

// succeed clears the account's failures after a complete sign-in.
func (t *attemptTracker) succeed(user string) error {
	return t.store.Update(func(tx store.Tx) error {
		return tx.DeleteAttempts(accountKey(user))
	})
}

// unlock clears an account's lock and failures.
func (t *attemptTracker) unlock(user string) error {
	t.mu.Lock()
	delete(t.unknown, user)
	t.mu.Unlock()
	return t.succeed(user)
}
