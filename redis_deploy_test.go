package twofactor

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddy-two-factor/caddy-two-factor/internal/redistest"
	"go.uber.org/zap"
)

// These tests run two instances on Redis deployed as in production: over
// TLS with a private authority, and behind Sentinel.

// signInAndOutAcross signs a user in on a, checks b serves the session
// from memory (so b's invalidation subscription is up), signs out on a,
// and checks b stops the session.
func signInAndOutAcross(t *testing.T, a, b *clockSite, user string) {
	t.Helper()
	for _, s := range []*clockSite{a, b} {
		waitFor(t, 5*time.Second, "the session cache to trust itself", s.h.db.cache.Trusted)
	}
	onA, onB, _ := enrolledOnAServedByB(t, a, b, user)
	logout(t, onA)
	waitFor(t, time.Second, "B to hear of the sign-out", func() bool { return !cached(t, b, onB) })
	if r := onB.get("/app"); r.status == http.StatusOK {
		t.Fatalf("B still lets in %s's signed-out session", user)
	}
}

// withRedis returns a configure function for newRedisSite that sets the
// store's fields with set.
func withRedis(set func(*RedisStore)) func(*TwoFactor) {
	return func(h *TwoFactor) { set(h.store.(*RedisStore)) }
}

// TestRedisStoreOverTLS: with tls, tls_ca and tls_server_name, two
// instances share sign-ins and sign-outs over TLS.
func TestRedisStoreOverTLS(t *testing.T) {
	srv := redistest.StartTLS(t)
	tlsOn := withRedis(func(s *RedisStore) {
		s.TLS, s.TLSCA, s.TLSServerName = true, srv.CAFile, redistest.ServerName
	})
	a := newRedisSite(t, srv, "a", tlsOn)
	b := newRedisSite(t, srv, "b", tlsOn)
	if name := a.h.db.path; !strings.HasPrefix(name, "rediss://") {
		t.Errorf("store named %q, want rediss://", name)
	}
	signInAndOutAcross(t, a, b, "alice")
}

// TestRedisStoreRefusesUnverifiedTLS: a server whose certificate does not
// chain to tls_ca, or does not name the server name, fails the config.
func TestRedisStoreRefusesUnverifiedTLS(t *testing.T) {
	srv := redistest.StartTLS(t)
	other := redistest.StartTLS(t) // its authority is another one
	for _, tc := range []struct {
		name string
		set  func(*RedisStore)
		want string
	}{
		{"another authority", func(s *RedisStore) { s.TLSCA, s.TLSServerName = other.CAFile, redistest.ServerName }, "certificate signed by unknown authority"},
		{"the system's roots", func(s *RedisStore) { s.TLS, s.TLSServerName = true, redistest.ServerName }, "certificate signed by unknown authority"},
		{"a name the certificate lacks", func(s *RedisStore) { s.TLSCA, s.TLSServerName = srv.CAFile, "redis.example" }, "redis.example"},
		{"no server name: the address is checked", func(s *RedisStore) { s.TLSCA = srv.CAFile }, "127.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := &RedisStore{Addresses: []string{srv.Addr}, Password: srv.Password}
			tc.set(st)
			h := &TwoFactor{store: st}
			err := h.provision(zap.NewNop())
			if err == nil {
				_ = h.Cleanup()
				t.Fatal("provisioned")
			}
			for _, want := range []string{"rediss://" + srv.Addr, tc.want} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
		})
	}
}

// TestRedisStoresOverTLSAreKeptApart: two TLS stores that differ only in
// their key prefix are two stores, not one shared connection. (The pool
// key is the JSON of the options, which cannot encode a *tls.Config: it
// is shadowed there by a flag, and the error of encoding it would make
// every TLS store one.)
func TestRedisStoresOverTLSAreKeptApart(t *testing.T) {
	srv := redistest.StartTLS(t)
	var stores [2]*RedisStore
	for i, prefix := range []string{"one:", "two:"} {
		stores[i] = &RedisStore{Addresses: []string{srv.Addr}, Password: srv.Password, KeyPrefix: prefix, TLSCA: srv.CAFile, TLSServerName: redistest.ServerName}
		if err := stores[i].open(zap.NewNop()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = stores[i].Cleanup() })
	}
	if stores[0].opened() == stores[1].opened() {
		t.Fatalf("the stores under %q and %q share one handle, named %s", stores[0].KeyPrefix, stores[1].KeyPrefix, stores[0].opened().path)
	}
}

// TestRedisStoreThroughSentinel: with sentinel and the Sentinels'
// addresses, two instances find the master, share sign-ins, and hear each
// other's sign-outs on the invalidation channel.
func TestRedisStoreThroughSentinel(t *testing.T) {
	master := redistest.Start(t)
	sentinel := redistest.StartSentinel(t, master, "mymaster")
	through := withRedis(func(s *RedisStore) {
		s.Addresses, s.SentinelMaster = []string{sentinel.Addr}, sentinel.Master
	})
	a := newRedisSite(t, master, "a", through)
	b := newRedisSite(t, master, "b", through)
	if want := "redis+sentinel://" + sentinel.Addr + "/mymaster/0#shared:"; a.h.db.path != want {
		t.Errorf("store named %q, want %q", a.h.db.path, want)
	}
	signInAndOutAcross(t, a, b, "alice")
}

// TestRedisStoreRefusesACluster: a store pointed at a Redis Cluster node
// fails the config with an error that says Cluster is not supported, and
// why.
func TestRedisStoreRefusesACluster(t *testing.T) {
	node := redistest.StartClusterNode(t)
	h := &TwoFactor{store: &RedisStore{Addresses: []string{node.Addr}, Password: node.Password}}
	err := h.provision(zap.NewNop())
	if err == nil {
		_ = h.Cleanup()
		t.Fatal("provisioned on a cluster node")
	}
	for _, want := range []string{"redis store", node.Addr, "Redis Cluster node, which this store does not support", "hash slots", "Sentinel"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}
