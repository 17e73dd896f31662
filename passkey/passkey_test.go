package passkey

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/caddy-two-factor/caddy-two-factor/internal/softauthn"
	"github.com/caddy-two-factor/caddy-two-factor/store"
)

// fixture is a Service with a clock the test moves, and the session its
// ceremonies are kept in.
type fixture struct {
	t    testing.TB
	svc  *Service
	now  time.Time
	sess *store.Session
}

func newFixture(t testing.TB, change func(*Config)) *fixture {
	t.Helper()
	cfg := Config{RPID: "example.com", RPName: "Example", Origins: []string{"https://example.com"}}
	if change != nil {
		change(&cfg)
	}
	svc, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	f := &fixture{t: t, svc: svc, now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC), sess: &store.Session{User: "alice"}}
	svc.Now = func() time.Time { return f.now }
	return f
}

// keep puts a begun ceremony in the session and returns its options.
func (f *fixture) keep(b *Begun, err error) []byte {
	f.t.Helper()
	if err != nil {
		f.t.Fatalf("begin: %v", err)
	}
	f.sess.Ceremony = b.State
	return b.Options
}

// register runs a whole registration of a for u.
func (f *fixture) register(t *testing.T, u *store.User, a *softauthn.Authenticator) (*store.Passkey, error) {
	t.Helper()
	answer := a.Create(t, f.keep(f.svc.BeginRegistration(u)))
	c, err := f.svc.Take(f.sess, Registration)
	if err != nil {
		return nil, err
	}
	return f.svc.FinishRegistration(u, c, answer, "")
}

// login runs a whole login of u with a.
func (f *fixture) login(t *testing.T, u *store.User, a *softauthn.Authenticator) (*store.Passkey, error) {
	t.Helper()
	answer := a.Get(t, f.keep(f.svc.BeginLogin(u)))
	c, err := f.svc.Take(f.sess, Login)
	if err != nil {
		return nil, err
	}
	return f.svc.FinishLogin(u, c, answer)
}

// withPasskey returns a fixture and alice, who has registered a (ES256).
func withPasskey(t *testing.T, change func(*Config)) (*fixture, *store.User, *softauthn.Authenticator) {
	t.Helper()
	f := newFixture(t, change)
	u := &store.User{Name: "alice"}
	a := softauthn.New(t, -7)
	mustRegister(t, f, u, a)
	return f, u, a
}

func mustRegister(t *testing.T, f *fixture, u *store.User, a *softauthn.Authenticator) *store.Passkey {
	t.Helper()
	pk, err := f.register(t, u, a)
	if err != nil {
		t.Fatalf("registration: %v", err)
	}
	return pk
}

func TestRegisterThenLogin(t *testing.T) {
	for _, alg := range []struct {
		name string
		cose int64
	}{{"ES256", -7}, {"EdDSA", -8}, {"RS256", -257}} {
		t.Run(alg.name, func(t *testing.T) {
			f := newFixture(t, nil)
			u := &store.User{Name: "alice"}
			a := softauthn.New(t, alg.cose)
			a.BE, a.BS = true, true
			pk := mustRegister(t, f, u, a)
			if len(u.WebAuthnID) != HandleBytes || !bytes.Equal(a.Handle, u.WebAuthnID) {
				t.Errorf("user handle %x, authenticator keeps %x", u.WebAuthnID, a.Handle)
			}
			if f.sess.Ceremony != nil {
				t.Error("the ceremony is still in the session after finishing")
			}
			want := store.Passkey{
				ID: a.CredID, AttestationType: "none", AttestationFormat: "none", AAGUID: make([]byte, 16),
				Flags:      store.FlagUserPresent | store.FlagUserVerified | store.FlagBackupEligible | store.FlagBackedUp | 0x40,
				Transports: []string{"internal", "hybrid"}, Attachment: "platform", Name: "Passkey 1", Created: f.now,
			}
			pk.PublicKey = nil // checked by the login below
			if got := *pk; !equalPasskeys(got, want) {
				t.Errorf("passkey\n got %+v\nwant %+v", got, want)
			}
			if len(u.Passkeys) != 1 || !bytes.Equal(u.Passkeys[0].ID, a.CredID) {
				t.Fatalf("user's passkeys: %+v", u.Passkeys)
			}

			f.now = f.now.Add(time.Hour)
			used, err := f.login(t, u, a)
			if err != nil {
				t.Fatalf("login: %v", err)
			}
			if !bytes.Equal(used.ID, a.CredID) || used.SignCount != 1 || !used.LastUsed.Equal(f.now) {
				t.Errorf("used passkey %+v", used)
			}
			if got := u.Passkeys[0]; got.SignCount != 1 || !got.LastUsed.Equal(f.now) || !got.Created.Equal(f.now.Add(-time.Hour)) {
				t.Errorf("stored passkey after login %+v", got)
			}
			// A second login with a counter that moved on still works.
			if _, err := f.login(t, u, a); err != nil {
				t.Fatalf("second login: %v", err)
			}
		})
	}
}

