package store

import (
	"encoding/binary"
	"errors"
	"strings"
	"time"
)

// Users and sessions are the bulk of the database (a million sessions is a
// real deployment), so they are stored in a compact binary form rather
// than as JSON, which took twice the space and most of the time of a
// lookup. A record is a format byte, then every field in the order of its
// type: strings and byte slices as a uvarint length and the bytes, numbers
// as uvarints, the stage and the presence of an enrollment as one byte,
// and times as a varint of Unix seconds and a uvarint of nanoseconds.
// Times come back in UTC, without a monotonic reading, as they did from
// JSON. The User-Agent, the largest field of a session, is packed with a
// fixed dictionary of the fragments every browser sends (see packAgent).
//
// Records written as JSON by earlier versions of the bbolt store are read
// by that store alone (package boltstore); the forms here are binary only.
//
// Session format 0x02 adds the credential at the end; 0x01 sessions are
// read with none, so they no longer let anyone in (see Session.Credential).
// Session format 0x03 adds the pending WebAuthn ceremony after it, and user
// format 0x02 adds the WebAuthn user handle, the passkeys and the recovery
// digests of a user without TOTP after Created; records of the earlier
// formats are read with none of these. Session format 0x04 adds the
// re-check deadline after the ceremony, and user format 0x03 adds the
// remembered devices and the app tokens after the recovery digests; older
// records are read with none. User format 0x04 adds the e-mail address and
// the known browsers after the app tokens, and session format 0x05 the
// e-mailed code's digest and expiry after the re-check deadline.
const (
	sessionFormatV1 byte = 0x01
	sessionFormatV2 byte = 0x02
	sessionFormatV3 byte = 0x03
	sessionFormatV4 byte = 0x04
	sessionFormat   byte = 0x05
	userFormatV1    byte = 0x01
	userFormatV2    byte = 0x02
	userFormatV3    byte = 0x03
	userFormat      byte = 0x04
)

// Records that cannot be decoded.
var (
	errCorruptSession = errors.New("corrupt session record")
	errCorruptUser    = errors.New("corrupt user record")
)

// encodeUser returns the stored form of u.
func encodeUser(u *User) []byte {
	n := 3 + 2*(2*binary.MaxVarintLen64) + 3*binary.MaxVarintLen64 + len(u.Name) + len(u.PasswordHash) + len(u.SessionID)
	if e := u.TOTP; e != nil {
		n += 3*binary.MaxVarintLen64 + len(e.Secret)
		for _, d := range e.RecoveryDigests {
			n += binary.MaxVarintLen64 + len(d)
		}
	}
	n += 2*binary.MaxVarintLen64 + len(u.WebAuthnID)
	for i := range u.Passkeys {
		n += passkeySize(&u.Passkeys[i])
	}
	for _, d := range u.RecoveryDigests {
		n += binary.MaxVarintLen64 + len(d)
	}
	n += 2 * binary.MaxVarintLen64
	for i := range u.RememberedDevices {
		d := &u.RememberedDevices[i]
		n += 4*binary.MaxVarintLen64 + 3*(2*binary.MaxVarintLen64) + len(d.ID) + len(d.Digest) + len(d.Factors) + len(d.Browser)
	}
	for i := range u.AppTokens {
		a := &u.AppTokens[i]
		n += 3*binary.MaxVarintLen64 + 3*(2*binary.MaxVarintLen64) + len(a.ID) + len(a.Name) + len(a.Digest)
	}
	n += 2*binary.MaxVarintLen64 + len(u.Email)
	for _, d := range u.KnownBrowsers {
		n += binary.MaxVarintLen64 + len(d)
	}
	b := make([]byte, 0, n)
	b = append(b, userFormat)
	b = appendString(b, u.Name)
	b = appendString(b, u.PasswordHash)
	b = appendString(b, u.SessionID)
	if e := u.TOTP; e == nil {
		b = append(b, 0)
	} else {
		b = append(b, 1)
		b = appendBytes(b, e.Secret)
		b = binary.AppendUvarint(b, e.LastStep)
		b = appendDigests(b, e.RecoveryDigests)
		b = appendTime(b, e.EnrolledAt)
	}
	b = appendTime(b, u.Created)
	b = appendBytes(b, u.WebAuthnID)
	b = binary.AppendUvarint(b, uint64(len(u.Passkeys)))
	for i := range u.Passkeys {
		b = appendPasskey(b, &u.Passkeys[i])
	}
	b = appendDigests(b, u.RecoveryDigests)
	b = binary.AppendUvarint(b, uint64(len(u.RememberedDevices)))
	for i := range u.RememberedDevices {
		b = appendRemembered(b, &u.RememberedDevices[i])
	}
	b = binary.AppendUvarint(b, uint64(len(u.AppTokens)))
	for i := range u.AppTokens {
		b = appendAppToken(b, &u.AppTokens[i])
	}
	b = appendString(b, u.Email)
	return appendDigests(b, u.KnownBrowsers)
}

