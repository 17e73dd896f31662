package twofactor

import (
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-two-factor/caddy-two-factor/store"
)

// databases holds every open database, keyed by absolute path. Configs
// share a file through it, so the old and new config of a reload use one
// handle instead of waiting on each other's file lock.
var databases = caddy.NewUsagePool()

const (
	// sweepInterval is how often expired sessions are deleted.
	sweepInterval = time.Minute
	// sweepBatch bounds one write transaction of the sweep, so it never
	// holds the write lock for long.
	sweepBatch = 1000
	// metaCSRFKey names the key that signs anti-CSRF tokens.
	metaCSRFKey = "csrf_key"
)

// database is an open store, shared by the configs that name its file.
type database struct {
	store   store.Store
	csrfKey []byte
	// attempts is shared so that a reload does not reset failure counts.
	attempts *attemptTracker
	logger   *zap.Logger
	stop     chan struct{}
	stopped  chan struct{}
}

// openDatabase returns the shared database at path, opening it and
// starting its sweeper if no config has it open yet.
func openDatabase(path string, logger *zap.Logger) (*database, error) {
	val, _, err := databases.LoadOrNew(path, func() (caddy.Destructor, error) {
		st, err := store.OpenBolt(path)
		if err != nil {
			return nil, err
		}
		db := &database{store: st, logger: logger, stop: make(chan struct{}), stopped: make(chan struct{})}
		if db.csrfKey, err = loadOrCreateMeta(st, metaCSRFKey, 32); err != nil {
			st.Close()
			return nil, fmt.Errorf("2FA database %s: %w", path, err)
		}
		db.attempts = newAttemptTracker(st)
		go db.sweepLoop()
		return db, nil
	})
	if err != nil {
		return nil, err
	}
	return val.(*database), nil
}

// Destruct stops the sweeper and closes the store once no config uses it.
func (db *database) Destruct() error {
	close(db.stop)
	<-db.stopped
	return db.store.Close()
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

func (db *database) sweepLoop() {
	defer close(db.stopped)
	ticker := time.NewTicker(sweepInterval)
	defer ticker.Stop()
	for {
		select {
		case <-db.stop:
			return
		case now := <-ticker.C:
			if n, err := db.sweep(now); err != nil {
				db.logger.Error("sweeping expired 2FA sessions", zap.Error(err))
			} else if n > 0 {
				db.logger.Debug("swept expired 2FA sessions", zap.Int("count", n))
			}
		}
	}
}

// sweep deletes sessions whose absolute expiry has passed, in small
// transactions, and stale attempt counters.
func (db *database) sweep(now time.Time) (int, error) {
	total := 0
	for {
		var n int
		err := db.store.Update(func(tx store.Tx) error {
			var err error
			n, err = tx.DeleteExpiredSessions(now, sweepBatch)
			return err
		})
		if err != nil {
			return total, err
		}
		total += n
		if n < sweepBatch {
			break
		}
		select {
		case <-db.stop:
			return total, nil
		default:
		}
	}
	err := db.store.Update(func(tx store.Tx) error {
		_, err := tx.DeleteStaleAttempts(now, maxAttemptWindow, sweepBatch)
		return err
	})
	return total, err
}
