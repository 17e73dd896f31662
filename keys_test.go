package twofactor

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-two-factor/caddy-two-factor/seal"
	"github.com/caddy-two-factor/caddy-two-factor/store"
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
	st, err := store.OpenBolt(path)
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
				st, err := store.OpenBolt(path)
				if err != nil {
					t.Fatal(err)
				}
				defer st.Close()
				db = &database{store: st, raw: st, path: path, attempts: newAttemptTracker(st)}
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
		st, err := store.OpenBolt(path)
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