// A remembered device and an app token are their fields in the order of
// their types, as everything else.
func appendRemembered(b []byte, d *RememberedDevice) []byte {
	b = appendString(b, d.ID)
	b = appendBytes(b, d.Digest)
	b = appendBytes(b, d.Factors)
	b = appendTime(b, d.Created)
	b = appendTime(b, d.LastUsed)
	b = appendTime(b, d.Expires)
	return appendString(b, d.Browser)
}

func (d *decoder) remembered() RememberedDevice {
	return RememberedDevice{
		ID: d.string(), Digest: d.bytes(), Factors: d.bytes(),
		Created: d.time(), LastUsed: d.time(), Expires: d.time(),
		Browser: d.string(),
	}
}

func appendAppToken(b []byte, a *AppToken) []byte {
	b = appendString(b, a.ID)
	b = appendString(b, a.Name)
	b = appendBytes(b, a.Digest)
	b = appendTime(b, a.Created)
	b = appendTime(b, a.LastUsed)
	return appendTime(b, a.Expires)
}

func (d *decoder) appToken() AppToken {
	return AppToken{
		ID: d.string(), Name: d.string(), Digest: d.bytes(),
		Created: d.time(), LastUsed: d.time(), Expires: d.time(),
	}
}

// A passkey is its fields in the order of the type: byte slices and
// strings length-prefixed, the sign count a uvarint, the flags one byte,
// the transports a count and each string, and the two times.
func appendPasskey(b []byte, p *Passkey) []byte {
	b = appendBytes(b, p.ID)
	b = appendBytes(b, p.PublicKey)
	b = appendString(b, p.AttestationType)
	b = appendString(b, p.AttestationFormat)
	b = appendBytes(b, p.AAGUID)
	b = binary.AppendUvarint(b, uint64(p.SignCount))
	b = append(b, p.Flags)
	b = binary.AppendUvarint(b, uint64(len(p.Transports)))
	for _, t := range p.Transports {
		b = appendString(b, t)
	}
	b = appendString(b, p.Attachment)
	b = appendString(b, p.Name)
	b = appendTime(b, p.Created)
	return appendTime(b, p.LastUsed)
}

// passkeySize bounds the length of p's encoding.
func passkeySize(p *Passkey) int {
	n := 9*binary.MaxVarintLen64 + 1 + 2*(2*binary.MaxVarintLen64)
	n += len(p.ID) + len(p.PublicKey) + len(p.AttestationType) + len(p.AttestationFormat) + len(p.AAGUID) + len(p.Attachment) + len(p.Name)
	for _, t := range p.Transports {
		n += binary.MaxVarintLen64 + len(t)
	}
	return n
}

func (d *decoder) passkey() Passkey {
	p := Passkey{
		ID:                d.bytes(),
		PublicKey:         d.bytes(),
		AttestationType:   d.string(),
		AttestationFormat: d.string(),
		AAGUID:            d.bytes(),
	}
	if c := d.uvarint(); c > 1<<32-1 {
		d.bad = true
	} else {
		p.SignCount = uint32(c)
	}
	p.Flags = d.byte()
	p.Transports = list(d, (*decoder).string)
	p.Attachment = d.string()
	p.Name = d.string()
	p.Created = d.time()
	p.LastUsed = d.time()
	return p
}

