package redisstore

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/caddy-two-factor/caddy-two-factor/internal/redistest"
	"github.com/caddy-two-factor/caddy-two-factor/store"
)

func TestInvalidationRoundTrip(t *testing.T) {
	tests := []struct {
		users []string
		keys  []store.SessionKey
	}{
		{nil, nil},
		{[]string{"judy"}, nil},
		{nil, []store.SessionKey{{1}, {2}}},
		{[]string{"", "a\x00b", "ünïcode", string(make([]byte, 300))}, []store.SessionKey{{0xff}}},
	}
	for _, tt := range tests {
		users, keys, err := DecodeInvalidation(EncodeInvalidation(tt.users, tt.keys))
		if err != nil || !slices.Equal(users, tt.users) || !slices.Equal(keys, tt.keys) {
			t.Errorf("round trip of %q %x = %q %x %v", tt.users, tt.keys, users, keys, err)
		}
	}
	for _, bad := range []string{"x", "u\x05ab", "s\x01\x02", "u"} {
		if _, _, err := DecodeInvalidation([]byte(bad)); err == nil {
			t.Errorf("DecodeInvalidation(%q) accepted it", bad)
		}
	}
}

// watcher records what Watch reports.
type watcher struct {
	invalidated chan []string
	confirmed   chan time.Time
	lost        chan error
}

func startWatch(t *testing.T, s *Store) *watcher {
	t.Helper()
	w := &watcher{invalidated: make(chan []string, 100), confirmed: make(chan time.Time, 1000), lost: make(chan error, 100)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Watch(ctx, WatchHooks{
			Invalidate: func(users []string, keys []store.SessionKey) {
				w.invalidated <- append(users, string(keys[0][:1]))
			},
			Confirmed: func(at time.Time) {
				select {
				case w.confirmed <- at:
				default:
				}
			},
			Lost: func(err error) { w.lost <- err },
		})
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return w
}

func (w *watcher) waitConfirmed(t *testing.T, after time.Time) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case at := <-w.confirmed:
			if at.After(after) {
				return
			}
		case <-deadline:
			t.Fatal("the subscription was not confirmed within 5s")
		}
	}
}

// TestWriteIsAnnouncedToEveryWatcher: a committed write reaches another
// store's watcher, and a rolled-back one does not; a broken subscription
// is reported lost, comes back by itself, and is confirmed again.
func TestWriteIsAnnouncedToEveryWatcher(t *testing.T) {
	srv := redistest.Start(t)
	open := func() *Store {
		s, err := Open(context.Background(), Options{Addresses: []string{srv.Addr}, Password: srv.Password, KeyPrefix: "shared:"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	a, b := open(), open()
	w := startWatch(t, b)
	w.waitConfirmed(t, time.Now())

	announce := func(fail bool) error {
		return a.Update(func(t store.Tx) error {
			if err := t.PutUser(&store.User{Name: "judy"}); err != nil {
				return err
			}
			if err := t.(*tx).Announce([]string{"judy"}, []store.SessionKey{{7}}); err != nil {
				return err
			}
			if fail {
				return context.Canceled
			}
			return nil
		})
	}
	if err := announce(true); err == nil {
		t.Fatal("the failing transaction committed")
	}
	if err := announce(false); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-w.invalidated:
		if !slices.Equal(got, []string{"judy", "\x07"}) {
			t.Errorf("invalidated %q", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no invalidation within 5s")
	}
	select {
	case got := <-w.invalidated:
		t.Errorf("a rolled-back write was announced: %q", got)
	default:
	}

	// Break the subscriber's connection: Lost, then a new subscription.
	if err := a.client.Do(context.Background(), a.client.B().ClientKill().TypePubsub().Build()).Error(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-w.lost:
	case <-time.After(5 * time.Second):
		t.Fatal("a killed subscription was not reported lost")
	}
	w.waitConfirmed(t, time.Now())

	// A message on the channel that does not decode may be a lost
	// invalidation: it is reported lost, so the cache distrusts itself.
	if err := a.client.Do(context.Background(), a.client.B().Publish().Channel(a.InvalidationChannel()).Message("garbage").Build()).Error(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-w.lost:
	case <-time.After(5 * time.Second):
		t.Fatal("an undecodable invalidation was ignored")
	}

	// A heartbeat must come back through the master: when its PUBLISH
	// cannot go through (here writes are paused; after a Sentinel
	// failover, it goes to a master the subscription is not on), the
	// subscription is not confirmed, however alive its connection is.
	w.waitConfirmed(t, time.Now())
	if err := a.client.Do(context.Background(), a.client.B().ClientPause().Timeout(2000).Write().Build()).Error(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-w.lost:
	case <-time.After(5 * time.Second):
		t.Fatal("a subscription whose heartbeat could not be published was still confirmed")
	}
	w.waitConfirmed(t, time.Now()) // and back once writes flow again
}
