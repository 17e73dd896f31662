package twofactor

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"go.uber.org/zap"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-two-factor/caddy-two-factor/internal/redistest"
	"github.com/caddy-two-factor/caddy-two-factor/store"
)

// These tests check what docs/operations.md says of reseal on a Redis
// store: it has no file to compact, and old ciphertexts stay in what the
// server persists until the operator rewrites it.

// provisionOnRedis provisions a handler with keys on the Redis store of
// srv under prefix; cleanup releases it.
func provisionOnRedis(t *testing.T, srv *redistest.Server, prefix string, keys keyConfig) (h *TwoFactor, cleanup func()) {
	t.Helper()
	h = &TwoFactor{EncryptionKey: keys.key, PreviousEncryptionKeys: keys.previous}
	h.store = &RedisStore{Addresses: []string{srv.Addr}, Password: srv.Password, KeyPrefix: prefix, Timeout: caddy.Duration(5 * time.Second)}
	if err := h.provision(zap.NewNop()); err != nil {
		t.Fatal(err)
	}
	return h, func() { _ = h.Cleanup() }
}

// redisAdmin is a plain client of srv, as its operator would use.
func redisAdmin(t *testing.T, srv *redistest.Server, user, password string) rueidis.Client {
	t.Helper()
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{srv.Addr}, Username: user, Password: password, ForceSingleClient: true, DisableCache: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// do runs one command and returns its answer as a string.
func do(t *testing.T, c rueidis.Client, args ...string) string {
	t.Helper()
	ans, err := c.Do(context.Background(), c.B().Arbitrary(args...).Build()).ToString()
	if err != nil {
		t.Fatalf("%s: %v", strings.Join(args, " "), err)
	}
	return ans
}

// waitPersistence polls INFO persistence until every one of want is among
// its lines.
func waitPersistence(t *testing.T, c rueidis.Client, want ...string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		info := do(t, c, "INFO", "persistence")
		lines := strings.Fields(info)
		done := true
		for _, w := range want {
			done = done && slices.Contains(lines, w)
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("INFO persistence did not reach %v:\n%s", want, info)
		}
		<-tick.C
	}
}

// aofFiles returns the contents of the files the AOF manifest in dir
// names, joined, once no other file (a history file the server deletes in
// the background after a rewrite) is left in appendonlydir.
func aofFiles(t *testing.T, dir string) []byte {
	t.Helper()
	aofDir := filepath.Join(dir, "appendonlydir")
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		entries, err := os.ReadDir(aofDir)
		if err != nil {
			t.Fatal(err)
		}
		var manifest string
		for _, e := range entries {
			if strings.HasSuffix(e.Name(), ".manifest") {
				raw, err := os.ReadFile(filepath.Join(aofDir, e.Name()))
				if err != nil {
					t.Fatal(err)
				}
				manifest = e.Name() + "\n" + string(raw)
			}
		}
		var all []byte
		listed := true
		for _, e := range entries {
			// The manifest names files as "file <name> seq <n> type <t>".
			if !strings.Contains(manifest, e.Name()+"\n") && !strings.Contains(manifest, "file "+e.Name()+" ") {
				listed = false
				break
			}
			raw, err := os.ReadFile(filepath.Join(aofDir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, raw...)
		}
		if manifest != "" && listed {
			return all
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s holds files its manifest does not name:\n%s", aofDir, manifest)
		}
		<-tick.C
	}
}

