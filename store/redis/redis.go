// Package redisstore is a [store.Store] on Redis or Valkey, so that several
// Caddy instances share users, sessions and attempt counters.
//
// # Keys
//
// Every key starts with Options.KeyPrefix (P, "two_factor:" by default);
// docs/redis-keys.md has the full table.
//
//	P m:<name>            string   meta value, as given
//	P{u:<user>}:user      string   user, store.EncodeUser
//	P{u:<user>}:sessions  set      keys (32 bytes) of the user's sessions
//	P s:<hex key>         string   session, store.EncodeSession; expires at Session.Expires
//	P a:<counter key>     string   counter, store.EncodeAttempts; expires when stale
//	P users               zset     user names, score 0 (name order)
//	P expiry              zset     session key + user name, score = expiry in Unix ms
//	P attempts            zset     counter keys, score 0 (key order)
//	P c:<claim key>       string   "1": a claim (Store.Claim); expires at its TTL
//	P pending             set      P expiry members of the pending sessions
//	P pending:built       string   "1" once P pending is complete
//
// Names and keys are stored as they are, bytes included: a user key ends
// in "}:user" and a set's in "}:sessions", neither a suffix of the other,
// so no two users share a key whatever their names hold.
//
// # Expiry
//
// Sessions expire natively at their Expires (rounded up to the
// millisecond), and counters at the later of LockedUntil and WindowStart
// plus Options.AttemptRetention, by the server's clock. What is left
// behind is index entries: DeleteExpiredSessions and DeleteStaleAttempts
// remove them (and count them). A session or counter put already expired
// by the wall clock is deleted instead.
//
// # Counting by stage
//
// P pending holds the P expiry member of each pending session, written in
// the same MULTI as the session, so CountSessions is ZCARD P expiry and
// SCARD P pending (the full sessions are the difference), and, like the
// expiry index, counts a session Redis dropped until the cleanup runs.
// Open builds P pending once for data written before it existed (see
// buildPendingSet).
//
// # Transactions
//
// Update is an optimistic transaction on one dedicated connection: every
// key is WATCHed before it is read, writes are buffered (and read back
// from the buffer), and MULTI/EXEC applies them at the end. When EXEC
// aborts because a watched key changed, fn runs again, up to maxTries
// times with a short random pause, after which Update fails with
// ErrConflict. A transaction that only read is confirmed the same way, so
// it too saw one consistent state; so is one whose fn failed, since the
// failure may come from reads that did not agree. The cleanups read their
// indexes without watching them (a session or counter is watched before
// it is deleted), so they do not conflict with every sign-in. View is
// plain reads: each sees committed data, but not one snapshot.
//
// Redis has no rollback: a command that fails inside EXEC (only a key of
// the wrong type can make one fail) leaves the others applied, and
// Update returns the error.
//
// # Cluster
//
// Open talks to one server, or to the master a Sentinel names, and
// refuses a Redis Cluster node (ErrCluster). Cluster runs WATCH and MULTI
// only on keys of one hash slot, and no hash tags put every key of a
// transaction in one slot short of putting the whole store there: a
// session is found by its token's digest alone, so its record cannot share
// the slot of its user ({u:<user>}), which a sign-in writes in the same
// transaction, with the user's counters (a:user:<name>, a:client:<net>);
// and the indexes (users, expiry, attempts) are one key each, read in
// order by the sweep and by prefix queries. A prefix that is itself a hash
// tag ("{two_factor}:") would put every key on one shard, which a single
// server with replicas behind Sentinel does as well.
package redisstore

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"time"

	"github.com/redis/rueidis"

	"github.com/caddy-two-factor/caddy-two-factor/store"
)

// Options say where the server is and how keys are laid out.
type Options struct {
	// Addresses are the server's host:port, or the Sentinels' when
	// SentinelMaster is set. Default: 127.0.0.1:6379.
	Addresses []string
	// Username and Password authenticate (AUTH / ACL). Default: none.
	Username string
	Password string
	// DB is the database number to SELECT. Default: 0.
	DB int
	// KeyPrefix starts every key. Default: "two_factor:".
	KeyPrefix string
	// TLS, when set, is used to connect (to the Sentinels as well).
	// Default: plain TCP.
	TLS *tls.Config
	// SentinelMaster is the master set name to ask the Sentinels at
	// Addresses for. Default: none (Addresses is the server).
	SentinelMaster string
	// SentinelUsername and SentinelPassword authenticate to the
	// Sentinels. Default: none.
	SentinelUsername string
	SentinelPassword string
	// Timeout bounds connecting and every round trip. Default: 3s.
	Timeout time.Duration
	// AttemptRetention is how long after its window started a counter is
	// kept (unless locked for longer); it must be at least the longest
	// attempt window or lockout the module uses. Default: 24h.
	AttemptRetention time.Duration
}

// Defaults.
const (
	DefaultAddress          = "127.0.0.1:6379"
	DefaultKeyPrefix        = "two_factor:"
	DefaultTimeout          = 3 * time.Second
	DefaultAttemptRetention = 24 * time.Hour
)

// maxTries bounds how often Update runs fn when EXEC keeps aborting.
const maxTries = 50

// ErrConflict means an Update kept losing to concurrent writers of the
// keys it read.
var ErrConflict = errors.New("redis transaction kept conflicting with concurrent writes")

// ErrCluster means the server is a Redis Cluster node (see the package
// doc, "Cluster").
var ErrCluster = errors.New("the server is a Redis Cluster node, which this store does not support: " +
	"putting a session is one WATCH/MULTI transaction over the session (found by its token alone), " +
	"its user's session set and the expiry index, keys in different hash slots, and Cluster runs a " +
	"transaction within one slot only; use one server, or a master with replicas behind Sentinel")

