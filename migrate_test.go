package twofactor

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-two-factor/caddy-two-factor/internal/redistest"
	"github.com/caddy-two-factor/caddy-two-factor/signin"
	"github.com/caddy-two-factor/caddy-two-factor/store"
	boltstore "github.com/caddy-two-factor/caddy-two-factor/store/bolt"
	redisstore "github.com/caddy-two-factor/caddy-two-factor/store/redis"
	"github.com/caddy-two-factor/caddy-two-factor/throttle"
)

// redisStoreBlock is the Caddyfile store block for srv under prefix.
func redisStoreBlock(srv *redistest.Server, prefix string) string {
	return fmt.Sprintf("store redis {\n\t\t\taddress %s\n\t\t\tpassword %s\n\t\t\tkey_prefix %s\n\t\t}", srv.Addr, srv.Password, prefix)
}

// redisSiteCaddyfile is a test Caddyfile whose site guards /admin/* with
// the store on srv under prefix, with extra lines in the two_factor block.
func redisSiteCaddyfile(srv *redistest.Server, prefix, extra string) string {
	var users strings.Builder
	for _, u := range testUsers {
		fmt.Fprintf(&users, "\t\tuser %s %s\n", u, testHash())
	}
	return globalOptions() + fmt.Sprintf(`
http://localhost:%d {
	two_factor /admin/* {
		%s
		%s
%s	}
	%s
}
`, testPorts().http, redisStoreBlock(srv, prefix), extra, users.String(), defaultRoutes)
}

// redisDBName is how the command names srv's store under prefix.
func redisDBName(srv *redistest.Server, prefix string) string {
	return "redis://" + srv.Addr + "/0#" + prefix
}

// TestCommandOnARedisStore runs every command through the admin API of a
// Caddy whose two_factor keeps its state in Redis, choosing the store by
// the name `users` shows, and checks that with Caddy stopped the command
// refuses, rather than open Redis behind the instances' backs.
func TestCommandOnARedisStore(t *testing.T) {
	srv := redistest.Start(t)
	loadCaddyfile(t, redisSiteCaddyfile(srv, "cmd:", "encryption_key "+keyB64(1)))
	t.Cleanup(func() { stopSites(t) }) // before the server stops
	name := redisDBName(srv, "cmd:")
	run := cliFor(t, "--db", name)

	if out := cliFor(t)("", "users").mustSucceed(t); !strings.Contains(out.stdout, "2FA database "+name+"\n") {
		t.Errorf("users does not name the store %s:\n%s", name, out.stdout)
	}
	if strings.Contains(name, srv.Password) {
		t.Fatal("the name holds the password")
	}
	run("", "add-user", "zoe", "--password-file", passwordFile(t, testPassword)).mustSucceed(t)
	run("", "passwd", "zoe", "--password-file", passwordFile(t, testPassword)).mustSucceed(t)
	b := newBrowser(t)
	secret, _ := b.enroll("alice")
	if r := b.get("/admin/"); r.status != http.StatusOK {
		t.Fatalf("alice is not signed in: %d", r.status)
	}
	got := usersOf(t, run)
	if got["zoe"].DefinedIn != signin.DefinedInDatabase || !got["alice"].Enrolled || got["alice"].Sessions != 1 {
		t.Fatalf("users: zoe %+v, alice %+v", got["zoe"], got["alice"])
	}

	var res adminResult
	run("", "revoke", "alice", "--json").mustSucceed(t).decode(t, &res)
	if res.DB != name || res.SessionsEnded == nil || *res.SessionsEnded != 1 {
		t.Fatalf("revoke: %+v", res)
	}
	if r := b.get("/admin/"); r.status == http.StatusOK {
		t.Fatal("the revoked session still passes")
	}
	if r := b.signIn("alice", secret); r.status != http.StatusSeeOther {
		t.Fatalf("sign-in after revoke: %d", r.status)
	}
	run("", "reseal", "--json").mustSucceed(t).decode(t, &res)
	if res.Resealed == nil || res.Resealed.Compacted != nil {
		t.Errorf("reseal: %+v", res.Resealed)
	}
	if out := run("", "reseal").mustSucceed(t); !strings.Contains(out.stdout, "run BGREWRITEAOF") {
		t.Errorf("reseal on Redis does not tell to rewrite the AOF:\n%s", out.stdout)
	}
	run("", "reset", "alice").mustSucceed(t)
	if got := usersOf(t, run)["alice"]; got.Enrolled || got.Sessions != 0 {
		t.Errorf("alice after reset: %+v", got)
	}
	run("", "unlock", "bob").mustSucceed(t)
	run("", "remove-user", "zoe").mustSucceed(t)
	if _, ok := usersOf(t, run)["zoe"]; ok {
		t.Error("zoe is still listed")
	}

	stopSites(t)
	out := run("", "users", "--json")
	if code := out.refusal(t); code != codeNoDatabase {
		t.Errorf("with Caddy stopped: code %q", code)
	}
	if !strings.Contains(out.stdout, "is a Redis store") {
		t.Errorf("the refusal does not say why: %s", out.stdout)
	}
}

