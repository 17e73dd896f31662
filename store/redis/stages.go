package redisstore

import (
	"context"
	"fmt"
	"slices"

	"github.com/caddy-two-factor/caddy-two-factor/store"
)

// rebuildBatch is how many sessions one transaction of the pending set's
// rebuild reads (and watches).
const rebuildBatch = 1000

// buildPendingSet fills P pending from the sessions of a store written
// before it existed, once: P pending:built marks it done.
//
// Every member of P expiry and of P pending is checked against its session
// record, rebuildBatch records per transaction, each record watched: a
// pending session's member is added, any other's removed, and one whose
// record Redis already dropped is left as it is (the sweep removes it).
// Adding to a set twice counts once, so instances that rebuild at the same
// time do not double count, and a session written meanwhile (which writes
// the set itself) aborts the batch that read it, which then runs again.
func (s *Store) buildPendingSet() error {
	c := s.client
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	res := c.DoMulti(ctx,
		c.B().Exists().Key(s.keys.pendingBuilt()).Build(),
		c.B().Zrange().Key(s.keys.expiry()).Min("0").Max("-1").Build(),
		c.B().Smembers().Key(s.keys.pending()).Build(),
	)
	built, err := res[0].AsInt64()
	if err != nil || built == 1 {
		return wrapUnavailable(err)
	}
	indexed, err := res[1].AsStrSlice()
	if err != nil {
		return wrapUnavailable(err)
	}
	pending, err := res[2].AsStrSlice()
	if err != nil {
		return wrapUnavailable(err)
	}
	inIndex := make(map[string]bool, len(indexed))
	for _, m := range indexed {
		inIndex[m] = true
	}
	inPending := make(map[string]bool, len(pending))
	for _, m := range pending {
		inPending[m] = true
	}
	members := slices.Compact(slices.Sorted(func(yield func(string) bool) {
		for _, ms := range [][]string{indexed, pending} {
			for _, m := range ms {
				if !yield(m) {
					return
				}
			}
		}
	}))
	for batch := range slices.Chunk(members, rebuildBatch) {
		err := s.Update(func(stx store.Tx) error {
			t := stx.(*tx)
			keys := make([]store.SessionKey, len(batch))
			users := make([]string, len(batch))
			for i, m := range batch {
				keys[i], users[i], _ = parseExpiryMember(m)
			}
			sessions, err := t.sessions(true, keys)
			if err != nil {
				return err
			}
			for i, m := range batch {
				rec := sessions[i]
				want := rec != nil && rec.User == users[i] && rec.Stage != store.StageFull
				switch {
				case rec == nil && inIndex[m]:
				case want && !inPending[m]:
					t.sadd(s.keys.pending(), m)
				case !want && inPending[m]:
					t.srem(s.keys.pending(), m)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	ctx, cancel = context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	if err := c.Do(ctx, c.B().Set().Key(s.keys.pendingBuilt()).Value("1").Build()).Error(); err != nil {
		return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
	}
	return nil
}

// wrapUnavailable wraps a failed read of the server in store.ErrUnavailable.
func wrapUnavailable(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
}