// refuseCluster returns ErrCluster if c's server is a Cluster node.
// CLUSTER INFO answers only with cluster mode on (any error means off, or
// that the user may not ask, as INFO too may be refused by an ACL).
func refuseCluster(ctx context.Context, c rueidis.Client) error {
	err := c.Do(ctx, c.B().ClusterInfo().Build()).Error()
	if err == nil {
		return ErrCluster
	}
	if _, isRedis := rueidis.IsRedisErr(err); isRedis {
		return nil
	}
	return err
}

// errReadOnly is returned by writes in a View.
var errReadOnly = errors.New("write in a read-only transaction")

// Store is the Redis store.
type Store struct {
	client    rueidis.Client
	keys      keys
	timeout   time.Duration
	retention time.Duration
	// now is the wall clock, which decides whether a record put is
	// already expired.
	now func() time.Time
}

// Open connects and checks the connection with a PING. It fails within
// Timeout (or ctx's deadline, if sooner) with an error naming the address.
func Open(ctx context.Context, opts Options) (*Store, error) {
	if len(opts.Addresses) == 0 {
		opts.Addresses = []string{DefaultAddress}
	}
	if opts.KeyPrefix == "" {
		opts.KeyPrefix = DefaultKeyPrefix
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.AttemptRetention <= 0 {
		opts.AttemptRetention = DefaultAttemptRetention
	}
	where := "redis at " + strings.Join(opts.Addresses, ", ")
	if opts.SentinelMaster != "" {
		where = fmt.Sprintf("redis master %q from sentinels at %s", opts.SentinelMaster, strings.Join(opts.Addresses, ", "))
	} else if len(opts.Addresses) > 1 {
		return nil, fmt.Errorf("connecting to %s: several addresses need a sentinel master (Redis Cluster is not supported)", where)
	}
	dialer := net.Dialer{Timeout: opts.Timeout, KeepAlive: time.Minute}
	co := rueidis.ClientOption{
		InitAddress:       opts.Addresses,
		Username:          opts.Username,
		Password:          opts.Password,
		SelectDB:          opts.DB,
		TLSConfig:         opts.TLS,
		Dialer:            dialer,
		ConnWriteTimeout:  opts.Timeout,
		ForceSingleClient: opts.SentinelMaster == "",
		// No client-side caching yet: every read goes to the server.
		DisableCache: true,
	}
	if opts.SentinelMaster != "" {
		co.Sentinel = rueidis.SentinelOption{
			MasterSet: opts.SentinelMaster,
			Username:  opts.SentinelUsername,
			Password:  opts.SentinelPassword,
			TLSConfig: opts.TLS,
			Dialer:    dialer,
		}
	}
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	type result struct {
		c   rueidis.Client
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := rueidis.NewClient(co)
		if err == nil {
			if err = c.Do(ctx, c.B().Ping().Build()).Error(); err == nil {
				err = refuseCluster(ctx, c)
			}
			if err != nil {
				c.Close()
			}
		}
		done <- result{c, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			return nil, fmt.Errorf("connecting to %s: %w", where, r.err)
		}
		s := &Store{client: r.c, keys: keys{opts.KeyPrefix}, timeout: opts.Timeout, retention: opts.AttemptRetention, now: time.Now}
		if err := s.buildPendingSet(); err != nil {
			r.c.Close()
			return nil, fmt.Errorf("indexing the pending sessions of %s: %w", where, err)
		}
		return s, nil
	case <-ctx.Done():
		// The client, if it ever connects, is closed by nobody but is
		// bounded by the dial and write timeouts.
		go func() {
			if r := <-done; r.err == nil {
				r.c.Close()
			}
		}()
		return nil, fmt.Errorf("connecting to %s: %w", where, ctx.Err())
	}
}

// Claim implements store.Claimer with SET key NX PX ttl: the first
// instance to claim key within ttl wins.
func (s *Store) Claim(key string, ttl time.Duration) (bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	name := s.keys.claim(key)
	err := s.client.Do(ctx, s.client.B().Set().Key(name).Value("1").Nx().PxMilliseconds(max(ttl.Milliseconds(), 1)).Build()).Error()
	switch {
	case rueidis.IsRedisNil(err):
		return false, nil // taken
	case err != nil:
		return false, fmt.Errorf("claiming redis key %q: %w: %w", name, store.ErrUnavailable, err)
	}
	return true, nil
}

// Close implements store.Store.
func (s *Store) Close() error {
	s.client.Close()
	return nil
}

// View implements store.Store.
func (s *Store) View(fn func(store.Tx) error) error {
	return fn(s.newTx(s.client, false))
}

// Update implements store.Store.
func (s *Store) Update(fn func(store.Tx) error) error {
	for try := 1; ; try++ {
		var fnErr error
		err := s.client.Dedicated(func(c rueidis.DedicatedClient) error {
			t := s.newTx(c, true)
			fnErr = fn(t)
			if fnErr != nil {
				t.cmds = nil // roll back: commit nothing, but check the reads
			}
			return t.commit()
		})
		switch {
		case errors.Is(err, errAborted):
			if try == maxTries {
				return fmt.Errorf("redis transaction: gave up after %d tries: %w: %w", try, store.ErrUnavailable, ErrConflict)
			}
			// A pause of up to a few milliseconds, growing, so racing
			// writers spread out.
			time.Sleep(time.Duration(rand.Int64N(int64(min(try, 10)) * int64(time.Millisecond))))
		case fnErr != nil:
			return fnErr
		case err != nil && !errors.Is(err, store.ErrUnavailable):
			return fmt.Errorf("redis transaction: %w: %w", store.ErrUnavailable, err)
		default:
			return err
		}
	}
}

// Interface guards
var _ store.Store = (*Store)(nil)
