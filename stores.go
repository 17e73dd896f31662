package twofactor

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-two-factor/caddy-two-factor/sessioncache"
	"github.com/caddy-two-factor/caddy-two-factor/store"
	redisstore "github.com/caddy-two-factor/caddy-two-factor/store/redis"
)

func init() {
	caddy.RegisterModule(BoltStore{})
	caddy.RegisterModule(RedisStore{})
}

// storeGuest is a module of the two_factor.stores namespace: it opens
// its store in Provision (or open, for a handler provisioned without
// Caddy), shared through the databases pool by every config that names
// the same store, and gives its share back in Cleanup.
type storeGuest interface {
	caddy.Module
	caddy.CleanerUpper
	open(logger *zap.Logger) error
	opened() *database
}

// BoltStore is the embedded store: a bbolt file that one Caddy opens.
// Sites that name the same file share users, enrollments, sessions and
// lockouts. Module ID two_factor.stores.bolt.
type BoltStore struct {
	// The database file. Placeholders are resolved. Required.
	Path string `json:"path,omitempty"`

	db  *database
	key string
}

// CaddyModule returns the Caddy module information.
func (BoltStore) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "two_factor.stores.bolt", New: func() caddy.Module { return new(BoltStore) }}
}

// Provision opens the file, or shares it with the configs that have it open.
func (s *BoltStore) Provision(ctx caddy.Context) error { return s.open(ctx.Logger()) }

func (s *BoltStore) open(logger *zap.Logger) error {
	path := caddy.NewReplacer().ReplaceKnown(s.Path, "")
	if path == "" {
		return errors.New("bolt store: path is required")
	}
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	db, err := openDatabase(path, logger)
	if err != nil {
		return err
	}
	s.db, s.key = db, path
	return nil
}

func (s *BoltStore) opened() *database { return s.db }

// Cleanup gives this config's share of the file back.
func (s *BoltStore) Cleanup() error { return release(&s.db, s.key) }

// UnmarshalCaddyfile reads `store bolt <path>`.
func (s *BoltStore) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // bolt
	if !d.NextArg() {
		return d.Errf("store bolt needs the database file: store bolt <path>")
	}
	s.Path = d.Val()
	if d.NextArg() || d.NextBlock(d.Nesting()) {
		return d.ArgErr()
	}
	return nil
}

// RedisStore is a store on Redis or Valkey (6 or later), shared by every
// Caddy instance that names the same server and key prefix: they share
// users, enrollments, sessions and lockouts, and a session ended on one
// ends on all within a second (see README, "Which store"). Module ID
// two_factor.stores.redis. Every string field takes placeholders
// ({env.REDIS_PASSWORD}, {file.path}), resolved at provisioning.
type RedisStore struct {
	// The server's host:port, or the Sentinels' when sentinel_master is
	// set. Default: 127.0.0.1:6379.
	Addresses []string `json:"addresses,omitempty"`
	// The ACL user. Default: none (the default user).
	Username string `json:"username,omitempty"`
	// The password. Give it as a placeholder: a password written in the
	// config is logged by Caddy at DEBUG level. Default: none.
	Password string `json:"password,omitempty"` //nolint:gosec // a placeholder, by advice
	// The database number. Default: 0.
	DB int `json:"db,omitempty"`
	// What every key starts with; instances share sign-ins only under the
	// same prefix. Default: two_factor:
	KeyPrefix string `json:"key_prefix,omitempty"`
	// Connect with TLS. Default: off (implied by tls_server_name or tls_ca).
	TLS bool `json:"tls,omitempty"`
	// The name the server's certificate must have. Default: the host of the address.
	TLSServerName string `json:"tls_server_name,omitempty"`
	// A PEM file of the CA certificates that sign the server's. Default:
	// the system's roots.
	TLSCA string `json:"tls_ca,omitempty"`
	// The master set name to ask the Sentinels at addresses for.
	// Default: none (addresses is the server).
	SentinelMaster string `json:"sentinel_master,omitempty"`
	// The credentials for the Sentinels. Default: none.
	SentinelUsername string `json:"sentinel_username,omitempty"`
	SentinelPassword string `json:"sentinel_password,omitempty"` //nolint:gosec // a placeholder, by advice
	// Bounds connecting and every round trip. Default: 3s
	Timeout caddy.Duration `json:"timeout,omitempty"`

	db  *database
	key string
	// instance tells apart, in the pool, stores that are otherwise the
	// same: tests set it to run several instances in one process.
	instance string
}

// CaddyModule returns the Caddy module information.
func (RedisStore) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "two_factor.stores.redis", New: func() caddy.Module { return new(RedisStore) }}
}

