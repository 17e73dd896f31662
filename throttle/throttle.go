// Package throttle keeps the attempt budgets of two-factor sign-in: how
// many wrong passwords and codes an account may have from one client
// network and from everywhere, and a client network over every account,
// before a lockout; and a bound on concurrent password hashing. It decides
// and counts; answering the client is its caller's business.
package throttle

import (
	"errors"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddy-two-factor/caddy-two-factor/store"
)

const (
	// MaxWindow bounds attempt_window and lockout, so the sweep can
	// tell a stale counter without knowing every config. It is also the
	// window of the account-wide budget (max_account_attempts).
	MaxWindow = 24 * time.Hour
	// maxMemoryCounters bounds the counters kept in memory for names that are
	// not accounts and for client IPs, so random names or addresses cannot
	// grow memory without limit.
	maxMemoryCounters = 10000
	// busyRetry is how long a client is asked to wait when attempts already
	// in flight use up what is left of a budget.
	busyRetry = time.Second
	// MaxAttemptTime bounds how long an attempt holds its place: waiting
	// for a hashing slot, hashing and the store take seconds at most.
	MaxAttemptTime = time.Minute
	// UnfinishedAllowance is how many right passwords an account may see
	// within the account window without a completed second factor before
	// each further one counts as a failure: someone who has the password
	// but not the authenticator cannot open pending sessions for ever.
	UnfinishedAllowance = 10
	// decoyKey is a counter written for names that are not accounts, so an
	// attempt on one costs the same database work as one on an account.
	decoyKey = "decoy"
)

// Budget is one kind of limit: limit failures within window lock for
// lockout.
type Budget struct {
	Limit   int
	Window  time.Duration
	Lockout time.Duration
	// consecutive budgets keep their failures through a lock, until the
	// window ends or a sign-in completes: past the limit, one attempt at
	// a time may try when the lock ends, and its failure locks again. So
	// the account-wide ceiling is a ceiling per window, not per lockout.
	Consecutive bool
}

// Limits are one config's throttling settings.
type Limits struct {
	// Pair is the budget of one account from one client network
	// (max_attempts in attempt_window).
	Pair Budget
	// Account is the budget of one account from every network together
	// (max_account_attempts in MaxWindow, consecutive).
	Account Budget
	// Client is the budget of one client network over every account
	// (max_ip_attempts in attempt_window).
	Client Budget
}

// Tracker counts sign-in attempts against three budgets: the
// account's from the client's network, the account's from everywhere (a
// higher ceiling), and the client network's over every account.
//
// A lockout therefore stays where the failures come from: an attacker who
// knows a user name locks that user out of the attacker's own network, not
// everywhere, until the account-wide ceiling is reached (NIST SP 800-63B
// allows at most 100 consecutive failures per account).
//
// Counters of real accounts are kept in the store, so neither a restart, a
// new sign-in flow nor a new IP resets them. Names that are not accounts
// are counted alike, so they lock alike and a lockout tells nothing about
// which accounts exist. Client networks are an IPv4 address, or an IPv6
// /64, since one host usually holds a whole /64.
//
// Where the others are kept depends on the store. On a store one process
// owns ([New]: bbolt), names that are not accounts and client networks
// are counted in memory (bounded), so random names grow neither memory nor
// the file, and a decoy counter is written in the store for a name that is
// not an account, so it costs what an account costs. On a store several
// instances share ([NewShared]: Redis), every counter is in the store,
// where it expires, so the budgets and the likeness of unknown names hold
// across instances; only refusals are counted in memory, per instance.
//
// An attempt is counted as a failure before it is checked ([Tracker.Begin]) and
// given back if it turns out right: so parallel attempts cannot all pass
// the lock check before any failure is recorded. An attempt that is
// refused (a budget is locked or used up, or hashing is busy) writes
// nothing to the store: it is decided by a read, and counts as a failure
// of the client's budget in memory, so a client that keeps knocking on a
// locked account soon locks itself out without costing the store a write.
type Tracker struct {
	store store.Store
	// shared keeps every counter in the store (see NewShared).
	shared bool
	mu     sync.Mutex
	// unknown counts names that are not accounts, and clients counts
	// client networks, in memory (clients: refusals only, when shared).
	unknown map[string]*store.Attempts
	clients map[string]*store.Attempts
	// onLock, if set, hears each lock that starts (see OnLock).
	onLock atomic.Pointer[func(scope string)]
}

