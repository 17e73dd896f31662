// Package boltstore is the embedded 2FA store: one bbolt file, opened once
// per process. It keeps users and sessions in the binary forms of package
// store and still reads the JSON records of earlier versions.
package boltstore

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/caddy-two-factor/caddy-two-factor/store"
)

// The bbolt schema. Everything lives under a version bucket so a future
// layout can be migrated to beside it:
//
//	v1/
//	├── meta/        name → value
//	├── users/       user name → store.User in the binary form of store.EncodeUser
//	├── sessions/    store.SessionKey → store.Session in the binary form of store.EncodeSession
//	├── by_user/     user name, 0x00, store.SessionKey → (empty)
//	├── by_expiry/   expiry (Unix ns, big-endian), store.SessionKey → (empty)
//	├── session_counts/ "pending", "full" → number of sessions at that stage (uint64, big-endian)
//	└── attempts/    counter key → JSON store.Attempts
//
// session_counts is kept by PutSession and DeleteSession, so counting
// sessions reads two keys. A file written before it existed has none: Open
// creates it and counts the sessions once.
var (
	bucketVersion  = []byte("v1")
	bucketMeta     = []byte("meta")
	bucketUsers    = []byte("users")
	bucketSessions = []byte("sessions")
	bucketByUser   = []byte("by_user")
	bucketByExpiry = []byte("by_expiry")
	bucketCounts   = []byte("session_counts")
	bucketAttempts = []byte("attempts")
)

// LockTimeout is how long opening waits for another process to release
// the database file.
const LockTimeout = 3 * time.Second

// ErrLocked means another process holds the database file.
var ErrLocked = errors.New("the file is locked by another process (is another Caddy running with the same db?)")

// Store is the embedded store: one bbolt file.
type Store struct {
	// mu is held for reading by every transaction and for writing by
	// Compact, which replaces db.
	mu   sync.RWMutex
	db   *bolt.DB
	path string
	// commits counts the write transactions committed, so tests and
	// benchmarks can tell which requests write.
	commits atomic.Uint64
	// claims are kept in memory: a bbolt file is opened by one process,
	// so the configs that share it share this Store, and its claims.
	claims store.LocalClaims
}

// Claim implements store.Claimer, for this process.
func (b *Store) Claim(key string, ttl time.Duration) (bool, error) {
	return b.claims.Claim(key, ttl)
}

// Open opens (creating if needed) the bbolt database at path.
func Open(path string) (*Store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("creating directory for 2FA database %s: %w", path, err)
	}
	db, err := openBoltFile(path)
	if err != nil {
		return nil, err
	}
	err = db.Update(func(tx *bolt.Tx) error {
		root, err := tx.CreateBucketIfNotExists(bucketVersion)
		if err != nil {
			return err
		}
		for _, name := range [][]byte{bucketMeta, bucketUsers, bucketSessions, bucketByUser, bucketByExpiry, bucketAttempts} {
			if _, err := root.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return countSessions(root)
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("initialising 2FA database %s: %w", path, err)
	}
	return &Store{db: db, path: path}, nil
}

func openBoltFile(path string) (*bolt.DB, error) {
	// The hashmap freelist finds free pages in constant time; the default
	// array one scans, which made a sweep transaction at a million
	// sessions take hundreds of milliseconds.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: LockTimeout, FreelistType: bolt.FreelistMapType})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("opening 2FA database %s: %w", path, ErrLocked)
	}
	if err != nil {
		return nil, fmt.Errorf("opening 2FA database %s: %w", path, err)
	}
	return db, nil
}

// View implements store.Store.
func (b *Store) View(fn func(store.Tx) error) error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	var fnFailed bool
	err := b.db.View(func(tx *bolt.Tx) error {
		err := fn(boltTx{tx.Bucket(bucketVersion)})
		fnFailed = err != nil
		return err
	})
	return b.failure(err, fnFailed)
}

// Update implements store.Store.
func (b *Store) Update(fn func(store.Tx) error) error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	var fnFailed bool
	err := b.db.Update(func(tx *bolt.Tx) error {
		err := fn(boltTx{tx.Bucket(bucketVersion)})
		fnFailed = err != nil
		return err
	})
	if err == nil {
		b.commits.Add(1)
	}
	return b.failure(err, fnFailed)
}

// failure returns the error of a transaction: fn's own as it is, and
// bbolt's (the database is closed, as after a failed Compact, or a commit
// could not write the file) wrapped in store.ErrUnavailable.
func (b *Store) failure(err error, fnFailed bool) error {
	if err == nil || fnFailed {
		return err
	}
	return fmt.Errorf("%w: %s: %w", store.ErrUnavailable, b.path, err)
}

