// Package sessioncache keeps signed-in sessions in memory in front of the
// store, so the gate, which runs on every request to a protected route,
// neither reads nor writes the store and takes no lock. It owns the
// coherence protocol that keeps the cache from outliving a revocation
// (Cache.Coherent, Cache.Invalidate), the load path (Cache.Load) and the
// write-behind of last-seen times (Cache.Flush).
package sessioncache

import (
	"encoding/binary"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddy-two-factor/caddy-two-factor/store"
)

// Reads are lock-free: the cache is split into shards, each an immutable
// map behind an atomic pointer, which writers copy and replace under one
// mutex. Writes are rare (a session's first request, sign-in, sign-out).
//
// Coherence. Whatever changes a user or a session goes through the store's
// Update as the module sees it (coherent), which drops what the
// transaction changed from the cache once it commits: a revoked session
// ends at once, never after an expiry. A cached session also refers to its
// user's user, which is marked revoked when any write touches the
// user (rotation of the session identifier, a new enrollment, a reset or
// removal), so every session of that user is read again from the store.
// A load that raced with such a write is not cached: writes bump an epoch,
// and a load stores its result only if the epoch is the one it started at.
//
// Last seen. A request records its time in the cached session, at most
// once per SeenResolution, so the idle timeout is exact to within that.
// The times are written behind to the store every FlushInterval for the
// sessions whose stored time is StaleAfter old, and all of them when the
// database closes, so a restart loses nothing and a crash at most
// StaleAfter plus FlushInterval (which can only end a session early); a
// session that leaves the cache keeps its time in memory until the next
// flush.
//
// Outages. A cached session passes the gate while the store cannot answer;
// nothing else does (see failure.go for why that is sound with one Caddy
// per store). Write-behind that fails is kept and tried again.
//
// Several instances. When other processes write the same store, a cache
// made with NewDistrusting serves nothing until it is told, by Confirm,
// that it has heard every write committed up to a moment; it trusts
// itself for TrustWindow past that moment, and forgets everything it
// cached when trust comes back after a lapse (a write may have gone
// unheard). Those writes reach it through Invalidate, and a write of this
// process is announced to the others in its own transaction (Announcer).
const (
	// cacheShards is the number of shards, a power of two.
	cacheShards = 1024
	// cacheSize bounds the number of cached sessions (about 25 MB of heap
	// when full).
	cacheSize     = 64 * 1024
	cacheShardCap = cacheSize / cacheShards
	// SeenResolution is how stale a session's cached last-seen time may
	// Get before a request records its own.
	SeenResolution = time.Second
	// FlushInterval is how often last-seen times are written behind.
	FlushInterval = 5 * time.Second
	// StaleAfter is how far a stored last-seen time may lag the cached
	// one before a periodic flush writes it.
	StaleAfter = 30 * time.Second
	// flushBatch bounds the sessions written in one transaction.
	flushBatch = 500
	// TrustWindow is how long after a confirmed moment a distrusting
	// cache serves sessions (see NewDistrusting): a revocation by another
	// instance stops a session here within it, even when the news of it
	// is lost.
	TrustWindow = 800 * time.Millisecond
)

// Session is a signed-in session as the gate needs it. Only
// lastSeen changes once the session is in the cache.
type Session struct {
	Key   store.SessionKey
	User  string
	owner *user
	// Credential is the password hash the session was opened with (see
	// store.Session.Credential).
	Credential store.Credential
	// DatabaseUser is whether the user is managed in the database (not in
	// the config) and still has the password the session was opened with.
	DatabaseUser bool
	expires      int64 // Unix ns
	// Placeholder values, boxed once so setting them allocates nothing.
	UserValue, MethodValue, ConfirmedValue, ExpiresValue any

	lastSeen atomic.Int64 // Unix ns
	// stored is the last-seen time the store has, as far as the cache
	// knows; guarded by Cache.mu.
	stored int64
}

// user is shared by the cached sessions of one user.
type user struct {
	revoked atomic.Bool
	refs    int // cached sessions; guarded by Cache.mu
}

func newSession(s *store.Session, databaseUser bool) *Session {
	e := &Session{
		Key:            s.Key,
		User:           s.User,
		DatabaseUser:   databaseUser,
		expires:        s.Expires.UnixNano(),
		UserValue:      s.User,
		MethodValue:    s.Method,
		ConfirmedValue: s.ConfirmedAt.UTC().Format(time.RFC3339),
		ExpiresValue:   s.Expires.UTC().Format(time.RFC3339),
		stored:         s.LastSeen.UnixNano(),
		Credential:     s.Credential,
	}
	e.lastSeen.Store(e.stored)
	return e
}

