package passkey

import (
	"errors"
	"testing"
	"time"

	"github.com/caddy-two-factor/caddy-two-factor/internal/softauthn"
	"github.com/caddy-two-factor/caddy-two-factor/store"
)

// FuzzDecodeCeremony: whatever a session holds, decoding it neither
// panics nor gives anything but a ceremony or ErrNoCeremony, and what
// decodes encodes back the same.
func FuzzDecodeCeremony(f *testing.F) {
	fx := newFixture(f, nil)
	for _, b := range []func() (*Begun, error){
		func() (*Begun, error) { return fx.svc.BeginRegistration(&store.User{Name: "alice"}) },
		func() (*Begun, error) {
			return fx.svc.BeginLogin(&store.User{Name: "alice", WebAuthnID: []byte{1}, Passkeys: []store.Passkey{{ID: []byte{1}}}})
		},
	} {
		begun, err := b()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(begun.State)
	}
	f.Add([]byte{ceremonyFormat, 1, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, raw []byte) {
		c, err := DecodeCeremony(raw)
		if err != nil {
			if !errors.Is(err, ErrNoCeremony) {
				t.Fatalf("error %v is not ErrNoCeremony", err)
			}
			return
		}
		again, err := c.Encode()
		if err != nil {
			t.Fatal(err)
		}
		c2, err := DecodeCeremony(again)
		if err != nil || c2.Kind != c.Kind || !c2.Expires.Equal(c.Expires) || c2.data.Challenge != c.data.Challenge {
			t.Fatalf("re-decoded %+v, %v; want %+v", c2, err, c)
		}
	})
}

// FuzzFinish: what a browser (or anyone) posts as the answer to a
// ceremony never panics and is refused with one of the typed errors.
func FuzzFinish(f *testing.F) {
	fx := newFixture(f, func(c *Config) { c.UserVerification, c.PasskeyLogin = Required, true })
	u := &store.User{Name: "alice"}
	a := softauthn.New(f, -7)
	regOptions := fx.keep(fx.svc.BeginRegistration(u))
	regState := fx.sess.Ceremony
	f.Add(a.Create(f, regOptions))
	regC, err := DecodeCeremony(regState)
	if err != nil {
		f.Fatal(err)
	}
	if _, err := fx.svc.FinishRegistration(u, regC, a.Create(f, regOptions), ""); err != nil {
		f.Fatal(err)
	}
	loginOptions := fx.keep(fx.svc.BeginLogin(u))
	loginState := fx.sess.Ceremony
	f.Add(a.Get(f, loginOptions))
	discOptions := fx.keep(fx.svc.BeginDiscoverableLogin())
	discState := fx.sess.Ceremony
	f.Add(a.Get(f, discOptions))
	f.Add([]byte(`{"id":"AA","rawId":"AA","type":"public-key","response":{"clientDataJSON":"e30","authenticatorData":"AA","signature":"AA","userHandle":"AA"}}`))

	typed := []error{ErrMalformed, ErrVerification, ErrUnknownCredential, ErrCloned, ErrAlreadyRegistered, ErrBadName}
	check := func(t *testing.T, what string, err error) {
		for _, e := range typed {
			if errors.Is(err, e) {
				return
			}
		}
		if err != nil {
			t.Fatalf("%s: untyped error %v", what, err)
		}
	}
	f.Fuzz(func(t *testing.T, answer []byte) {
		fx.now = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
		for _, kind := range []struct {
			state  []byte
			finish func(*Ceremony) error
		}{
			{regState, func(c *Ceremony) error {
				_, err := fx.svc.FinishRegistration(&store.User{Name: "bob"}, c, answer, "")
				return err
			}},
			{loginState, func(c *Ceremony) error {
				v := *u
				v.Passkeys = append([]store.Passkey(nil), u.Passkeys...)
				_, err := fx.svc.FinishLogin(&v, c, answer)
				return err
			}},
			{discState, func(c *Ceremony) error {
				_, _, err := fx.svc.FinishDiscoverableLogin(c, answer, func([]byte) (*store.User, error) {
					v := *u
					v.Passkeys = append([]store.Passkey(nil), u.Passkeys...)
					return &v, nil
				})
				return err
			}},
		} {
			c, err := DecodeCeremony(kind.state)
			if err != nil {
				t.Fatal(err)
			}
			check(t, c.Kind.String(), kind.finish(c))
		}
	})
}