// TestResealOnRedisLeavesOldCiphertextsUntilTheAOFIsRewritten: after a
// key rotation and reseal (the admin API's code path) on a Redis server
// with AOF, the secret sealed with the old key is still in the
// append-only file; BGREWRITEAOF removes it, and keeps the new one. An
// RDB snapshot taken before the reseal keeps the old one too, until the
// next snapshot replaces it. The ACL user the README suggests may run
// none of BGREWRITEAOF, BGSAVE, CONFIG GET and INFO, so reseal cannot do
// it for the operator.
func TestResealOnRedisLeavesOldCiphertextsUntilTheAOFIsRewritten(t *testing.T) {
	// appendfsync always: a write is in the file when the server answers.
	// rdbcompression no: a value is in a snapshot (and in the RDB preamble
	// of a rewritten AOF) as its bytes, so looking for them tells.
	srv := redistest.StartWith(t, "--appendonly", "yes", "--appendfsync", "always", "--rdbcompression", "no")
	admin := redisAdmin(t, srv, "", srv.Password)
	const prefix = "rotate:"

	h, cleanup := provisionOnRedis(t, srv, prefix, keyConfig{key: keyB64(1)})
	old, err := h.sealer.Seal([]byte("secret of alice"), "alice")
	if err != nil {
		t.Fatal(err)
	}
	err = h.db.store.Update(func(tx store.Tx) error {
		return tx.PutUser(&store.User{Name: "alice", TOTP: &store.Enrollment{Secret: old}})
	})
	if err != nil {
		t.Fatal(err)
	}
	cleanup()
	if do(t, admin, "BGSAVE") == "" {
		t.Fatal("BGSAVE answered nothing")
	}
	waitPersistence(t, admin, "rdb_bgsave_in_progress:0", "rdb_last_bgsave_status:ok")
	dump := filepath.Join(srv.Dir, "dump.rdb")
	if !fileContains(t, dump, old) {
		t.Fatal("the snapshot does not hold the secret: the checks below could not fail")
	}

	h, cleanup = provisionOnRedis(t, srv, prefix, keyConfig{key: keyB64(2), previous: []string{keyB64(1)}})
	defer cleanup()
	res, err := h.db.administer(adminRequest{Action: actionReseal}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if r := res.Resealed; r == nil || r.Users != 1 || r.Compacted != nil {
		t.Fatalf("reseal: %+v", r)
	}
	resealed := secretsOf(t, h.db)["alice"]
	if bytes.Equal(resealed, old) {
		t.Fatal("reseal did not change the secret")
	}

	aof := aofFiles(t, srv.Dir)
	if !bytes.Contains(aof, old) || !bytes.Contains(aof, resealed) {
		t.Fatalf("before the rewrite, the AOF holds the old ciphertext: %v, the new one: %v; want both", bytes.Contains(aof, old), bytes.Contains(aof, resealed))
	}
	if !fileContains(t, dump, old) {
		t.Error("the snapshot taken before reseal no longer holds the old ciphertext")
	}

	do(t, admin, "BGREWRITEAOF")
	waitPersistence(t, admin, "aof_rewrite_in_progress:0", "aof_rewrite_scheduled:0", "aof_last_bgrewrite_status:ok")
	aof = aofFiles(t, srv.Dir)
	if bytes.Contains(aof, old) {
		t.Error("after BGREWRITEAOF, the AOF still holds the ciphertext under the old key")
	}
	if !bytes.Contains(aof, resealed) {
		t.Error("after BGREWRITEAOF, the AOF does not hold the resealed secret: the check above could not fail")
	}

	do(t, admin, "BGSAVE")
	waitPersistence(t, admin, "rdb_bgsave_in_progress:0", "rdb_last_bgsave_status:ok")
	if fileContains(t, dump, old) || !fileContains(t, dump, resealed) {
		t.Errorf("after BGSAVE, the snapshot holds the old ciphertext: %v, the new one: %v; want only the new one", fileContains(t, dump, old), fileContains(t, dump, resealed))
	}

	// The README's ACL user, which Caddy connects as, may do neither.
	acl := strings.Fields("ACL SETUSER caddy on >caddy-password ~two_factor:* &two_factor:invalidate +@read +@write +@transaction +@connection +@pubsub")
	do(t, admin, acl...)
	caddyUser := redisAdmin(t, srv, "caddy", "caddy-password")
	for _, cmd := range [][]string{{"BGREWRITEAOF"}, {"BGSAVE"}, {"CONFIG", "GET", "appendonly"}, {"INFO", "persistence"}} {
		err := caddyUser.Do(context.Background(), caddyUser.B().Arbitrary(cmd...).Build()).Error()
		if err == nil || !strings.Contains(err.Error(), "NOPERM") {
			t.Errorf("%s as the README's ACL user: %v, want NOPERM", strings.Join(cmd, " "), err)
		}
	}
}