func equalPasskeys(a, b store.Passkey) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}

// refusal is an answer a ceremony must refuse: the authenticator (or
// whoever forged its answer) gets something wrong.
type refusal struct {
	name   string
	config func(*Config)
	break_ func(*softauthn.Authenticator)
	want   error
}

// refusedByBoth are the refusals of registration and login alike.
var refusedByBoth = []refusal{
	{"wrong origin", nil, func(a *softauthn.Authenticator) { a.Origin = "https://evil.example" }, ErrVerification},
	{"origin of a subdomain not configured", nil, func(a *softauthn.Authenticator) { a.Origin = "https://other.example.com" }, ErrVerification},
	{"wrong RP ID hash", nil, func(a *softauthn.Authenticator) { a.RPID = "evil.example" }, ErrVerification},
	{"wrong challenge", nil, func(a *softauthn.Authenticator) { a.Challenge = softauthn.B64(make([]byte, 32)) }, ErrVerification},
	{"user verification required but not given", func(c *Config) { c.UserVerification = Required }, func(a *softauthn.Authenticator) { a.UV = false }, ErrVerification},
	{"backed up without being backup eligible", nil, func(a *softauthn.Authenticator) { a.BS = true }, ErrVerification},
}

func TestRegistrationRefusals(t *testing.T) {
	for _, tt := range refusedByBoth {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, tt.config)
			u := &store.User{Name: "alice"}
			a := softauthn.New(t, -7)
			tt.break_(a)
			if _, err := f.register(t, u, a); !errors.Is(err, tt.want) {
				t.Fatalf("registration: %v, want %v", err, tt.want)
			}
			if u.Passkeys != nil || u.WebAuthnID != nil {
				t.Errorf("a refused registration changed the user: %+v", u)
			}
		})
	}
}

func TestUserVerificationPreferredAcceptsWithout(t *testing.T) {
	f := newFixture(t, nil)
	u := &store.User{Name: "alice"}
	a := softauthn.New(t, -7)
	a.UV = false
	mustRegister(t, f, u, a)
	if _, err := f.login(t, u, a); err != nil {
		t.Fatalf("login without user verification, which is only preferred: %v", err)
	}
}

func TestLoginRefusals(t *testing.T) {
	tests := append(slices.Clone(refusedByBoth), []refusal{
		{"cloned: the counter went backwards", nil, func(a *softauthn.Authenticator) { a.Counter = 0 }, ErrCloned},
		{"cloned: the counter stood still", nil, func(a *softauthn.Authenticator) { a.Counter-- }, ErrCloned},
		{"backup eligibility changed", nil, func(a *softauthn.Authenticator) { a.BE = true }, ErrVerification},
	}...)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, u, a := withPasskey(t, tt.config)
			a.Counter = 5
			if _, err := f.login(t, u, a); err != nil { // counter 6
				t.Fatalf("first login: %v", err)
			}
			before := u.Passkeys[0]
			f.now = f.now.Add(time.Minute)
			tt.break_(a)
			pk, err := f.login(t, u, a)
			if !errors.Is(err, tt.want) {
				t.Fatalf("login: %v, want %v", err, tt.want)
			}
			if !equalPasskeys(u.Passkeys[0], before) {
				t.Errorf("a refused login changed the passkey:\n got %+v\nwant %+v", u.Passkeys[0], before)
			}
			if tt.want == ErrCloned && (pk == nil || !bytes.Equal(pk.ID, a.CredID)) {
				t.Errorf("ErrCloned named passkey %+v", pk)
			}
		})
	}
}

func TestCounterlessAuthenticators(t *testing.T) {
	// Synced passkeys report 0 every time: that is no clone.
	f, u, a := withPasskey(t, nil)
	for range 2 {
		a.Counter = ^uint32(0) // get adds one: 0
		if _, err := f.login(t, u, a); err != nil {
			t.Fatalf("login with counter 0: %v", err)
		}
	}
}

