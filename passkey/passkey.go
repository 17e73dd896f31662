// Package passkey runs WebAuthn ceremonies (passkeys and security keys)
// for users of package store, on top of github.com/go-webauthn/webauthn.
// It knows nothing of HTTP routes, Caddy or sessions' cookies: a caller
// begins a ceremony, sends the options to the browser and keeps the
// ceremony in the user's session (store.Session.Ceremony); with the
// browser's answer it takes the ceremony back out (once) and finishes it,
// which adds a passkey to a user or says which passkey signed.
//
// A typical second-factor confirmation, all in one store.Update:
//
//	c, err := svc.Take(sess, passkey.Login) // removes it from sess
//	if err == nil {
//		pk, err = svc.FinishLogin(user, c, body) // updates user's passkey
//	}
//	// put sess (the ceremony is spent) and, on success, user; commit either way
//
// Errors are typed (ErrNoCeremony, ErrCeremonyExpired, ErrMalformed,
// ErrVerification, ErrUnknownCredential, ErrCloned, ...) so the HTTP
// layer maps them to answers in one place; their text never holds a
// challenge, a key or a signature.
package passkey

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/caddy-two-factor/caddy-two-factor/store"
)

// Errors of ceremonies.
var (
	// ErrNoCeremony: the session has no pending ceremony of the kind
	// being finished (none begun, already used, or unreadable).
	ErrNoCeremony = errors.New("no webauthn ceremony pending")
	// ErrCeremonyExpired: the ceremony was begun too long ago.
	ErrCeremonyExpired = errors.New("webauthn ceremony expired")
	// ErrMalformed: the browser's answer could not be parsed.
	ErrMalformed = errors.New("malformed webauthn response")
	// ErrVerification: the answer was refused (origin, RP ID, challenge,
	// signature, user presence or verification, ...).
	ErrVerification = errors.New("webauthn verification failed")
	// ErrUnknownCredential: the credential is not one of the user's.
	ErrUnknownCredential = errors.New("unknown webauthn credential")
	// ErrCloned: the credential's signature counter did not move forward,
	// so another copy of the key has signed since: the passkey is refused.
	ErrCloned = errors.New("webauthn signature counter went backwards: possibly a cloned authenticator")
	// ErrAlreadyRegistered: the new credential is one the user has.
	ErrAlreadyRegistered = errors.New("webauthn credential already registered")
	// ErrNoPasskeys: a login was begun for a user without passkeys.
	ErrNoPasskeys = errors.New("user has no passkeys")
	// ErrPasskeyLoginOff: a discoverable login was begun without
	// Config.PasskeyLogin.
	ErrPasskeyLoginOff = errors.New("passkey login is not enabled")
)

// HandleBytes is the length of a user handle: 64 random bytes, as WebAuthn
// recommends.
const HandleBytes = 64

