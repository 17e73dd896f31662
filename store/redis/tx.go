package redisstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
	"unsafe"

	"github.com/redis/rueidis"

	"github.com/caddy-two-factor/caddy-two-factor/store"
)

// errAborted means EXEC found a watched key changed: fn runs again.
var errAborted = errors.New("transaction aborted by a concurrent write")

// tx is one transaction. Its writes are commands buffered in cmds, with
// their effect kept beside them (strs, sets, zsets) so reads see them.
type tx struct {
	s        *Store
	c        rueidis.CommandClient
	writable bool
	// watched is set once a key was watched: the commit must then check.
	watched bool

	strs  map[string]strVal
	sets  map[string]map[string]bool // set → member → present
	zsets map[string]map[string]zent // sorted set → member → entry
	cmds  rueidis.Commands
}

// strVal is a string key as the transaction left it.
type strVal struct {
	v       string
	deleted bool
}

// zent is a sorted-set member as the transaction left it.
type zent struct {
	present bool
	score   int64
}

func (s *Store) newTx(c rueidis.CommandClient, writable bool) *tx {
	return &tx{s: s, c: c, writable: writable}
}

// do sends cmds in one round trip.
func (t *tx) do(cmds ...rueidis.Completed) []rueidis.RedisResult {
	ctx, cancel := context.WithTimeout(context.Background(), t.s.timeout)
	defer cancel()
	return t.c.DoMulti(ctx, cmds...)
}

// commit sends the buffered writes in MULTI/EXEC, or an empty MULTI/EXEC
// to confirm that nothing read has changed.
func (t *tx) commit() error {
	if !t.watched && len(t.cmds) == 0 {
		return nil
	}
	cmds := make(rueidis.Commands, 0, len(t.cmds)+2)
	cmds = append(cmds, t.c.B().Multi().Build())
	cmds = append(cmds, t.cmds...)
	cmds = append(cmds, t.c.B().Exec().Build())
	res := t.do(cmds...)
	for _, r := range res[:len(res)-1] {
		if err := r.Error(); err != nil {
			return fmt.Errorf("redis transaction: %w: %w", store.ErrUnavailable, err)
		}
	}
	replies, err := res[len(res)-1].ToArray()
	if rueidis.IsRedisNil(err) {
		return errAborted
	}
	if err != nil {
		return fmt.Errorf("redis transaction: %w: %w", store.ErrUnavailable, err)
	}
	for _, r := range replies {
		if err := r.Error(); err != nil {
			return fmt.Errorf("redis transaction: a write failed, the others were applied: %w: %w", store.ErrUnavailable, err)
		}
	}
	return nil
}

// canWrite fails in a View.
func (t *tx) canWrite() error {
	if !t.writable {
		return errReadOnly
	}
	return nil
}

// watch returns WATCH of names, or nothing in a View.
func (t *tx) watch(names ...string) rueidis.Commands {
	if !t.writable || len(names) == 0 {
		return nil
	}
	t.watched = true
	return rueidis.Commands{t.c.B().Watch().Key(names...).Build()}
}

// watchErr returns the error of the first failed WATCH in res.
func watchErr(res []rueidis.RedisResult) error {
	for _, r := range res {
		if err := r.Error(); err != nil {
			return fmt.Errorf("redis WATCH: %w: %w", store.ErrUnavailable, err)
		}
	}
	return nil
}

// get returns the values of the string keys names (ok[i] false where there
// is none), from this transaction's writes or the server. With watch, an
// Update watches what it reads from the server.
func (t *tx) get(watch bool, names ...string) (vals []string, ok []bool, err error) {
	vals, ok = make([]string, len(names)), make([]bool, len(names))
	var fetch []int
	for i, n := range names {
		if v, in := t.strs[n]; in {
			vals[i], ok[i] = v.v, !v.deleted
			continue
		}
		fetch = append(fetch, i)
	}
	if len(fetch) == 0 {
		return vals, ok, nil
	}
	var cmds rueidis.Commands
	if watch {
		fetched := make([]string, len(fetch))
		for j, i := range fetch {
			fetched[j] = names[i]
		}
		cmds = t.watch(fetched...)
	}
	watches := len(cmds)
	for _, i := range fetch {
		cmds = append(cmds, t.c.B().Get().Key(names[i]).Build())
	}
	res := t.do(cmds...)
	if err := watchErr(res[:watches]); err != nil {
		return nil, nil, err
	}
	for j, i := range fetch {
		v, err := res[watches+j].ToString()
		switch {
		case rueidis.IsRedisNil(err):
		case err != nil:
			return nil, nil, fmt.Errorf("reading redis key %q: %w: %w", names[i], store.ErrUnavailable, err)
		default:
			vals[i], ok[i] = v, true
		}
	}
	return vals, ok, nil
}