func TestCredentialOfAnotherUser(t *testing.T) {
	f := newFixture(t, nil)
	alice, bob := &store.User{Name: "alice"}, &store.User{Name: "bob"}
	mustRegister(t, f, alice, softauthn.New(t, -7))
	bobs := softauthn.New(t, -7)
	mustRegister(t, f, bob, bobs)
	// Bob's key answers alice's login (as a relay might try).
	if _, err := f.login(t, alice, bobs); !errors.Is(err, ErrUnknownCredential) {
		t.Fatalf("alice's login with bob's passkey: %v, want ErrUnknownCredential", err)
	}
	// Bob's key with alice's handle, as a forged answer would claim.
	bobs.Handle = alice.WebAuthnID
	if _, err := f.login(t, alice, bobs); !errors.Is(err, ErrUnknownCredential) {
		t.Fatalf("bob's passkey claiming alice's handle: %v, want ErrUnknownCredential", err)
	}
}

func TestCeremonyIsSingleUse(t *testing.T) {
	f, u, a := withPasskey(t, nil)

	answer := a.Get(t, f.keep(f.svc.BeginLogin(u)))
	state := f.sess.Ceremony
	c, err := f.svc.Take(f.sess, Login)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.FinishLogin(u, c, answer); err != nil {
		t.Fatal(err)
	}
	// The same answer again: the session has no ceremony left.
	if _, err := f.svc.Take(f.sess, Login); !errors.Is(err, ErrNoCeremony) {
		t.Fatalf("second Take: %v, want ErrNoCeremony", err)
	}
	// The same answer against a new ceremony: another challenge.
	f.keep(f.svc.BeginLogin(u))
	c, err = f.svc.Take(f.sess, Login)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.FinishLogin(u, c, answer); !errors.Is(err, ErrVerification) {
		t.Fatalf("replayed answer with a new ceremony: %v, want ErrVerification", err)
	}
	// A refused answer spends the ceremony too.
	f.sess.Ceremony = state
	if _, err := f.svc.Take(f.sess, Registration); !errors.Is(err, ErrNoCeremony) || f.sess.Ceremony != nil {
		t.Fatalf("Take of the wrong kind: %v, ceremony left: %v", err, f.sess.Ceremony != nil)
	}
}

func TestCeremonyExpires(t *testing.T) {
	f, u, _ := withPasskey(t, func(c *Config) { c.Timeout = time.Minute })
	for _, tt := range []struct {
		after time.Duration
		want  error
	}{
		{time.Minute - time.Nanosecond, nil},
		{time.Minute, ErrCeremonyExpired},
		{time.Hour, ErrCeremonyExpired},
	} {
		begun := f.now
		f.keep(f.svc.BeginLogin(u))
		f.now = begun.Add(tt.after)
		if _, err := f.svc.Take(f.sess, Login); !errors.Is(err, tt.want) && !(tt.want == nil && err == nil) {
			t.Errorf("Take %v after beginning: %v, want %v", tt.after, err, tt.want)
		}
		if f.sess.Ceremony != nil {
			t.Errorf("Take %v after beginning left the ceremony", tt.after)
		}
	}
}

func TestFinishOfAnotherKind(t *testing.T) {
	f, u, a := withPasskey(t, func(c *Config) { c.UserVerification, c.PasskeyLogin = Required, true })
	answer := a.Get(t, f.keep(f.svc.BeginDiscoverableLogin()))
	c, err := f.svc.Take(f.sess, DiscoverableLogin)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.FinishLogin(u, c, answer); !errors.Is(err, ErrNoCeremony) {
		t.Errorf("a discoverable ceremony finished as a login: %v", err)
	}
	if _, err := f.svc.FinishRegistration(u, c, answer, ""); !errors.Is(err, ErrNoCeremony) {
		t.Errorf("a discoverable ceremony finished as a registration: %v", err)
	}
}

