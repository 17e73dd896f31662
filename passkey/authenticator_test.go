package passkey

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

// authenticator is a software authenticator: it answers the options a
// Service sends as a browser and an authenticator would together, with
// whatever it is told to get wrong.
type authenticator struct {
	alg    int64 // COSE algorithm: -7 ES256, -8 EdDSA, -257 RS256
	signer crypto.Signer
	credID []byte
	handle []byte // the user handle it keeps (a discoverable credential)

	origin  string // put in clientDataJSON
	rpID    string // hashed into authenticator data
	counter uint32
	uv      bool // user verified
	be, bs  bool // backup eligible, backed up

	challenge string // when set, signed instead of the options' challenge
}

func newAuthenticator(t testing.TB, alg int64) *authenticator {
	t.Helper()
	a := &authenticator{alg: alg, origin: "https://example.com", rpID: "example.com", uv: true, credID: make([]byte, 32)}
	rand.Read(a.credID)
	var err error
	switch alg {
	case -7:
		a.signer, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case -8:
		_, a.signer, err = ed25519.GenerateKey(rand.Reader)
	case -257:
		a.signer, err = rsa.GenerateKey(rand.Reader, 2048)
	default:
		t.Fatalf("algorithm %d", alg)
	}
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// coseKey returns the public key as a COSE_Key.
func (a *authenticator) coseKey(t testing.TB) []byte {
	t.Helper()
	var key map[int]any
	switch pub := a.signer.Public().(type) {
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

func (a *authenticator) sign(t testing.TB, msg []byte) []byte {
	t.Helper()
	var sig []byte
	var err error
	if a.alg == -8 {
		sig, err = a.signer.Sign(rand.Reader, msg, crypto.Hash(0))
	} else {
		sum := sha256.Sum256(msg)
		sig, err = a.signer.Sign(rand.Reader, sum[:], crypto.SHA256)
	}
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

// authData builds authenticator data, with the credential when attested.
func (a *authenticator) authData(t testing.TB, attested bool) []byte {
	t.Helper()
	rpHash := sha256.Sum256([]byte(a.rpID))
	flags := byte(0x01) // user present
	if a.uv {
		flags |= 0x04
	}
	if a.be {
		flags |= 0x08
	}
	if a.bs {
		flags |= 0x10
	}
	if attested {
		flags |= 0x40
	}
	b := append(rpHash[:], flags)
	b = binary.BigEndian.AppendUint32(b, a.counter)
	if attested {
		b = append(b, make([]byte, 16)...) // AAGUID: none told
		b = binary.BigEndian.AppendUint16(b, uint16(len(a.credID)))
		b = append(b, a.credID...)
		b = append(b, a.coseKey(t)...)
	}
	return b
}

func (a *authenticator) clientData(typ, challenge string) []byte {
	if a.challenge != "" {
		challenge = a.challenge
	}
	b, _ := json.Marshal(map[string]any{"type": typ, "challenge": challenge, "origin": a.origin, "crossOrigin": false})
	return b
}

// publicKeyOptions reads what the authenticator needs of the options.
type publicKeyOptions struct {
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

func parseOptions(t testing.TB, raw []byte) publicKeyOptions {
	t.Helper()
	var o publicKeyOptions
	if err := json.Unmarshal(raw, &o); err != nil {
		t.Fatalf("options %s: %v", raw, err)
	}
	return o
}

var b64 = base64.RawURLEncoding.EncodeToString

// create answers navigator.credentials.create with options.
func (a *authenticator) create(t testing.TB, options []byte) []byte {
	t.Helper()
	o := parseOptions(t, options)
	handle, err := base64.RawURLEncoding.DecodeString(o.PublicKey.User.ID)
	if err != nil {
		t.Fatalf("user.id %q: %v", o.PublicKey.User.ID, err)
	}
	a.handle = handle
	attObj, err := cbor.Marshal(map[string]any{"fmt": "none", "attStmt": map[string]any{}, "authData": a.authData(t, true)})
	if err != nil {
		t.Fatal(err)
	}
	return mustJSON(t, map[string]any{
		"id": b64(a.credID), "rawId": b64(a.credID), "type": "public-key",
		"authenticatorAttachment": "platform",
		"response": map[string]any{
			"clientDataJSON":    b64(a.clientData("webauthn.create", o.PublicKey.Challenge)),
			"attestationObject": b64(attObj),
			"transports":        []string{"internal", "hybrid"},
		},
		"clientExtensionResults": map[string]any{},
	})
}

// get answers navigator.credentials.get with options; the counter moves
// on by one first.
func (a *authenticator) get(t testing.TB, options []byte) []byte {
	t.Helper()
	o := parseOptions(t, options)
	a.counter++
	authData := a.authData(t, false)
	cd := a.clientData("webauthn.get", o.PublicKey.Challenge)
	cdHash := sha256.Sum256(cd)
	return mustJSON(t, map[string]any{
		"id": b64(a.credID), "rawId": b64(a.credID), "type": "public-key",
		"response": map[string]any{
			"clientDataJSON":    b64(cd),
			"authenticatorData": b64(authData),
			"signature":         b64(a.sign(t, append(authData, cdHash[:]...))),
			"userHandle":        b64(a.handle),
		},
		"clientExtensionResults": map[string]any{},
	})
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