// Live reports whether the session is within its absolute and idle limits
// at now.
func (e *Session) Live(now int64, idle time.Duration) bool {
	return now < e.expires && now-e.lastSeen.Load() < int64(idle)
}

// Seen records activity at now, at most once per SeenResolution.
func (e *Session) Seen(now int64) {
	if last := e.lastSeen.Load(); now-last >= int64(SeenResolution) {
		e.lastSeen.CompareAndSwap(last, now)
	}
}

type cacheShard = map[store.SessionKey]*Session

// Cache is the cache of one database.
type Cache struct {
	shards [cacheShards]atomic.Pointer[cacheShard]

	// mu serialises every change below and to the shards.
	mu    sync.Mutex
	epoch atomic.Uint64
	users map[string]*user
	// evicted holds the last-seen times of sessions that left the cache
	// before their time was written, until the next flush.
	evicted map[store.SessionKey]int64

	// distrusting caches serve sessions only before trustedUntil (ns
	// since base, on the monotonic clock); see NewDistrusting.
	distrusting  bool
	base         time.Time
	trustedUntil atomic.Int64

	// hits, misses and invalidations are counted for Stats.
	hits, misses, invalidations atomic.Uint64
}

// Stats are counts since a cache was made, for the operator's metrics.
type Stats struct {
	// Hits and Misses count Get's answers: a session served from memory,
	// or none (not cached, revoked, or the cache distrusting itself), so
	// it is read from the store.
	Hits, Misses uint64
	// Invalidations counts the committed writes, of this process or
	// (through a shared store) of others, that dropped sessions or users
	// from the cache.
	Invalidations uint64
}

// Stats returns the cache's counts.
func (c *Cache) Stats() Stats {
	return Stats{Hits: c.hits.Load(), Misses: c.misses.Load(), Invalidations: c.invalidations.Load()}
}

// New returns the cache of a store that only this process writes.
func New() *Cache {
	return &Cache{users: make(map[string]*user), evicted: make(map[store.SessionKey]int64)}
}

// NewDistrusting returns the cache of a store that other processes write
// too. Get returns nothing until Confirm is called, and again whenever
// TrustWindow has passed since the last moment confirmed, or Distrust
// was called.
func NewDistrusting() *Cache {
	c := New()
	c.distrusting = true
	c.base = time.Now()
	return c
}

// Trusted reports whether Get may return sessions now.
func (c *Cache) Trusted() bool {
	return !c.distrusting || int64(time.Since(c.base)) < c.trustedUntil.Load()
}

// Confirm tells a distrusting cache that every write committed before at
// has reached it through Invalidate: it trusts itself until TrustWindow
// after at. If its trust had lapsed, it first forgets every session it
// holds, and loads under way do not cache what they read.
func (c *Cache) Confirm(at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := int64(time.Since(c.base))
	if now >= c.trustedUntil.Load() {
		c.dropAllLocked()
	}
	until := int64(at.Sub(c.base) + TrustWindow)
	if until > c.trustedUntil.Load() {
		c.trustedUntil.Store(until)
	}
}

// Distrust makes a distrusting cache serve nothing until the next
// Confirm, which then starts afresh: called when the news of other
// processes' writes stops coming.
func (c *Cache) Distrust() { c.trustedUntil.Store(0) }

// dropAllLocked forgets every cached session, keeping their unwritten
// last-seen times; c.mu is held.
func (c *Cache) dropAllLocked() {
	c.epoch.Add(1)
	for i := range c.shards {
		p := c.shards[i].Swap(nil)
		if p == nil {
			continue
		}
		for _, e := range *p {
			c.release(e, true)
		}
	}
	for name, u := range c.users {
		u.revoked.Store(true)
		delete(c.users, name)
	}
}

func shardOf(key store.SessionKey) int {
	// Keys are SHA-256 digests: any of their bits are uniform.
	return int(binary.LittleEndian.Uint16(key[:2])) & (cacheShards - 1)
}

// Get returns the cached session of key, or nil. It takes no lock.
// A session whose user was written since it was cached is not returned:
// it must be loaded again.
func (c *Cache) Get(key store.SessionKey) *Session {
	if e := c.get(key); e != nil {
		c.hits.Add(1)
		return e
	}
	c.misses.Add(1)
	return nil
}

func (c *Cache) get(key store.SessionKey) *Session {
	if c.distrusting && !c.Trusted() {
		return nil
	}
	if m := c.shards[shardOf(key)].Load(); m != nil {
		if e := (*m)[key]; e != nil && !e.owner.revoked.Load() {
			return e
		}
	}
	return nil
}

