package seal_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/caddy-two-factor/caddy-two-factor/seal"
)

// testKey returns a fixed key whose base64 forms use every alphabet-specific
// character ("+", "/", "-", "_") and need padding.
func testKey(t *testing.T) []byte {
	t.Helper()
	key := bytes.Repeat([]byte{0xfb, 0xff, 0xbf}, 11)[:seal.KeySize]
	std := base64.StdEncoding.EncodeToString(key)
	if !strings.ContainsAny(std, "+/") || !strings.HasSuffix(std, "=") {
		t.Fatalf("test key %q does not exercise the alphabets", std)
	}
	return key
}

func newSealer(t *testing.T, key []byte) *seal.Sealer {
	t.Helper()
	s, err := seal.New(key)
	if err != nil {
		t.Fatalf("New(%d-byte key): %v", len(key), err)
	}
	return s
}

func mustSeal(t *testing.T, s *seal.Sealer, plaintext []byte, owner string) []byte {
	t.Helper()
	sealed, err := s.Seal(plaintext, owner)
	if err != nil {
		t.Fatalf("Seal: %v", err)
	}
	return sealed
}

func TestRoundTrip(t *testing.T) {
	keyed := newSealer(t, testKey(t))
	plain := newSealer(t, nil)
	var zero seal.Sealer
	plaintexts := map[string][]byte{
		"empty":      {},
		"nil":        nil,
		"secret":     []byte("12345678901234567890"),
		"binary":     {0, 1, 2, 0xff, 0},
		"large":      bytes.Repeat([]byte("x"), 1<<16),
		"format tag": {1},
	}
	sealers := []struct {
		name     string
		s        *seal.Sealer
		encrypts bool
	}{
		{"keyed", keyed, true},
		{"plain", plain, false},
		{"zero value", &zero, false},
	}
	for _, sl := range sealers {
		if sl.s.Encrypts() != sl.encrypts {
			t.Errorf("%s: Encrypts() = %v, want %v", sl.name, sl.s.Encrypts(), sl.encrypts)
		}
		for name, pt := range plaintexts {
			for _, owner := range []string{"alice", "", "bob\x00"} {
				t.Run(sl.name+"/"+name+"/"+owner, func(t *testing.T) {
					orig := bytes.Clone(pt)
					sealed := mustSeal(t, sl.s, pt, owner)
					if !bytes.Equal(pt, orig) {
						t.Fatal("Seal modified its input")
					}
					if sl.encrypts && len(pt) >= 4 && bytes.Contains(sealed, pt) {
						t.Error("sealed value contains the plaintext")
					}
					got, err := sl.s.Open(sealed, owner)
					if err != nil {
						t.Fatalf("Open: %v", err)
					}
					if !bytes.Equal(got, pt) {
						t.Fatalf("Open = %q, want %q", got, pt)
					}
					// The result must not alias the sealed value.
					if len(got) > 0 {
						got[0] ^= 0xff
						again, err := sl.s.Open(sealed, owner)
						if err != nil || !bytes.Equal(again, pt) {
							t.Fatalf("changing Open's result changed the sealed value: %q, %v", again, err)
						}
					}
				})
			}
		}
	}
}

func TestSealUsesFreshNonces(t *testing.T) {
	s := newSealer(t, testKey(t))
	pt := []byte("same plaintext")
	a, b := mustSeal(t, s, pt, "alice"), mustSeal(t, s, pt, "alice")
	if bytes.Equal(a, b) {
		t.Fatal("sealing the same plaintext twice gave the same value")
	}
}

func TestOpenWrongOwner(t *testing.T) {
	s := newSealer(t, testKey(t))
	sealed := mustSeal(t, s, []byte("secret"), "alice")
	for _, other := range []string{"bob", "", "Alice", "alice ", "alic", "alice\x00"} {
		if got, err := s.Open(sealed, other); err == nil {
			t.Errorf("value sealed for alice opened for %q: %q", other, got)
		}
	}
}

func TestOpenWrongKey(t *testing.T) {
	key := testKey(t)
	sealed := mustSeal(t, newSealer(t, key), []byte("secret"), "alice")
	other := bytes.Clone(key)
	other[len(other)-1] ^= 1
	if got, err := newSealer(t, other).Open(sealed, "alice"); err == nil {
		t.Fatalf("opened with another key: %q", got)
	}
}

