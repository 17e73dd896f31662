package twofactor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	"github.com/caddy-two-factor/caddy-two-factor/seal"
	"github.com/caddy-two-factor/caddy-two-factor/sessioncache"
	"github.com/caddy-two-factor/caddy-two-factor/store"
	boltstore "github.com/caddy-two-factor/caddy-two-factor/store/bolt"
	redisstore "github.com/caddy-two-factor/caddy-two-factor/store/redis"
	"github.com/caddy-two-factor/caddy-two-factor/throttle"
)

// `caddy two-factor migrate` copies a bbolt database into the Redis store
// a config names, so an instance moves to Redis without anyone enrolling
// again or being signed out. It reads the target from the config rather
// than from flags so that the store is exactly the one Caddy will open,
// credentials, TLS and key prefix included, and so that the keys that
// must open the copied secrets are the config's.
//
// It runs once per target. Once a run has completed, it records that in
// the target (migratedFrom), and a later run is refused: whatever was
// signed out, removed, reset, revoked or used up in Redis since would
// otherwise come back from the file. A run that failed half way may be
// run again, and then:
//
//   - users (enrollments, database users' hashes, recovery digests, the
//     last accepted TOTP step): one the target already holds as it is in
//     the file is left; one it holds with other data is a conflict,
//     refused before anything is written;
//   - sessions that have not expired (keys, expiries, credentials, pending
//     setups) are copied only for the users this run copied, never for a
//     user the target held already (it may have signed out there);
//   - meta: the key check value and the CSRF key and hash class when the
//     target has none (a running instance holds the target's CSRF key in
//     memory, so it is never replaced).
//
//   - failure counters of accounts (user:<name>, and user:<name> with a
//     client network) that still count or lock, so that an account locked
//     on the file stays locked on the target until the same instant and a
//     budget half used stays half used; stale ones (neither locked nor
//     within throttle.MaxWindow of their window's start, as the sweep
//     deletes them) are not copied. A counter the target holds already is
//     kept, with the later lockout of the two. (The file holds no client
//     counters: on bbolt they live in memory.)
//
// Sealed secrets are copied as they are, so the config's
// encryption_key must open them: that is checked before anything is
// written. Writes go through a session cache's announcing wrapper, so
// instances already running on the target drop what they held of a user
// or session that is overwritten.

// migrateBatch bounds the records one write transaction on the target holds.
const migrateBatch = 256

// metaMigratedFrom names the meta value a completed run leaves in the
// target: the file it copied, and when.
const metaMigratedFrom = "migrated_from"

// Codes of the migrate command's refusals.
const (
	// The target config's encryption_key does not open the source's
	// secrets, or the target's.
	codeKeyMismatch = "key_mismatch"
	// The target holds other data for users.
	codeTargetDiffers = "target_differs"
	// The target was filled by a migrate run already.
	codeAlreadyMigrated = "already_migrated"
	// The config names no Redis store.
	codeNoRedisStore = "no_redis_store"
)

// migrateCount counts records of one kind.
type migrateCount struct {
	// Copied were absent from the target.
	Copied int `json:"copied"`
	// Unchanged were in the target already, the same.
	Unchanged int `json:"unchanged"`
	// Kept were in the target with other data, which was kept (sessions
	// and counters only: users that differ are refused).
	Kept int `json:"kept,omitempty"`
	// Skipped were not copied: sessions of users the target held already.
	Skipped int `json:"skipped,omitempty"`
}

// migrateResult is what migrate did; it is the output of --json.
type migrateResult struct {
	From     string       `json:"from"`
	To       string       `json:"to"`
	Users    migrateCount `json:"users"`
	Sessions migrateCount `json:"sessions"`
	// ExpiredSessions were in the source but have expired: not copied.
	ExpiredSessions int `json:"expired_sessions"`
	// Counters are the failure counters of accounts that still count or
	// lock. One the target holds already is kept (Kept), or, when the
	// source's lockout ends later, kept with that lockout (Copied).
	Counters migrateCount `json:"counters"`
	// StaleCounters were in the source but neither count nor lock any
	// more: not copied.
	StaleCounters int `json:"stale_counters"`
	// Meta names the meta values written to the target.
	Meta []string `json:"meta"`
}

