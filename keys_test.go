package twofactor

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-two-factor/caddy-two-factor/seal"
	"github.com/caddy-two-factor/caddy-two-factor/store"
	boltstore "github.com/caddy-two-factor/caddy-two-factor/store/bolt"
	"github.com/caddy-two-factor/caddy-two-factor/throttle"
)

// These tests provision handlers without Caddy on one database file, as
// several configs (sites, or the generations of a reload) do.

// keyB64 returns the base64 form of a distinct valid key for each n.
func keyB64(n byte) string {
	return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{n}, seal.KeySize))
}

// keyConfig is the keys a test config holds, as base64.
type keyConfig struct {
	key      string
	previous []string
}

// provisionKeys provisions a handler with keys on the database at db, and
// returns it with its error; cleanup releases it.
func provisionKeys(t *testing.T, db string, keys keyConfig) (h *TwoFactor, cleanup func(), err error) {
	t.Helper()
	h = &TwoFactor{DB: db, EncryptionKey: keys.key, PreviousEncryptionKeys: keys.previous}
	err = h.provision(zap.NewNop())
	return h, func() { _ = h.Cleanup() }, err
}

// loadsWith reports how provisioning with keys on db went, releasing the
// handler at once.
func loadsWith(t *testing.T, db string, keys keyConfig) error {
	t.Helper()
	_, cleanup, err := provisionKeys(t, db, keys)
	cleanup()
	return err
}