func appendDigests(b []byte, digests [][]byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(digests)))
	for _, d := range digests {
		b = appendBytes(b, d)
	}
	return b
}

// list reads a count and that many elements with read; an empty list is
// nil. Every element takes at least one byte, which bounds the count by
// what is left before anything is allocated.
func list[T any](d *decoder, read func(*decoder) T) []T {
	n := d.uvarint()
	if n > uint64(len(d.raw)) {
		d.bad, d.raw = true, nil
		return nil
	}
	if n == 0 {
		return nil
	}
	out := make([]T, n)
	for i := range out {
		out[i] = read(d)
	}
	return out
}

// decodeUser decodes a stored user, copying everything it keeps.
func decodeUser(raw []byte, u *User) error {
	if len(raw) == 0 || raw[0] < userFormatV1 || raw[0] > userFormat {
		return errCorruptUser
	}
	d := decoder{raw: raw[1:]}
	u.Name = d.string()
	u.PasswordHash = d.string()
	u.SessionID = d.string()
	if d.byte() != 0 {
		e := &Enrollment{Secret: d.bytes(), LastStep: d.uvarint()}
		e.RecoveryDigests = list(&d, (*decoder).bytes)
		e.EnrolledAt = d.time()
		u.TOTP = e
	}
	u.Created = d.time()
	if raw[0] >= userFormatV2 {
		u.WebAuthnID = d.bytes()
		u.Passkeys = list(&d, (*decoder).passkey)
		u.RecoveryDigests = list(&d, (*decoder).bytes)
	}
	if raw[0] >= userFormatV3 {
		u.RememberedDevices = list(&d, (*decoder).remembered)
		u.AppTokens = list(&d, (*decoder).appToken)
	}
	if raw[0] >= userFormat {
		u.Email = d.string()
		u.KnownBrowsers = list(&d, (*decoder).bytes)
	}
	if d.bad || len(d.raw) != 0 {
		return errCorruptUser
	}
	return nil
}

// encodeSession returns the stored form of s (its Key is the record's key
// and is not part of it).
func encodeSession(s *Session) []byte {
	n := 1 + 1 + 5*(2*binary.MaxVarintLen64)
	for _, f := range []int{len(s.User), len(s.UserSessionID), len(s.Method), len(s.Next), len(s.PendingSecret), len(s.ClientIP), len(s.UserAgent), len(s.Credential), len(s.Ceremony), len(s.EmailCode)} {
		n += binary.MaxVarintLen64 + f
	}
	b := make([]byte, 0, n)
	b = append(b, sessionFormat)
	b = appendString(b, s.User)
	b = append(b, byte(s.Stage))
	b = appendString(b, s.UserSessionID)
	b = appendTime(b, s.Created)
	b = appendTime(b, s.LastSeen)
	b = appendTime(b, s.Expires)
	b = appendTime(b, s.ConfirmedAt)
	b = appendString(b, s.Method)
	b = appendString(b, s.Next)
	b = appendBytes(b, s.PendingSecret)
	b = appendString(b, s.ClientIP)
	b = appendBytes(b, packAgent(s.UserAgent))
	if s.Credential == (Credential{}) {
		b = appendBytes(b, nil)
	} else {
		b = appendBytes(b, s.Credential[:])
	}
	b = appendBytes(b, s.Ceremony)
	b = appendTime(b, s.RecheckAt)
	b = appendBytes(b, s.EmailCode)
	return appendTime(b, s.EmailCodeExpires)
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

func appendBytes(b, v []byte) []byte {
	return append(binary.AppendUvarint(b, uint64(len(v))), v...)
}

func appendTime(b []byte, t time.Time) []byte {
	return binary.AppendUvarint(binary.AppendVarint(b, t.Unix()), uint64(t.Nanosecond()))
}

// decodeSession decodes a stored session. Everything it keeps is copied
// out of raw, so nothing refers to a transaction's memory after it ends.
func decodeSession(raw []byte, s *Session) error {
	if len(raw) == 0 || raw[0] < sessionFormatV1 || raw[0] > sessionFormat {
		return errCorruptSession
	}
	d := decoder{raw: raw[1:]}
	s.User = d.string()
	s.Stage = Stage(d.byte())
	s.UserSessionID = d.string()
	s.Created = d.time()
	s.LastSeen = d.time()
	s.Expires = d.time()
	s.ConfirmedAt = d.time()
	s.Method = d.string()
	s.Next = d.string()
	s.PendingSecret = d.bytes()
	s.ClientIP = d.string()
	s.UserAgent = d.agent(d.next())
	if raw[0] >= sessionFormatV2 {
		switch c := d.next(); len(c) {
		case 0:
		case len(s.Credential):
			s.Credential = Credential(c)
		default:
			d.bad = true
		}
	}
	if raw[0] >= sessionFormatV3 {
		s.Ceremony = d.bytes()
	}
	if raw[0] >= sessionFormatV4 {
		s.RecheckAt = d.time()
	}
	if raw[0] >= sessionFormat {
		s.EmailCode = d.bytes()
		s.EmailCodeExpires = d.time()
	}
	if d.bad || len(d.raw) != 0 {
		return errCorruptSession
	}
	return nil
}

// decoder reads fields off the front of raw; bad records that a read ran
// past the end, after which every read returns a zero value.
type decoder struct {
	raw []byte
	bad bool
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.raw)
	d.skip(n)
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.raw)
	d.skip(n)
	return v
}