// The scopes of a lock, as OnLock names them.
const (
	// LockPair: one account, from one client network (Limits.Pair).
	LockPair = "account_network"
	// LockAccount: one account, from every network (Limits.Account).
	LockAccount = "account"
	// LockClient: one client network, over every account (Limits.Client).
	LockClient = "client"
)

// OnLock makes fn hear every lock that starts from now on, with its scope
// (a Lock constant), once the failure that started it is counted; fn must
// not block. A shared store's locks are heard by the instance whose
// attempt started them.
func (t *Tracker) OnLock(fn func(scope string)) { t.onLock.Store(&fn) }

// lockSet is the budgets a settlement locked.
type lockSet uint8

const (
	lockedPair lockSet = 1 << iota
	lockedAccount
	lockedClient
)

var lockScopes = [...]struct {
	bit   lockSet
	scope string
}{{lockedPair, LockPair}, {lockedAccount, LockAccount}, {lockedClient, LockClient}}

// report tells OnLock's function of the locks in s.
func (t *Tracker) report(s lockSet) {
	fn := t.onLock.Load()
	if s == 0 || fn == nil {
		return
	}
	for _, l := range lockScopes {
		if s&l.bit != 0 {
			(*fn)(l.scope)
		}
	}
}

// New returns a tracker for a store that one process owns.
func New(st store.Store) *Tracker {
	return &Tracker{
		store:   st,
		unknown: make(map[string]*store.Attempts),
		clients: make(map[string]*store.Attempts),
	}
}

// NewShared returns a tracker for a store that several instances share:
// the counters of names that are not accounts and of client networks are
// kept in the store too.
func NewShared(st store.Store) *Tracker {
	t := New(st)
	t.shared = true
	return t
}

// AccountKey is the counter key of an account's budget from everywhere;
// PairKey that of its budget from one client network.
func AccountKey(user string) string { return "user:" + user }

func PairKey(user, network string) string { return AccountKey(user) + "\x00" + network }

// ClientKey is the counter key of a client network's budget, in a shared
// store.
func ClientKey(network string) string { return "client:" + network }

