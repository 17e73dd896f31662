package twofactor

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-two-factor/caddy-two-factor/sessioncache"
	"github.com/caddy-two-factor/caddy-two-factor/store"
	boltstore "github.com/caddy-two-factor/caddy-two-factor/store/bolt"
	"github.com/caddy-two-factor/caddy-two-factor/throttle"
)

// databases holds every open database, keyed by absolute path. Configs
// share a file through it, so the old and new config of a reload use one
// handle instead of waiting on each other's file lock.
var databases = caddy.NewUsagePool()

const (
	// sweepInterval is how often expired sessions are deleted.
	sweepInterval = time.Minute
	// sweepBatch bounds one write transaction of the sweep, so it never
	// holds the write lock for long (at a million sessions, deleting 1,000
	// took 45 ms, most of it writing the pages it dirtied); sweepTxTarget
	// is how long one should take: the sweep halves its batch when a
	// transaction took longer and doubles it when one took less than half.
	// Transactions stay well under 50 ms, with room for a slow disk.
	sweepBatch    = 256
	sweepTxTarget = 10 * time.Millisecond
	minSweepBatch = 16
	// metaCSRFKey names the key that signs anti-CSRF tokens.
	metaCSRFKey = "csrf_key"
)

// database is an open store, shared by the configs that name its file.
type database struct {
	// store is the store seen through the session cache: every write
	// transaction that puts or deletes a user or a session also drops
	// what it changed from the cache (see sessioncache.Cache.Coherent). A database made
	// without openDatabase, for a file no Caddy has open, has no cache.
	store store.Store
	// raw is the store itself, for the cache's own loads and write-behind.
	raw   store.Store
	cache *sessioncache.Cache
	// hashing bounds password hashing (throttle.PasswordHashing; tests set their own).
	hashing *throttle.HashLimiter
	// path names the store: a bolt file's path, or a Redis server.
	path string
	// backend is the kind of store, bolt or redis, for metrics.
	backend string
	// sessionsCount is the number of stored sessions by stage counted
	// at sessionsCountedAt (ns since the epoch; 0: never), for metrics.
	sessionsCount     atomic.Pointer[store.SessionCounts]
	sessionsCountedAt atomic.Int64
	csrfKey           []byte
	// attempts is shared so that a reload does not reset failure counts.
	attempts *throttle.Tracker
	logger   *zap.Logger
	stop     chan struct{}
	stopped  chan struct{}
	// watchStop ends the watch of a shared store's writes (see openShared);
	// watchDone is closed once it has.
	watchStop context.CancelFunc
	watchDone chan struct{}
	// longestSweepTx is the longest write transaction of the sweep so far
	// (ns), for benchmarks.
	longestSweepTx atomic.Int64

	// mu guards configs and closed. Admin actions hold it for reading
	// (see manage.go), so the store cannot close under them.
	mu sync.RWMutex
	// configs are the handlers provisioned on this database, for the
	// users they declare; a handler leaves at Cleanup.
	configs map[*TwoFactor]struct{}
	closed  bool
}

// storeWrappers holds, by database name (a bolt file's path), a function
// that wraps the store opened there before anything uses it. Only tests
// add one (a store that fails on demand, see fault_test.go); keyed by
// name, so each test's database is its own.
var storeWrappers sync.Map // name → func(store.Store) store.Store

// openDatabase returns the shared bolt database at path, opening it and
// starting its sweeper if no config has it open yet.
func openDatabase(path string, logger *zap.Logger) (*database, error) {
	return openShared(path, path, logger, func() (store.Store, error) { return boltstore.Open(path) }, nil)
}

// watcher keeps a distrusting cache told of other processes' writes
// until ctx ends (see redisstore.Store.Watch).
type watcher func(ctx context.Context, cache *sessioncache.Cache)

// openShared returns the database pooled under key, opening it with open
// if no config has it open yet. name is how messages name it. A store
// that other processes write too comes with watch: its cache then
// distrusts itself except while watch confirms it.
func openShared(key, name string, logger *zap.Logger, open func() (store.Store, error), watch watcher) (*database, error) {
	val, _, err := databases.LoadOrNew(key, func() (caddy.Destructor, error) {
		st, err := open()
		if err != nil {
			return nil, err
		}
		if wrap, ok := storeWrappers.Load(name); ok {
			st = wrap.(func(store.Store) store.Store)(st)
		}
		backend := "bolt"
		if isRedisName(name) {
			backend = "redis"
		}
		st = instrumentStore(st, backend)
		cache := sessioncache.New()
		if watch != nil {
			cache = sessioncache.NewDistrusting()
		}
		db := &database{
			store:   cache.Coherent(st),
			raw:     st,
			cache:   cache,
			hashing: throttle.PasswordHashing,
			path:    name,
			backend: backend,
			logger:  logger,
			stop:    make(chan struct{}),
			stopped: make(chan struct{}),
		}
		if db.csrfKey, err = loadOrCreateMeta(st, metaCSRFKey, 32); err != nil {
			st.Close()
			return nil, fmt.Errorf("2FA database %s: %w", name, err)
		}
		db.attempts = throttle.New(st)
		if watch != nil {
			// Other instances count attempts too: every counter is shared.
			db.attempts = throttle.NewShared(st)
			ctx, cancel := context.WithCancel(context.Background())
			db.watchStop, db.watchDone = cancel, make(chan struct{})
			go func() {
				defer close(db.watchDone)
				watch(ctx, cache)
			}()
		}
		db.attempts.OnLock(countLockout)
		go db.background()
		return db, nil
	})
	if err != nil {
		return nil, err
	}
	return val.(*database), nil
}