// writeUsers makes a database file whose users have TOTP secrets sealed
// with the given keys (nil: stored without a key), with no key check
// value: a database from before the check existed.
func writeUsers(t *testing.T, path string, keyOf map[string][]byte) {
	t.Helper()
	st, err := boltstore.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	err = st.Update(func(tx store.Tx) error {
		for name, key := range keyOf {
			sealer, err := seal.New(key)
			if err != nil {
				return err
			}
			secret, err := sealer.Seal([]byte("secret of "+name), name)
			if err != nil {
				return err
			}
			if err := tx.PutUser(&store.User{Name: name, TOTP: &store.Enrollment{Secret: secret}}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func rawKey(n byte) []byte { return bytes.Repeat([]byte{n}, seal.KeySize) }

func TestKeysAreCheckedWhenAConfigLoads(t *testing.T) {
	a, b := keyB64(1), keyB64(2)
	const (
		refused = "encryption_key does not open the secrets in "
		removed = "none is set, and they are encrypted"
	)
	type step struct {
		name string
		keys keyConfig
		want string // part of the error; "" to load
	}
	tests := []struct {
		name string
		// setup prepares the file before the steps, if set.
		setup func(t *testing.T, path string)
		steps []step
	}{
		{
			name: "database sealed with a key",
			steps: []step{
				{"first config seals the check value", keyConfig{key: a}, ""},
				{"another key", keyConfig{key: b}, refused},
				{"key removed", keyConfig{}, removed},
				{"another key, wrong previous", keyConfig{key: b, previous: []string{keyB64(3)}}, refused},
				{"new key with the old one as previous", keyConfig{key: b, previous: []string{a}}, ""},
				// Until reseal, the check value stays sealed with the old key.
				{"old key alone again", keyConfig{key: a}, ""},
				{"new key alone before reseal", keyConfig{key: b}, refused},
			},
		},
		{
			name: "database without a key, to which one is added",
			steps: []step{
				{"no key", keyConfig{}, ""},
				{"no key again", keyConfig{}, ""},
				{"key added", keyConfig{key: a}, ""},
				// From now on secrets may be sealed with it.
				{"key removed again", keyConfig{}, removed},
				{"another key", keyConfig{key: b}, refused},
			},
		},
		{
			name: "database from before the check value, secrets sealed",
			setup: func(t *testing.T, path string) {
				// aaron comes first and was enrolled before the key: his
				// secret says nothing about the key.
				writeUsers(t, path, map[string][]byte{"aaron": nil, "alice": rawKey(1)})
			},
			steps: []step{
				{"another key", keyConfig{key: b}, refused},
				{"no key", keyConfig{}, removed},
				// The secrets need the previous key: no check value is
				// written with the new one, so it cannot be dropped.
				{"new key with the old one as previous", keyConfig{key: b, previous: []string{a}}, ""},
				{"new key alone", keyConfig{key: b}, refused},
				{"the key", keyConfig{key: a}, ""},
				{"another key, now against the check value", keyConfig{key: b}, refused},
			},
		},
		{
			name: "database from before the check value, secrets in the clear",
			setup: func(t *testing.T, path string) {
				writeUsers(t, path, map[string][]byte{"aaron": nil})
			},
			steps: []step{
				{"a key", keyConfig{key: b}, ""},
				{"no key", keyConfig{}, removed},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "2fa.db")
			if tt.setup != nil {
				tt.setup(t, path)
			}
			for _, s := range tt.steps {
				err := loadsWith(t, path, s.keys)
				switch {
				case s.want == "" && err != nil:
					t.Fatalf("%s: %v", s.name, err)
				case s.want != "" && err == nil:
					t.Fatalf("%s: loaded, want an error with %q", s.name, s.want)
				case s.want != "" && (!strings.Contains(err.Error(), s.want) || !strings.Contains(err.Error(), path)):
					t.Fatalf("%s: error %q, want one with %q and the path", s.name, err, s.want)
				}
			}
		})
	}
}

// TestEveryConfigOnADatabaseMustOpenIt: two sites on one file, loaded
// together; the second's key is checked though the file is already open.
func TestEveryConfigOnADatabaseMustOpenIt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "2fa.db")
	_, cleanup, err := provisionKeys(t, path, keyConfig{key: keyB64(1)})
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	err = loadsWith(t, path, keyConfig{key: keyB64(2)})
	if err == nil || !strings.Contains(err.Error(), "encryption_key does not open the secrets in "+path) {
		t.Fatalf("second site with another key: %v", err)
	}
}

func TestKeyConfigErrors(t *testing.T) {
	t.Setenv("TWO_FACTOR_EMPTY_KEY", "")
	tests := []struct {
		name string
		keys keyConfig
		want string
	}{
		{"previous without current", keyConfig{previous: []string{keyB64(1)}}, "previous_encryption_key is set without encryption_key"},
		{"empty previous", keyConfig{key: keyB64(1), previous: []string{""}}, "previous_encryption_keys[0] is empty"},
		{"previous not a key", keyConfig{key: keyB64(1), previous: []string{keyB64(2), "c2hvcnQ="}}, "previous_encryption_keys[1]: encryption key is 5 bytes"},
		{"previous placeholder empty", keyConfig{key: keyB64(1), previous: []string{"{env.TWO_FACTOR_EMPTY_KEY}"}}, "is empty once resolved"},
		{"current not a key", keyConfig{key: "not base64!"}, "encryption_key: encryption key is not valid base64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := loadsWith(t, filepath.Join(t.TempDir(), "2fa.db"), tt.keys)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error with %q", err, tt.want)
			}
		})
	}
}

func TestKeysWrittenInTheConfigAreWarnedAbout(t *testing.T) {
	t.Setenv("TWO_FACTOR_TEST_KEY", keyB64(1))
	t.Setenv("TWO_FACTOR_TEST_OLD_KEY", keyB64(2))
	tests := []struct {
		name string
		keys keyConfig
		warn []string // the fields warned about
	}{
		{"placeholders", keyConfig{key: "{env.TWO_FACTOR_TEST_KEY}", previous: []string{"{env.TWO_FACTOR_TEST_OLD_KEY}"}}, nil},
		{"literal key", keyConfig{key: keyB64(1)}, []string{"encryption_key"}},
		{"literal previous key", keyConfig{key: "{env.TWO_FACTOR_TEST_KEY}", previous: []string{keyB64(2)}}, []string{"previous_encryption_keys[0]"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			core, logs := observer.New(zap.WarnLevel)
			h := &TwoFactor{DB: filepath.Join(t.TempDir(), "2fa.db"), EncryptionKey: tt.keys.key, PreviousEncryptionKeys: tt.keys.previous}
			err := h.provision(zap.New(core))
			defer func() { _ = h.Cleanup() }()
			if err != nil {
				t.Fatal(err)
			}
			var warned []string
			for _, e := range logs.All() {
				if name, _, ok := strings.Cut(e.Message, " is written in the config"); ok {
					warned = append(warned, name)
				}
				for _, k := range []string{keyB64(1), keyB64(2)} {
					if line := e.Message + fmt.Sprint(e.ContextMap()); strings.Contains(line, k) {
						t.Errorf("a log line shows the key: %s", line)
					}
				}
			}
			if strings.Join(warned, ",") != strings.Join(tt.warn, ",") {
				t.Errorf("warned about %q, want %q", warned, tt.warn)
			}
		})
	}
}