func TestOpenTampered(t *testing.T) {
	s := newSealer(t, testKey(t))
	sealed := mustSeal(t, s, []byte("12345678901234567890"), "alice")
	// Layout: format tag, 12-byte nonce, ciphertext, 16-byte tag.
	positions := map[string]int{
		"first nonce byte":      1,
		"last nonce byte":       12,
		"first ciphertext byte": 13,
		"last ciphertext byte":  len(sealed) - 17,
		"first tag byte":        len(sealed) - 16,
		"last tag byte":         len(sealed) - 1,
	}
	for name, i := range positions {
		t.Run(name, func(t *testing.T) {
			for _, bit := range []byte{0x01, 0x80} {
				bad := bytes.Clone(sealed)
				bad[i] ^= bit
				if got, err := s.Open(bad, "alice"); err == nil {
					t.Fatalf("tampered value (byte %d ^ %#x) opened: %q", i, bit, got)
				}
			}
		})
	}
	t.Run("appended byte", func(t *testing.T) {
		if _, err := s.Open(append(bytes.Clone(sealed), 0), "alice"); err == nil {
			t.Fatal("value with an extra byte opened")
		}
	})
	t.Run("every truncation", func(t *testing.T) {
		for n := 0; n < len(sealed); n++ {
			if got, err := s.Open(sealed[:n], "alice"); err == nil {
				t.Fatalf("value truncated to %d bytes opened: %q", n, got)
			}
		}
	})
}

func TestOpenKeyedValueWithoutKey(t *testing.T) {
	sealed := mustSeal(t, newSealer(t, testKey(t)), []byte("secret"), "alice")
	var zero seal.Sealer
	for name, s := range map[string]*seal.Sealer{"New(nil)": newSealer(t, nil), "zero value": &zero} {
		t.Run(name, func(t *testing.T) {
			got, err := s.Open(sealed, "alice")
			if !errors.Is(err, seal.ErrNoKey) {
				t.Fatalf("Open = %q, %v; want ErrNoKey", got, err)
			}
			if got != nil {
				t.Errorf("Open returned %q along with an error", got)
			}
		})
	}
}

func TestOpenPlainValueWithKey(t *testing.T) {
	// Values stored before a key was configured stay readable.
	sealed := mustSeal(t, newSealer(t, nil), []byte("secret"), "alice")
	got, err := newSealer(t, testKey(t)).Open(sealed, "alice")
	if err != nil || string(got) != "secret" {
		t.Fatalf("Open = %q, %v; want %q", got, err, "secret")
	}
}

func TestOpenMalformed(t *testing.T) {
	keyed := newSealer(t, testKey(t))
	plain := newSealer(t, nil)
	tests := []struct {
		name    string
		in      []byte
		noKeyIs error // the error the keyless sealer must wrap, if any
	}{
		{"nil", nil, nil},
		{"empty", []byte{}, nil},
		{"tag only", []byte{1}, seal.ErrNoKey},
		{"short nonce", append([]byte{1}, make([]byte, 11)...), seal.ErrNoKey},
		{"nonce without tag", append([]byte{1}, make([]byte, 12)...), seal.ErrNoKey},
		{"nonce and short tag", append([]byte{1}, make([]byte, 12+15)...), seal.ErrNoKey},
		{"zeroed nonce and tag", append([]byte{1}, make([]byte, 12+16)...), seal.ErrNoKey},
		{"unknown format 2", []byte{2, 'x'}, nil},
		{"unknown format 0xff", append([]byte{0xff}, make([]byte, 40)...), nil},
		{"unknown format alone", []byte{'{'}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := keyed.Open(tt.in, "alice"); err == nil {
				t.Errorf("keyed Open(%x) = %q, want an error", tt.in, got)
			}
			got, err := plain.Open(tt.in, "alice")
			if err == nil {
				t.Errorf("keyless Open(%x) = %q, want an error", tt.in, got)
			}
			if tt.noKeyIs != nil && !errors.Is(err, tt.noKeyIs) {
				t.Errorf("keyless Open(%x) error %v, want %v", tt.in, err, tt.noKeyIs)
			}
		})
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		name     string
		key      []byte
		ok       bool
		encrypts bool
	}{
		{"nil", nil, true, false},
		{"32 bytes", make([]byte, 32), true, true},
		{"empty", []byte{}, false, false},
		{"16 bytes (AES-128)", make([]byte, 16), false, false},
		{"24 bytes (AES-192)", make([]byte, 24), false, false},
		{"31 bytes", make([]byte, 31), false, false},
		{"33 bytes", make([]byte, 33), false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := seal.New(tt.key)
			if (err == nil) != tt.ok {
				t.Fatalf("New: err = %v, want ok = %v", err, tt.ok)
			}
			if err == nil && s.Encrypts() != tt.encrypts {
				t.Errorf("Encrypts() = %v, want %v", s.Encrypts(), tt.encrypts)
			}
		})
	}
}

