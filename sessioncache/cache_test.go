package sessioncache

import (
	"fmt"
	"testing"
	"time"

	"github.com/caddy-two-factor/caddy-two-factor/store"
)

func TestCacheRefusesALoadThatRacedAWrite(t *testing.T) {
	c := New()
	s := &store.Session{Key: store.SessionKey{1}, User: "judy", Expires: time.Now().Add(time.Hour)}
	epoch := c.epoch.Load()
	c.Invalidate([]string{"judy"}, nil) // a write committed while the load read
	if c.add(newSession(s, false), epoch) {
		t.Fatal("a load older than a write was cached")
	}
	if c.Get(s.Key) != nil {
		t.Fatal("refused session is in the cache")
	}
	if !c.add(newSession(s, false), c.epoch.Load()) || c.Get(s.Key) == nil {
		t.Fatal("a current load was not cached")
	}
	e := c.Get(s.Key)
	c.Invalidate([]string{"judy"}, nil)
	if !e.owner.revoked.Load() || c.Get(s.Key) != nil {
		t.Fatal("a write to the user did not revoke its cached session")
	}
}

func TestCacheEvictsTheLeastRecentlySeen(t *testing.T) {
	c := New()
	// Keys of one shard: the shard is chosen by the first two bytes.
	base := time.Unix(1_800_000_000, 0)
	var sessions []*Session
	for i := range cacheShardCap + 1 {
		key := store.SessionKey{0, 0, byte(i), byte(i >> 8)}
		s := &store.Session{Key: key, User: fmt.Sprint("u", i), LastSeen: base.Add(time.Duration(i) * time.Second), Expires: base.Add(time.Hour)}
		e := newSession(s, false)
		if i == 0 {
			// The oldest has activity the store has not seen yet.
			e.lastSeen.Store(base.Add(500 * time.Millisecond).UnixNano())
		}
		sessions = append(sessions, e)
		c.add(e, c.epoch.Load())
	}
	if c.Get(sessions[0].Key) != nil {
		t.Error("the least recently seen session is still cached")
	}
	for _, e := range sessions[1:] {
		if c.Get(e.Key) == nil {
			t.Fatal("a more recently seen session was evicted")
		}
	}
	if got := c.evictedSeen(sessions[0].Key); got != base.Add(500*time.Millisecond).UnixNano() {
		t.Errorf("evicted session's unwritten last seen = %d, want it kept", got)
	}
	if len(c.users) != cacheShardCap {
		t.Errorf("%d users tracked for %d cached sessions", len(c.users), cacheShardCap)
	}
}

func TestDistrustingCacheServesOnlyWhileConfirmed(t *testing.T) {
	s := &store.Session{Key: store.SessionKey{2}, User: "judy", Expires: time.Now().Add(time.Hour)}
	cached := func(c *Cache) bool {
		c.add(newSession(s, false), c.epoch.Load())
		return c.Get(s.Key) != nil
	}
	tests := []struct {
		name string
		act  func(c *Cache)
		want bool
	}{
		{"never confirmed", func(*Cache) {}, false},
		{"confirmed now", func(c *Cache) { c.Confirm(time.Now()) }, true},
		{"confirmed longer ago than the window", func(c *Cache) { c.Confirm(time.Now().Add(-TrustWindow)) }, false},
		{"confirmed, then distrusted", func(c *Cache) { c.Confirm(time.Now()); c.Distrust() }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewDistrusting()
			tt.act(c)
			if got := cached(c); got != tt.want {
				t.Errorf("Get served the session: %v, want %v", got, tt.want)
			}
		})
	}
	if !cached(New()) {
		t.Error("a cache of a store no one else writes must serve without confirmation")
	}
}

func TestDistrustingCacheForgetsWhatItHeldThroughALapse(t *testing.T) {
	c := NewDistrusting()
	c.Confirm(time.Now())
	s := &store.Session{Key: store.SessionKey{3}, User: "judy", Expires: time.Now().Add(time.Hour)}
	c.add(newSession(s, false), c.epoch.Load())
	epoch := c.epoch.Load() // a load under way across the lapse
	c.Distrust()            // the subscription broke: a revocation may be missed
	c.Confirm(time.Now())   // and came back
	if c.Get(s.Key) != nil {
		t.Fatal("a session cached before the lapse is served after it")
	}
	if c.add(newSession(s, false), epoch) {
		t.Fatal("a load begun before trust came back was cached")
	}
	c.Confirm(time.Now()) // no lapse: keeps what it holds
	c.add(newSession(s, false), c.epoch.Load())
	c.Confirm(time.Now())
	if c.Get(s.Key) == nil {
		t.Fatal("a confirmation without a lapse dropped the cache")
	}
}

func TestCacheStatsCountGetsAndInvalidations(t *testing.T) {
	c := NewDistrusting()
	s := &store.Session{Key: store.SessionKey{2}, User: "mallory", Expires: time.Now().Add(time.Hour)}
	c.Confirm(time.Now())
	c.add(newSession(s, false), c.epoch.Load())
	steps := []struct {
		name string
		do   func()
		want Stats
	}{
		{"hit", func() { c.Get(s.Key) }, Stats{Hits: 1}},
		{"miss on an unknown key", func() { c.Get(store.SessionKey{3}) }, Stats{Hits: 1, Misses: 1}},
		{"invalidation", func() { c.Invalidate([]string{"mallory"}, nil) }, Stats{Hits: 1, Misses: 1, Invalidations: 1}},
		{"miss on a revoked session", func() { c.Get(s.Key) }, Stats{Hits: 1, Misses: 2, Invalidations: 1}},
		{"miss while distrusting", func() { c.Distrust(); c.Get(s.Key) }, Stats{Hits: 1, Misses: 3, Invalidations: 1}},
	}
	for _, step := range steps {
		step.do()
		if got := c.Stats(); got != step.want {
			t.Fatalf("after %s: Stats = %+v, want %+v", step.name, got, step.want)
		}
	}
}
