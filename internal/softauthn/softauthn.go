// Package softauthn is a software WebAuthn authenticator for tests: it
// answers the options of a registration or a login as a browser and an
// authenticator would together, with whatever it is told to get wrong.
package softauthn

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"math/big"
	"testing"

	"github.com/fxamacker/cbor/v2"
)

// Authenticator is a software authenticator: it answers the options a
// Service sends as a browser and an authenticator would together, with
// whatever it is told to get wrong.
type Authenticator struct {
	Alg    int64 // COSE algorithm: -7 ES256, -8 EdDSA, -257 RS256
	Signer crypto.Signer
	CredID []byte
	Handle []byte // the user handle it keeps (a discoverable credential)

	Origin  string // put in clientDataJSON
	RPID    string // hashed into authenticator data
	Counter uint32
	UV      bool // user verified
	BE, BS  bool // backup eligible, backed up

	Challenge string // when set, signed instead of the options' challenge
}

// New returns an authenticator with a new key of COSE algorithm alg, for
// https://example.com; set Origin and RPID for another site.
func New(t testing.TB, alg int64) *Authenticator {
	t.Helper()
	a := &Authenticator{Alg: alg, Origin: "https://example.com", RPID: "example.com", UV: true, CredID: make([]byte, 32)}
	rand.Read(a.CredID)
	var err error
	switch alg {
	case -7:
		a.Signer, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case -8:
		_, a.Signer, err = ed25519.GenerateKey(rand.Reader)
	case -257:
		a.Signer, err = rsa.GenerateKey(rand.Reader, 2048)
	default:
		t.Fatalf("algorithm %d", alg)
	}
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// COSEKey returns the public key as a COSE_Key.
func (a *Authenticator) COSEKey(t testing.TB) []byte {
	t.Helper()
	var key map[int]any
	switch pub := a.Signer.Public().(type) {
	case *ecdsa.PublicKey:
		raw, err := pub.Bytes() // 0x04 || X || Y
		if err != nil {
			t.Fatal(err)
		}
		key = map[int]any{1: 2, 3: -7, -1: 1, -2: raw[1:33], -3: raw[33:]}
	case ed25519.PublicKey:
		key = map[int]any{1: 1, 3: -8, -1: 6, -2: []byte(pub)}
	case *rsa.PublicKey:
		key = map[int]any{1: 3, 3: -257, -1: pub.N.Bytes(), -2: big.NewInt(int64(pub.E)).Bytes()}
	}
	b, err := cbor.Marshal(key)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Sign signs msg with the credential's key.
func (a *Authenticator) Sign(t testing.TB, msg []byte) []byte {
	t.Helper()
	var sig []byte
	var err error
	if a.Alg == -8 {
		sig, err = a.Signer.Sign(rand.Reader, msg, crypto.Hash(0))
	} else {
		sum := sha256.Sum256(msg)
		sig, err = a.Signer.Sign(rand.Reader, sum[:], crypto.SHA256)
	}
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

// AuthData builds authenticator data, with the credential when attested.
func (a *Authenticator) AuthData(t testing.TB, attested bool) []byte {
	t.Helper()
	rpHash := sha256.Sum256([]byte(a.RPID))
	flags := byte(0x01) // user present
	if a.UV {
		flags |= 0x04
	}
	if a.BE {
		flags |= 0x08
	}
	if a.BS {
		flags |= 0x10
	}
	if attested {
		flags |= 0x40
	}
	b := append(rpHash[:], flags)
	b = binary.BigEndian.AppendUint32(b, a.Counter)
	if attested {
		b = append(b, make([]byte, 16)...) // AAGUID: none told
		b = binary.BigEndian.AppendUint16(b, uint16(len(a.CredID)))
		b = append(b, a.CredID...)
		b = append(b, a.COSEKey(t)...)
	}
	return b
}

// ClientData is the clientDataJSON of a ceremony of typ.
func (a *Authenticator) ClientData(typ, challenge string) []byte {
	if a.Challenge != "" {
		challenge = a.Challenge
	}
	b, _ := json.Marshal(map[string]any{"type": typ, "challenge": challenge, "origin": a.Origin, "crossOrigin": false})
	return b
}

// PublicKeyOptions reads what the authenticator needs of the options.
type PublicKeyOptions struct {
	PublicKey struct {
		Challenge string `json:"challenge"`
		User      struct {
			ID string `json:"id"`
		} `json:"user"`
		ExcludeCredentials []struct {
			ID string `json:"id"`
		} `json:"excludeCredentials"`
		AllowCredentials []struct {
			ID string `json:"id"`
		} `json:"allowCredentials"`
		UserVerification string `json:"userVerification"`
	} `json:"publicKey"`
}

// ParseOptions decodes options.
func ParseOptions(t testing.TB, raw []byte) PublicKeyOptions {
	t.Helper()
	var o PublicKeyOptions
	if err := json.Unmarshal(raw, &o); err != nil {
		t.Fatalf("options %s: %v", raw, err)
	}
	return o
}

// B64 is base64url without padding, as WebAuthn's JSON spells bytes.
var B64 = base64.RawURLEncoding.EncodeToString

// Create answers navigator.credentials.create with options.
func (a *Authenticator) Create(t testing.TB, options []byte) []byte {
	t.Helper()
	o := ParseOptions(t, options)
	handle, err := base64.RawURLEncoding.DecodeString(o.PublicKey.User.ID)
	if err != nil {
		t.Fatalf("user.id %q: %v", o.PublicKey.User.ID, err)
	}
	a.Handle = handle
	attObj, err := cbor.Marshal(map[string]any{"fmt": "none", "attStmt": map[string]any{}, "authData": a.AuthData(t, true)})
	if err != nil {
		t.Fatal(err)
	}
	return MustJSON(t, map[string]any{
		"id": B64(a.CredID), "rawId": B64(a.CredID), "type": "public-key",
		"authenticatorAttachment": "platform",
		"response": map[string]any{
			"clientDataJSON":    B64(a.ClientData("webauthn.create", o.PublicKey.Challenge)),
			"attestationObject": B64(attObj),
			"transports":        []string{"internal", "hybrid"},
		},
		"clientExtensionResults": map[string]any{},
	})
}

// Get answers navigator.credentials.get with options; the counter moves
// on by one first.
func (a *Authenticator) Get(t testing.TB, options []byte) []byte {
	t.Helper()
	o := ParseOptions(t, options)
	a.Counter++
	authData := a.AuthData(t, false)
	cd := a.ClientData("webauthn.get", o.PublicKey.Challenge)
	cdHash := sha256.Sum256(cd)
	return MustJSON(t, map[string]any{
		"id": B64(a.CredID), "rawId": B64(a.CredID), "type": "public-key",
		"response": map[string]any{
			"clientDataJSON":    B64(cd),
			"authenticatorData": B64(authData),
			"signature":         B64(a.Sign(t, append(authData, cdHash[:]...))),
			"userHandle":        B64(a.Handle),
		},
		"clientExtensionResults": map[string]any{},
	})
}

// MustJSON encodes v.
func MustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