func TestParseKey(t *testing.T) {
	key := testKey(t)
	enc := func(e *base64.Encoding, b []byte) string { return e.EncodeToString(b) }
	short, long := key[:31], append(bytes.Clone(key), 0xfb)
	std := enc(base64.StdEncoding, key)
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"standard", std, true},
		{"standard unpadded", enc(base64.RawStdEncoding, key), true},
		{"URL", enc(base64.URLEncoding, key), true},
		{"URL unpadded", enc(base64.RawURLEncoding, key), true},
		{"surrounding whitespace", " \t" + std + "\n", true},
		{"trailing newline as from base64(1)", std + "\n", true},
		{"31 bytes standard", enc(base64.StdEncoding, short), false},
		{"31 bytes URL unpadded", enc(base64.RawURLEncoding, short), false},
		{"33 bytes standard", enc(base64.StdEncoding, long), false},
		{"33 bytes URL unpadded", enc(base64.RawURLEncoding, long), false},
		{"64 bytes", enc(base64.StdEncoding, append(bytes.Clone(key), key...)), false},
		{"empty", "", false},
		{"whitespace", "   ", false},
		{"not base64", "this is not base64 at all!!", false},
		{"hex", strings.Repeat("ab", 32), false},
		{"mixed alphabets", strings.Replace(std, "+", "-", 1), false},
		{"inner space", std[:10] + " " + std[10:], false},
		{"bad padding", std + "=", false},
		{"one character missing", std[:len(std)-2], false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := seal.ParseKey(tt.in)
			if (err == nil) != tt.ok {
				t.Fatalf("ParseKey(%q) = %x, %v; want ok = %v", tt.in, got, err, tt.ok)
			}
			if tt.ok && !bytes.Equal(got, key) {
				t.Errorf("ParseKey(%q) = %x, want %x", tt.in, got, key)
			}
			if !tt.ok && got != nil {
				t.Errorf("ParseKey(%q) returned %x with an error", tt.in, got)
			}
		})
	}
}

func TestParseKeyWorksWithNew(t *testing.T) {
	key, err := seal.ParseKey(base64.StdEncoding.EncodeToString(testKey(t)))
	if err != nil {
		t.Fatal(err)
	}
	s := newSealer(t, key)
	if got, err := s.Open(mustSeal(t, s, []byte("x"), "a"), "a"); err != nil || string(got) != "x" {
		t.Fatalf("round trip with a parsed key: %q, %v", got, err)
	}
}