// Commits returns how many write transactions were committed since the
// store was opened.
func (b *Store) Commits() uint64 { return b.commits.Load() }

// Close implements store.Store.
func (b *Store) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.db.Close()
}

// Path returns the database file's path.
func (b *Store) Path() string { return b.path }

// CompactStats are the file's sizes before and after Compact.
type CompactStats struct {
	Before int64 `json:"before"`
	After  int64 `json:"after"`
}

// Compact rewrites the database file with only its live data, so nothing
// deleted or overwritten (a secret stored before it was encrypted) stays
// in its free pages. It copies the data into a new file next to the old
// one, syncs it and renames it over the old one, then reopens. Every
// transaction waits while it runs; none may be open in the calling
// goroutine.
func (b *Store) Compact() (CompactStats, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var stats CompactStats
	if info, err := os.Stat(b.path); err == nil {
		stats.Before = info.Size()
	}
	tmp := b.path + ".compact"
	if err := compactInto(tmp, b.db); err != nil {
		os.Remove(tmp)
		return stats, fmt.Errorf("compacting 2FA database %s: %w", b.path, err)
	}
	// The old handle is closed before the rename, which Windows needs; the
	// file it held is reopened whatever happens next.
	if err := b.db.Close(); err != nil {
		os.Remove(tmp)
		return stats, b.reopen(fmt.Errorf("compacting 2FA database %s: closing: %w", b.path, err))
	}
	if err := os.Rename(tmp, b.path); err != nil {
		os.Remove(tmp)
		return stats, b.reopen(fmt.Errorf("compacting 2FA database %s: %w", b.path, err))
	}
	syncDir(filepath.Dir(b.path))
	if err := b.reopen(nil); err != nil {
		return stats, err
	}
	if info, err := os.Stat(b.path); err == nil {
		stats.After = info.Size()
	}
	return stats, nil
}

// compactInto copies src into a new bbolt file at path and syncs it.
func compactInto(path string, src *bolt.DB) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err // a file left by an interrupted compaction
	}
	dst, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: LockTimeout, FreelistType: bolt.FreelistMapType})
	if err != nil {
		return err
	}
	// Transactions of at most 64 MiB bound the memory a large file takes.
	if err := bolt.Compact(dst, src, 64<<20); err != nil {
		dst.Close()
		return err
	}
	if err := dst.Sync(); err != nil {
		dst.Close()
		return err
	}
	return dst.Close()
}

// reopen opens b's file again after Compact closed it, and returns cause
// (nil if all went well) or the error of opening.
func (b *Store) reopen(cause error) error {
	db, err := openBoltFile(b.path)
	if err != nil {
		// Transactions now fail with bbolt's "database not open" until
		// the store is opened again.
		return errors.Join(cause, err)
	}
	b.db = db
	return cause
}

// syncDir makes a rename in dir durable, where the system allows it.
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

type boltTx struct {
	root *bolt.Bucket
}

func (t boltTx) bucket(name []byte) *bolt.Bucket {
	b := t.root.Bucket(name)
	if bytes.Equal(name, bucketByExpiry) {
		// Expiries are now plus a fixed lifetime, so new keys come in
		// rising order; at the default 50%, every page of this index
		// would be left half empty.
		b.FillPercent = 1
	}
	return b
}

func getJSON(b *bolt.Bucket, key []byte, v any) error {
	raw := b.Get(key)
	if raw == nil {
		return store.ErrNotFound
	}
	// json.Unmarshal copies what it keeps, so nothing refers to the
	// transaction's memory after it ends.
	return json.Unmarshal(raw, v)
}

func putJSON(b *bolt.Bucket, key []byte, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put(key, raw)
}

func (t boltTx) Meta(name string) ([]byte, error) {
	v := t.bucket(bucketMeta).Get([]byte(name))
	if v == nil {
		return nil, store.ErrNotFound
	}
	return bytes.Clone(v), nil
}

func (t boltTx) PutMeta(name string, value []byte) error {
	return t.bucket(bucketMeta).Put([]byte(name), value)
}

func (t boltTx) User(name string) (*store.User, error) {
	raw := t.bucket(bucketUsers).Get([]byte(name))
	if raw == nil {
		return nil, store.ErrNotFound
	}
	return decodeUser(raw)
}

func (t boltTx) PutUser(u *store.User) error {
	if u.Name == "" {
		return errors.New("user has no name")
	}
	return t.bucket(bucketUsers).Put([]byte(u.Name), store.EncodeUser(u))
}

func (t boltTx) DeleteUser(name string) error {
	return t.bucket(bucketUsers).Delete([]byte(name))
}

