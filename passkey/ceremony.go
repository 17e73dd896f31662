package passkey

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/caddy-two-factor/caddy-two-factor/store"
)

// Kind is what a ceremony was begun for. A ceremony finishes only as the
// kind it was begun as, so the challenge of a registration never signs a
// user in.
type Kind uint8

const (
	// Registration adds a passkey to a known user.
	Registration Kind = 1
	// Login confirms a known user (the second factor): only that user's
	// passkeys are allowed.
	Login Kind = 2
	// DiscoverableLogin signs in whoever the passkey belongs to.
	DiscoverableLogin Kind = 3
)

func (k Kind) String() string {
	switch k {
	case Registration:
		return "registration"
	case Login:
		return "login"
	case DiscoverableLogin:
		return "discoverable login"
	}
	return fmt.Sprintf("kind %d", uint8(k))
}

// Ceremony is a begun ceremony, as kept on the server between the options
// it sent and the browser's answer.
type Ceremony struct {
	Kind    Kind
	Expires time.Time
	// data is go-webauthn's state: the challenge, the user handle, the
	// allowed credentials and what was asked of the authenticator.
	data webauthn.SessionData
}

// A ceremony's stored form is a format byte, the kind, the expiry as a
// big-endian int64 of Unix nanoseconds, then go-webauthn's SessionData as
// JSON. Not its generated MessagePack form: that decoder allocates what a
// length prefix claims, so ten corrupt bytes could ask for gigabytes.
const (
	ceremonyFormat byte = 0x01
	ceremonyHeader      = 1 + 1 + 8
)

// Encode returns the stored form of c, for store.Session.Ceremony.
func (c *Ceremony) Encode() ([]byte, error) {
	data, err := json.Marshal(&c.data)
	if err != nil {
		return nil, fmt.Errorf("encoding webauthn ceremony: %w", err)
	}
	b := make([]byte, ceremonyHeader, ceremonyHeader+len(data))
	b[0], b[1] = ceremonyFormat, byte(c.Kind)
	binary.BigEndian.PutUint64(b[2:], uint64(c.Expires.UnixNano()))
	return append(b, data...), nil
}

// DecodeCeremony decodes what Encode returned. Anything else is
// ErrNoCeremony: a record this version cannot read is a ceremony to begin
// again.
func DecodeCeremony(raw []byte) (*Ceremony, error) {
	if len(raw) < ceremonyHeader || raw[0] != ceremonyFormat {
		return nil, fmt.Errorf("%w: unreadable ceremony", ErrNoCeremony)
	}
	c := &Ceremony{
		Kind:    Kind(raw[1]),
		Expires: time.Unix(0, int64(binary.BigEndian.Uint64(raw[2:]))).UTC(),
	}
	err := json.Unmarshal(raw[ceremonyHeader:], &c.data)
	if err != nil || c.Kind < Registration || c.Kind > DiscoverableLogin || c.data.Challenge == "" {
		return nil, fmt.Errorf("%w: unreadable ceremony", ErrNoCeremony)
	}
	return c, nil
}

// Take removes the ceremony pending in sess and returns it if it is of
// kind and still open. It is removed whatever the outcome, so each
// ceremony is tried once: the caller puts sess back in the transaction
// that finishes the ceremony, and lets that transaction commit even when
// finishing fails (the refusal, not the attempt, is what it rolls back).
func (s *Service) Take(sess *store.Session, kind Kind) (*Ceremony, error) {
	raw := sess.Ceremony
	sess.Ceremony = nil
	if raw == nil {
		return nil, ErrNoCeremony
	}
	c, err := DecodeCeremony(raw)
	if err != nil {
		return nil, err
	}
	if c.Kind != kind {
		return nil, fmt.Errorf("%w: the pending ceremony is a %v, not a %v", ErrNoCeremony, c.Kind, kind)
	}
	if !s.now().Before(c.Expires) {
		return nil, ErrCeremonyExpired
	}
	return c, nil
}