func TestExcludesRegisteredCredentials(t *testing.T) {
	f, u, a := withPasskey(t, nil)
	options := f.keep(f.svc.BeginRegistration(u))
	o := softauthn.ParseOptions(t, options)
	if len(o.PublicKey.ExcludeCredentials) != 1 || o.PublicKey.ExcludeCredentials[0].ID != softauthn.B64(a.CredID) {
		t.Errorf("excluded credentials %+v, want the registered one", o.PublicKey.ExcludeCredentials)
	}
	if o.PublicKey.User.ID != softauthn.B64(u.WebAuthnID) {
		t.Errorf("a second registration uses handle %s, not the user's", o.PublicKey.User.ID)
	}
	// A browser that ignores the list is refused here.
	answer := a.Create(t, options)
	c, err := f.svc.Take(f.sess, Registration)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.FinishRegistration(u, c, answer, "again"); !errors.Is(err, ErrAlreadyRegistered) || len(u.Passkeys) != 1 {
		t.Fatalf("registering the same credential again: %v, %d passkeys", err, len(u.Passkeys))
	}
	// Another authenticator is added under the same handle.
	b := softauthn.New(t, -8)
	if _, err := f.register(t, u, b); err != nil || len(u.Passkeys) != 2 || u.Passkeys[1].Name != "Passkey 2" || !bytes.Equal(b.Handle, u.WebAuthnID) {
		t.Fatalf("second authenticator: %v, %+v", err, u.Passkeys)
	}
	allowed := softauthn.ParseOptions(t, f.keep(f.svc.BeginLogin(u))).PublicKey.AllowCredentials
	if len(allowed) != 2 {
		t.Errorf("login allows %d credentials, want the user's 2", len(allowed))
	}
}

func TestRegistrationUnderAnotherHandle(t *testing.T) {
	// Two registrations begun before either finished each chose a
	// handle; the second to finish does not replace the first's.
	f := newFixture(t, nil)
	u := &store.User{Name: "alice"}
	a, b := softauthn.New(t, -7), softauthn.New(t, -7)
	answerB := b.Create(t, f.keep(f.svc.BeginRegistration(u)))
	stateB := f.sess.Ceremony
	mustRegister(t, f, u, a)
	f.sess.Ceremony = stateB
	c, err := f.svc.Take(f.sess, Registration)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.FinishRegistration(u, c, answerB, ""); !errors.Is(err, ErrVerification) || len(u.Passkeys) != 1 {
		t.Fatalf("registration under a stale handle: %v, %d passkeys", err, len(u.Passkeys))
	}
}

func TestBeginLoginWithoutPasskeys(t *testing.T) {
	f := newFixture(t, nil)
	if _, err := f.svc.BeginLogin(&store.User{Name: "alice", TOTP: &store.Enrollment{}}); !errors.Is(err, ErrNoPasskeys) {
		t.Fatalf("BeginLogin: %v, want ErrNoPasskeys", err)
	}
	if _, err := f.svc.BeginDiscoverableLogin(); !errors.Is(err, ErrPasskeyLoginOff) {
		t.Fatalf("BeginDiscoverableLogin without passkey_login: %v", err)
	}
}

func TestDiscoverableLogin(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.UserVerification, c.PasskeyLogin = Required, true })
	alice, bob := &store.User{Name: "alice"}, &store.User{Name: "bob"}
	a, b := softauthn.New(t, -7), softauthn.New(t, -7)
	mustRegister(t, f, alice, a)
	mustRegister(t, f, bob, b)
	users := []*store.User{alice, bob}
	lookup := func(handle []byte) (*store.User, error) {
		for _, u := range users {
			if bytes.Equal(u.WebAuthnID, handle) {
				return u, nil
			}
		}
		return nil, store.ErrNotFound
	}
	run := func(a *softauthn.Authenticator) (*store.User, *store.Passkey, error) {
		t.Helper()
		options := f.keep(f.svc.BeginDiscoverableLogin())
		if o := softauthn.ParseOptions(t, options); len(o.PublicKey.AllowCredentials) != 0 || o.PublicKey.UserVerification != Required {
			t.Fatalf("discoverable options %s", options)
		}
		answer := a.Get(t, options)
		c, err := f.svc.Take(f.sess, DiscoverableLogin)
		if err != nil {
			t.Fatal(err)
		}
		return f.svc.FinishDiscoverableLogin(c, answer, lookup)
	}

	f.now = f.now.Add(time.Minute)
	u, pk, err := run(b)
	if err != nil || u != bob || !bytes.Equal(pk.ID, b.CredID) || !bob.Passkeys[0].LastUsed.Equal(f.now) {
		t.Fatalf("discoverable login: %v, user %v, passkey %+v", err, u, pk)
	}

	b.Handle = make([]byte, HandleBytes)
	if _, _, err := run(b); !errors.Is(err, ErrUnknownCredential) {
		t.Errorf("unknown user handle: %v, want ErrUnknownCredential", err)
	}
	b.Handle = alice.WebAuthnID // bob's key claims to be alice's
	if _, _, err := run(b); !errors.Is(err, ErrUnknownCredential) {
		t.Errorf("bob's passkey with alice's handle: %v, want ErrUnknownCredential", err)
	}
	b.Handle = nil
	if _, _, err := run(b); !errors.Is(err, ErrUnknownCredential) {
		t.Errorf("no user handle: %v, want ErrUnknownCredential", err)
	}
	a.UV = false
	if _, _, err := run(a); !errors.Is(err, ErrVerification) {
		t.Errorf("passkey login without user verification: %v, want ErrVerification", err)
	}
	a.UV, a.Counter = true, 5
	if _, _, err := run(a); err != nil { // counter 6
		t.Fatalf("alice's discoverable login: %v", err)
	}
	a.Counter = 1 // get makes it 2
	if u, pk, err := run(a); !errors.Is(err, ErrCloned) || u != alice || pk == nil || pk.SignCount != 6 {
		t.Errorf("cloned passkey: %v, user %v, passkey %v", err, u, pk)
	}
}