func (t boltTx) ForEachUser(fn func(*store.User) error) error {
	return t.bucket(bucketUsers).ForEach(func(_, raw []byte) error {
		u, err := decodeUser(raw)
		if err != nil {
			return err
		}
		return fn(u)
	})
}

func (t boltTx) ForEachSession(fn func(*store.Session) error) error {
	return t.bucket(bucketSessions).ForEach(func(k, raw []byte) error {
		if len(k) != len(store.SessionKey{}) {
			return errBadSessionKey
		}
		s, err := decodeSession(store.SessionKey(k), raw)
		if err != nil {
			return err
		}
		return fn(s)
	})
}

func byUserKey(user string, key store.SessionKey) []byte {
	k := make([]byte, 0, len(user)+1+len(key))
	k = append(k, user...)
	k = append(k, 0)
	return append(k, key[:]...)
}

func byExpiryKey(expires time.Time, key store.SessionKey) []byte {
	k := make([]byte, 8, 8+len(key))
	binary.BigEndian.PutUint64(k, uint64(max(expires.UnixNano(), 0)))
	return append(k, key[:]...)
}

func (t boltTx) Session(key store.SessionKey) (*store.Session, error) {
	return getSession(t.bucket(bucketSessions), key)
}

func (t boltTx) PutSession(s *store.Session) error {
	if s.User == "" {
		return errors.New("session has no user")
	}
	// Index entries are written only when they change: an update of
	// activity alone then dirties one page rather than three.
	newUser, newExpiry := true, true
	old, err := t.Session(s.Key)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return err
	default:
		if newExpiry = !old.Expires.Equal(s.Expires); newExpiry {
			if err := t.bucket(bucketByExpiry).Delete(byExpiryKey(old.Expires, s.Key)); err != nil {
				return err
			}
		}
		if newUser = old.User != s.User; newUser {
			if err := t.bucket(bucketByUser).Delete(byUserKey(old.User, s.Key)); err != nil {
				return err
			}
		}
	}
	if err := t.bucket(bucketSessions).Put(s.Key[:], store.EncodeSession(s)); err != nil {
		return err
	}
	// The counts are written only when a session comes or changes stage.
	if old == nil || old.Stage != s.Stage {
		if old != nil {
			if err := t.addCount(old.Stage, -1); err != nil {
				return err
			}
		}
		if err := t.addCount(s.Stage, 1); err != nil {
			return err
		}
	}
	if newUser {
		if err := t.bucket(bucketByUser).Put(byUserKey(s.User, s.Key), nil); err != nil {
			return err
		}
	}
	if newExpiry {
		return t.bucket(bucketByExpiry).Put(byExpiryKey(s.Expires, s.Key), nil)
	}
	return nil
}

func (t boltTx) DeleteSession(key store.SessionKey) error {
	s, err := t.Session(key)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := t.bucket(bucketByUser).Delete(byUserKey(s.User, key)); err != nil {
		return err
	}
	if err := t.bucket(bucketByExpiry).Delete(byExpiryKey(s.Expires, key)); err != nil {
		return err
	}
	if err := t.addCount(s.Stage, -1); err != nil {
		return err
	}
	return t.bucket(bucketSessions).Delete(key[:])
}

func (t boltTx) UserSessions(user string) ([]*store.Session, error) {
	prefix := append([]byte(user), 0)
	var keys []store.SessionKey
	c := t.bucket(bucketByUser).Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		// Only an entry of exactly prefix+key is this user's: the entry of
		// a name that starts with user+NUL also has the prefix.
		if len(k) != len(prefix)+len(store.SessionKey{}) {
			continue
		}
		keys = append(keys, store.SessionKey(k[len(prefix):]))
	}
	sessions := make([]*store.Session, 0, len(keys))
	for _, key := range keys {
		s, err := t.Session(key)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		sessions = append(sessions, s)
	}
	return sessions, nil
}

func (t boltTx) DeleteExpiredSessions(now time.Time, limit int) (int, error) {
	var expired []store.SessionKey
	c := t.bucket(bucketByExpiry).Cursor()
	for k, _ := c.First(); k != nil && len(expired) < limit; k, _ = c.Next() {
		if len(k) != 8+len(store.SessionKey{}) || int64(binary.BigEndian.Uint64(k)) > now.UnixNano() {
			break
		}
		var key store.SessionKey
		copy(key[:], k[8:])
		expired = append(expired, key)
	}
	for _, key := range expired {
		if err := t.DeleteSession(key); err != nil {
			return 0, err
		}
	}
	return len(expired), nil
}

// Keys of the session_counts bucket.
var (
	countPending = []byte("pending")
	countFull    = []byte("full")
)