// skip drops the n bytes a varint read took; n <= 0 means the read failed
// (and returned 0).
func (d *decoder) skip(n int) {
	if n <= 0 {
		d.bad, d.raw = true, nil
		return
	}
	d.raw = d.raw[n:]
}

func (d *decoder) byte() byte {
	if len(d.raw) == 0 {
		d.bad = true
		return 0
	}
	c := d.raw[0]
	d.raw = d.raw[1:]
	return c
}

// next returns the next length-prefixed field, still in raw's memory.
func (d *decoder) next() []byte {
	n := d.uvarint()
	if n > uint64(len(d.raw)) {
		d.bad, d.raw = true, nil
		return nil
	}
	v := d.raw[:n]
	d.raw = d.raw[n:]
	return v
}

func (d *decoder) string() string { return string(d.next()) }

func (d *decoder) bytes() []byte {
	v := d.next()
	if len(v) == 0 {
		return nil
	}
	return append([]byte(nil), v...)
}

func (d *decoder) time() time.Time {
	sec := d.varint()
	nsec := d.uvarint()
	if nsec >= uint64(time.Second) {
		d.bad = true
		return time.Time{}
	}
	return time.Unix(sec, int64(nsec)).UTC()
}

// agentFragments are the parts of User-Agent strings that nearly every
// browser sends, longest first so the packer takes the longest match. A
// packed agent stores fragment i as the byte i+1. Bytes below 0x20 never
// occur in a header value Go's server accepts (save tab); any that do are
// stored escaped, as 0x00 and the byte. The list is part of the format:
// entries may be added at the end (up to 31), never changed or reordered.
var agentFragments = [...]string{
	") AppleWebKit/537.36 (KHTML, like Gecko) ",
	") AppleWebKit/605.1.15 (KHTML, like Gecko) ",
	"Macintosh; Intel Mac OS X 10_15_7",
	"Windows NT 10.0; Win64; x64",
	"Mobile/15E148 Safari/604.1",
	") Gecko/20100101 Firefox/",
	"iPhone; CPU iPhone OS ",
	" Mobile Safari/537.36",
	" Safari/605.1.15",
	"Linux; Android ",
	" Safari/537.36",
	"Mozilla/5.0 (",
	"X11; Linux x86_64",
	" like Mac OS X",
	"iPad; CPU OS ",
	"Version/",
	"Chrome/",
	".0.0.0",
	" Edg/",
	"; rv:",
}