// get1 is get of one key.
func (t *tx) get1(name string) (string, bool, error) {
	vals, ok, err := t.get(true, name)
	if err != nil {
		return "", false, err
	}
	return vals[0], ok[0], nil
}

// members returns the members of a set, watched in an Update.
func (t *tx) members(set string) ([]string, error) {
	cmds := append(t.watch(set), t.c.B().Smembers().Key(set).Build())
	res := t.do(cmds...)
	if err := watchErr(res[:len(res)-1]); err != nil {
		return nil, err
	}
	ms, err := res[len(res)-1].AsStrSlice()
	if err != nil {
		return nil, fmt.Errorf("reading redis set %q: %w: %w", set, store.ErrUnavailable, err)
	}
	for m, present := range t.sets[set] {
		if i := slices.Index(ms, m); i >= 0 && !present {
			ms = slices.Delete(ms, i, i+1)
		} else if i < 0 && present {
			ms = append(ms, m)
		}
	}
	return ms, nil
}

// lexMembers returns the members of the score-0 sorted set z that start
// with prefix, in byte order, watching z in an Update if watch is set.
func (t *tx) lexMembers(z, prefix string, watch bool) ([]string, error) {
	var cmds rueidis.Commands
	if watch {
		cmds = t.watch(z)
	}
	lo, hi := lexRange(prefix)
	cmds = append(cmds, t.c.B().Zrange().Key(z).Min(lo).Max(hi).Bylex().Build())
	ms, err := t.zrange(z, cmds)
	if err != nil {
		return nil, err
	}
	return mergeMembers(ms, t.zsets[z], func(m string, _ zent) bool { return len(m) >= len(prefix) && m[:len(prefix)] == prefix }), nil
}

// allMembers returns every member of the sorted set z, watched in an
// Update.
func (t *tx) allMembers(z string) ([]string, error) {
	cmds := append(t.watch(z), t.c.B().Zrange().Key(z).Min("0").Max("-1").Build())
	ms, err := t.zrange(z, cmds)
	if err != nil {
		return nil, err
	}
	return mergeMembers(ms, t.zsets[z], func(string, zent) bool { return true }), nil
}

// zrange sends cmds, which end with a ZRANGE of z, and returns its members.
func (t *tx) zrange(z string, cmds rueidis.Commands) ([]string, error) {
	res := t.do(cmds...)
	if err := watchErr(res[:len(res)-1]); err != nil {
		return nil, err
	}
	ms, err := res[len(res)-1].AsStrSlice()
	if err != nil {
		return nil, fmt.Errorf("reading redis sorted set %q: %w: %w", z, store.ErrUnavailable, err)
	}
	return ms, nil
}

// mergeMembers applies a transaction's writes to members read from the
// server (in) and sorts them; in reports whether a member written is in the
// range read.
func mergeMembers(ms []string, written map[string]zent, inRange func(string, zent) bool) []string {
	if len(written) > 0 {
		ms = slices.DeleteFunc(ms, func(m string) bool { _, w := written[m]; return w })
		for m, e := range written {
			if e.present && inRange(m, e) {
				ms = append(ms, m)
			}
		}
	}
	slices.Sort(ms)
	return ms
}

// scored is a sorted-set member with its score.
type scored struct {
	member string
	score  int64
}