func TestResealEncryptsValuesStoredWithoutAKey(t *testing.T) {
	plain, err := seal.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	keyed, err := seal.New(make([]byte, seal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	stored, err := plain.Seal([]byte("secret"), "alice")
	if err != nil {
		t.Fatal(err)
	}
	resealed, changed, err := keyed.Reseal(stored, "alice")
	if err != nil || !changed || resealed[0] == stored[0] {
		t.Fatalf("Reseal of a plain value: changed=%v err=%v", changed, err)
	}
	if got, err := keyed.Open(resealed, "alice"); err != nil || string(got) != "secret" {
		t.Fatalf("Open of the resealed value: %q %v", got, err)
	}
	again, changed, err := keyed.Reseal(resealed, "alice")
	if err != nil || changed || string(again) != string(resealed) {
		t.Fatalf("Reseal of a sealed value changed it: %v %v", changed, err)
	}
	if _, changed, _ := plain.Reseal(stored, "alice"); changed {
		t.Fatal("a sealer without a key resealed a value")
	}
}

// keyN returns a distinct valid key for each n.
func keyN(n byte) []byte { return bytes.Repeat([]byte{n}, seal.KeySize) }

func TestPreviousKeysOpenAndResealToTheCurrentKey(t *testing.T) {
	oldKey, newKey, otherKey := keyN(1), keyN(2), keyN(3)
	plain := newSealer(t, nil)
	old := newSealer(t, oldKey)
	rotated, err := seal.New(newKey, otherKey, oldKey)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		sealed  []byte
		key     seal.Key
		changed bool
	}{
		{"stored without a key", mustSeal(t, plain, []byte("secret"), "alice"), seal.KeyNone, true},
		{"sealed with a previous key", mustSeal(t, old, []byte("secret"), "alice"), seal.KeyPrevious, true},
		{"sealed with the current key", mustSeal(t, rotated, []byte("secret"), "alice"), seal.KeyCurrent, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, key, err := rotated.OpenKey(tt.sealed, "alice")
			if err != nil || string(got) != "secret" || key != tt.key {
				t.Fatalf("OpenKey = %q, %v, %v; want secret, %v", got, key, err, tt.key)
			}
			resealed, changed, err := rotated.Reseal(tt.sealed, "alice")
			if err != nil || changed != tt.changed {
				t.Fatalf("Reseal: changed=%v err=%v; want changed=%v", changed, err, tt.changed)
			}
			if _, key, err := rotated.OpenKey(resealed, "alice"); err != nil || key != seal.KeyCurrent {
				t.Fatalf("the resealed value opens with %v, %v; want the current key", key, err)
			}
			// Only the new key is needed from now on.
			if got, err := newSealer(t, newKey).Open(resealed, "alice"); err != nil || string(got) != "secret" {
				t.Fatalf("the resealed value does not open with the current key alone: %q, %v", got, err)
			}
		})
	}
}

func TestResealRefusesWhatNoKeyOpens(t *testing.T) {
	sealed := mustSeal(t, newSealer(t, keyN(1)), []byte("secret"), "alice")
	rotated, err := seal.New(keyN(2), keyN(3))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := rotated.Reseal(sealed, "alice"); err == nil {
		t.Fatal("Reseal of a value sealed with an unknown key succeeded")
	}
	if _, _, err := rotated.Reseal(sealed, "bob"); err == nil {
		t.Fatal("Reseal of another owner's value succeeded")
	}
}

func TestNewWithPreviousKeys(t *testing.T) {
	tests := []struct {
		name     string
		key      []byte
		previous [][]byte
		ok       bool
	}{
		{"current and previous", keyN(1), [][]byte{keyN(2), keyN(3)}, true},
		{"previous equal to current", keyN(1), [][]byte{keyN(1)}, true},
		{"previous without current", nil, [][]byte{keyN(2)}, false},
		{"short previous", keyN(1), [][]byte{keyN(2)[:16]}, false},
		{"empty previous", keyN(1), [][]byte{{}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := seal.New(tt.key, tt.previous...); (err == nil) != tt.ok {
				t.Fatalf("New: err = %v, want ok = %v", err, tt.ok)
			}
		})
	}
}

func TestSameKey(t *testing.T) {
	rotated, err := seal.New(keyN(1), keyN(2))
	if err != nil {
		t.Fatal(err)
	}
	var zero seal.Sealer
	tests := []struct {
		name string
		a, b *seal.Sealer
		same bool
	}{
		{"same key", newSealer(t, keyN(1)), newSealer(t, keyN(1)), true},
		{"previous keys do not count", newSealer(t, keyN(1)), rotated, true},
		{"other key", newSealer(t, keyN(1)), newSealer(t, keyN(2)), false},
		{"previous is not current", newSealer(t, keyN(2)), rotated, false},
		{"key and none", newSealer(t, keyN(1)), newSealer(t, nil), false},
		{"none and none", newSealer(t, nil), &zero, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.a.SameKey(tt.b); got != tt.same {
				t.Errorf("a.SameKey(b) = %v, want %v", got, tt.same)
			}
			if got := tt.b.SameKey(tt.a); got != tt.same {
				t.Errorf("b.SameKey(a) = %v, want %v", got, tt.same)
			}
		})
	}
}