// NetworkOf is the client network of an address: the address itself, or
// its /64 for IPv6.
func NetworkOf(ip string) string {
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

// refusal returns when the next attempt may be made if the budget b of a
// is locked or used up by failures and attempts in flight at now, and the
// zero time otherwise. A new window forgets both: an attempt never takes
// that long, so one still counted then was lost (a crash between reserve
// and settle).
func refusal(a *store.Attempts, b Budget, now time.Time) time.Time {
	if now.Before(a.LockedUntil) {
		return a.LockedUntil
	}
	if now.Sub(a.WindowStart) >= b.Window {
		return time.Time{}
	}
	inFlight := inFlight(a, now)
	if a.Failures+inFlight >= b.Limit && (!b.Consecutive || a.Failures < b.Limit || inFlight > 0) {
		return now.Add(busyRetry)
	}
	return time.Time{}
}

// inFlight is how many of a's places are held by attempts in flight at
// now. None is held longer than MaxAttemptTime: such places were lost
// (a crash, or a store failure when the attempt was settled), and a
// budget whose window is a day long must not stay full of them.
func inFlight(a *store.Attempts, now time.Time) int {
	if now.Sub(a.ReservedAt) > MaxAttemptTime {
		return 0
	}
	return a.InFlight
}

// reserve takes one place in a's budget b at now, or returns when the
// next attempt may be made instead (see refusal).
func reserve(a *store.Attempts, b Budget, now time.Time) time.Time {
	if until := refusal(a, b, now); !until.IsZero() {
		return until
	}
	if now.Sub(a.WindowStart) >= b.Window {
		a.Failures, a.InFlight, a.Unfinished, a.WindowStart = 0, 0, 0, now
	}
	a.InFlight = inFlight(a, now) + 1
	a.ReservedAt = now
	return time.Time{}
}

// settle ends an attempt reserved in a. A wrong one becomes a failure, and
// a full budget locks; attempts still in flight never do. It reports
// whether a lock started.
func settle(a *store.Attempts, ok bool, b Budget, now time.Time) bool {
	if a.InFlight > 0 {
		a.InFlight--
	}
	return !ok && fail(a, b, now)
}

// fail counts one failure in a, locking it when the budget is used up,
// and reports whether it did.
func fail(a *store.Attempts, b Budget, now time.Time) bool {
	if now.Sub(a.WindowStart) >= b.Window {
		a.Failures, a.WindowStart = 0, now
	}
	a.Failures++
	if a.Failures < b.Limit {
		return false
	}
	a.LockedUntil = now.Add(b.Lockout)
	if !b.Consecutive {
		a.Failures, a.WindowStart = 0, now
	}
	return true
}

// Attempt is one sign-in attempt in flight.
type Attempt struct {
	t       *Tracker
	user    string
	known   bool
	network string
	l       Limits
	now     time.Time
	done    bool
}

// counters are the budgets in the store an attempt is counted in: the
// account's two, and in a shared store the client's (nil otherwise).
type counters struct{ pair, account, client *store.Attempts }

func (c counters) refusal(l Limits, now time.Time) time.Time {
	if until := refusal(c.pair, l.Pair, now); !until.IsZero() {
		return until
	}
	if c.client != nil {
		if until := refusal(c.client, l.Client, now); !until.IsZero() {
			return until
		}
	}
	return refusal(c.account, l.Account, now)
}

// reserve takes a place in each of c's budgets.
func (c counters) reserve(l Limits, now time.Time) {
	reserve(c.pair, l.Pair, now)
	reserve(c.account, l.Account, now)
	if c.client != nil {
		reserve(c.client, l.Client, now)
	}
}

// settle settles an attempt in each of c's budgets, and returns those
// it locked.
func (c counters) settle(ok bool, l Limits, now time.Time) lockSet {
	var s lockSet
	if settle(c.pair, ok, l.Pair, now) {
		s |= lockedPair
	}
	if settle(c.account, ok, l.Account, now) {
		s |= lockedAccount
	}
	if c.client != nil && settle(c.client, ok, l.Client, now) {
		s |= lockedClient
	}
	return s
}

// errRefused rolls back a reservation that a budget refused.
var errRefused = errors.New("attempt refused")

// LockedUntil reports, reading only, whether user may not try from ip at
// now: it returns when they may, or the zero time. Callers use it to turn
// an attempt away before costly work (a password hash).
func (t *Tracker) LockedUntil(user string, known bool, ip string, l Limits, now time.Time) (time.Time, error) {
	network := NetworkOf(ip)
	t.mu.Lock()
	until := time.Time{}
	if c := t.clients[network]; c != nil {
		until = refusal(c, l.Client, now) // locked, or used up by attempts in flight
	}
	t.mu.Unlock()
	if !until.IsZero() {
		return until, nil
	}
	a := &Attempt{t: t, user: user, known: known, network: network, l: l, now: now}
	err := a.viewAccount(func(c counters) { until = c.refusal(l, now) })
	return until, err
}

// Begin reserves an attempt by user from ip. If the account or the client
// may not try now, it returns when they may instead, and no attempt; the
// refusal is counted against the client, and nothing is written to the
// store.
func (t *Tracker) Begin(user string, known bool, ip string, l Limits, now time.Time) (*Attempt, time.Time, error) {
	until, err := t.LockedUntil(user, known, ip, l, now)
	if err != nil {
		return nil, time.Time{}, err
	}
	if !until.IsZero() {
		t.Refused(ip, l, now)
		return nil, until, nil
	}
	return t.Reserve(user, known, ip, l, now)
}

// Reserve is Begin for a caller that has just asked LockedUntil: it takes
// the attempt's places without reading the budgets first again. Taking a
// place checks its budget all the same, and a refusal found then writes
// nothing.
func (t *Tracker) Reserve(user string, known bool, ip string, l Limits, now time.Time) (*Attempt, time.Time, error) {
	a := &Attempt{t: t, user: user, known: known, network: NetworkOf(ip), l: l, now: now}
	until, err := a.reserveAccount()
	if err != nil {
		return nil, time.Time{}, err
	}
	if until.IsZero() && t.shared {
		return a, time.Time{}, nil // the client's place is taken in the store
	}
	if until.IsZero() {
		t.mu.Lock()
		until = reserve(t.counter(t.clients, a.network, now), l.Client, now)
		t.mu.Unlock()
		if until.IsZero() {
			return a, time.Time{}, nil
		}
		// Parallel attempts filled the client's budget since LockedUntil
		// (rare): give the account's place back.
		if err := a.settleAccount(true); err != nil {
			return nil, time.Time{}, err
		}
	}
	t.Refused(ip, l, now)
	return nil, until, nil
}

// Refused counts an attempt turned away as a failure of the client's
// budget, in memory only.
func (t *Tracker) Refused(ip string, l Limits, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := t.counter(t.clients, NetworkOf(ip), now)
	if now.Before(c.LockedUntil) {
		return
	}
	if fail(c, l.Client, now) {
		t.report(lockedClient)
	}
}

// ClientLockedUntil returns when a locked client may try again, or the zero
// time. It reads memory only, and tells nothing about any account, so it
// can turn a client away before any costly work.
func (t *Tracker) ClientLockedUntil(ip string, now time.Time) time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	if c := t.clients[NetworkOf(ip)]; c != nil && now.Before(c.LockedUntil) {
		return c.LockedUntil
	}
	return time.Time{}
}