// expiredMembers returns the entries of the expiry index that may have
// expired at now: up to limit scored below now's millisecond, and all
// scored at it (which only their records can tell), lowest first. It does
// not watch the index: a cleanup watches the sessions themselves.
func (t *tx) expiredMembers(now time.Time, limit int) ([]scored, error) {
	z := t.s.keys.expiry()
	written := t.zsets[z]
	last := expiryScore(now)
	res := t.do(
		t.c.B().Zrange().Key(z).Min("-inf").Max("("+formatScore(last)).Byscore().
			Limit(0, int64(limit+len(written))).Withscores().Build(),
		t.c.B().Zrange().Key(z).Min(formatScore(last)).Max(formatScore(last)).Byscore().Withscores().Build(),
	)
	var out []scored
	for _, r := range res {
		zs, err := r.AsZScores()
		if err != nil {
			return nil, fmt.Errorf("reading redis sorted set %q: %w: %w", z, store.ErrUnavailable, err)
		}
		for _, s := range zs {
			if _, w := written[s.Member]; !w {
				out = append(out, scored{s.Member, int64(s.Score)})
			}
		}
	}
	for m, e := range written {
		if e.present && e.score <= last {
			out = append(out, scored{m, e.score})
		}
	}
	slices.SortFunc(out, func(a, b scored) int { return cmp.Or(cmp.Compare(a.score, b.score), cmp.Compare(a.member, b.member)) })
	return out, nil
}

// Buffered writes.

func (t *tx) set(name, v string, pxatMs int64) {
	t.strs = lazy(t.strs)
	t.strs[name] = strVal{v: v}
	b := t.c.B().Set().Key(name).Value(v)
	if pxatMs != 0 {
		t.cmds = append(t.cmds, b.PxatMillisecondsTimestamp(pxatMs).Build())
		return
	}
	t.cmds = append(t.cmds, b.Build())
}

func (t *tx) del(name string) {
	t.strs = lazy(t.strs)
	t.strs[name] = strVal{deleted: true}
	t.cmds = append(t.cmds, t.c.B().Del().Key(name).Build())
}

func (t *tx) sadd(set, member string) {
	t.setMember(set, member, true)
	t.cmds = append(t.cmds, t.c.B().Sadd().Key(set).Member(member).Build())
}

func (t *tx) srem(set, member string) {
	t.setMember(set, member, false)
	t.cmds = append(t.cmds, t.c.B().Srem().Key(set).Member(member).Build())
}

func (t *tx) setMember(set, member string, present bool) {
	t.sets = lazy(t.sets)
	t.sets[set] = lazy(t.sets[set])
	t.sets[set][member] = present
}

func (t *tx) zadd(z, member string, score int64) {
	t.zMember(z, member, zent{present: true, score: score})
	t.cmds = append(t.cmds, t.c.B().Zadd().Key(z).ScoreMember().ScoreMember(float64(score), member).Build())
}

func (t *tx) zrem(z, member string) {
	t.zMember(z, member, zent{})
	t.cmds = append(t.cmds, t.c.B().Zrem().Key(z).Member(member).Build())
}

func (t *tx) zMember(z, member string, e zent) {
	t.zsets = lazy(t.zsets)
	t.zsets[z] = lazy(t.zsets[z])
	t.zsets[z][member] = e
}

func lazy[K comparable, V any](m map[K]V) map[K]V {
	if m == nil {
		return map[K]V{}
	}
	return m
}

// bytesOf returns s's bytes without a copy, for decoders that copy what
// they keep.
func bytesOf(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// The store.Tx methods.

func (t *tx) Meta(name string) ([]byte, error) {
	v, ok, err := t.get1(t.s.keys.meta(name))
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, store.ErrNotFound
	}
	return []byte(v), nil
}

func (t *tx) PutMeta(name string, value []byte) error {
	if err := t.canWrite(); err != nil {
		return err
	}
	t.set(t.s.keys.meta(name), string(value), 0)
	return nil
}

func (t *tx) User(name string) (*store.User, error) {
	v, ok, err := t.get1(t.s.keys.user(name))
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, store.ErrNotFound
	}
	return decodeUser(name, v)
}

func decodeUser(name, v string) (*store.User, error) {
	u, err := store.DecodeUser(bytesOf(v))
	if err != nil {
		return nil, fmt.Errorf("user %q: %w", name, err)
	}
	return u, nil
}

func (t *tx) PutUser(u *store.User) error {
	if err := t.canWrite(); err != nil {
		return err
	}
	if u.Name == "" {
		return errors.New("user has no name")
	}
	t.set(t.s.keys.user(u.Name), string(store.EncodeUser(u)), 0)
	t.zadd(t.s.keys.users(), u.Name, 0)
	return nil
}