// changed reports whether the run wrote anything.
func (r migrateResult) changed() bool {
	return r.Users.Copied+r.Sessions.Copied+r.Counters.Copied+len(r.Meta) > 0
}

func migrateCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "migrate --from <bbolt file> --config <config> [--db <redis store>]",
		Short: "Copies a bbolt database into the Redis store a config names",
		Long: `
Copies users (with their enrollments, recovery codes and, for database users,
password hashes), live sessions and the key check value from a bbolt file into
the Redis store that the two_factor handlers of --config name (store redis),
so nobody enrolls again or is signed out. Run it with Caddy stopped: a running
Caddy holds the file locked. It connects to Redis itself.

The secrets are copied sealed, so the config's encryption_key must open them;
that is checked before anything is written. It runs once per target: a
completed run is recorded in the target, and a later run is refused, since it
would bring back what was signed out, removed, reset or used up there since.
A run that failed half way may be run again: it leaves users the target holds
as they are in the file, refuses users it holds with other data, and copies
sessions only for the users it copies. Failure counters of accounts that
still count or lock are copied, so a lockout holds on Redis until the same
instant; stale ones are not.

When the config names several Redis stores, choose one with --db
redis://<address>/<db>#<key_prefix> (as "caddy two-factor users" names it).
`,
		Args: cobra.NoArgs,
	}
	cmd.Flags().String("from", "", "The bbolt database file to copy (required)")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		return caddycmd.WrapCommandFuncForCobra(func(fl caddycmd.Flags) (int, error) {
			m := &migration{
				from:    fl.String("from"),
				config:  fl.String("config"),
				adapter: fl.String("adapter"),
				target:  fl.String("db"),
				now:     time.Now,
				logger:  caddy.Log(),
				stdout:  cmd.OutOrStdout(),
			}
			c := &cli{json: fl.Bool("json"), stdout: m.stdout}
			res, err := m.run()
			return c.finish(res, err, func() error { return printMigrated(m.stdout, res) })
		})(cmd, args)
	}
	return cmd
}

// migration is one run of migrate.
type migration struct {
	from, config, adapter string
	// target names the Redis store to copy to, or "" for the only one.
	target string
	now    func() time.Time
	logger *zap.Logger
	stdout io.Writer
}

// migrationTarget is the Redis store of a config and the keys of the
// handlers that use it.
type migrationTarget struct {
	name    string
	options redisstore.Options
	sealers []*seal.Sealer
}

func (m *migration) run() (migrateResult, error) {
	res := migrateResult{Meta: []string{}}
	if m.from == "" || m.config == "" {
		return res, refuse(codeBadRequest, "migrate needs --from <bbolt file> and --config <the config that names the Redis store>")
	}
	from, err := filepath.Abs(m.from)
	if err != nil {
		return res, err
	}
	res.From = from
	target, err := m.findTarget()
	if err != nil {
		return res, err
	}
	res.To = target.name
	if _, err := os.Stat(from); err != nil {
		return res, refuse(codeNotOpen, "no 2FA database at %s: %v", from, err)
	}
	src, err := boltstore.Open(from)
	if errors.Is(err, boltstore.ErrLocked) {
		return res, refuse(codeLocked, "2FA database %s is held by another process: a running Caddy keeps its database locked; stop it, so that nothing changes in the file after the copy, and run migrate again", from)
	}
	if err != nil {
		return res, err
	}
	defer src.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	raw, err := redisstore.Open(ctx, target.options)
	if err != nil {
		return res, fmt.Errorf("2FA redis store %s: %w", target.name, err)
	}
	defer raw.Close()
	dst := sessioncache.New().Coherent(raw)

	err = m.copy(src, dst, target, &res)
	fields := []zap.Field{
		eventField(eventAdminMigrate), zap.String("source", "command_line"),
		zap.String("from", res.From), zap.String("db", res.To),
		zap.Int("users_copied", res.Users.Copied), zap.Int("sessions_copied", res.Sessions.Copied),
		zap.Int("counters_copied", res.Counters.Copied),
	}
	if err != nil {
		m.logger.Warn("two-factor admin action refused", append(fields, zap.String("error", err.Error()))...)
	} else {
		m.logger.Info("two-factor admin action", fields...)
	}
	return res, err
}

