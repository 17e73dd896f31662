package twofactor

import (
	"encoding/binary"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddy-two-factor/caddy-two-factor/store"
)

// The session cache keeps signed-in sessions in memory in front of the
// store, so the gate, which runs on every request to a protected route,
// neither reads nor writes the database and takes no lock.
//
// Reads are lock-free: the cache is split into shards, each an immutable
// map behind an atomic pointer, which writers copy and replace under one
// mutex. Writes are rare (a session's first request, sign-in, sign-out).
//
// Coherence. Whatever changes a user or a session goes through the store's
// Update as the module sees it (coherentStore), which drops what the
// transaction changed from the cache once it commits: a revoked session
// ends at once, never after an expiry. A cached session also refers to its
// user's cachedUser, which is marked revoked when any write touches the
// user (rotation of the session identifier, a new enrollment, a reset or
// removal), so every session of that user is read again from the store.
// A load that raced with such a write is not cached: writes bump an epoch,
// and a load stores its result only if the epoch is the one it started at.
//
// Last seen. A request records its time in the cached session, at most
// once per seenResolution, so the idle timeout is exact to within that.
// The times are written behind to the store every flushInterval for the
// sessions whose stored time is staleAfter old, and all of them when the
// database closes, so a restart loses nothing and a crash at most
// staleAfter plus flushInterval (which can only end a session early); a
// session that leaves the cache keeps its time in memory until the next
// flush.
//
// Outages. A cached session passes the gate while the store cannot answer;
// nothing else does (see failure.go for why that is sound with one Caddy
// per store). Write-behind that fails is kept and tried again.
const (
	// cacheShards is the number of shards, a power of two.
	cacheShards = 1024
	// cacheSize bounds the number of cached sessions (about 25 MB of heap
	// when full).
	cacheSize     = 64 * 1024
	cacheShardCap = cacheSize / cacheShards
	// seenResolution is how stale a session's cached last-seen time may
	// get before a request records its own.
	seenResolution = time.Second
	// flushInterval is how often last-seen times are written behind.
	flushInterval = 5 * time.Second
	// staleAfter is how far a stored last-seen time may lag the cached
	// one before a periodic flush writes it.
	staleAfter = 30 * time.Second
	// flushBatch bounds the sessions written in one transaction.
	flushBatch = 500
)

// cachedSession is a signed-in session as the gate needs it. Only
// lastSeen changes once the session is in the cache.
type cachedSession struct {
	key   store.SessionKey
	user  string
	owner *cachedUser
	// credential is the password hash the session was opened with (see
	// store.Session.Credential).
	credential store.Credential
	// databaseUser is whether the user is managed in the database (not in
	// the config) and still has the password the session was opened with.
	databaseUser bool
	expires      int64 // Unix ns
	// Placeholder values, boxed once so setting them allocates nothing.
	userValue, methodValue, confirmedValue, expiresValue any

	lastSeen atomic.Int64 // Unix ns
	// stored is the last-seen time the store has, as far as the cache
	// knows; guarded by sessionCache.mu.
	stored int64
}

// cachedUser is shared by the cached sessions of one user.
type cachedUser struct {
	revoked atomic.Bool
	refs    int // cached sessions; guarded by sessionCache.mu
}

func newCachedSession(s *store.Session, databaseUser bool) *cachedSession {
	e := &cachedSession{
		key:            s.Key,
		user:           s.User,
		databaseUser:   databaseUser,
		expires:        s.Expires.UnixNano(),
		userValue:      s.User,
		methodValue:    s.Method,
		confirmedValue: s.ConfirmedAt.UTC().Format(time.RFC3339),
		expiresValue:   s.Expires.UTC().Format(time.RFC3339),
		stored:         s.LastSeen.UnixNano(),
		credential:     s.Credential,
	}
	e.lastSeen.Store(e.stored)
	return e
}

// live reports whether the session is within its absolute and idle limits
// at now.
func (e *cachedSession) live(now int64, idle time.Duration) bool {
	return now < e.expires && now-e.lastSeen.Load() < int64(idle)
}

// seen records activity at now, at most once per seenResolution.
func (e *cachedSession) seen(now int64) {
	if last := e.lastSeen.Load(); now-last >= int64(seenResolution) {
		e.lastSeen.CompareAndSwap(last, now)
	}
}

type cacheShard = map[store.SessionKey]*cachedSession