// migrateConfig writes a Caddyfile whose two_factor keeps its state in
// srv under prefix, sealed with key, and returns its path.
func migrateConfig(t *testing.T, srv *redistest.Server, prefix, key string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "Caddyfile")
	caddyfile := fmt.Sprintf(`http://localhost:1 {
	two_factor {
		%s
		encryption_key %s
		user alice %s
	}
	respond "ok"
}
`, redisStoreBlock(srv, prefix), key, testHash())
	if err := os.WriteFile(path, []byte(caddyfile), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func migrate(t *testing.T, args ...string) cliRun {
	t.Helper()
	return twoFactorCommand(t, "", append([]string{"migrate"}, args...)...)
}

// TestMigrateMovesSignInsToRedis is the walkthrough of docs/operations.md:
// a bbolt database with an enrolled, signed-in user and a database user is
// copied into Redis; on a handler on that store the session still passes,
// the user signs in with the same authenticator and the database user with
// the same password. Running it again copies nothing; a user changed in
// the target since is refused unless --overwrite; a config whose key does
// not open the secrets is refused and nothing is written.
func TestMigrateMovesSignInsToRedis(t *testing.T) {
	key := keyB64(1)
	source := newClockSite(t, func(h *TwoFactor) {
		h.now = time.Now
		h.EncryptionKey = key
	})
	b := source.browser(t)
	b.now = time.Now
	secret, _ := b.enroll("alice")
	if _, err := source.h.db.administer(adminRequest{Action: actionAddUser, Name: "zoe", PasswordHash: testHash()}, time.Now()); err != nil {
		t.Fatal(err)
	}
	srv := redistest.Start(t)
	config := migrateConfig(t, srv, "moved:", key)
	from := source.h.DB

	// Caddy still holds the file.
	if out := migrate(t, "--from", from, "--config", config, "--json"); out.refusal(t) != codeLocked || !strings.Contains(out.stdout, "stop it") {
		t.Errorf("a held file: %s", out.stdout)
	}
	if err := source.h.Cleanup(); err != nil {
		t.Fatal(err)
	}

	var res migrateResult
	migrate(t, "--from", from, "--config", config, "--json").mustSucceed(t).decode(t, &res)
	want := migrateCount{Copied: 2}
	if res.To != redisDBName(srv, "moved:") || res.Users != want || res.Sessions != (migrateCount{Copied: 1}) {
		t.Fatalf("first run: %+v", res)
	}
	for _, name := range []string{metaKeyCheck, metaCSRFKey} {
		if !slices.Contains(res.Meta, name) {
			t.Errorf("%s not copied: %v", name, res.Meta)
		}
	}
	target := newClockSite(t, func(h *TwoFactor) {
		h.DB = ""
		h.now = time.Now
		h.EncryptionKey = key
		h.store = &RedisStore{Addresses: []string{srv.Addr}, Password: srv.Password, KeyPrefix: "moved:", Timeout: caddy.Duration(time.Second)}
	})
	onRedis := at(b, target)
	if r := onRedis.get("/app"); r.status != http.StatusOK || r.body != "ok alice" {
		t.Fatalf("the session opened on bbolt does not pass on Redis: %d %q", r.status, r.body)
	}
	// On Redis, alice signs out of the copied session (and later zoe is
	// removed): a second run must bring neither back.
	token := b.sessionToken()
	logout(t, onRedis)
	fresh := target.browser(t)
	fresh.now = time.Now
	if r := fresh.signIn("alice", secret); r.status != http.StatusSeeOther {
		t.Fatalf("alice's authenticator does not sign her in on Redis: %d", r.status)
	}
	if r := target.browser(t).login("zoe", testPassword, "/"); r.status != http.StatusSeeOther || r.location() != "/_2fa/setup" {
		t.Fatalf("zoe's password: %d to %q", r.status, r.location())
	}

	// A second run is refused, and changes nothing.
	if _, err := target.h.db.administer(adminRequest{Action: actionRemoveUser, Name: "zoe"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if out := migrate(t, "--from", from, "--config", config, "--json"); out.refusal(t) != codeAlreadyMigrated {
		t.Errorf("a second run: %s", out.stdout)
	}
	if r := newBrowserAt(t, target.url).get("/app", "Cookie: "+sessionCookie+"="+token); r.status == http.StatusOK {
		t.Error("a second run brought back a session signed out on Redis")
	}
	if r := target.browser(t).login("zoe", testPassword, "/"); r.status != http.StatusUnauthorized {
		t.Errorf("a second run brought back a user removed on Redis: %d", r.status)
	}

	wrong := migrateConfig(t, srv, "wrong:", keyB64(2))
	if out := migrate(t, "--from", from, "--config", wrong, "--json"); out.refusal(t) != codeKeyMismatch {
		t.Errorf("another key: %s", out.stdout)
	}
	st, err := redisstore.Open(context.Background(), redisstore.Options{Addresses: []string{srv.Addr}, Password: srv.Password, KeyPrefix: "wrong:"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	err = st.View(func(tx store.Tx) error {
		_, err := tx.Meta(metaKeyCheck)
		return err
	})
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the refused run wrote to the target: %v", err)
	}
}

func TestRedisName(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    redisstore.Options
		want string
	}{
		{"plain", redisstore.Options{Addresses: []string{"redis.internal:6379"}, KeyPrefix: "two_factor:", Password: "secret"}, "redis://redis.internal:6379/0#two_factor:"},
		{"tls and db", redisstore.Options{Addresses: []string{"r:6380"}, DB: 3, KeyPrefix: "p:", TLS: &tls.Config{}}, "rediss://r:6380/3#p:"},
		{"sentinel", redisstore.Options{Addresses: []string{"s1:26379", "s2:26379"}, SentinelMaster: "mymaster", SentinelPassword: "secret", KeyPrefix: "p:"}, "redis+sentinel://s1:26379/mymaster/0#p:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := redisName(tc.o)
			if got != tc.want {
				t.Errorf("redisName = %q, want %q", got, tc.want)
			}
			if !isRedisName(got) {
				t.Errorf("isRedisName(%q) = false", got)
			}
		})
	}
}

func TestRemoteRedisAddressesAreTold(t *testing.T) {
	got := remoteAddresses([]string{"127.0.0.1:6379", "[::1]:6379", "localhost:6379", "localhost", "redis.internal:6379", "10.0.0.5:6379", "[2001:db8::1]:6379"})
	want := []string{"redis.internal:6379", "10.0.0.5:6379", "[2001:db8::1]:6379"}
	if !slices.Equal(got, want) {
		t.Fatalf("remote addresses %q, want %q", got, want)
	}
}

// TestMigrateCopiesLockouts: an account locked on bbolt by wrong attempts
// stays locked on Redis after migrate, until the same instant, also where
// Redis held a counter of its own for it already; a budget half used stays
// half used; a stale counter is not copied.
func TestMigrateCopiesLockouts(t *testing.T) {
	from := filepath.Join(t.TempDir(), "two_factor.db")
	src, err := boltstore.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	limits := throttle.Limits{
		Pair:    throttle.Budget{Limit: 3, Window: 5 * time.Minute, Lockout: 15 * time.Minute},
		Account: throttle.Budget{Limit: 100, Window: throttle.MaxWindow, Lockout: 15 * time.Minute, Consecutive: true},
		Client:  throttle.Budget{Limit: 50, Window: 5 * time.Minute, Lockout: 15 * time.Minute},
	}
	const ip = "192.0.2.7"
	// Redis expires counters by its own clock, so the times are real ones.
	now := time.Now()
	onBolt := throttle.New(src)
	locked := map[string]time.Time{}
	for _, user := range []string{"alice", "erin"} {
		for range limits.Pair.Limit {
			a, until, err := onBolt.Begin(user, true, ip, limits, now)
			if err != nil || a == nil {
				t.Fatalf("an attempt on bbolt: %v, locked until %v", err, until)
			}
			if err := a.Failed(); err != nil {
				t.Fatal(err)
			}
		}
		until, err := onBolt.LockedUntil(user, true, ip, limits, now)
		if err != nil || until.IsZero() {
			t.Fatalf("%s is not locked on bbolt: %v", user, err)
		}
		locked[user] = until
	}
	counting := &store.Attempts{Failures: 2, WindowStart: now.Add(-2 * time.Hour).UTC()}
	err = src.Update(func(tx store.Tx) error {
		stale := &store.Attempts{Failures: 9, WindowStart: now.Add(-throttle.MaxWindow - time.Hour), LockedUntil: now.Add(-time.Hour)}
		if err := tx.PutAttempts(throttle.AccountKey("bob"), stale); err != nil {
			return err
		}
		return tx.PutAttempts(throttle.AccountKey("carol"), counting)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}

	srv := redistest.Start(t)
	dst, err := redisstore.Open(context.Background(), redisstore.Options{Addresses: []string{srv.Addr}, Password: srv.Password, KeyPrefix: "locks:"})
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	// Erin failed once on Redis already (a run that failed half way, or
	// an instance on Redis): that counter stays, with bbolt's lockout.
	erinPair := throttle.PairKey("erin", throttle.NetworkOf(ip))
	err = dst.Update(func(tx store.Tx) error {
		return tx.PutAttempts(erinPair, &store.Attempts{Failures: 1, WindowStart: now})
	})
	if err != nil {
		t.Fatal(err)
	}

	var res migrateResult
	migrate(t, "--from", from, "--config", migrateConfig(t, srv, "locks:", keyB64(1)), "--json").mustSucceed(t).decode(t, &res)
	// alice's and erin's account and pair counters, and carol's.
	if res.Counters != (migrateCount{Copied: 5}) || res.StaleCounters != 1 {
		t.Errorf("counters: %+v, %d stale", res.Counters, res.StaleCounters)
	}
	onRedis := throttle.NewShared(dst)
	for user, want := range locked {
		got, err := onRedis.LockedUntil(user, true, ip, limits, time.Now())
		if err != nil || !got.Equal(want) {
			t.Errorf("%s on Redis: locked until %v (%v), want %v as on bbolt", user, got, err, want)
		}
	}
	err = dst.View(func(tx store.Tx) error {
		if a, err := tx.Attempts(erinPair); err != nil || a.Failures != 1 {
			t.Errorf("erin's counter on Redis was replaced: %+v, %v", a, err)
		}
		if a, err := tx.Attempts(throttle.AccountKey("bob")); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("the stale counter was copied: %+v, %v", a, err)
		}
		a, err := tx.Attempts(throttle.AccountKey("carol"))
		if err != nil || !sameRecord(a, counting) {
			t.Errorf("carol's counter on Redis: %+v, %v; want %+v", a, err, counting)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