// Failed settles a wrong attempt: it stays counted, and a full budget locks.
func (a *Attempt) Failed() error { return a.settle(false) }

// Release gives the attempt's place back unless it is settled already.
// Handlers defer it, so an attempt that ends any other way than failed
// (a right password, a form error, a lost session) is not counted.
func (a *Attempt) Release() error {
	if a.done {
		return nil
	}
	return a.settle(true)
}

// PasswordAccepted settles a right password that opens a pending session.
// Past UnfinishedAllowance such passwords without a completed second
// factor, each counts as a failure; it reports whether this one did.
func (a *Attempt) PasswordAccepted() (counted bool, err error) {
	a.done = true
	var locked lockSet
	err = a.updateAccount(func(c counters) bool {
		c.account.Unfinished++
		counted = c.account.Unfinished > UnfinishedAllowance
		locked = c.settle(!counted, a.l, a.now)
		return true
	})
	if err == nil {
		a.t.report(locked)
	}
	a.settleClient(!counted)
	return counted, err
}

// SignedIn settles an attempt that completed a sign-in: the account's
// failures from everywhere and from this network are forgotten (failures
// from other networks stay), and the client's place is given back.
func (a *Attempt) SignedIn() error {
	a.done = true
	a.settleClient(true)
	if !a.known {
		return nil
	}
	return a.t.store.Update(func(tx store.Tx) error {
		if a.t.shared {
			c, err := a.storedCounters(tx)
			if err != nil {
				return err
			}
			settle(c.client, true, a.l.Client, a.now)
			if err := tx.PutAttempts(ClientKey(a.network), c.client); err != nil {
				return err
			}
		}
		if err := tx.DeleteAttempts(AccountKey(a.user)); err != nil {
			return err
		}
		return tx.DeleteAttempts(PairKey(a.user, a.network))
	})
}

func (a *Attempt) settle(ok bool) error {
	a.done = true
	err := a.settleAccount(ok)
	a.settleClient(ok)
	return err
}

func (a *Attempt) settleAccount(ok bool) error {
	var locked lockSet
	err := a.updateAccount(func(c counters) bool {
		// Set afresh, should the store retry fn.
		locked = c.settle(ok, a.l, a.now)
		return true
	})
	if err == nil {
		a.t.report(locked)
	}
	return err
}

// settleClient settles the attempt in the client's budget in memory (in a
// shared store, settleAccount has).
func (a *Attempt) settleClient(ok bool) {
	if a.t.shared {
		return
	}
	a.t.mu.Lock()
	defer a.t.mu.Unlock()
	if c := a.t.clients[a.network]; c != nil && settle(c, ok, a.l.Client, a.now) {
		a.t.report(lockedClient)
	}
}

// reserveAccount takes a place in both account budgets, or returns when
// the next attempt may be made; a refusal found here (another attempt won
// the race since LockedUntil) writes nothing.
func (a *Attempt) reserveAccount() (time.Time, error) {
	var until time.Time
	err := a.updateAccount(func(c counters) bool {
		if until = c.refusal(a.l, a.now); !until.IsZero() {
			return false
		}
		c.reserve(a.l, a.now)
		return true
	})
	if errors.Is(err, errRefused) {
		err = nil
	}
	return until, err
}