// packAgent returns ua with every dictionary fragment replaced by its byte.
func packAgent(ua string) []byte {
	out := make([]byte, 0, len(ua))
next:
	for i := 0; i < len(ua); {
		for f, frag := range agentFragments {
			if len(ua)-i >= len(frag) && ua[i] == frag[0] && ua[i:i+len(frag)] == frag {
				out = append(out, byte(f+1))
				i += len(frag)
				continue next
			}
		}
		if ua[i] < 0x20 {
			out = append(out, 0)
		}
		out = append(out, ua[i])
		i++
	}
	return out
}

// agent reverses packAgent; a reference to no fragment marks the
// record bad.
func (d *decoder) agent(packed []byte) string {
	n := 0
	for i := 0; i < len(packed); i++ {
		switch c := packed[i]; {
		case c == 0:
			if i+1 == len(packed) {
				d.bad = true
				return ""
			}
			i++
			n++
		case c < 0x20:
			if int(c) > len(agentFragments) {
				d.bad = true
				return ""
			}
			n += len(agentFragments[c-1])
		default:
			n++
		}
	}
	var b strings.Builder
	b.Grow(n)
	for i := 0; i < len(packed); i++ {
		switch c := packed[i]; {
		case c == 0:
			i++
			b.WriteByte(packed[i])
		case c < 0x20:
			b.WriteString(agentFragments[c-1])
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// The binary forms of users, sessions and attempt counters, shared by the
// stores: bbolt (package boltstore) and Redis (package redisstore) keep
// users and sessions in them, Redis counters too (bbolt keeps counters as
// JSON).

// EncodeUser returns the binary form of u.
func EncodeUser(u *User) []byte { return encodeUser(u) }

// DecodeUser decodes what EncodeUser returned. The result shares no memory
// with raw.
func DecodeUser(raw []byte) (*User, error) {
	var u User
	if err := decodeUser(raw, &u); err != nil {
		return nil, err
	}
	return &u, nil
}

// EncodeSession returns the binary form of s, without its Key.
func EncodeSession(s *Session) []byte { return encodeSession(s) }

// DecodeSession decodes what EncodeSession returned, giving it key. The
// result shares no memory with raw.
func DecodeSession(key SessionKey, raw []byte) (*Session, error) {
	var s Session
	if err := decodeSession(raw, &s); err != nil {
		return nil, err
	}
	s.Key = key
	return &s, nil
}

// attemptsFormat is the first byte of an encoded counter, followed by
// Failures, InFlight and Unfinished as varints and WindowStart and
// LockedUntil as times, as in a session.
const attemptsFormat byte = 0x01

var errCorruptAttempts = errors.New("corrupt attempts record")

// EncodeAttempts returns the binary form of a.
func EncodeAttempts(a *Attempts) []byte {
	b := make([]byte, 0, 1+3*binary.MaxVarintLen64+2*(2*binary.MaxVarintLen64))
	b = append(b, attemptsFormat)
	b = binary.AppendVarint(b, int64(a.Failures))
	b = binary.AppendVarint(b, int64(a.InFlight))
	b = binary.AppendVarint(b, int64(a.Unfinished))
	b = appendTime(b, a.WindowStart)
	b = appendTime(b, a.LockedUntil)
	return appendTime(b, a.ReservedAt)
}

// DecodeAttempts decodes what EncodeAttempts returned.
func DecodeAttempts(raw []byte) (*Attempts, error) {
	if len(raw) == 0 || raw[0] != attemptsFormat {
		return nil, errCorruptAttempts
	}
	d := decoder{raw: raw[1:]}
	var a Attempts
	a.Failures = int(d.varint())
	a.InFlight = int(d.varint())
	a.Unfinished = int(d.varint())
	a.WindowStart = d.time()
	a.LockedUntil = d.time()
	a.ReservedAt = d.time()
	if d.bad || len(d.raw) != 0 {
		return nil, errCorruptAttempts
	}
	return &a, nil
}
