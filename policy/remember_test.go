package policy

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/caddy-two-factor/caddy-two-factor/store"
)

// enrolled returns a user with TOTP and one passkey.
func enrolled() *store.User {
	return &store.User{
		Name: "alice", SessionID: "sid",
		TOTP:     &store.Enrollment{Secret: []byte{1, 2, 3}, EnrolledAt: now.Add(-24 * time.Hour)},
		Passkeys: []store.Passkey{{ID: []byte{7, 7}}},
	}
}

var thirtyDays = Remember{For: 30 * 24 * time.Hour}

func TestRememberLifecycle(t *testing.T) {
	u := enrolled()
	token, err := thirtyDays.Device(u, now, "Firefox on Linux", seeded(5))
	if err != nil {
		t.Fatal(err)
	}
	if len(token) != 43 || len(u.RememberedDevices) != 1 {
		t.Fatalf("token %q, %d devices", token, len(u.RememberedDevices))
	}
	d := u.RememberedDevices[0]
	if d.ID == "" || len(d.Digest) != 32 || len(d.Factors) != 32 || !d.Created.Equal(now) || !d.Expires.Equal(now.Add(thirtyDays.For)) || d.Browser != "Firefox on Linux" {
		t.Errorf("device %+v", d)
	}
	if strings.Contains(string(d.Digest), token) {
		t.Error("the store keeps the token")
	}
	got, ok := Remembered(u, token, now.Add(29*24*time.Hour))
	if !ok || got.ID != d.ID {
		t.Fatalf("Remembered a day before expiry = %+v, %v", got, ok)
	}
	got.LastUsed = now.Add(time.Hour)
	if !u.RememberedDevices[0].LastUsed.Equal(now.Add(time.Hour)) {
		t.Error("the device returned is not the user's")
	}
	if _, ok := Remembered(u, token, now.Add(thirtyDays.For)); ok {
		t.Error("Remembered at expiry")
	}
}

// TestRememberedDies lists every way a remembered browser stops sparing the
// second factor that policy decides (revoke and reset clear the list in
// the root, with ForgetAllDevices).
func TestRememberedDies(t *testing.T) {
	for _, tt := range []struct {
		name   string
		change func(u *store.User)
		dies   bool
	}{
		{"nothing", func(*store.User) {}, false},
		{"a TOTP code used", func(u *store.User) { u.TOTP.LastStep = 99 }, false},
		{"a recovery code used", func(u *store.User) { u.TOTP.RecoveryDigests = nil }, false},
		{"a new sign-in elsewhere", func(u *store.User) { u.SessionID = "other" }, false},
		{"the TOTP secret sealed under a new key", func(u *store.User) { u.TOTP.Secret = []byte{9, 9, 9} }, false},
		{"a passkey used", func(u *store.User) { u.Passkeys[0].SignCount++; u.Passkeys[0].LastUsed = now }, false},
		{"a passkey renamed", func(u *store.User) { u.Passkeys[0].Name = "new" }, false},
		{"a new authenticator", func(u *store.User) { u.TOTP = &store.Enrollment{Secret: []byte{4}, EnrolledAt: now} }, true},
		{"TOTP removed", func(u *store.User) { u.TOTP = nil }, true},
		{"a passkey added", func(u *store.User) { u.Passkeys = append(u.Passkeys, store.Passkey{ID: []byte{8}}) }, true},
		{"the passkey removed", func(u *store.User) { u.Passkeys = nil }, true},
		{"the passkey replaced", func(u *store.User) { u.Passkeys[0].ID = []byte{7, 8} }, true},
		{"every factor removed", func(u *store.User) { u.TOTP, u.Passkeys = nil, nil }, true},
		{"forgotten", func(u *store.User) { ForgetDevice(u, u.RememberedDevices[0].ID) }, true},
		{"all forgotten", func(u *store.User) { ForgetAllDevices(u) }, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			u := enrolled()
			token, err := thirtyDays.Device(u, now, "", seeded(6))
			if err != nil {
				t.Fatal(err)
			}
			tt.change(u)
			if _, ok := Remembered(u, token, now); ok == tt.dies {
				t.Errorf("Remembered = %v after the change, want %v", ok, !tt.dies)
			}
		})
	}
}

func TestRememberedRefusesOtherTokens(t *testing.T) {
	u := enrolled()
	token, err := thirtyDays.Device(u, now, "", seeded(7))
	if err != nil {
		t.Fatal(err)
	}
	other := enrolled()
	otherToken, err := thirtyDays.Device(other, now, "", seeded(8))
	if err != nil {
		t.Fatal(err)
	}
	flipped := []byte(token)
	flipped[0] ^= 1
	for name, tok := range map[string]string{
		"empty":                       "",
		"another user's":              otherToken,
		"one character changed":       string(flipped),
		"one character short":         token[:42],
		"one character more":          token + "A",
		"padded":                      token + "=",
		"standard base64":             strings.NewReplacer("-", "+", "_", "/").Replace(token[:42]) + "+",
		"non-canonical trailing bits": token[:42] + string(nonCanonical(token[42])),
		"the digest":                  string(u.RememberedDevices[0].Digest),
	} {
		if _, ok := Remembered(u, tok, now); ok {
			t.Errorf("%s: remembered", name)
		}
	}
}

