package redisstore

import (
	"context"
	"sync"
	"testing"

	"github.com/caddy-two-factor/caddy-two-factor/internal/redistest"
	"github.com/caddy-two-factor/caddy-two-factor/store"
	"github.com/caddy-two-factor/caddy-two-factor/store/storetest"
)

// TestOpenBuildsThePendingSetOfOlderData opens, from two instances at
// once, data written before the pending set existed, with a stray member
// in it: each Open checks every member against its record, and the set
// ends up with exactly the pending sessions, counted once.
func TestOpenBuildsThePendingSetOfOlderData(t *testing.T) {
	srv := redistest.Start(t)
	open := func() *Store {
		t.Helper()
		s, err := Open(context.Background(), Options{Addresses: []string{srv.Addr}, Password: srv.Password, KeyPrefix: "old:"})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	s := open()
	pending := func(name, user string) *store.Session {
		sess := storetest.Session(name, user, base)
		sess.Stage = store.StagePending
		return sess
	}
	storetest.PutSessions(t, s, pending("p1", "alice"), pending("p2", "bob"), storetest.Session("f1", "alice", base),
		pending("moved", "carol"))
	// As the older code left it: no pending set, no mark; the session
	// "moved" is full now, and a deleted session left a member behind.
	full := storetest.Session("moved", "carol", base)
	raw(t, s, "SET", s.keys.session(full.Key), string(store.EncodeSession(full)))
	raw(t, s, "DEL", s.keys.pending(), s.keys.pendingBuilt())
	raw(t, s, "SADD", s.keys.pending(), expiryMember(storetest.Key("deleted"), "dave"))

	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() { open() })
	}
	wg.Wait()
	want := store.SessionCounts{Pending: 2, Full: 2}
	storetest.View(t, s, func(tx store.Tx) error {
		n, err := tx.CountSessions()
		if err == nil && n != want {
			t.Errorf("CountSessions after Open = %+v, want %+v", n, want)
		}
		return err
	})
	if n, _ := raw(t, s, "SCARD", s.keys.pending()).AsInt64(); n != 2 {
		t.Errorf("the pending set has %d members, want 2", n)
	}
	if ok, _ := raw(t, s, "EXISTS", s.keys.pendingBuilt()).AsInt64(); ok != 1 {
		t.Error("the pending set is not marked built")
	}
}