// Service runs ceremonies for one relying party.
type Service struct {
	cfg Config
	wa  *webauthn.WebAuthn
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// New checks cfg (after setting its defaults) and returns a Service.
func New(cfg Config) (*Service, error) {
	cfg.Origins = slices.Clone(cfg.Origins)
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	origins := make([]string, len(cfg.Origins))
	for i, o := range cfg.Origins {
		origins[i], _ = checkOrigin(o, cfg.RPID) // checked by Validate
	}
	timeout := webauthn.TimeoutConfig{Timeout: cfg.Timeout, TimeoutUVD: cfg.Timeout}
	wa, err := webauthn.New(&webauthn.Config{
		RPID:          cfg.RPID,
		RPDisplayName: cfg.RPName,
		RPOrigins:     origins,
		// The attestation statement is not checked against any
		// vendor's roots, so asking for one would only reveal the
		// authenticator's model.
		AttestationPreference: protocol.PreferNoAttestation,
		AuthenticatorSelection: protocol.AuthenticatorSelection{
			UserVerification: protocol.UserVerificationRequirement(cfg.UserVerification),
		},
		// Expiry is enforced here, with the injected clock (see Take).
		Timeouts: webauthn.TimeoutsConfig{Login: timeout, Registration: timeout},
	})
	if err != nil {
		return nil, fmt.Errorf("webauthn: %w", err)
	}
	return &Service{cfg: cfg, wa: wa}, nil
}

// Config returns the configuration in use, defaults set.
func (s *Service) Config() Config { return s.cfg }

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Begun is a ceremony begun: Options go to the browser, State into the
// session's Ceremony field.
type Begun struct {
	// Options is the JSON of the options for navigator.credentials.create
	// or .get: {"publicKey": {...}}, binary values in base64url.
	Options []byte
	State   []byte
}

// begin wraps go-webauthn's state into a ceremony of kind.
func (s *Service) begin(kind Kind, options any, data *webauthn.SessionData) (*Begun, error) {
	opts, err := json.Marshal(options)
	if err != nil {
		return nil, fmt.Errorf("encoding webauthn options: %w", err)
	}
	c := Ceremony{Kind: kind, Expires: s.now().Add(s.cfg.Timeout), data: *data}
	state, err := c.Encode()
	if err != nil {
		return nil, err
	}
	return &Begun{Options: opts, State: state}, nil
}

// BeginRegistration begins adding a passkey to u. The user's existing
// credentials are excluded, so an authenticator is not enrolled twice. A
// user without a handle is given one in the ceremony; FinishRegistration
// stores it.
func (s *Service) BeginRegistration(u *store.User) (*Begun, error) {
	handle := u.WebAuthnID
	if handle == nil {
		handle = make([]byte, HandleBytes)
		if _, err := rand.Read(handle); err != nil {
			return nil, fmt.Errorf("generating webauthn user handle: %w", err)
		}
	}
	wu := &user{u: u, handle: handle}
	exclude := make([]protocol.CredentialDescriptor, len(u.Passkeys))
	for i, c := range wu.WebAuthnCredentials() {
		exclude[i] = c.Descriptor()
	}
	options, data, err := s.wa.BeginRegistration(wu,
		webauthn.WithExclusions(exclude),
		webauthn.WithResidentKeyRequirement(protocol.ResidentKeyRequirement(s.cfg.ResidentKey)),
	)
	if err != nil {
		return nil, fmt.Errorf("beginning webauthn registration: %w", err)
	}
	return s.begin(Registration, options, data)
}

// FinishRegistration checks the browser's answer (the JSON of the
// PublicKeyCredential) to a registration c and adds the new passkey, named
// name (a default when empty), to u, giving u the ceremony's handle if it
// had none. The caller puts u.
func (s *Service) FinishRegistration(u *store.User, c *Ceremony, response []byte, name string) (*store.Passkey, error) {
	if c.Kind != Registration {
		return nil, fmt.Errorf("%w: finishing a %v as a registration", ErrNoCeremony, c.Kind)
	}
	if name == "" {
		name = "Passkey " + strconv.Itoa(len(u.Passkeys)+1)
	}
	name, err := cleanName(name)
	if err != nil {
		return nil, err
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(response)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	handle := u.WebAuthnID
	if handle == nil {
		handle = c.data.UserID
	}
	if len(handle) == 0 {
		return nil, fmt.Errorf("%w: the registration has no user handle", ErrNoCeremony)
	}
	// go-webauthn refuses a ceremony begun for another handle.
	cred, err := s.wa.CreateCredential(&user{u: u, handle: handle}, c.data, parsed)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrVerification, err)
	}
	if find(u, cred.ID) >= 0 {
		return nil, ErrAlreadyRegistered
	}
	transports := make([]string, len(cred.Transport))
	for i, t := range cred.Transport {
		transports[i] = string(t)
	}
	now := s.now().UTC()
	u.WebAuthnID = handle
	u.Passkeys = append(u.Passkeys, store.Passkey{
		ID:                cred.ID,
		PublicKey:         cred.PublicKey,
		AttestationType:   cred.AttestationType,
		AttestationFormat: cred.AttestationFormat,
		AAGUID:            cred.Authenticator.AAGUID,
		SignCount:         cred.Authenticator.SignCount,
		Flags:             uint8(cred.Flags.ProtocolValue()),
		Transports:        transports,
		Attachment:        string(cred.Authenticator.Attachment),
		Name:              name,
		Created:           now,
	})
	pk := u.Passkeys[len(u.Passkeys)-1]
	return &pk, nil
}

// BeginLogin begins confirming u with one of u's passkeys (only those are
// allowed).
func (s *Service) BeginLogin(u *store.User) (*Begun, error) {
	if len(u.Passkeys) == 0 || u.WebAuthnID == nil {
		return nil, ErrNoPasskeys
	}
	options, data, err := s.wa.BeginLogin(&user{u: u, handle: u.WebAuthnID})
	if err != nil {
		return nil, fmt.Errorf("beginning webauthn login: %w", err)
	}
	return s.begin(Login, options, data)
}