// nonCanonical returns another base64url character that decodes to the
// same last byte: one differing in the two bits the decoder drops.
func nonCanonical(c byte) byte {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	return alphabet[strings.IndexByte(alphabet, c)^1]
}

func TestRememberDevicePrunesAndBounds(t *testing.T) {
	u := enrolled()
	u.RememberedDevices = []store.RememberedDevice{
		{ID: "expired", Factors: fp(u), Expires: now},
		{ID: "other factors", Factors: []byte{1}, Expires: now.Add(time.Hour)},
		{ID: "live", Factors: fp(u), Expires: now.Add(time.Hour)},
	}
	if _, err := thirtyDays.Device(u, now, "", seeded(9)); err != nil {
		t.Fatal(err)
	}
	if ids := deviceIDs(u); len(ids) != 2 || ids[0] != "live" {
		t.Errorf("devices after adding one: %q", ids)
	}

	u.RememberedDevices = nil
	for i := range MaxRememberedDevices {
		u.RememberedDevices = append(u.RememberedDevices, store.RememberedDevice{
			ID: string(rune('a' + i)), Factors: fp(u), Created: now.Add(-time.Hour), LastUsed: now.Add(-time.Duration(i+1) * time.Minute), Expires: now.Add(time.Hour),
		})
	}
	// "c" was used least recently but "e" was created later and never
	// used: the least recently active one goes.
	u.RememberedDevices[2].LastUsed = now.Add(-50 * time.Minute)
	u.RememberedDevices[4].LastUsed, u.RememberedDevices[4].Created = time.Time{}, now.Add(-55*time.Minute)
	u.RememberedDevices[MaxRememberedDevices-1].LastUsed = now
	if _, err := thirtyDays.Device(u, now, "", seeded(10)); err != nil {
		t.Fatal(err)
	}
	ids := deviceIDs(u)
	if len(ids) != MaxRememberedDevices || strings.Contains(strings.Join(ids, ""), "e") {
		t.Errorf("devices past the bound: %q, want %d without e", ids, MaxRememberedDevices)
	}
}

func fp(u *store.User) []byte {
	f := FactorsFingerprint(u)
	return f[:]
}

func deviceIDs(u *store.User) []string {
	var ids []string
	for _, d := range u.RememberedDevices {
		ids = append(ids, d.ID)
	}
	return ids
}

func TestRememberDeviceRefuses(t *testing.T) {
	if _, err := thirtyDays.Device(&store.User{Name: "carol"}, now, "", seeded(11)); !errors.Is(err, ErrNoFactors) {
		t.Errorf("a user without factors: %v, want ErrNoFactors", err)
	}
	u := enrolled()
	if _, err := thirtyDays.Device(u, now, "", failing{}); !errors.Is(err, errNoRandom) || len(u.RememberedDevices) != 0 {
		t.Errorf("failing source: %v, %d devices", err, len(u.RememberedDevices))
	}
	// A user whose factors are gone is spared nothing, whatever the list
	// holds.
	token, _ := thirtyDays.Device(u, now, "", seeded(12))
	u.TOTP, u.Passkeys = nil, nil
	u.RememberedDevices[0].Factors = fp(u)
	if _, ok := Remembered(u, token, now); ok {
		t.Error("remembered for a user with no factors")
	}
}

func TestForget(t *testing.T) {
	u := enrolled()
	for i := range 3 {
		if _, err := thirtyDays.Device(u, now, "", seeded(byte(20+i))); err != nil {
			t.Fatal(err)
		}
	}
	ids := deviceIDs(u)
	if ForgetDevice(u, "nope") || len(u.RememberedDevices) != 3 {
		t.Error("forgot a device that is not there")
	}
	if !ForgetDevice(u, ids[1]) || len(u.RememberedDevices) != 2 || deviceIDs(u)[1] != ids[2] {
		t.Errorf("ForgetDevice left %q", deviceIDs(u))
	}
	if n := ForgetAllDevices(u); n != 2 || u.RememberedDevices != nil {
		t.Errorf("ForgetAllDevices = %d, left %d", n, len(u.RememberedDevices))
	}
	if n := ForgetAllDevices(u); n != 0 {
		t.Errorf("ForgetAllDevices of none = %d", n)
	}
}

func TestRememberValidate(t *testing.T) {
	for _, tt := range []struct {
		r           Remember
		ok, enabled bool
	}{{Remember{}, true, false}, {thirtyDays, true, true}, {Remember{For: -time.Hour}, false, true}} {
		if err := tt.r.Validate(); (err == nil) != tt.ok || tt.r.Enabled() != tt.enabled {
			t.Errorf("%v: Validate = %v, Enabled = %v", tt.r, err, tt.r.Enabled())
		}
	}
}

func TestBrowserLabelIsBounded(t *testing.T) {
	u := enrolled()
	long := strings.Repeat("☃", 100) // 300 bytes
	if _, err := thirtyDays.Device(u, now, long, seeded(13)); err != nil {
		t.Fatal(err)
	}
	if b := u.RememberedDevices[0].Browser; len(b) > maxBrowserLabel || !strings.HasPrefix(long, b) || len(b) != 99 {
		t.Errorf("label of %d bytes: %q", len(b), b)
	}
}