func TestResealRefusals(t *testing.T) {
	a, b := keyB64(1), keyB64(2)
	tests := []struct {
		name string
		// configs are provisioned, in order, on the database.
		configs []keyConfig
		setup   func(t *testing.T, path string)
		code    string
		want    string
	}{
		{"no config holds the keys", nil, nil, codeNoKey, "no running config uses"},
		{"a config without a key", []keyConfig{{}, {key: a}}, nil, codeNoKey, "has no encryption_key"},
		{"configs with different keys", []keyConfig{{key: a}, {key: b, previous: []string{a}}}, nil, codeKeysDiffer, "different encryption_key values"},
		{
			name:    "a secret no key opens",
			configs: []keyConfig{{key: a}},
			setup: func(t *testing.T, path string) {
				writeUsers(t, path, map[string][]byte{"aaron": nil, "alice": rawKey(1), "bob": rawKey(9)})
			},
			code: codeUnreadable,
			want: "the TOTP secrets of bob in ",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "2fa.db")
			if tt.setup != nil {
				tt.setup(t, path)
			}
			var db *database
			for _, keys := range tt.configs {
				h, cleanup, err := provisionKeys(t, path, keys)
				defer cleanup()
				if err != nil {
					t.Fatal(err)
				}
				db = h.db
			}
			if db == nil {
				st, err := boltstore.Open(path)
				if err != nil {
					t.Fatal(err)
				}
				defer st.Close()
				db = &database{store: st, raw: st, path: path, attempts: throttle.New(st)}
			}
			before := secretsOf(t, db)
			_, err := db.administer(adminRequest{Action: actionReseal}, time.Now())
			if code := errorCode(err); code != tt.code || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("reseal: %v (code %q); want code %q with %q", err, code, tt.code, tt.want)
			}
			after := secretsOf(t, db)
			if len(before) != len(after) {
				t.Fatal("users changed")
			}
			for name, secret := range before {
				if !bytes.Equal(after[name], secret) {
					t.Errorf("the refused reseal changed the secret of %s", name)
				}
			}
		})
	}
}

