package redisstore

import (
	"context"
	"crypto/tls"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"

	"github.com/caddy-two-factor/caddy-two-factor/internal/redistest"
	"github.com/caddy-two-factor/caddy-two-factor/store"
)

// These tests run the store against the ways Redis is deployed: over
// TLS, behind Sentinel, and (refused) as a Cluster node.

// roundTrip puts a user and a session of theirs in one transaction and
// reads both back.
func roundTrip(t *testing.T, s *Store) {
	t.Helper()
	sess := &store.Session{Key: store.SessionKey{1, 2, 3}, User: "alice", Stage: store.StageFull, Expires: base}
	update(t, s, func(tx store.Tx) error {
		if err := tx.PutUser(&store.User{Name: "alice", PasswordHash: "h", Created: base}); err != nil {
			return err
		}
		return tx.PutSession(sess)
	})
	err := s.View(func(tx store.Tx) error {
		if u, err := tx.User("alice"); err != nil || u.PasswordHash != "h" {
			t.Errorf("User: %+v, %v", u, err)
		}
		got, err := tx.UserSessions("alice")
		if err != nil || len(got) != 1 || got[0].Key != sess.Key {
			t.Errorf("UserSessions: %v, %v", got, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestOpenOverTLS: over TLS the store connects only to a server whose
// certificate chains to the given authority and names the server name.
func TestOpenOverTLS(t *testing.T) {
	srv := redistest.StartTLS(t)
	t.Run("trusted", func(t *testing.T) {
		s, err := Open(context.Background(), Options{Addresses: []string{srv.Addr}, Password: srv.Password, TLS: srv.TLS.Clone()})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		defer s.Close()
		roundTrip(t, s)
	})
	tests := []struct {
		name string
		tls  *tls.Config
		want string // in the error
	}{
		{"authority not trusted", &tls.Config{ServerName: redistest.ServerName, MinVersion: tls.VersionTLS12}, "certificate signed by unknown authority"},
		{"certificate for another name", &tls.Config{RootCAs: srv.TLS.RootCAs, ServerName: "redis.example", MinVersion: tls.VersionTLS12}, "redis.example"},
		{"no server name: the address is checked", &tls.Config{RootCAs: srv.TLS.RootCAs, MinVersion: tls.VersionTLS12}, "127.0.0.1"},
		{"plain TCP", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Open(context.Background(), Options{Addresses: []string{srv.Addr}, Password: srv.Password, TLS: tt.tls, Timeout: time.Second})
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), srv.Addr) {
				t.Errorf("error %q does not name %s and say %q", err, srv.Addr, tt.want)
			}
		})
	}
}

// TestOpenThroughSentinel: given the Sentinels' addresses and the master
// set's name, the store finds the master, transactions commit there, and
// the invalidation subscription hears another store's writes and its own
// heartbeats through it.
func TestOpenThroughSentinel(t *testing.T) {
	master := redistest.Start(t)
	sentinel := redistest.StartSentinel(t, master, "mymaster")
	open := func() *Store {
		t.Helper()
		s, err := Open(context.Background(), Options{Addresses: []string{sentinel.Addr}, SentinelMaster: sentinel.Master, Password: master.Password})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	a, b := open(), open()
	w := startWatch(t, b)
	w.waitConfirmed(t, time.Now())
	roundTrip(t, a)
	// The write reached the master itself, not some other server.
	direct := opener(master)(t)
	direct.keys = a.keys
	if err := direct.View(func(tx store.Tx) error { _, err := tx.User("alice"); return err }); err != nil {
		t.Errorf("the master does not hold the user put through the sentinel: %v", err)
	}
	update(t, a, func(t store.Tx) error {
		return t.(*tx).Announce([]string{"alice"}, []store.SessionKey{{9}})
	})
	select {
	case got := <-w.invalidated:
		if !slices.Equal(got, []string{"alice", "\x09"}) {
			t.Errorf("invalidated %q", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no invalidation within 5s")
	}

	t.Run("unknown master set", func(t *testing.T) {
		s, err := Open(context.Background(), Options{Addresses: []string{sentinel.Addr}, SentinelMaster: "nosuchmaster", Password: master.Password, Timeout: time.Second})
		if err == nil {
			s.Close()
			t.Fatal("Open succeeded")
		}
		for _, want := range []string{`"nosuchmaster"`, sentinel.Addr} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not say %s", err, want)
			}
		}
	})
}

// TestOpenRefusesACluster: a Redis Cluster node is refused at Open, with
// an error that says why; and the reason holds on a real cluster: the
// transaction that puts a session, over the session, its user's set and
// the expiry index, spans hash slots and is refused with CROSSSLOT.
func TestOpenRefusesACluster(t *testing.T) {
	node := redistest.StartClusterNode(t)
	s, err := Open(context.Background(), Options{Addresses: []string{node.Addr}, Password: node.Password})
	if err == nil {
		s.Close()
		t.Fatal("Open succeeded on a cluster node")
	}
	if !errors.Is(err, ErrCluster) || !strings.Contains(err.Error(), node.Addr) || !strings.Contains(err.Error(), "Sentinel") {
		t.Errorf("error %q is not ErrCluster naming %s and what to use instead", err, node.Addr)
	}

	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{node.Addr}, Password: node.Password, ForceSingleClient: true, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The store as Open would have made it, had it not refused.
	s = &Store{client: c, keys: keys{DefaultKeyPrefix}, timeout: DefaultTimeout, retention: DefaultAttemptRetention, now: time.Now}
	err = s.Update(func(tx store.Tx) error {
		return tx.PutSession(&store.Session{Key: store.SessionKey{1}, User: "alice", Stage: store.StageFull, Expires: base})
	})
	if err == nil || !strings.Contains(err.Error(), "CROSSSLOT") {
		t.Errorf("putting a session on a cluster: %v, want CROSSSLOT", err)
	}
}

// TestOpenAsTheDocumentedACLUser: the ACL user the README suggests, kept
// to the prefix and the commands the store uses, can do everything the
// store does, the cluster check at Open included.
func TestOpenAsTheDocumentedACLUser(t *testing.T) {
	srv := redistest.Start(t)
	admin := opener(srv)(t)
	defer admin.Close()
	acl := strings.Fields("ACL SETUSER caddy on >caddy-password ~two_factor:* &two_factor:invalidate +@read +@write +@transaction +@connection +@pubsub")
	if err := admin.client.Do(context.Background(), admin.client.B().Arbitrary(acl[:2]...).Args(acl[2:]...).Build()).Error(); err != nil {
		t.Fatal(err)
	}
	s, err := Open(context.Background(), Options{Addresses: []string{srv.Addr}, Username: "caddy", Password: "caddy-password"})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
	w := startWatch(t, s)
	w.waitConfirmed(t, time.Now())
	roundTrip(t, s)
	update(t, s, func(tx store.Tx) error {
		return tx.PutAttempts("user:alice", &store.Attempts{Failures: 1, WindowStart: base})
	})
	err = s.Update(func(tx store.Tx) error {
		if _, err := tx.DeleteExpiredSessions(base.Add(time.Hour), 10); err != nil {
			return err
		}
		_, err := tx.DeleteStaleAttempts(base.Add(48*time.Hour), time.Hour, 10)
		return err
	})
	if err != nil {
		t.Errorf("the cleanups: %v", err)
	}
}
