package twofactor

import (
	"errors"
	"net/netip"
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
	// busyRetry is how long a client is asked to wait when attempts already
	// in flight use up what is left of a budget.
	busyRetry = time.Second
	// decoyKey is a counter written for names that are not accounts, so an
	// attempt on one costs the same database writes as one on an account.
	decoyKey = "decoy"
)

// limits are one config's throttling settings.
type limits struct {
	maxAccount int
	maxIP      int
	window     time.Duration
	lockout    time.Duration
}

// attemptTracker counts sign-in attempts against two budgets: the account's
// and the client IP's. Counters of real accounts are kept in the store, so
// neither a restart, a new sign-in flow nor a new IP resets them. Names
// that are not accounts are counted alike, in memory (bounded), so they
// lock alike and a lockout tells nothing about which accounts exist.
// Client IPs are counted in memory too, IPv6 by /64, since one host
// usually holds a whole /64.
//
// An attempt is counted as a failure before it is checked ([begin]) and
// given back if it turns out right ([attempt.succeeded]): so parallel
// attempts cannot all pass the lock check before any failure is recorded.
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

// ipKey is the counter key of a client address: the address itself, or
// its /64 for IPv6.
func ipKey(ip string) string {
	addr, err := netip.ParseAddr(ip)
	if err != nil || !addr.Is6() || addr.Is4In6() {
		return ip
	}
	prefix, err := addr.Prefix(64)
	if err != nil {
		return ip
	}
	return prefix.String()
}

// reserve takes one place in a's budget of limit attempts at now. It
// returns when the next attempt may be made instead if the budget is
// locked, or used up by failures and attempts still in flight. A new
// window forgets both: an attempt never takes that long, so one still
// counted then was lost (a crash between reserve and settle).
func reserve(a *store.Attempts, limit int, l limits, now time.Time) time.Time {
	if now.Before(a.LockedUntil) {
		return a.LockedUntil
	}
	if now.Sub(a.WindowStart) >= l.window {
		a.Failures, a.InFlight, a.WindowStart = 0, 0, now
	}
	if a.Failures+a.InFlight >= limit {
		return now.Add(busyRetry)
	}
	a.InFlight++
	return time.Time{}
}

// settle ends an attempt reserved in a. A wrong one becomes a failure, and
// limit failures lock the budget; attempts still in flight never do.
func settle(a *store.Attempts, ok bool, limit int, l limits, now time.Time) {
	if a.InFlight > 0 {
		a.InFlight--
	}
	if ok {
		return
	}
	a.Failures++
	if a.Failures >= limit {
		a.LockedUntil = now.Add(l.lockout)
		a.Failures, a.WindowStart = 0, now
	}
}

// attempt is one sign-in attempt in flight.
type attempt struct {
	t     *attemptTracker
	user  string
	known bool
	ip    string
	l     limits
	now   time.Time
	done  bool
}

// begin reserves an attempt by user from ip. If the account or the client
// may not try now, it returns when they may instead, and no attempt.
func (t *attemptTracker) begin(user string, known bool, ip string, l limits, now time.Time) (*attempt, time.Time, error) {
	a := &attempt{t: t, user: user, known: known, ip: ipKey(ip), l: l, now: now}
	if until := t.ipLockedUntil(ip, now); !until.IsZero() {
		return nil, until, nil
	}
	var until time.Time
	err := a.updateAccount(func(c *store.Attempts) { until = reserve(c, l.maxAccount, l, now) })
	if err != nil || !until.IsZero() {
		return nil, until, err
	}
	t.mu.Lock()
	if !known {
		until = reserve(t.counter(t.unknown, user, now), l.maxAccount, l, now)
	}
	if until.IsZero() {
		if until = reserve(t.counter(t.ips, a.ip, now), l.maxIP, l, now); !until.IsZero() && !known {
			settle(t.unknown[user], true, l.maxAccount, l, now) // give its place back
		}
	}
	t.mu.Unlock()
	if until.IsZero() {
		return a, time.Time{}, nil
	}
	if known { // give the account's place back
		err = a.updateAccount(func(c *store.Attempts) { settle(c, true, l.maxAccount, l, now) })
	}
	return nil, until, err
}

// ipLockedUntil returns when a locked client IP may try again, or the zero
// time. It reads memory only, and tells nothing about any account, so it
// can turn a client away before any costly work.
func (t *attemptTracker) ipLockedUntil(ip string, now time.Time) time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	if c := t.ips[ipKey(ip)]; c != nil && now.Before(c.LockedUntil) {
		return c.LockedUntil
	}
	return time.Time{}
}

// failed settles a wrong attempt: it stays counted, and a full budget locks.
func (a *attempt) failed() error { return a.settle(false) }

// release gives the attempt's place back unless it is settled already.
// Handlers defer it, so an attempt that ends any other way than failed
// (a right password, a form error, a lost session) is not counted.
func (a *attempt) release() error {
	if a.done {
		return nil
	}
	return a.settle(true)
}

// signedIn settles an attempt that completed a sign-in: the account's
// failures are forgotten, and the client's place is given back.
func (a *attempt) signedIn() error {
	a.done = true
	a.settleMemory(true)
	return a.t.succeed(a.user)
}

func (a *attempt) settle(ok bool) error {
	a.done = true
	err := a.updateAccount(func(c *store.Attempts) { settle(c, ok, a.l.maxAccount, a.l, a.now) })
	a.settleMemory(ok)
	return err
}

func (a *attempt) settleMemory(ok bool) {
	a.t.mu.Lock()
	defer a.t.mu.Unlock()
	if c := a.t.unknown[a.user]; c != nil && !a.known {
		settle(c, ok, a.l.maxAccount, a.l, a.now)
	}
	if c := a.t.ips[a.ip]; c != nil {
		settle(c, ok, a.l.maxIP, a.l, a.now)
	}
}

// updateAccount changes the account's stored counter in one transaction.
// For a name that is no account, it writes the decoy counter instead, so
// both cost the same.
func (a *attempt) updateAccount(change func(*store.Attempts)) error {
	key := decoyKey
	if a.known {
		key = accountKey(a.user)
	}
	return a.t.store.Update(func(tx store.Tx) error {
		c, err := tx.Attempts(key)
		if errors.Is(err, store.ErrNotFound) {
			c, err = &store.Attempts{WindowStart: a.now}, nil
		}
		if err != nil {
			return err
		}
		if a.known {
			change(c)
		} else {
			// The decoy counts nothing; it only costs a write.
			scratch := *c
			change(&scratch)
			c.WindowStart = a.now
		}
		return tx.PutAttempts(key, c)
	})
}

// counter returns the in-memory counter of key in m, making room for it if
// m is full; t.mu must be held.
func (t *attemptTracker) counter(m map[string]*store.Attempts, key string, now time.Time) *store.Attempts {
	c := m[key]
	if c == nil {
		if len(m) >= memoryCounters {
			evictOne(m, now)
		}
		c = &store.Attempts{WindowStart: now}
		m[key] = c
	}
	return c
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