// Provision connects, or shares the connection of the configs that name
// the same server, prefix and credentials. A server that cannot be
// reached or refuses the credentials fails the config within timeout.
func (s *RedisStore) Provision(ctx caddy.Context) error {
	for name, value := range map[string]string{"password": s.Password, "sentinel_password": s.SentinelPassword} {
		if value != "" && !isPlaceholder(strings.TrimSpace(value)) {
			ctx.Logger().Warn("the redis store's " + name + " is written in the config: Caddy logs its config at DEBUG level and serves it at GET /config/ on the admin endpoint; use {env.NAME} or {file.path} instead")
		}
	}
	if o, err := s.options(); err == nil && o.TLS == nil {
		if remote := remoteAddresses(o.Addresses); len(remote) > 0 {
			ctx.Logger().Warn("the redis store talks to "+strings.Join(remote, ", ")+" without tls: its password, the sessions and the sealed secrets cross the network in the clear; set tls (and tls_ca) unless that network is private to you",
				zap.String("store", redisName(o)))
		}
	}
	return s.open(ctx.Logger())
}

// remoteAddresses returns those of addresses whose host is not a loopback
// address or localhost.
func remoteAddresses(addresses []string) []string {
	var remote []string
	for _, a := range addresses {
		host, _, err := net.SplitHostPort(a)
		if err != nil {
			host = a
		}
		if ip := net.ParseIP(host); host == "localhost" || ip != nil && ip.IsLoopback() {
			continue
		}
		remote = append(remote, a)
	}
	return remote
}

// options resolves placeholders into the store's options.
func (s *RedisStore) options() (redisstore.Options, error) {
	repl := caddy.NewReplacer()
	r := func(v string) string { return repl.ReplaceKnown(v, "") }
	o := redisstore.Options{
		Username:         r(s.Username),
		Password:         r(s.Password),
		DB:               s.DB,
		KeyPrefix:        r(s.KeyPrefix),
		SentinelMaster:   r(s.SentinelMaster),
		SentinelUsername: r(s.SentinelUsername),
		SentinelPassword: r(s.SentinelPassword),
		Timeout:          time.Duration(s.Timeout),
		AttemptRetention: 24 * time.Hour,
	}
	for _, a := range s.Addresses {
		o.Addresses = append(o.Addresses, r(a))
	}
	if len(o.Addresses) == 0 {
		o.Addresses = []string{redisstore.DefaultAddress}
	}
	if o.KeyPrefix == "" {
		o.KeyPrefix = redisstore.DefaultKeyPrefix
	}
	if o.Timeout <= 0 {
		o.Timeout = redisstore.DefaultTimeout
	}
	if s.DB < 0 {
		return o, fmt.Errorf("redis store: db must be 0 or more, not %d", s.DB)
	}
	if s.TLS || s.TLSServerName != "" || s.TLSCA != "" {
		o.TLS = &tls.Config{ServerName: r(s.TLSServerName), MinVersion: tls.VersionTLS12}
		if ca := r(s.TLSCA); ca != "" {
			pem, err := os.ReadFile(ca)
			if err != nil {
				return o, fmt.Errorf("redis store: tls_ca: %w", err)
			}
			o.TLS.RootCAs = x509.NewCertPool()
			if !o.TLS.RootCAs.AppendCertsFromPEM(pem) {
				return o, fmt.Errorf("redis store: tls_ca %s holds no PEM certificate", ca)
			}
		}
	}
	return o, nil
}

func (s *RedisStore) open(logger *zap.Logger) error {
	o, err := s.options()
	if err != nil {
		return err
	}
	// The pool key is a digest of everything that tells stores apart,
	// secrets included, so it holds none of them.
	canon, _ := json.Marshal(struct {
		redisstore.Options
		TLS                            bool
		TLSServerName, TLSCA, Instance string
	}{o, o.TLS != nil, s.TLSServerName, s.TLSCA, s.instance})
	sum := sha256.Sum256(canon)
	key := "redis:" + hex.EncodeToString(sum[:])
	name := redisName(o)
	var st *redisstore.Store
	db, err := openShared(key, name, logger, func() (store.Store, error) {
		var err error
		st, err = redisstore.Open(context.Background(), o)
		if err != nil {
			return nil, fmt.Errorf("2FA redis store %s: %w", name, err)
		}
		return st, nil
	}, func(ctx context.Context, cache *sessioncache.Cache) { watchRedis(ctx, st, cache, name, logger) })
	if err != nil {
		return err
	}
	s.db, s.key = db, key
	return nil
}