// copy copies src into dst: keys checked first, then meta, users and
// sessions.
func (m *migration) copy(src, dst store.Store, target migrationTarget, res *migrateResult) error {
	var done []byte
	err := dst.View(func(tx store.Tx) error {
		var err error
		done, err = tx.Meta(metaMigratedFrom)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		return err
	})
	if err != nil {
		return err
	}
	if done != nil {
		return refuse(codeAlreadyMigrated, "%s was filled by migrate already (from %s); it runs once, since a second run would bring back what was signed out, removed, reset or used up there since; nothing was copied", res.To, done)
	}
	var (
		srcCheck []byte
		opened   seal.Key
	)
	err = src.View(func(tx store.Tx) error {
		for _, sealer := range target.sealers {
			check, key, refused, err := opensSecrets(tx, sealer)
			if err != nil {
				return err
			}
			if refused != nil {
				return keyRefusal(m.config, res.From, refused)
			}
			srcCheck, opened = check, key
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := m.copyMeta(src, dst, target, srcCheck, opened, res); err != nil {
		return err
	}
	copied, err := m.copyUsers(src, dst, res)
	if err != nil {
		return err
	}
	if err := m.copyCounters(src, dst, res); err != nil {
		return err
	}
	if err := m.copySessions(src, dst, copied, res); err != nil {
		return err
	}
	return dst.Update(func(tx store.Tx) error {
		return tx.PutMeta(metaMigratedFrom, []byte(res.From+" at "+m.now().UTC().Format(time.RFC3339)))
	})
}

// keyRefusal says that the keys of config do not open the secrets in db.
func keyRefusal(config, db string, refused error) error {
	why := errKeysDoNotOpen.Error()
	if errors.Is(refused, seal.ErrNoKey) {
		why = "it has none, and they are encrypted"
	}
	return refuse(codeKeyMismatch, "the encryption_key of %s does not open the TOTP secrets in %s: %s; migrate copies them sealed, so the config needs the key they were sealed with; nothing was copied", config, db, why)
}

// opensSecrets tells whether sealer opens the secrets in tx, as checkKeys
// does: by the key check value or, without one, by one sealed secret. It
// returns the check value (nil if none), the key that opened it, and why
// it does not open (refused), apart from errors of the store.
func opensSecrets(tx store.Tx, sealer *seal.Sealer) (check []byte, opened seal.Key, refused, err error) {
	check, err = tx.Meta(metaKeyCheck)
	if errors.Is(err, store.ErrNotFound) {
		opened, refused, err = openOneSecret(tx, sealer)
		return nil, opened, refused, err
	}
	if err != nil {
		return nil, opened, nil, err
	}
	plaintext, key, openErr := sealer.OpenKey(check, keyCheckOwner)
	if openErr == nil && string(plaintext) != string(keyCheckText) {
		openErr = errors.New("the key check value is damaged")
	}
	return check, key, openErr, nil
}

// copyMeta checks that the target's own secrets, if any, open with the
// config's keys, and gives it a key check value, the CSRF key and the hash
// class where it has none.
func (m *migration) copyMeta(src, dst store.Store, target migrationTarget, srcCheck []byte, opened seal.Key, res *migrateResult) error {
	copied := map[string][]byte{}
	err := src.View(func(tx store.Tx) error {
		for _, name := range []string{metaCSRFKey, metaHashClass} {
			v, err := tx.Meta(name)
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			copied[name] = v
		}
		return nil
	})
	if err != nil {
		return err
	}
	var written []string
	err = dst.Update(func(tx store.Tx) error {
		written = nil // should the store run this again
		for _, sealer := range target.sealers {
			_, _, refused, err := opensSecrets(tx, sealer)
			if err != nil {
				return err
			}
			if refused != nil {
				return keyRefusal(m.config, target.name, refused)
			}
		}
		_, err := tx.Meta(metaKeyCheck)
		switch {
		case errors.Is(err, store.ErrNotFound) && srcCheck != nil:
			copied[metaKeyCheck] = srcCheck
		case errors.Is(err, store.ErrNotFound) && opened != seal.KeyPrevious:
			// As checkKeys does: a check value sealed with the current key
			// while the secrets need a previous one would let that key be
			// dropped before reseal has run; Caddy writes it then.
			check, err := target.sealers[0].Seal(keyCheckText, keyCheckOwner)
			if err != nil {
				return err
			}
			copied[metaKeyCheck] = check
		case err != nil && !errors.Is(err, store.ErrNotFound):
			return err
		}
		for _, name := range slices.Sorted(maps.Keys(copied)) {
			if _, err := tx.Meta(name); err == nil {
				continue
			} else if !errors.Is(err, store.ErrNotFound) {
				return err
			}
			if err := tx.PutMeta(name, copied[name]); err != nil {
				return err
			}
			written = append(written, name)
		}
		return nil
	})
	res.Meta = append(res.Meta, written...)
	return err
}

// copyUsers copies every user, refusing (before writing any) users the
// target holds with other data, and returns the names it copied.
func (m *migration) copyUsers(src, dst store.Store, res *migrateResult) (map[string]bool, error) {
	var users []*store.User
	err := src.View(func(tx store.Tx) error {
		users = nil
		return tx.ForEachUser(func(u *store.User) error {
			users = append(users, u)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	var differ []string
	err = dst.View(func(tx store.Tx) error {
		differ = nil
		for _, u := range users {
			if same, exists, err := sameUser(tx, u); err != nil {
				return err
			} else if exists && !same {
				differ = append(differ, u.Name)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(differ) > 0 {
		return nil, refuse(codeTargetDiffers, "%s already holds other data for %s (they signed in there, or were changed there); nothing was copied: copying them from %s would undo that",
			res.To, strings.Join(differ, ", "), res.From)
	}
	copied := make(map[string]bool, len(users))
	for batch := range slices.Chunk(users, migrateBatch) {
		var n migrateCount
		var names []string
		err := dst.Update(func(tx store.Tx) error {
			n, names = migrateCount{}, names[:0]
			for _, u := range batch {
				same, exists, err := sameUser(tx, u)
				switch {
				case err != nil:
					return err
				case same:
					n.Unchanged++
					continue
				case exists:
					return refuse(codeTargetDiffers, "%s changed user %q while it was being copied; nothing of it was copied", res.To, u.Name)
				}
				n.Copied++
				names = append(names, u.Name)
				if err := tx.PutUser(u); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		res.Users.add(n)
		for _, name := range names {
			copied[name] = true
		}
	}
	return copied, nil
}

// sameUser reports whether tx holds u as it is, and whether it holds a
// user of that name at all.
func sameUser(tx store.Tx, u *store.User) (same, exists bool, err error) {
	have, err := tx.User(u.Name)
	if errors.Is(err, store.ErrNotFound) {
		return false, false, nil
	}
	if err != nil {
		return false, false, err
	}
	return sameRecord(have, u), true, nil
}

// sameRecord compares two records as the store keeps them.
func sameRecord(a, b any) bool {
	ja, errA := json.Marshal(a)
	jb, errB := json.Marshal(b)
	return errA == nil && errB == nil && string(ja) == string(jb)
}

func (n *migrateCount) add(o migrateCount) {
	n.Copied += o.Copied
	n.Unchanged += o.Unchanged
	n.Kept += o.Kept
	n.Skipped += o.Skipped
}

// copyCounters copies the failure counters of accounts that still count
// or lock, in batches; stale ones are counted, not copied, by the rule of
// the sweep (DeleteStaleAttempts with throttle.MaxWindow). A counter the
// target holds already is kept, with the source's lockout when that ends
// later.
func (m *migration) copyCounters(src, dst store.Store, res *migrateResult) error {
	now := m.now()
	type counter struct {
		key string
		a   *store.Attempts
	}
	var live []counter
	err := src.View(func(tx store.Tx) error {
		live, res.StaleCounters = nil, 0
		return tx.ForEachAttempts(throttle.AccountKey(""), func(key string, a *store.Attempts) error {
			if now.After(a.LockedUntil) && now.Sub(a.WindowStart) > throttle.MaxWindow {
				res.StaleCounters++
				return nil
			}
			live = append(live, counter{key, a})
			return nil
		})
	})
	if err != nil {
		return err
	}
	for batch := range slices.Chunk(live, migrateBatch) {
		var n migrateCount
		err := dst.Update(func(tx store.Tx) error {
			n = migrateCount{}
			for _, c := range batch {
				have, err := tx.Attempts(c.key)
				switch {
				case errors.Is(err, store.ErrNotFound):
					n.Copied++
					have = c.a
				case err != nil:
					return err
				case sameRecord(have, c.a):
					n.Unchanged++
					continue
				case c.a.LockedUntil.After(have.LockedUntil) && c.a.LockedUntil.After(now):
					// The target's counter stays, locked until the source's
					// lockout ends: that much was copied.
					n.Copied++
					have.LockedUntil = c.a.LockedUntil
				default:
					n.Kept++
					continue
				}
				if err := tx.PutAttempts(c.key, have); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		res.Counters.add(n)
	}
	return nil
}

// copySessions copies the sessions that have not expired of the users in
// copied, in batches, reading the source as it goes.
func (m *migration) copySessions(src, dst store.Store, copied map[string]bool, res *migrateResult) error {
	now := m.now()
	batch := make([]*store.Session, 0, migrateBatch)
	flush := func() error {
		var n migrateCount
		err := dst.Update(func(tx store.Tx) error {
			n = migrateCount{}
			for _, s := range batch {
				have, err := tx.Session(s.Key)
				switch {
				case errors.Is(err, store.ErrNotFound):
					n.Copied++
				case err != nil:
					return err
				case sameRecord(have, s) && have.Key == s.Key:
					n.Unchanged++
					continue
				default:
					n.Kept++
					continue
				}
				if err := tx.PutSession(s); err != nil {
					return err
				}
			}
			return nil
		})
		res.Sessions.add(n)
		batch = batch[:0]
		return err
	}
	return src.View(func(tx store.Tx) error {
		err := tx.ForEachSession(func(s *store.Session) error {
			if !now.Before(s.Expires) {
				res.ExpiredSessions++
				return nil
			}
			if !copied[s.User] {
				res.Sessions.Skipped++
				return nil
			}
			batch = append(batch, s)
			if len(batch) < migrateBatch {
				return nil
			}
			return flush()
		})
		if err != nil || len(batch) == 0 {
			return err
		}
		return flush()
	})
}

// findTarget reads the config and returns the Redis store its two_factor
// handlers name (the one m.target names, when they name several), with
// the keys of the handlers on it.
func (m *migration) findTarget() (migrationTarget, error) {
	cfg, file, _, err := caddycmd.LoadConfig(m.config, m.adapter)
	if err != nil {
		return migrationTarget{}, fmt.Errorf("reading the config: %w", err)
	}
	var (
		handlers []json.RawMessage
		walk     func(v any)
	)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if v["handler"] == "two_factor" {
				raw, _ := json.Marshal(v)
				handlers = append(handlers, raw)
			}
			for _, name := range slices.Sorted(maps.Keys(v)) {
				walk(v[name])
			}
		case []any:
			for _, e := range v {
				walk(e)
			}
		}
	}
	var doc any
	if err := json.Unmarshal(cfg, &doc); err != nil {
		return migrationTarget{}, fmt.Errorf("reading the config %s: %w", file, err)
	}
	walk(doc)

	targets := map[string]*migrationTarget{}
	for _, raw := range handlers {
		var h TwoFactor
		if err := json.Unmarshal(raw, &h); err != nil {
			return migrationTarget{}, fmt.Errorf("reading a two_factor handler of %s: %w", file, err)
		}
		var backend struct {
			Backend string `json:"backend"`
		}
		if h.StoreRaw == nil || json.Unmarshal(h.StoreRaw, &backend) != nil || backend.Backend != "redis" {
			continue
		}
		var rs RedisStore
		if err := json.Unmarshal(h.StoreRaw, &rs); err != nil {
			return migrationTarget{}, fmt.Errorf("reading the redis store of %s: %w", file, err)
		}
		o, err := rs.options()
		if err != nil {
			return migrationTarget{}, err
		}
		h.logger = zap.NewNop()
		if err := h.provisionSealer(caddy.NewReplacer()); err != nil {
			return migrationTarget{}, fmt.Errorf("the two_factor handler on %s in %s: %w", redisName(o), file, err)
		}
		name := redisName(o)
		t := targets[name]
		if t == nil {
			t = &migrationTarget{name: name, options: o}
			targets[name] = t
		}
		t.sealers = append(t.sealers, h.sealer)
	}
	names := slices.Sorted(maps.Keys(targets))
	switch {
	case len(names) == 0:
		return migrationTarget{}, refuse(codeNoRedisStore, "no two_factor handler in %s uses a Redis store (store redis { ... } in the two_factor block)", file)
	case m.target != "":
		if t := targets[m.target]; t != nil {
			return *t, nil
		}
		return migrationTarget{}, refuse(codeNotOpen, "%s names no Redis store %s; it names %s", file, m.target, strings.Join(names, ", "))
	case len(names) > 1:
		return migrationTarget{}, refuse(codeChooseDatabase, "%s names several Redis stores: %s; choose one with --db", file, strings.Join(names, ", "))
	}
	return *targets[names[0]], nil
}

// printMigrated says what migrate copied.
func printMigrated(w io.Writer, res migrateResult) error {
	if !res.changed() {
		_, err := fmt.Fprintf(w, "Nothing to copy: %s already holds everything of %s (%d users, %d sessions).\n",
			res.To, res.From, res.Users.Unchanged, res.Sessions.Unchanged+res.Sessions.Kept)
		return err
	}
	fmt.Fprintf(w, "From:     %s\nTo:       %s\n", res.From, res.To)
	count := func(n migrateCount) string {
		s := fmt.Sprintf("%d copied, %d already there", n.Copied, n.Unchanged)
		if n.Kept > 0 {
			s += fmt.Sprintf(", %d kept as the target had them", n.Kept)
		}
		if n.Skipped > 0 {
			s += fmt.Sprintf(", %d of users the target held already, not copied", n.Skipped)
		}
		return s
	}
	fmt.Fprintf(w, "Users:    %s\n", count(res.Users))
	fmt.Fprintf(w, "Sessions: %s; %d expired, not copied\n", count(res.Sessions), res.ExpiredSessions)
	fmt.Fprintf(w, "Counters: %s; %d stale, not copied\n", count(res.Counters), res.StaleCounters)
	meta := "none"
	if len(res.Meta) > 0 {
		meta = strings.Join(res.Meta, ", ")
	}
	_, err := fmt.Fprintf(w, "Meta:     %s\n", meta)
	return err
}