// FinishLogin checks the browser's answer to a login c for u and returns
// the passkey that signed, after updating its counter, flags and last use
// in u; the caller puts u. On ErrCloned it returns that passkey unchanged,
// so the caller can name it in its log.
func (s *Service) FinishLogin(u *store.User, c *Ceremony, response []byte) (*store.Passkey, error) {
	if c.Kind != Login {
		return nil, fmt.Errorf("%w: finishing a %v as a login", ErrNoCeremony, c.Kind)
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(response)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return s.finishLogin(u, c, parsed)
}

// BeginDiscoverableLogin begins a passkey login for whoever the passkey
// belongs to. It always requires user verification: a passkey that signs
// in alone must be two factors in itself.
func (s *Service) BeginDiscoverableLogin() (*Begun, error) {
	if !s.cfg.PasskeyLogin {
		return nil, ErrPasskeyLoginOff
	}
	options, data, err := s.wa.BeginDiscoverableLogin(webauthn.WithUserVerification(protocol.VerificationRequired))
	if err != nil {
		return nil, fmt.Errorf("beginning webauthn discoverable login: %w", err)
	}
	return s.begin(DiscoverableLogin, options, data)
}

// FinishDiscoverableLogin checks the browser's answer to a discoverable
// login c. lookup finds the user of a user handle (see UserByHandle); its
// store.ErrNotFound is ErrUnknownCredential. It returns the user, updated
// as by FinishLogin (the caller puts it), and the passkey that signed; on
// ErrCloned, the user and that passkey unchanged.
func (s *Service) FinishDiscoverableLogin(c *Ceremony, response []byte, lookup func(handle []byte) (*store.User, error)) (*store.User, *store.Passkey, error) {
	if c.Kind != DiscoverableLogin {
		return nil, nil, fmt.Errorf("%w: finishing a %v as a discoverable login", ErrNoCeremony, c.Kind)
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(response)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	handle := parsed.Response.UserHandle
	if len(handle) == 0 {
		return nil, nil, fmt.Errorf("%w: the authenticator sent no user handle", ErrUnknownCredential)
	}
	u, err := lookup(handle)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, fmt.Errorf("%w: no user has that handle", ErrUnknownCredential)
	}
	if err != nil {
		return nil, nil, err
	}
	pk, err := s.finishLogin(u, c, parsed)
	if err != nil && !errors.Is(err, ErrCloned) {
		return nil, nil, err
	}
	return u, pk, err
}

// UserHandle returns the user handle in a discoverable login's answer, so
// the caller can tell whose attempt it is before finishing it (and count
// it against that account's budget). Nothing is verified yet.
func UserHandle(response []byte) ([]byte, error) {
	parsed, err := protocol.ParseCredentialRequestResponseBytes(response)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if len(parsed.Response.UserHandle) == 0 {
		return nil, fmt.Errorf("%w: the authenticator sent no user handle", ErrUnknownCredential)
	}
	return parsed.Response.UserHandle, nil
}

// finishLogin verifies an assertion by one of u's passkeys and records its
// use in u.
func (s *Service) finishLogin(u *store.User, c *Ceremony, parsed *protocol.ParsedCredentialAssertionData) (*store.Passkey, error) {
	i := find(u, parsed.RawID)
	if i < 0 || u.WebAuthnID == nil {
		return nil, ErrUnknownCredential
	}
	wu := &user{u: u, handle: u.WebAuthnID}
	var cred *webauthn.Credential
	var err error
	if c.Kind == DiscoverableLogin {
		cred, err = s.wa.ValidateDiscoverableLogin(func(_, _ []byte) (webauthn.User, error) { return wu, nil }, c.data, parsed)
	} else {
		cred, err = s.wa.ValidateLogin(wu, c.data, parsed)
	}
	if err != nil {
		var unknown *protocol.ErrorUnknownCredential
		if errors.As(err, &unknown) {
			return nil, ErrUnknownCredential
		}
		return nil, fmt.Errorf("%w: %v", ErrVerification, err)
	}
	pk := &u.Passkeys[i]
	if cred.Authenticator.CloneWarning {
		refused := *pk
		return &refused, ErrCloned
	}
	pk.SignCount = cred.Authenticator.SignCount
	pk.Flags = uint8(cred.Flags.ProtocolValue())
	pk.LastUsed = s.now().UTC()
	used := *pk
	return &used, nil
}

// user adapts a store.User to go-webauthn's User.
type user struct {
	u      *store.User
	handle []byte
}

func (w *user) WebAuthnID() []byte          { return w.handle }
func (w *user) WebAuthnName() string        { return w.u.Name }
func (w *user) WebAuthnDisplayName() string { return w.u.Name }

func (w *user) WebAuthnCredentials() []webauthn.Credential {
	creds := make([]webauthn.Credential, len(w.u.Passkeys))
	for i, p := range w.u.Passkeys {
		transports := make([]protocol.AuthenticatorTransport, len(p.Transports))
		for j, t := range p.Transports {
			transports[j] = protocol.AuthenticatorTransport(t)
		}
		creds[i] = webauthn.Credential{
			ID:                p.ID,
			PublicKey:         p.PublicKey,
			AttestationType:   p.AttestationType,
			AttestationFormat: p.AttestationFormat,
			Transport:         transports,
			Flags:             webauthn.NewCredentialFlags(protocol.AuthenticatorFlags(p.Flags)),
			Authenticator: webauthn.Authenticator{
				AAGUID:     p.AAGUID,
				SignCount:  p.SignCount,
				Attachment: protocol.AuthenticatorAttachment(p.Attachment),
			},
		}
	}
	return creds
}

// find returns the index of u's passkey with id, or -1.
func find(u *store.User, id []byte) int {
	return slices.IndexFunc(u.Passkeys, func(p store.Passkey) bool { return bytes.Equal(p.ID, id) })
}