// redisName is how messages, the admin API and `caddy two-factor --db`
// name a Redis store: redis://<first address>/<db>#<key_prefix>, with
// rediss:// over TLS, and redis+sentinel://<first sentinel>/<master>/<db>
// through Sentinel. It holds no credentials.
func redisName(o redisstore.Options) string {
	scheme, path := "redis", strconv.Itoa(o.DB)
	if o.TLS != nil {
		scheme = "rediss"
	}
	if o.SentinelMaster != "" {
		scheme += "+sentinel"
		path = o.SentinelMaster + "/" + path
	}
	return scheme + "://" + o.Addresses[0] + "/" + path + "#" + o.KeyPrefix
}

// isRedisName reports whether a database name is a Redis store's.
func isRedisName(name string) bool {
	return strings.HasPrefix(name, "redis://") || strings.HasPrefix(name, "rediss://") ||
		strings.HasPrefix(name, "redis+sentinel://") || strings.HasPrefix(name, "rediss+sentinel://")
}

// watchRedis keeps cache told of every instance's writes to st until ctx
// ends, and logs when that news stops and starts again.
func watchRedis(ctx context.Context, st *redisstore.Store, cache *sessioncache.Cache, name string, logger *zap.Logger) {
	// Lost may also be called from the subscription's reader (an
	// undecodable message), beside Confirmed.
	var up atomic.Bool
	st.Watch(ctx, redisstore.WatchHooks{
		Invalidate: cache.Invalidate,
		Confirmed: func(at time.Time) {
			cache.Confirm(at)
			if !up.Swap(true) {
				logger.Info("2FA sessions of other instances are heard again: the session cache is in use", eventField(eventInvalidationRestored), zap.String("store", name))
			}
		},
		Lost: func(err error) {
			cache.Distrust()
			if up.Swap(false) && ctx.Err() == nil {
				logger.Warn("lost the invalidation channel of the 2FA store: every signed-in request is checked against the store until it is back",
					eventField(eventInvalidationLost), zap.String("store", name), zap.Error(err))
			}
		},
	})
}

func (s *RedisStore) opened() *database { return s.db }

// Cleanup gives this config's share of the connection back.
func (s *RedisStore) Cleanup() error { return release(&s.db, s.key) }

// UnmarshalCaddyfile reads:
//
//	store redis [<address>...] {
//	    address <host:port>          # repeatable; the Sentinels' with sentinel
//	    username <name>
//	    password {env.REDIS_PASSWORD}
//	    db <number>
//	    key_prefix <prefix>
//	    tls
//	    tls_server_name <name>
//	    tls_ca <PEM file>
//	    sentinel <master set name>
//	    sentinel_username <name>
//	    sentinel_password {env.SENTINEL_PASSWORD}
//	    timeout <duration>
//	}
func (s *RedisStore) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // redis
	s.Addresses = append(s.Addresses, d.RemainingArgs()...)
	seen := make(map[string]bool)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		sub := d.Val()
		if sub != "address" {
			if seen[sub] {
				return d.Errf("%s is set twice", sub)
			}
			seen[sub] = true
		}
		var err error
		switch sub {
		case "address":
			var a string
			if err = oneArg(d, &a); err == nil {
				s.Addresses = append(s.Addresses, a)
			}
		case "username":
			err = oneArg(d, &s.Username)
		case "password":
			err = oneArg(d, &s.Password)
		case "key_prefix":
			err = oneArg(d, &s.KeyPrefix)
		case "tls_server_name":
			err = oneArg(d, &s.TLSServerName)
		case "tls_ca":
			err = oneArg(d, &s.TLSCA)
		case "sentinel":
			err = oneArg(d, &s.SentinelMaster)
		case "sentinel_username":
			err = oneArg(d, &s.SentinelUsername)
		case "sentinel_password":
			err = oneArg(d, &s.SentinelPassword)
		case "tls":
			if d.NextArg() {
				return d.ArgErr()
			}
			s.TLS = true
		case "db":
			var raw string
			if err = oneArg(d, &raw); err == nil {
				if s.DB, err = strconv.Atoi(raw); err != nil || s.DB < 0 {
					return d.Errf("db must be a database number (0 or more), not %q", raw)
				}
			}
		case "timeout":
			err = durationArg(d, &s.Timeout)
		default:
			return d.Errf("unrecognized store redis option %q", sub)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// release gives back a share of a pooled database, once.
func release(db **database, key string) error {
	if *db == nil {
		return nil
	}
	*db = nil
	_, err := databases.Delete(key)
	return err
}

// Interface guards
var (
	_ storeGuest            = (*BoltStore)(nil)
	_ storeGuest            = (*RedisStore)(nil)
	_ caddy.Provisioner     = (*BoltStore)(nil)
	_ caddy.Provisioner     = (*RedisStore)(nil)
	_ caddyfile.Unmarshaler = (*BoltStore)(nil)
	_ caddyfile.Unmarshaler = (*RedisStore)(nil)
)