// Load reads the session of key and its user from st, which must be the
// store itself (not Coherent's view of it), lets vouch judge them, and
// caches the session if vouch accepts it and it is live at now. vouch
// returns whether the user is a database user who still has the session's
// password (Session.DatabaseUser), or an error to refuse the session.
// Errors of the store and of vouch come back as they are.
func (c *Cache) Load(st store.Store, key store.SessionKey, now time.Time, idle time.Duration,
	vouch func(*store.Session, *store.User) (databaseUser bool, err error),
) (*Session, error) {
	// Both are read before the store, so that neither a write nor a
	// write-behind that lands meanwhile goes unseen.
	epoch := c.epoch.Load()
	evictedSeen := c.evictedSeen(key)
	var e *Session
	err := st.View(func(tx store.Tx) error {
		s, err := tx.Session(key)
		if err != nil {
			return err
		}
		u, err := tx.User(s.User)
		if err != nil {
			return err
		}
		databaseUser, err := vouch(s, u)
		if err != nil {
			return err
		}
		e = newSession(s, databaseUser)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if evictedSeen > e.lastSeen.Load() {
		e.lastSeen.Store(evictedSeen)
	}
	// A session that is over stays out of the cache; the caller tells.
	if e.Live(now.UnixNano(), idle) {
		c.add(e, epoch)
	}
	return e, nil
}

// add caches e unless a write has happened since epoch, and returns
// whether it did. When the shard is full, the session seen least recently
// leaves it.
func (c *Cache) add(e *Session, epoch uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.epoch.Load() != epoch {
		return false
	}
	u := c.users[e.User]
	if u == nil {
		u = &user{}
		c.users[e.User] = u
	}
	u.refs++
	e.owner = u

	i := shardOf(e.Key)
	var old cacheShard
	if p := c.shards[i].Load(); p != nil {
		old = *p
	}
	m := make(cacheShard, min(len(old)+1, cacheShardCap))
	var victim *Session
	if _, replacing := old[e.Key]; !replacing && len(old) >= cacheShardCap {
		for _, o := range old {
			if victim == nil || o.lastSeen.Load() < victim.lastSeen.Load() {
				victim = o
			}
		}
	}
	for k, o := range old {
		switch {
		case k == e.Key:
			// A fresh copy of a session in the cache (its user was
			// written): the copy's store read may be older than the
			// cached last-seen time.
			if seen := o.lastSeen.Load(); seen > e.lastSeen.Load() {
				e.lastSeen.Store(seen)
			}
			c.release(o, false)
		case o == victim:
			c.release(o, true)
		default:
			m[k] = o
		}
	}
	m[e.Key] = e
	c.shards[i].Store(&m)
	return true
}

// release accounts for e leaving the cache; c.mu is held. With keepSeen,
// its unwritten last-seen time is kept for the next flush, and for a load
// of the session before then.
func (c *Cache) release(e *Session, keepSeen bool) {
	if seen := e.lastSeen.Load(); keepSeen && seen > e.stored {
		c.evicted[e.Key] = seen
	}
	if u := e.owner; u != nil {
		u.refs--
		if u.refs == 0 && c.users[e.User] == u {
			delete(c.users, e.User)
		}
	}
}

// evictedSeen returns the unwritten last-seen time of a session that left
// the cache, or 0.
func (c *Cache) evictedSeen(key store.SessionKey) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.evicted[key]
}

// Invalidate drops the sessions of keys and marks every cached session of
// users revoked, after a write to them has committed.
func (c *Cache) Invalidate(users []string, keys []store.SessionKey) {
	c.invalidations.Add(1)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch.Add(1)
	for _, name := range users {
		if u := c.users[name]; u != nil {
			u.revoked.Store(true)
			delete(c.users, name)
		}
	}
	for _, key := range keys {
		i := shardOf(key)
		p := c.shards[i].Load()
		if p == nil {
			continue
		}
		e, ok := (*p)[key]
		if !ok {
			continue
		}
		m := make(cacheShard, len(*p)-1)
		for k, o := range *p {
			if k != key {
				m[k] = o
			}
		}
		c.release(e, true)
		c.shards[i].Store(&m)
	}
}

// DropExpired removes the sessions whose absolute expiry is at or before
// now (the sweep deletes them from the store).
func (c *Cache) DropExpired(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	limit := now.UnixNano()
	for i := range c.shards {
		p := c.shards[i].Load()
		if p == nil {
			continue
		}
		expired := 0
		for _, e := range *p {
			if e.expires <= limit {
				expired++
			}
		}
		if expired == 0 {
			continue
		}
		m := make(cacheShard, len(*p)-expired)
		for k, e := range *p {
			if e.expires <= limit {
				c.release(e, false)
				delete(c.evicted, k)
			} else {
				m[k] = e
			}
		}
		c.shards[i].Store(&m)
	}
}

// seenTime is a last-seen time to write behind.
type seenTime struct {
	key  store.SessionKey
	seen int64
	e    *Session // nil for an evicted session
}

// dirty returns the last-seen times the store lacks: those staler than
// StaleAfter, or all of them.
func (c *Cache) dirty(all bool) []seenTime {
	c.mu.Lock()
	defer c.mu.Unlock()
	lag := int64(StaleAfter)
	if all {
		lag = 1
	}
	var out []seenTime
	for key, seen := range c.evicted {
		out = append(out, seenTime{key: key, seen: seen})
	}
	for i := range c.shards {
		if p := c.shards[i].Load(); p != nil {
			for key, e := range *p {
				if seen := e.lastSeen.Load(); seen-e.stored >= lag {
					out = append(out, seenTime{key: key, seen: seen, e: e})
				}
			}
		}
	}
	return out
}

// written records that the store has the times of batch.
func (c *Cache) written(batch []seenTime) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, w := range batch {
		if w.e != nil {
			w.e.stored = max(w.e.stored, w.seen)
		} else if c.evicted[w.key] == w.seen {
			delete(c.evicted, w.key)
		}
	}
}