// countSessions creates the session_counts bucket of a file that has none
// (one written before it existed) from the sessions it holds.
func countSessions(root *bolt.Bucket) error {
	if root.Bucket(bucketCounts) != nil {
		return nil
	}
	var n store.SessionCounts
	err := root.Bucket(bucketSessions).ForEach(func(k, raw []byte) error {
		if len(k) != len(store.SessionKey{}) {
			return errBadSessionKey
		}
		s, err := decodeSession(store.SessionKey(k), raw)
		if err != nil {
			return err
		}
		n.Add(s.Stage, 1)
		return nil
	})
	if err != nil {
		return fmt.Errorf("counting sessions: %w", err)
	}
	b, err := root.CreateBucket(bucketCounts)
	if err != nil {
		return err
	}
	return putCounts(b, n)
}

func putCounts(b *bolt.Bucket, n store.SessionCounts) error {
	if err := b.Put(countPending, binary.BigEndian.AppendUint64(nil, uint64(max(n.Pending, 0)))); err != nil {
		return err
	}
	return b.Put(countFull, binary.BigEndian.AppendUint64(nil, uint64(max(n.Full, 0))))
}

func (t boltTx) CountSessions() (store.SessionCounts, error) {
	b := t.bucket(bucketCounts)
	get := func(k []byte) (int, error) {
		v := b.Get(k)
		if len(v) != 8 {
			return 0, fmt.Errorf("session count %q is %d bytes, want 8", k, len(v))
		}
		return int(binary.BigEndian.Uint64(v)), nil
	}
	var n store.SessionCounts
	var err error
	if n.Pending, err = get(countPending); err != nil {
		return n, err
	}
	n.Full, err = get(countFull)
	return n, err
}

// addCount adds delta to the count of sessions at stage st.
func (t boltTx) addCount(st store.Stage, delta int) error {
	n, err := t.CountSessions()
	if err != nil {
		return err
	}
	n.Add(st, delta)
	return putCounts(t.bucket(bucketCounts), n)
}

func (t boltTx) Attempts(key string) (*store.Attempts, error) {
	var a store.Attempts
	if err := getJSON(t.bucket(bucketAttempts), []byte(key), &a); err != nil {
		return nil, err
	}
	inUTC(&a)
	return &a, nil
}

// inUTC puts a's times in UTC, as the binary records come back: JSON keeps
// the zone a time was written in.
func inUTC(a *store.Attempts) {
	a.WindowStart, a.LockedUntil = a.WindowStart.UTC(), a.LockedUntil.UTC()
}

func (t boltTx) PutAttempts(key string, a *store.Attempts) error {
	return putJSON(t.bucket(bucketAttempts), []byte(key), a)
}

func (t boltTx) DeleteAttempts(key string) error {
	return t.bucket(bucketAttempts).Delete([]byte(key))
}

func (t boltTx) ForEachAttempts(prefix string, fn func(key string, a *store.Attempts) error) error {
	c := t.bucket(bucketAttempts).Cursor()
	for k, raw := c.Seek([]byte(prefix)); k != nil && bytes.HasPrefix(k, []byte(prefix)); k, raw = c.Next() {
		var a store.Attempts
		if err := json.Unmarshal(raw, &a); err != nil {
			return fmt.Errorf("attempts %q: %w", k, err)
		}
		inUTC(&a)
		if err := fn(string(k), &a); err != nil {
			return err
		}
	}
	return nil
}

func (t boltTx) DeleteAttemptsWithPrefix(prefix string) (int, error) {
	var keys [][]byte
	c := t.bucket(bucketAttempts).Cursor()
	for k, _ := c.Seek([]byte(prefix)); k != nil && bytes.HasPrefix(k, []byte(prefix)); k, _ = c.Next() {
		keys = append(keys, bytes.Clone(k))
	}
	for _, k := range keys {
		if err := t.bucket(bucketAttempts).Delete(k); err != nil {
			return 0, err
		}
	}
	return len(keys), nil
}

func (t boltTx) DeleteStaleAttempts(now time.Time, window time.Duration, limit int) (int, error) {
	var stale [][]byte
	c := t.bucket(bucketAttempts).Cursor()
	for k, raw := c.First(); k != nil && len(stale) < limit; k, raw = c.Next() {
		var a store.Attempts
		if json.Unmarshal(raw, &a) != nil || (now.After(a.LockedUntil) && now.Sub(a.WindowStart) > window) {
			stale = append(stale, bytes.Clone(k))
		}
	}
	for _, k := range stale {
		if err := t.bucket(bucketAttempts).Delete(k); err != nil {
			return 0, err
		}
	}
	return len(stale), nil
}

// Interface guards
var _ store.Store = (*Store)(nil)