func TestMalformedAnswers(t *testing.T) {
	f := newFixture(t, nil)
	u := &store.User{Name: "alice"}
	mustRegister(t, f, u, softauthn.New(t, -7))
	for _, answer := range []string{"", "{", "null", `{"id":"x"}`, `{"id":"AA","rawId":"AA","type":"public-key","response":{}}`} {
		f.keep(f.svc.BeginLogin(u))
		c, err := f.svc.Take(f.sess, Login)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.FinishLogin(u, c, []byte(answer)); !errors.Is(err, ErrMalformed) {
			t.Errorf("login answer %q: %v, want ErrMalformed", answer, err)
		}
		f.keep(f.svc.BeginRegistration(u))
		if c, err = f.svc.Take(f.sess, Registration); err != nil {
			t.Fatal(err)
		}
		if _, err := f.svc.FinishRegistration(u, c, []byte(answer), ""); !errors.Is(err, ErrMalformed) {
			t.Errorf("registration answer %q: %v, want ErrMalformed", answer, err)
		}
	}
}

func TestCeremonyEncoding(t *testing.T) {
	f := newFixture(t, nil)
	u := &store.User{Name: "alice"}
	f.keep(f.svc.BeginRegistration(u))
	c, err := DecodeCeremony(f.sess.Ceremony)
	if err != nil {
		t.Fatal(err)
	}
	if c.Kind != Registration || !c.Expires.Equal(f.now.Add(DefaultTimeout)) || len(c.data.UserID) != HandleBytes || c.data.Challenge == "" {
		t.Errorf("decoded ceremony %+v", c)
	}
	again, err := c.Encode()
	if err != nil || !bytes.Equal(again, f.sess.Ceremony) {
		t.Errorf("re-encoded: %v", err)
	}
	for name, raw := range map[string][]byte{
		"empty":          nil,
		"header only":    f.sess.Ceremony[:ceremonyHeader],
		"cut":            f.sess.Ceremony[:len(f.sess.Ceremony)-1],
		"trailing":       append(bytes.Clone(f.sess.Ceremony), '}'),
		"other format":   append([]byte{2}, f.sess.Ceremony[1:]...),
		"unknown kind":   append([]byte{ceremonyFormat, 9}, f.sess.Ceremony[2:]...),
		"kind zero":      append([]byte{ceremonyFormat, 0}, f.sess.Ceremony[2:]...),
		"not JSON":       append(bytes.Clone(f.sess.Ceremony[:ceremonyHeader]), 0x80),
		"no challenge":   append(bytes.Clone(f.sess.Ceremony[:ceremonyHeader]), "{}"...),
		"JSON of before": []byte(`{"challenge":"x"}`),
	} {
		if _, err := DecodeCeremony(raw); !errors.Is(err, ErrNoCeremony) {
			t.Errorf("%s: %v, want ErrNoCeremony", name, err)
		}
	}
}

func TestRegistrationWithoutHandle(t *testing.T) {
	// A stored ceremony that lost its user handle adds no passkey that no
	// login could find.
	f := newFixture(t, nil)
	u := &store.User{Name: "alice"}
	a := softauthn.New(t, -7)
	answer := a.Create(t, f.keep(f.svc.BeginRegistration(u)))
	c, err := f.svc.Take(f.sess, Registration)
	if err != nil {
		t.Fatal(err)
	}
	c.data.UserID = nil
	if _, err := f.svc.FinishRegistration(u, c, answer, ""); !errors.Is(err, ErrNoCeremony) || u.Passkeys != nil {
		t.Fatalf("registration without a handle: %v, %+v", err, u.Passkeys)
	}
}