// sessionCache is the cache of one database.
type sessionCache struct {
	shards [cacheShards]atomic.Pointer[cacheShard]

	// mu serialises every change below and to the shards.
	mu    sync.Mutex
	epoch atomic.Uint64
	users map[string]*cachedUser
	// evicted holds the last-seen times of sessions that left the cache
	// before their time was written, until the next flush.
	evicted map[store.SessionKey]int64
}

func newSessionCache() *sessionCache {
	return &sessionCache{users: make(map[string]*cachedUser), evicted: make(map[store.SessionKey]int64)}
}

func shardOf(key store.SessionKey) int {
	// Keys are SHA-256 digests: any of their bits are uniform.
	return int(binary.LittleEndian.Uint16(key[:2])) & (cacheShards - 1)
}

// get returns the cached session of key, or nil. It takes no lock.
func (c *sessionCache) get(key store.SessionKey) *cachedSession {
	if m := c.shards[shardOf(key)].Load(); m != nil {
		return (*m)[key]
	}
	return nil
}

// add caches e unless a write has happened since epoch, and returns
// whether it did. When the shard is full, the session seen least recently
// leaves it.
func (c *sessionCache) add(e *cachedSession, epoch uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.epoch.Load() != epoch {
		return false
	}
	u := c.users[e.user]
	if u == nil {
		u = &cachedUser{}
		c.users[e.user] = u
	}
	u.refs++
	e.owner = u

	i := shardOf(e.key)
	var old cacheShard
	if p := c.shards[i].Load(); p != nil {
		old = *p
	}
	m := make(cacheShard, min(len(old)+1, cacheShardCap))
	var victim *cachedSession
	if _, replacing := old[e.key]; !replacing && len(old) >= cacheShardCap {
		for _, o := range old {
			if victim == nil || o.lastSeen.Load() < victim.lastSeen.Load() {
				victim = o
			}
		}
	}
	for k, o := range old {
		switch {
		case k == e.key:
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
	m[e.key] = e
	c.shards[i].Store(&m)
	return true
}

// release accounts for e leaving the cache; c.mu is held. With keepSeen,
// its unwritten last-seen time is kept for the next flush, and for a load
// of the session before then.
func (c *sessionCache) release(e *cachedSession, keepSeen bool) {
	if seen := e.lastSeen.Load(); keepSeen && seen > e.stored {
		c.evicted[e.key] = seen
	}
	if u := e.owner; u != nil {
		u.refs--
		if u.refs == 0 && c.users[e.user] == u {
			delete(c.users, e.user)
		}
	}
}

// evictedSeen returns the unwritten last-seen time of a session that left
// the cache, or 0.
func (c *sessionCache) evictedSeen(key store.SessionKey) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.evicted[key]
}

// invalidate drops the sessions of keys and marks every cached session of
// users revoked, after a write to them has committed.
func (c *sessionCache) invalidate(users []string, keys []store.SessionKey) {
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

// dropExpired removes the sessions whose absolute expiry is at or before
// now (the sweep deletes them from the store).
func (c *sessionCache) dropExpired(now time.Time) {
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
	e    *cachedSession // nil for an evicted session
}

// dirty returns the last-seen times the store lacks: those staler than
// staleAfter, or all of them.
func (c *sessionCache) dirty(all bool) []seenTime {
	c.mu.Lock()
	defer c.mu.Unlock()
	lag := int64(staleAfter)
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
func (c *sessionCache) written(batch []seenTime) {
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

// flush writes last-seen times behind, in transactions of at most
// flushBatch sessions. It never moves a stored time back, and never
// brings back a session deleted meanwhile.
func (c *sessionCache) flush(st store.Store, all bool) error {
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

// coherentStore is the store as the module sees it: every write
// transaction that puts or deletes a user or a session drops what it
// changed from the session cache once it has committed. Only the cache's
// own loads and writes bypass it.
type coherentStore struct {
	store.Store
	cache *sessionCache
}

// Update implements store.Store.
func (s coherentStore) Update(fn func(store.Tx) error) error {
	var tx trackingTx
	err := s.Store.Update(func(inner store.Tx) error {
		tx = trackingTx{Tx: inner} // afresh, should the store retry fn
		return fn(&tx)
	})
	if err == nil && (len(tx.users) > 0 || len(tx.sessions) > 0) {
		s.cache.invalidate(tx.users, tx.sessions)
	}
	return err
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
	_ store.Store = coherentStore{}
	_ store.Tx    = (*trackingTx)(nil)
)