// secretsOf returns the stored (sealed) TOTP secrets of db's users.
func secretsOf(t *testing.T, db *database) map[string][]byte {
	t.Helper()
	secrets := map[string][]byte{}
	err := db.store.View(func(tx store.Tx) error {
		return tx.ForEachUser(func(u *store.User) error {
			if u.TOTP != nil {
				secrets[u.Name] = u.TOTP.Secret
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return secrets
}

func TestResealSealsEverySecretWithTheCurrentKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "2fa.db")
	writeUsers(t, path, map[string][]byte{"aaron": nil, "alice": rawKey(1), "bob": rawKey(2)})
	// A pending setup with a secret in the clear, and one no key opens.
	var pending, lost store.SessionKey
	func() {
		st, err := boltstore.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		plain, _ := seal.New(nil)
		other, _ := seal.New(rawKey(9))
		err = st.Update(func(tx store.Tx) error {
			for i, s := range []*seal.Sealer{plain, other} {
				secret, err := s.Seal([]byte("pending"), "carol")
				if err != nil {
					return err
				}
				_, key, err := store.NewSessionToken()
				if err != nil {
					return err
				}
				if i == 0 {
					pending = key
				} else {
					lost = key
				}
				err = tx.PutSession(&store.Session{Key: key, User: "carol", Stage: store.StagePending, Expires: time.Now().Add(time.Hour), PendingSecret: secret})
				if err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}()

	h, cleanup, err := provisionKeys(t, path, keyConfig{key: keyB64(3), previous: []string{keyB64(1), keyB64(2)}})
	defer cleanup()
	if err != nil {
		t.Fatal(err)
	}
	res, err := h.db.administer(adminRequest{Action: actionReseal}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if r := res.Resealed; r == nil || r.Users != 3 || r.Sessions != 2 || r.Compacted == nil {
		t.Fatalf("reseal result: %+v", r)
	}
	current, err := seal.New(rawKey(3))
	if err != nil {
		t.Fatal(err)
	}
	for name, secret := range secretsOf(t, h.db) {
		if got, err := current.Open(secret, name); err != nil || string(got) != "secret of "+name {
			t.Errorf("%s's secret after reseal: %q, %v", name, got, err)
		}
	}
	err = h.db.store.View(func(tx store.Tx) error {
		s, err := tx.Session(pending)
		if err != nil {
			return err
		}
		if got, err := current.Open(s.PendingSecret, "carol"); err != nil || string(got) != "pending" {
			t.Errorf("pending secret after reseal: %q, %v", got, err)
		}
		if s, err = tx.Session(lost); err != nil {
			return err
		}
		if s.PendingSecret != nil {
			t.Error("a pending secret no key opens was kept; the setup should start over")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	cleanup()
	// The check value is now sealed with the current key: the previous
	// keys can go, and an old key alone no longer loads.
	if err := loadsWith(t, path, keyConfig{key: keyB64(3)}); err != nil {
		t.Fatalf("current key alone after reseal: %v", err)
	}
	if err := loadsWith(t, path, keyConfig{key: keyB64(1)}); err == nil {
		t.Fatal("an old key loads after reseal")
	}
	// A second reseal finds nothing to do.
	h, cleanup, err = provisionKeys(t, path, keyConfig{key: keyB64(3)})
	defer cleanup()
	if err != nil {
		t.Fatal(err)
	}
	if res, err := h.db.administer(adminRequest{Action: actionReseal}, time.Now()); err != nil || res.Resealed.Users != 0 || res.Resealed.Sessions != 0 {
		t.Fatalf("second reseal: %+v, %v", res.Resealed, err)
	}
}

// The tests below run the test Caddy (see harness_test.go), with keys
// given as {env.…} placeholders as the README tells.

// loadFails posts caddyfile to the test Caddy's /load, which must refuse
// it, and returns the error Caddy answered.
func loadFails(t *testing.T, caddyfile string) string {
	t.Helper()
	client := &http.Client{Timeout: 3 * boltstore.LockTimeout}
	resp, err := client.Post(fmt.Sprintf("http://localhost:%d/load", testPorts().admin), "text/caddyfile", strings.NewReader(caddyfile))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK {
		t.Fatal("the config loaded, want it refused")
	}
	return string(body)
}

func fileContains(t *testing.T, path string, value []byte) bool {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Contains(raw, value)
}

// secretForms are the forms a TOTP secret takes: raw, and base32 as the
// setup page shows it.
func secretForms(secret []byte) [][]byte {
	return [][]byte{secret, []byte(b32NoPad.EncodeToString(secret))}
}

func TestKeysThatDoNotOpenTheSecretsAreRefusedAtLoad(t *testing.T) {
	t.Setenv("TWO_FACTOR_TEST_KEY", keyB64(1))
	t.Setenv("TWO_FACTOR_OTHER_KEY", keyB64(2))
	site := startSite(t, siteConfig{matcher: "/admin/*", extra: "encryption_key {env.TWO_FACTOR_TEST_KEY}"})
	secret, _ := newBrowser(t).enroll("alice")
	tests := []struct {
		name, extra, want string
	}{
		{"wrong key", "encryption_key {env.TWO_FACTOR_OTHER_KEY}", "encryption_key does not open the secrets in " + site.db + ": neither it nor any previous_encryption_key opens them"},
		{"removed key", "", "encryption_key does not open the secrets in " + site.db + ": none is set, and they are encrypted"},
		{"wrong previous key", "encryption_key {env.TWO_FACTOR_OTHER_KEY}\n\t\tprevious_encryption_key {env.TWO_FACTOR_OTHER_KEY}", "encryption_key does not open the secrets in " + site.db},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := loadFails(t, caddyfileFor(siteConfig{matcher: "/admin/*", db: site.db, extra: tt.extra}))
			if !strings.Contains(body, tt.want) {
				t.Fatalf("load refused with %s\nwant %q", body, tt.want)
			}
		})
	}
	// The running config is kept, and its users still sign in.
	if r := newBrowser(t).signIn("alice", secret); r.status != http.StatusSeeOther {
		t.Fatalf("sign-in after the refused loads: %d", r.status)
	}
}

// TestKeyRotation follows docs/operations.md: set the new key with the old
// one as previous, reload, reseal, drop the previous key.
func TestKeyRotation(t *testing.T) {
	t.Setenv("TWO_FACTOR_OLD_KEY", keyB64(1))
	t.Setenv("TWO_FACTOR_NEW_KEY", keyB64(2))
	site := startSite(t, siteConfig{matcher: "/admin/*", extra: "encryption_key {env.TWO_FACTOR_OLD_KEY}"})
	alice, _ := newBrowser(t).enroll("alice")
	bob, _ := newBrowser(t).enroll("bob")

	startSite(t, siteConfig{matcher: "/admin/*", db: site.db, extra: "encryption_key {env.TWO_FACTOR_NEW_KEY}\n\t\tprevious_encryption_key {env.TWO_FACTOR_OLD_KEY}"})
	// The previous key opens alice's secret, which is sealed with the new
	// one as she signs in.
	if r := newBrowser(t).signIn("alice", alice); r.status != http.StatusSeeOther {
		t.Fatalf("sign-in with the previous key: %d", r.status)
	}
	var res adminResult
	cliFor(t)("", "reseal", "--json").mustSucceed(t).decode(t, &res)
	if res.Action != actionReseal || res.DB != site.db || res.Resealed == nil || res.Resealed.Users != 1 || res.Resealed.Compacted == nil {
		t.Fatalf("reseal: %+v %+v", res, res.Resealed)
	}
	out := cliFor(t)("", "reseal").mustSucceed(t)
	if !strings.Contains(out.stdout, "Sealed 0 TOTP secrets and 0 pending setups in "+site.db) || !strings.Contains(out.stdout, "previous_encryption_key can now be removed") {
		t.Errorf("second reseal says: %s", out.stdout)
	}

	startSite(t, siteConfig{matcher: "/admin/*", db: site.db, extra: "encryption_key {env.TWO_FACTOR_NEW_KEY}"})
	for name, secret := range map[string][]byte{"alice": alice, "bob": bob} {
		if r := newBrowser(t).signIn(name, secret); r.status != http.StatusSeeOther {
			t.Fatalf("%s signs in with the new key alone: %d", name, r.status)
		}
	}
	if body := loadFails(t, caddyfileFor(siteConfig{matcher: "/admin/*", db: site.db, extra: "encryption_key {env.TWO_FACTOR_OLD_KEY}"})); !strings.Contains(body, "encryption_key does not open the secrets in "+site.db) {
		t.Fatalf("the old key after the rotation: %s", body)
	}
}

// TestResealLeavesNoSecretInTheClearInTheFile: secrets enrolled without a
// key are sealed by reseal, and the file is compacted. In a database this
// small bbolt soon reuses the pages it freed, so the file may be clean
// even without the compaction; store's TestCompactLeavesNoOverwrittenValueInTheFile
// shows what it takes out of a file whose freed pages are kept.
func TestResealLeavesNoSecretInTheClearInTheFile(t *testing.T) {
	t.Setenv("TWO_FACTOR_TEST_KEY", keyB64(7))
	logFile := filepath.Join(t.TempDir(), "caddy.log")
	site := startSite(t, siteConfig{matcher: "/admin/*", logFile: logFile})
	secret, _ := newBrowser(t).enroll("alice")
	// bob stops at the setup page: his secret is in his session only.
	bob := newBrowser(t)
	bob.login("bob", testPassword, "/admin/")
	m := secretPattern.FindStringSubmatch(bob.get("/_2fa/setup").body)
	if m == nil {
		t.Fatal("no secret on bob's setup page")
	}
	pending, err := totpDecode(m[1])
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range [][]byte{secret, pending} {
		if !fileContains(t, site.db, s) {
			t.Fatal("a secret enrolled without a key is not in the file: this test proves nothing")
		}
	}

	startSite(t, siteConfig{matcher: "/admin/*", db: site.db, logFile: logFile, extra: "encryption_key {env.TWO_FACTOR_TEST_KEY}"})
	status, body := adminCall(t, http.MethodPost, "/two_factor/reseal", "")
	if status != http.StatusOK {
		t.Fatalf("POST /two_factor/reseal: %d %s", status, body)
	}
	var res adminResult
	if err := json.Unmarshal([]byte(body), &res); err != nil {
		t.Fatal(err)
	}
	if r := res.Resealed; r == nil || r.Users != 1 || r.Sessions != 1 || r.Compacted == nil {
		t.Fatalf("reseal: %s", body)
	}
	for _, s := range [][]byte{secret, pending} {
		for _, form := range secretForms(s) {
			if fileContains(t, site.db, form) {
				t.Errorf("the file still holds a secret in the clear (%d bytes)", len(form))
			}
		}
	}

	// Both go on as if nothing happened.
	if r := newBrowser(t).signIn("alice", secret); r.status != http.StatusSeeOther {
		t.Fatalf("alice's sign-in after reseal: %d", r.status)
	}
	page := bob.get("/_2fa/setup")
	if m := secretPattern.FindStringSubmatch(page.body); m == nil || m[1] != b32NoPad.EncodeToString(pending) {
		t.Fatal("bob's setup page shows another secret after reseal")
	}
	if r := bob.post("/_2fa/setup", url.Values{"csrf": {bob.csrfFrom(page)}, "code": {bob.code("bob", pending)}}); r.status != http.StatusOK {
		t.Fatalf("bob's setup after reseal: %d", r.status)
	}

	logs, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(logs, []byte(`"event":"admin_reseal"`)) || !bytes.Contains(logs, []byte(`"users_resealed":1`)) {
		t.Errorf("no audit line for reseal in the log")
	}
	if bytes.Contains(logs, []byte(keyB64(7))) {
		t.Error("the log shows the key")
	}
}

func TestCommandResealNeedsTheRunningCaddy(t *testing.T) {
	site := startSite(t, siteConfig{matcher: "/admin/*"})
	stopSites(t)
	out := twoFactorCommand(t, "", "reseal", "--address", adminAddress(), "--db", site.db, "--json")
	// This Caddy has no database open; the message says what is needed.
	if code := out.refusal(t); code != codeNoDatabase || !strings.Contains(out.stdout, "reseal needs the running Caddy") {
		t.Fatalf("reseal of a file no Caddy serves: %s", out.stdout)
	}
	if strings.Contains(out.stderr, "directly") {
		t.Errorf("reseal went on to the file: %s", out.stderr)
	}
}

// failingCompacter is a store whose compaction fails, as on a full disk.
type failingCompacter struct{ store.Store }

func (failingCompacter) Compact() (boltstore.CompactStats, error) {
	return boltstore.CompactStats{}, errors.New("write 2fa.db.compact: no space left on device")
}

func TestResealWhoseCompactionFailsIsAnOutage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "2fa.db")
	h, cleanup, err := provisionKeys(t, path, keyConfig{key: keyB64(1)})
	defer cleanup()
	if err != nil {
		t.Fatal(err)
	}
	raw := h.db.raw
	h.db.raw = failingCompacter{raw}
	defer func() { h.db.raw = raw }()
	_, err = h.db.administer(adminRequest{Action: actionReseal}, time.Now())
	// The admin API answers such an error 503 store_unavailable.
	if !storeUnavailable(err) || !strings.Contains(err.Error(), "run reseal again") || !strings.Contains(err.Error(), "no space left") {
		t.Fatalf("reseal with a failing compaction: %v; want the store unavailable, saying to run it again", err)
	}
}
