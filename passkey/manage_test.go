package passkey

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/caddy-two-factor/caddy-two-factor/store"
)

func twoKeys() *store.User {
	return &store.User{Name: "alice", WebAuthnID: []byte{9}, Passkeys: []store.Passkey{{ID: []byte{1}, Name: "one"}, {ID: []byte{2}, Name: "two"}}}
}

func TestCanRemove(t *testing.T) {
	oneKey := &store.User{Name: "alice", Passkeys: []store.Passkey{{ID: []byte{1}}}}
	withTOTP := &store.User{Name: "alice", TOTP: &store.Enrollment{}, Passkeys: []store.Passkey{{ID: []byte{1}}}}
	withCodes := &store.User{Name: "alice", RecoveryDigests: [][]byte{{1}}, Passkeys: []store.Passkey{{ID: []byte{1}}}}
	tests := []struct {
		name string
		u    *store.User
		id   []byte
		want error
	}{
		{"one of two passkeys", twoKeys(), []byte{2}, nil},
		{"the last passkey beside TOTP", withTOTP, []byte{1}, nil},
		{"the last factor", oneKey, []byte{1}, ErrLastFactor},
		{"the last factor, recovery codes left", withCodes, []byte{1}, ErrLastFactor},
		{"not the user's", twoKeys(), []byte{3}, ErrUnknownCredential},
		{"no ID", twoKeys(), nil, ErrUnknownCredential},
	}
	for _, tt := range tests {
		if err := CanRemove(tt.u, tt.id); !errors.Is(err, tt.want) && !(tt.want == nil && err == nil) {
			t.Errorf("%s: CanRemove = %v, want %v", tt.name, err, tt.want)
		}
		before := len(tt.u.Passkeys)
		err := Remove(tt.u, tt.id)
		if (err == nil) != (tt.want == nil) {
			t.Errorf("%s: Remove = %v, want %v", tt.name, err, tt.want)
		}
		removed := before - len(tt.u.Passkeys)
		if (tt.want == nil && (removed != 1 || find(tt.u, tt.id) >= 0)) || (tt.want != nil && removed != 0) {
			t.Errorf("%s: %d passkeys removed", tt.name, removed)
		}
	}
}

func TestRemoveKeepsTheOthers(t *testing.T) {
	u := twoKeys()
	keep := u.Passkeys // the caller's view of the old slice
	if err := Remove(u, []byte{1}); err != nil {
		t.Fatal(err)
	}
	if len(u.Passkeys) != 1 || u.Passkeys[0].Name != "two" || keep[0].Name != "one" || !bytes.Equal(u.WebAuthnID, []byte{9}) {
		t.Errorf("after removing one: %+v (old slice %+v)", u, keep)
	}
	u.TOTP = &store.Enrollment{}
	if err := Remove(u, []byte{2}); err != nil || u.Passkeys != nil {
		t.Errorf("removing the last passkey beside TOTP: %v, %+v", err, u.Passkeys)
	}
}

func TestRename(t *testing.T) {
	for _, tt := range []struct {
		name, give, want string
		err              error
	}{
		{"plain", "YubiKey 5", "YubiKey 5", nil},
		{"trimmed", "  Phone\t", "Phone", nil},
		{"non-ASCII", "Clé ☃", "Clé ☃", nil},
		{"longest", strings.Repeat("é", MaxNameLength), strings.Repeat("é", MaxNameLength), nil},
		{"too long", strings.Repeat("a", MaxNameLength+1), "", ErrBadName},
		{"empty", " ", "", ErrBadName},
		{"control character", "a\x00b", "", ErrBadName},
		{"new line", "a\nb", "", ErrBadName},
		{"invalid UTF-8", "a\xffb", "", ErrBadName},
	} {
		u := twoKeys()
		err := Rename(u, []byte{2}, tt.give)
		if !errors.Is(err, tt.err) && !(tt.err == nil && err == nil) {
			t.Errorf("%s: Rename = %v, want %v", tt.name, err, tt.err)
		}
		want := tt.want
		if tt.err != nil {
			want = "two"
		}
		if u.Passkeys[1].Name != want || u.Passkeys[0].Name != "one" {
			t.Errorf("%s: names %q, %q", tt.name, u.Passkeys[0].Name, u.Passkeys[1].Name)
		}
	}
	if err := Rename(twoKeys(), []byte{3}, "x"); !errors.Is(err, ErrUnknownCredential) {
		t.Errorf("renaming another's passkey: %v", err)
	}
}

func TestIDs(t *testing.T) {
	id := []byte{0xfb, 0xff, 0}
	if got, err := DecodeID(EncodeID(id)); err != nil || !bytes.Equal(got, id) {
		t.Errorf("round trip: %x, %v", got, err)
	}
	for _, bad := range []string{"", "+/8A", "-_8A=", "a", "-_9"} {
		if _, err := DecodeID(bad); !errors.Is(err, ErrUnknownCredential) {
			t.Errorf("DecodeID(%q) = %v", bad, err)
		}
	}
}

// memTx is the part of a store.Tx that the handle index uses.
type memTx struct {
	store.Tx
	meta  map[string][]byte
	users []*store.User
}

func (m *memTx) Meta(name string) ([]byte, error) {
	if v, ok := m.meta[name]; ok {
		return v, nil
	}
	return nil, store.ErrNotFound
}

func (m *memTx) PutMeta(name string, v []byte) error { m.meta[name] = v; return nil }

func (m *memTx) User(name string) (*store.User, error) {
	for _, u := range m.users {
		if u.Name == name {
			return u, nil
		}
	}
	return nil, store.ErrNotFound
}

func (m *memTx) ForEachUser(fn func(*store.User) error) error {
	for _, u := range m.users {
		if err := fn(u); err != nil {
			return err
		}
	}
	return nil
}

func TestUserByHandle(t *testing.T) {
	alice := &store.User{Name: "alice", WebAuthnID: []byte{1, 1}}
	bob := &store.User{Name: "bob", WebAuthnID: []byte{2, 2}}
	tx := &memTx{meta: map[string][]byte{}, users: []*store.User{{Name: "carol"}, alice, bob}}
	if err := IndexHandle(tx, alice); err != nil {
		t.Fatal(err)
	}
	if err := IndexHandle(tx, &store.User{Name: "dave"}); err != nil || len(tx.meta) != 1 {
		t.Fatalf("indexing a user without a handle: %v, %d entries", err, len(tx.meta))
	}
	for _, tt := range []struct {
		name   string
		handle []byte
		want   *store.User
	}{
		{"indexed", alice.WebAuthnID, alice},
		{"not indexed (a migrated store)", bob.WebAuthnID, bob},
		{"nobody's", []byte{3}, nil},
		{"empty", nil, nil},
	} {
		u, err := UserByHandle(tx, tt.handle)
		if u != tt.want || (tt.want == nil && !errors.Is(err, store.ErrNotFound)) {
			t.Errorf("%s: %v, %v", tt.name, u, err)
		}
	}
	// An index entry that names a user who no longer has the handle.
	tx.meta[handleMetaPrefix+EncodeID(bob.WebAuthnID)] = []byte("alice")
	if u, err := UserByHandle(tx, bob.WebAuthnID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("stale index entry gave %v, %v", u, err)
	}
}