func (t *tx) DeleteUser(name string) error {
	if err := t.canWrite(); err != nil {
		return err
	}
	t.del(t.s.keys.user(name))
	t.zrem(t.s.keys.users(), name)
	return nil
}

func (t *tx) ForEachUser(fn func(*store.User) error) error {
	names, err := t.lexMembers(t.s.keys.users(), "", true)
	if err != nil {
		return err
	}
	keys := make([]string, len(names))
	for i, n := range names {
		keys[i] = t.s.keys.user(n)
	}
	vals, ok, err := t.get(true, keys...)
	if err != nil {
		return err
	}
	for i, n := range names {
		if !ok[i] {
			continue
		}
		u, err := decodeUser(n, vals[i])
		if err != nil {
			return err
		}
		if err := fn(u); err != nil {
			return err
		}
	}
	return nil
}

func (t *tx) Session(key store.SessionKey) (*store.Session, error) {
	v, ok, err := t.get1(t.s.keys.session(key))
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, store.ErrNotFound
	}
	return store.DecodeSession(key, bytesOf(v))
}

// sessions reads the sessions of keys, in order, skipping those not there.
func (t *tx) sessions(watch bool, keys []store.SessionKey) ([]*store.Session, error) {
	names := make([]string, len(keys))
	for i, k := range keys {
		names[i] = t.s.keys.session(k)
	}
	vals, ok, err := t.get(watch, names...)
	if err != nil {
		return nil, err
	}
	out := make([]*store.Session, len(keys))
	for i, k := range keys {
		if ok[i] {
			if out[i], err = store.DecodeSession(k, bytesOf(vals[i])); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

func (t *tx) PutSession(s *store.Session) error {
	if err := t.canWrite(); err != nil {
		return err
	}
	if s.User == "" {
		return errors.New("session has no user")
	}
	old, err := t.Session(s.Key)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return err
	case old.User != s.User:
		t.unindexSession(s.Key, old.User)
	}
	if !s.Expires.After(t.s.now()) {
		// Redis would drop it at once; drop it with its index entries.
		t.del(t.s.keys.session(s.Key))
		t.unindexSession(s.Key, s.User)
		return nil
	}
	t.set(t.s.keys.session(s.Key), string(store.EncodeSession(s)), pxat(s.Expires))
	// Index entries are written only when they change.
	m := expiryMember(s.Key, s.User)
	reindex := old == nil || old.User != s.User || expiryScore(old.Expires) != expiryScore(s.Expires)
	if reindex {
		t.sadd(t.s.keys.userSessions(s.User), string(s.Key[:]))
		t.zadd(t.s.keys.expiry(), m, expiryScore(s.Expires))
	}
	// A new full session is taken out of the pending set too, in case
	// an entry of an expired record with its key was left there.
	if reindex || old.Stage != s.Stage {
		if s.Stage == store.StageFull {
			t.srem(t.s.keys.pending(), m)
		} else {
			t.sadd(t.s.keys.pending(), m)
		}
	}
	return nil
}

// unindexSession removes a session's entries in its user's set, the
// expiry index and the pending set.
func (t *tx) unindexSession(key store.SessionKey, user string) {
	m := expiryMember(key, user)
	t.srem(t.s.keys.userSessions(user), string(key[:]))
	t.zrem(t.s.keys.expiry(), m)
	t.srem(t.s.keys.pending(), m)
}

func (t *tx) DeleteSession(key store.SessionKey) error {
	if err := t.canWrite(); err != nil {
		return err
	}
	s, err := t.Session(key)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	t.del(t.s.keys.session(key))
	t.unindexSession(key, s.User)
	return nil
}

func (t *tx) UserSessions(user string) ([]*store.Session, error) {
	ms, err := t.members(t.s.keys.userSessions(user))
	if err != nil {
		return nil, err
	}
	slices.Sort(ms)
	keys := make([]store.SessionKey, 0, len(ms))
	for _, m := range ms {
		if len(m) == len(store.SessionKey{}) {
			keys = append(keys, store.SessionKey([]byte(m)))
		}
	}
	all, err := t.sessions(true, keys)
	if err != nil {
		return nil, err
	}
	// Left out: sessions Redis expired, and any entry another user's
	// session would answer to.
	return slices.DeleteFunc(all, func(s *store.Session) bool { return s == nil || s.User != user }), nil
}

func (t *tx) DeleteExpiredSessions(now time.Time, limit int) (int, error) {
	if err := t.canWrite(); err != nil {
		return 0, err
	}
	if limit <= 0 {
		return 0, nil
	}
	cands, err := t.expiredMembers(now, limit)
	if err != nil {
		return 0, err
	}
	type cand struct {
		member string
		key    store.SessionKey
		user   string
	}
	parsed := make([]cand, 0, len(cands))
	keys := make([]store.SessionKey, 0, len(cands))
	for _, c := range cands {
		key, user, ok := parseExpiryMember(c.member)
		if !ok {
			t.zrem(t.s.keys.expiry(), c.member) // not an entry this package made
			continue
		}
		parsed = append(parsed, cand{c.member, key, user})
		keys = append(keys, key)
	}
	sessions, err := t.sessions(true, keys)
	if err != nil {
		return 0, err
	}
	n := 0
	for i, c := range parsed {
		if n == limit {
			break
		}
		s := sessions[i]
		switch {
		case s == nil:
			// Redis expired the record: its index entries are left.
			t.unindexSession(c.key, c.user)
			n++
		case !s.Expires.After(now):
			t.del(t.s.keys.session(c.key))
			t.unindexSession(c.key, s.User)
			if s.User != c.user {
				t.unindexSession(c.key, c.user)
			}
			n++
		case s.User != c.user:
			t.unindexSession(c.key, c.user) // a stale entry of a live session
		}
	}
	return n, nil
}

func (t *tx) ForEachSession(fn func(*store.Session) error) error {
	ms, err := t.allMembers(t.s.keys.expiry())
	if err != nil {
		return err
	}
	keys := make([]store.SessionKey, 0, len(ms))
	for _, m := range ms {
		if key, _, ok := parseExpiryMember(m); ok {
			keys = append(keys, key)
		}
	}
	slices.SortFunc(keys, func(a, b store.SessionKey) int { return cmp.Compare(string(a[:]), string(b[:])) })
	keys = slices.Compact(keys)
	sessions, err := t.sessions(true, keys)
	if err != nil {
		return err
	}
	for _, s := range sessions {
		if s == nil {
			continue
		}
		if err := fn(s); err != nil {
			return err
		}
	}
	return nil
}

// CountSessions counts the expiry index (every session) and the pending
// set (the pending ones, a subset of it): the full sessions are the
// difference.
func (t *tx) CountSessions() (store.SessionCounts, error) {
	z, p := t.s.keys.expiry(), t.s.keys.pending()
	var total, pending int
	if len(t.zsets[z]) > 0 || len(t.sets[p]) > 0 {
		// This transaction's own writes count: read the members.
		ms, err := t.allMembers(z)
		if err != nil {
			return store.SessionCounts{}, err
		}
		ps, err := t.members(p)
		if err != nil {
			return store.SessionCounts{}, err
		}
		total, pending = len(ms), len(ps)
	} else {
		cmds := append(t.watch(z, p), t.c.B().Zcard().Key(z).Build(), t.c.B().Scard().Key(p).Build())
		res := t.do(cmds...)
		if err := watchErr(res[:len(res)-2]); err != nil {
			return store.SessionCounts{}, err
		}
		for i, n := range []*int{&total, &pending} {
			v, err := res[len(res)-2+i].AsInt64()
			if err != nil {
				return store.SessionCounts{}, fmt.Errorf("counting redis sessions: %w: %w", store.ErrUnavailable, err)
			}
			*n = int(v)
		}
	}
	// The pending set is in the index unless an older version of this
	// store deleted sessions without it.
	pending = min(pending, total)
	return store.SessionCounts{Pending: pending, Full: total - pending}, nil
}

func (t *tx) Attempts(key string) (*store.Attempts, error) {
	v, ok, err := t.get1(t.s.keys.attempts(key))
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, store.ErrNotFound
	}
	return decodeAttempts(key, v)
}

func decodeAttempts(key, v string) (*store.Attempts, error) {
	a, err := store.DecodeAttempts(bytesOf(v))
	if err != nil {
		return nil, fmt.Errorf("attempts %q: %w", key, err)
	}
	return a, nil
}

func (t *tx) PutAttempts(key string, a *store.Attempts) error {
	if err := t.canWrite(); err != nil {
		return err
	}
	until := a.LockedUntil
	if kept := a.WindowStart.Add(t.s.retention); kept.After(until) {
		until = kept
	}
	if !until.After(t.s.now()) {
		// Redis would drop it at once; drop it with its index entry.
		return t.DeleteAttempts(key)
	}
	t.set(t.s.keys.attempts(key), string(store.EncodeAttempts(a)), pxat(until))
	t.zadd(t.s.keys.attemptsIndex(), key, 0)
	return nil
}

func (t *tx) DeleteAttempts(key string) error {
	if err := t.canWrite(); err != nil {
		return err
	}
	t.del(t.s.keys.attempts(key))
	t.zrem(t.s.keys.attemptsIndex(), key)
	return nil
}

// counters reads the counters of keys, watching them if watch is set.
func (t *tx) counters(watch bool, keys []string) ([]*store.Attempts, error) {
	names := make([]string, len(keys))
	for i, k := range keys {
		names[i] = t.s.keys.attempts(k)
	}
	vals, ok, err := t.get(watch, names...)
	if err != nil {
		return nil, err
	}
	out := make([]*store.Attempts, len(keys))
	for i, k := range keys {
		if ok[i] {
			if out[i], err = decodeAttempts(k, vals[i]); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

func (t *tx) ForEachAttempts(prefix string, fn func(key string, a *store.Attempts) error) error {
	keys, err := t.lexMembers(t.s.keys.attemptsIndex(), prefix, true)
	if err != nil {
		return err
	}
	all, err := t.counters(true, keys)
	if err != nil {
		return err
	}
	for i, a := range all {
		if a == nil {
			continue
		}
		if err := fn(keys[i], a); err != nil {
			return err
		}
	}
	return nil
}

func (t *tx) DeleteAttemptsWithPrefix(prefix string) (int, error) {
	if err := t.canWrite(); err != nil {
		return 0, err
	}
	keys, err := t.lexMembers(t.s.keys.attemptsIndex(), prefix, true)
	if err != nil {
		return 0, err
	}
	names := make([]string, len(keys))
	for i, k := range keys {
		names[i] = t.s.keys.attempts(k)
	}
	_, ok, err := t.get(true, names...)
	if err != nil {
		return 0, err
	}
	n := 0
	for i, k := range keys {
		if ok[i] {
			n++
		}
		if err := t.DeleteAttempts(k); err != nil {
			return 0, err
		}
	}
	return n, nil
}

// staleScanBatch is how many counters DeleteStaleAttempts reads at once.
const staleScanBatch = 1000

func (t *tx) DeleteStaleAttempts(now time.Time, window time.Duration, limit int) (int, error) {
	if err := t.canWrite(); err != nil {
		return 0, err
	}
	if limit <= 0 {
		return 0, nil
	}
	stale := func(a *store.Attempts) bool {
		return a == nil || (now.After(a.LockedUntil) && now.Sub(a.WindowStart) > window)
	}
	keys, err := t.lexMembers(t.s.keys.attemptsIndex(), "", false)
	if err != nil {
		return 0, err
	}
	// A first pass without watching finds the candidates, so that live
	// counters, written at every sign-in, do not abort the cleanup; the
	// candidates are then watched and read again.
	var cands []string
	for len(keys) > 0 && len(cands) < limit {
		batch := keys[:min(len(keys), staleScanBatch)]
		keys = keys[len(batch):]
		all, err := t.counters(false, batch)
		if err != nil {
			return 0, err
		}
		for i, a := range all {
			if stale(a) && len(cands) < limit {
				cands = append(cands, batch[i])
			}
		}
	}
	all, err := t.counters(true, cands)
	if err != nil {
		return 0, err
	}
	n := 0
	for i, a := range all {
		if stale(a) {
			if err := t.DeleteAttempts(cands[i]); err != nil {
				return 0, err
			}
			n++
		}
	}
	return n, nil
}

// Interface guards
var _ store.Tx = (*tx)(nil)