// Destruct stops the background work, writes the last-seen times the
// store lacks, and closes the store, once no config uses it.
func (db *database) Destruct() error {
	db.mu.Lock()
	db.closed = true
	db.mu.Unlock()
	close(db.stop)
	<-db.stopped
	if db.watchStop != nil {
		db.watchStop()
		<-db.watchDone
	}
	if err := db.cache.Flush(db.raw, true); err != nil {
		db.logger.Error("writing 2FA session activity", eventField(eventSessionActivityNotWritten), zap.Error(err))
	}
	return db.raw.Close()
}

// shared reports whether other processes write the store too.
func (db *database) shared() bool { return db.watchStop != nil }

// ping reads from the store, to tell whether it answers.
func (db *database) ping() error {
	err := db.store.View(func(tx store.Tx) error {
		_, err := tx.Meta(metaCSRFKey)
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}

func loadOrCreateMeta(st store.Store, name string, size int) ([]byte, error) {
	var value []byte
	err := st.Update(func(tx store.Tx) error {
		v, err := tx.Meta(name)
		if err == nil && len(v) == size {
			value = v
			return nil
		}
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		value = make([]byte, size)
		if _, err := rand.Read(value); err != nil {
			return err
		}
		return tx.PutMeta(name, value)
	})
	return value, err
}

// background sweeps expired sessions and writes last-seen times behind,
// until Destruct.
func (db *database) background() {
	defer close(db.stopped)
	sweep := time.NewTicker(sweepInterval)
	defer sweep.Stop()
	flush := time.NewTicker(sessioncache.FlushInterval)
	defer flush.Stop()
	for {
		select {
		case <-db.stop:
			return
		case <-flush.C:
			if err := db.cache.Flush(db.raw, false); err != nil {
				db.logger.Error("writing 2FA session activity", eventField(eventSessionActivityNotWritten), zap.Error(err))
			}
		case now := <-sweep.C:
			if n, err := db.sweep(now); err != nil {
				db.logger.Error("sweeping expired 2FA sessions", eventField(eventSweepFailed), zap.Error(err))
			} else if n > 0 {
				db.logger.Debug("swept expired 2FA sessions", eventField(eventSessionsSwept), zap.Int("count", n))
			}
		}
	}
}

// sweep deletes sessions whose absolute expiry has passed and stale
// attempt counters, in small transactions, until none is left: counters
// of names sprayed from many networks must not pile up faster than they
// go (in Redis, their index entries outlive the counters).
func (db *database) sweep(now time.Time) (int, error) {
	if db.cache != nil {
		db.cache.DropExpired(now)
	}
	total, err := db.sweepInBatches(func(tx store.Tx, limit int) (int, error) {
		return tx.DeleteExpiredSessions(now, limit)
	})
	if err != nil {
		return total, err
	}
	_, err = db.sweepInBatches(func(tx store.Tx, limit int) (int, error) {
		return tx.DeleteStaleAttempts(now, throttle.MaxWindow, limit)
	})
	return total, err
}

// sweepInBatches calls del in write transactions of at most a batch of
// records each, sized so that one takes about sweepTxTarget, until del
// deletes fewer than it may or the database closes; it returns how many
// were deleted.
func (db *database) sweepInBatches(del func(tx store.Tx, limit int) (int, error)) (int, error) {
	total := 0
	for batch := sweepBatch / 2; ; {
		var n int
		start := time.Now()
		err := db.store.Update(func(tx store.Tx) error {
			var err error
			n, err = del(tx, batch)
			return err
		})
		if err != nil {
			return total, err
		}
		took := time.Since(start)
		db.longestSweepTx.Store(max(db.longestSweepTx.Load(), int64(took)))
		total += n
		if n < batch {
			return total, nil
		}
		switch {
		case took > sweepTxTarget:
			batch = max(batch/2, minSweepBatch)
		case took < sweepTxTarget/2:
			batch = min(batch*2, sweepBatch)
		}
		select {
		case <-db.stop:
			return total, nil
		default:
		}
	}
}