// viewAccount reads the account's counters. For a name that is no account
// it reads the decoy counter, so both cost one read, and hands fn the
// name's counters in memory.
func (a *Attempt) viewAccount(fn func(counters)) error {
	if !a.inStore() {
		err := a.t.store.View(func(tx store.Tx) error {
			_, err := tx.Attempts(decoyKey)
			if errors.Is(err, store.ErrNotFound) {
				err = nil
			}
			return err
		})
		a.t.mu.Lock()
		defer a.t.mu.Unlock()
		fn(a.memoryCounters())
		return err
	}
	return a.t.store.View(func(tx store.Tx) error {
		c, err := a.storedCounters(tx)
		if err != nil {
			return err
		}
		fn(c)
		return nil
	})
}

// updateAccount changes the account's counters in one transaction; fn
// returns false to leave them as they are, and then nothing is written
// and errRefused returned. For a name that is no account, it changes the
// name's counters in memory and writes the decoy counter instead, so both
// cost the same.
func (a *Attempt) updateAccount(fn func(counters) bool) error {
	if !a.inStore() {
		a.t.mu.Lock()
		changed := fn(a.memoryCounters())
		a.t.mu.Unlock()
		if !changed {
			return errRefused
		}
		return a.t.store.Update(func(tx store.Tx) error {
			// The decoy counts nothing; it only costs a write.
			return tx.PutAttempts(decoyKey, &store.Attempts{WindowStart: a.now})
		})
	}
	return a.t.store.Update(func(tx store.Tx) error {
		c, err := a.storedCounters(tx)
		if err != nil {
			return err
		}
		if !fn(c) {
			return errRefused // roll back: nothing is written
		}
		if err := tx.PutAttempts(PairKey(a.user, a.network), c.pair); err != nil {
			return err
		}
		if c.client != nil {
			if err := tx.PutAttempts(ClientKey(a.network), c.client); err != nil {
				return err
			}
		}
		return tx.PutAttempts(AccountKey(a.user), c.account)
	})
}

// inStore reports whether the attempt's counters are in the store: an
// account's always, and every name's in a shared store.
func (a *Attempt) inStore() bool { return a.known || a.t.shared }

func (a *Attempt) storedCounters(tx store.Tx) (counters, error) {
	type counterKey struct {
		key string
		to  **store.Attempts
	}
	var c counters
	keys := []counterKey{{PairKey(a.user, a.network), &c.pair}, {AccountKey(a.user), &c.account}}
	if a.t.shared {
		keys = append(keys, counterKey{ClientKey(a.network), &c.client})
	}
	for _, dst := range keys {
		v, err := tx.Attempts(dst.key)
		if errors.Is(err, store.ErrNotFound) {
			v, err = &store.Attempts{WindowStart: a.now}, nil
		}
		if err != nil {
			return counters{}, err
		}
		*dst.to = v
	}
	return c, nil
}

// memoryCounters returns the in-memory counters of a name that is no
// account; t.mu must be held.
func (a *Attempt) memoryCounters() counters {
	return counters{
		pair:    a.t.counter(a.t.unknown, PairKey(a.user, a.network), a.now),
		account: a.t.counter(a.t.unknown, AccountKey(a.user), a.now),
	}
}

// counter returns the in-memory counter of key in m, making room for it if
// m is full; t.mu must be held.
func (t *Tracker) counter(m map[string]*store.Attempts, key string, now time.Time) *store.Attempts {
	c := m[key]
	if c == nil {
		if len(m) >= maxMemoryCounters {
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

// Unlock clears an account's locks and failures, from every network.
func (t *Tracker) Unlock(user string) error {
	t.mu.Lock()
	for k := range t.unknown {
		if k == AccountKey(user) || strings.HasPrefix(k, PairKey(user, "")) {
			delete(t.unknown, k)
		}
	}
	t.mu.Unlock()
	return t.store.Update(func(tx store.Tx) error { return ForgetAttempts(tx, user) })
}

// ForgetAttempts deletes, in tx, every stored counter of user's.
func ForgetAttempts(tx store.Tx, user string) error {
	if err := tx.DeleteAttempts(AccountKey(user)); err != nil {
		return err
	}
	_, err := tx.DeleteAttemptsWithPrefix(PairKey(user, ""))
	return err
}