// Flush writes last-seen times behind, in transactions of at most
// flushBatch sessions. It never moves a stored time back, and never
// brings back a session deleted meanwhile.
func (c *Cache) Flush(st store.Store, all bool) error {
	pending := c.dirty(all)
	for len(pending) > 0 {
		batch := pending[:min(len(pending), flushBatch)]
		pending = pending[len(batch):]
		err := st.Update(func(tx store.Tx) error {
			for _, w := range batch {
				s, err := tx.Session(w.key)
				if errors.Is(err, store.ErrNotFound) {
					continue
				}
				if err != nil {
					return err
				}
				if s.LastSeen.UnixNano() >= w.seen {
					continue
				}
				s.LastSeen = time.Unix(0, w.seen).UTC()
				if err := tx.PutSession(s); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		c.written(batch)
	}
	return nil
}

// Coherent returns st as the module must see it: every write transaction
// that puts or deletes a user or a session drops what it changed from the
// cache once it has committed. Only the cache's own loads and write-behind
// use st itself.
func (c *Cache) Coherent(st store.Store) store.Store { return coherent{Store: st, cache: c} }

// coherent is a store seen through the cache (see Cache.Coherent).
type coherent struct {
	store.Store
	cache *Cache
}

// Update implements store.Store.
func (s coherent) Update(fn func(store.Tx) error) error {
	var tx trackingTx
	err := s.Store.Update(func(inner store.Tx) error {
		tx = trackingTx{Tx: inner} // afresh, should the store retry fn
		if err := fn(&tx); err != nil {
			return err
		}
		if a, ok := inner.(Announcer); ok && (len(tx.users) > 0 || len(tx.sessions) > 0) {
			return a.Announce(tx.users, tx.sessions)
		}
		return nil
	})
	if err == nil && (len(tx.users) > 0 || len(tx.sessions) > 0) {
		s.cache.Invalidate(tx.users, tx.sessions)
	}
	return err
}

// Announcer is a Tx of a store that other processes share: Announce
// makes the transaction, when it commits and only then, tell every
// process what it changed, so each calls Invalidate.
type Announcer interface {
	Announce(users []string, keys []store.SessionKey) error
}

// trackingTx records the users and sessions a transaction writes.
type trackingTx struct {
	store.Tx
	users    []string
	sessions []store.SessionKey
}

func (t *trackingTx) PutUser(u *store.User) error {
	t.users = append(t.users, u.Name)
	return t.Tx.PutUser(u)
}

func (t *trackingTx) DeleteUser(name string) error {
	t.users = append(t.users, name)
	return t.Tx.DeleteUser(name)
}

func (t *trackingTx) PutSession(s *store.Session) error {
	t.sessions = append(t.sessions, s.Key)
	return t.Tx.PutSession(s)
}

func (t *trackingTx) DeleteSession(key store.SessionKey) error {
	t.sessions = append(t.sessions, key)
	return t.Tx.DeleteSession(key)
}

// Interface guards
var (
	_ store.Store = coherent{}
	_ store.Tx    = (*trackingTx)(nil)
)
